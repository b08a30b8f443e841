//! The revert an undo makes when commits followed ours, against real git: when a later commit
//! changed the same lines of compose.env (a colleague's `sops set` rewrote `sops_mac` and
//! `sops_lastmodified`), the revert is refused before anything is touched: no REVERT_HEAD, no
//! unmerged entry, no conflict markers, compose.env byte for byte as it was, other staged work
//! kept, and a one-line error naming the file. A revert that fails anyway (a refusing commit
//! hook) is cleaned up the same way.

mod git_support;

use git_support::*;
use komodo_rotate::git::publish::Undone;
use komodo_rotate::git::Repo;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const REL: &str = "services/komodo/compose.env";

fn env(db: &str, modified: &str, mac: &str) -> String {
    format!(
        "KOMODO_DB=ENC[AES256_GCM,data:{db},type:str]\nKOMODO_OTHER=ENC[AES256_GCM,data:o1,type:str]\nsops_lastmodified={modified}\nsops_mac=ENC[AES256_GCM,data:{mac},type:str]\nsops_version=3.9.0\n"
    )
}

fn repo(f: &Fixture) -> Repo {
    git_ok(&f.host, &["config", "user.name", "komodo-rotate test"]);
    git_ok(&f.host, &["config", "user.email", "t@example.invalid"]);
    Repo::open(&f.host, Duration::from_secs(5)).unwrap()
}

fn commit_all(f: &Fixture, body: &str, msg: &str) {
    std::fs::write(f.host.join(REL), body).unwrap();
    git_ok(&f.host, &["commit", "-q", "-a", "-m", msg]);
}

/// Old secret committed; ours rotates it (new value, new mac); a colleague's later commit
/// re-encrypts another key, rewriting the same metadata lines. Returns (ours, later bytes).
fn conflicting_history(f: &Fixture, r: &Repo) -> (String, String) {
    commit_all(f, &env("old", "2026-12-01T00:00:00Z", "mac0"), "old secret");
    std::fs::write(f.host.join(REL), env("new", "2026-12-06T14:00:00Z", "mac1")).unwrap();
    let ours = r.commit_file(REL, "rotate").unwrap();
    let later = env("new", "2026-12-06T14:05:00Z", "mac2").replace("o1", "o2");
    commit_all(f, &later, "colleague: sops set KOMODO_OTHER");
    (ours, later)
}

fn no_revert_in_progress(f: &Fixture) {
    let o = git(&f.host, &["rev-parse", "-q", "--verify", "REVERT_HEAD"]);
    assert!(!o.status.success(), "REVERT_HEAD left behind");
    assert!(
        !f.host.join(".git/MERGE_MSG").exists(),
        "MERGE_MSG left behind"
    );
    assert_eq!(git_ok(&f.host, &["ls-files", "--unmerged"]), "");
}

fn one_line_naming_the_conflict(e: &str) {
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains(REL) && e.contains("conflict"), "{e}");
}

#[test]
fn a_conflicting_revert_is_refused_and_leaves_head_index_and_file_as_is() {
    let f = Fixture::new();
    let r = repo(&f);
    let (ours, later) = conflicting_history(&f, &r);
    let head = f.head(&f.host);

    // compose.env holds HEAD's bytes (the colleague's).
    let e = r
        .undo_commit(&ours, REL, "roll back")
        .unwrap_err()
        .to_string();
    no_revert_in_progress(&f);
    assert_eq!(f.head(&f.host), head);
    assert_eq!(std::fs::read_to_string(f.host.join(REL)).unwrap(), later);
    assert_eq!(git_ok(&f.host, &["status", "--porcelain"]), "");
    one_line_naming_the_conflict(&e);

    // compose.env holds other bytes (what the run wrote) and something else is staged: both kept.
    let run_bytes = env("new", "2026-12-06T14:00:00Z", "mac1");
    std::fs::write(f.host.join(REL), &run_bytes).unwrap();
    std::fs::write(f.host.join("notes.txt"), "wip\n").unwrap();
    git_ok(&f.host, &["add", "notes.txt"]);
    let e = r
        .revert_commit(&ours, REL, "roll back")
        .unwrap_err()
        .to_string();
    no_revert_in_progress(&f);
    assert_eq!(f.head(&f.host), head);
    assert_eq!(
        std::fs::read_to_string(f.host.join(REL)).unwrap(),
        run_bytes
    );
    let status = git_ok(&f.host, &["status", "--porcelain"]);
    assert_eq!(status, format!("A  notes.txt\n M {REL}"));
    one_line_naming_the_conflict(&e);
}

#[test]
fn a_clean_revert_still_reverts_only_our_lines() {
    let f = Fixture::new();
    let r = repo(&f);
    commit_all(&f, &env("old", "t0", "mac0"), "old secret");
    std::fs::write(f.host.join(REL), env("new", "t1", "mac1")).unwrap();
    let ours = r.commit_file(REL, "rotate").unwrap();
    // A later commit away from our lines (a line appended at the end).
    let later = format!("{}# managed by sops\n", env("new", "t1", "mac1"));
    commit_all(&f, &later, "colleague: comment");
    let Undone::Reverted(rev) = r.undo_commit(&ours, REL, "roll back").unwrap() else {
        panic!("expected a revert")
    };
    assert_eq!(f.head(&f.host), rev);
    let want = format!("{}# managed by sops\n", env("old", "t0", "mac0"));
    assert_eq!(std::fs::read_to_string(f.host.join(REL)).unwrap(), want);
    no_revert_in_progress(&f);
}

fn hook(dir: &Path, name: &str, body: &str) {
    let p = dir.join("hooks").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_revert_whose_commit_is_refused_leaves_nothing_half_done() {
    let f = Fixture::new();
    let r = repo(&f);
    commit_all(&f, &env("old", "t0", "mac0"), "old secret");
    let run_bytes = env("new", "t1", "mac1");
    std::fs::write(f.host.join(REL), &run_bytes).unwrap();
    let ours = r.commit_file(REL, "rotate").unwrap();
    std::fs::write(f.host.join("later.txt"), "x\n").unwrap();
    git_ok(&f.host, &["add", "later.txt"]);
    git_ok(&f.host, &["commit", "-q", "-m", "later"]);
    let head = f.head(&f.host);
    hook(
        &f.host.join(".git"),
        "pre-commit",
        "echo 'refused' >&2; exit 1",
    );
    let e = r
        .revert_commit(&ours, REL, "roll back")
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused"), "{e}");
    no_revert_in_progress(&f);
    assert_eq!(f.head(&f.host), head);
    assert_eq!(
        std::fs::read_to_string(f.host.join(REL)).unwrap(),
        run_bytes
    );
    assert_eq!(git_ok(&f.host, &["status", "--porcelain"]), "");
}
