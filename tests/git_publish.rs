//! The write side of the git plane against real git: commit only compose.env, push, the retry
//! rule, and the failure matrix (upstream moved and touched compose.env, a refusing pre-receive
//! hook, a refusing commit hook, a silent remote), each leaving origin without a stray commit,
//! and the undos.

mod git_support;

use git_support::*;
use komodo_rotate::git::publish::{push_with_one_retry, Undone};
use komodo_rotate::git::{GitError, Repo};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const REL: &str = "services/komodo/compose.env";
const NEW: &str = "KOMODO_DB=ciphertext-NEW\n";
const OLD: &str = "KOMODO_DB=ciphertext-1\n";
const BACK: &str = "KOMODO_DB=ciphertext-set-back\n";

fn repo(f: &Fixture) -> Repo {
    // Commits made by the library need an identity; the host's own config provides it.
    git_ok(&f.host, &["config", "user.name", "komodo-rotate test"]);
    git_ok(&f.host, &["config", "user.email", "t@example.invalid"]);
    Repo::open(&f.host, Duration::from_secs(5)).unwrap()
}

fn write_env(f: &Fixture, body: &str) {
    std::fs::write(f.host.join(REL), body).unwrap();
}

fn origin_env(f: &Fixture) -> String {
    git_ok(&f.origin, &["show", &format!("main:{REL}")])
}

fn hook(dir: &Path, name: &str, body: &str) {
    let p = dir.join("hooks").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn commit_only_compose_env_then_push_reaches_the_pipeline() {
    let f = Fixture::new();
    let r = repo(&f);
    let before = f.head(&f.host);
    // Something else the user staged must stay staged and out of our commit.
    std::fs::write(f.host.join("notes.txt"), "wip\n").unwrap();
    git_ok(&f.host, &["add", "notes.txt"]);
    write_env(&f, NEW);
    let id = r
        .commit_file(REL, "komodo-rotate: rotate db-password (run r1)")
        .unwrap();
    assert_eq!(git_ok(&f.host, &["rev-parse", &format!("{id}^")]), before);
    assert_eq!(
        git_ok(&f.host, &["show", "--name-only", "--format=", &id]),
        REL
    );
    assert_eq!(
        git_ok(&f.host, &["log", "-1", "--format=%s"]),
        "komodo-rotate: rotate db-password (run r1)"
    );
    assert_eq!(
        git_ok(&f.host, &["diff", "--cached", "--name-only"]),
        "notes.txt"
    );

    let pushed = push_with_one_retry(&r, REL, "origin", "main").unwrap();
    assert_eq!(pushed, id);
    assert_eq!(origin_env(&f), NEW.trim_end());
    git_ok(&f.pipeline, &["pull", "-q", "--ff-only"]);
    assert_eq!(std::fs::read_to_string(f.pipeline.join(REL)).unwrap(), NEW);
}

#[test]
fn undo_drops_our_commit_while_it_is_head_else_reverts() {
    let f = Fixture::new();
    let r = repo(&f);
    let before = f.head(&f.host);
    write_env(&f, NEW);
    let id = r.commit_file(REL, "rotate").unwrap();
    assert_eq!(r.undo_commit(&id, REL, "undo").unwrap(), Undone::Dropped);
    assert_eq!(f.head(&f.host), before);
    // Work tree untouched (write-env's undo restores it), index back to HEAD's.
    assert_eq!(std::fs::read_to_string(f.host.join(REL)).unwrap(), NEW);
    assert_eq!(git_ok(&f.host, &["diff", "--cached", "--name-only"]), "");
    // Done twice: nothing left to undo.
    assert_eq!(r.undo_commit(&id, REL, "undo").unwrap(), Undone::NotThere);

    // A commit followed ours: revert on top, history kept.
    let id = r.commit_file(REL, "rotate").unwrap();
    std::fs::write(f.host.join("later.txt"), "x\n").unwrap();
    git_ok(&f.host, &["add", "later.txt"]);
    git_ok(&f.host, &["commit", "-q", "-m", "later"]);
    let Undone::Reverted(rev) = r.undo_commit(&id, REL, "komodo-rotate: roll back").unwrap() else {
        panic!("expected a revert")
    };
    assert_eq!(f.head(&f.host), rev);
    assert_eq!(
        git_ok(&f.host, &["show", &format!("HEAD:{REL}")]),
        OLD.trim_end()
    );
    assert_eq!(std::fs::read_to_string(f.host.join(REL)).unwrap(), OLD);
}

#[test]
fn a_push_retries_once_when_upstream_moved_elsewhere() {
    let f = Fixture::new();
    let r = repo(&f);
    f.upstream_commit(&[("README", "other change\n")], "unrelated");
    write_env(&f, NEW);
    let id = r.commit_file(REL, "rotate").unwrap();
    let pushed = push_with_one_retry(&r, REL, "origin", "main").unwrap();
    assert_ne!(
        pushed, id,
        "the retry replays our commit on the new upstream"
    );
    assert_eq!(origin_env(&f), NEW.trim_end());
    assert_eq!(git_ok(&f.origin, &["show", "main:README"]), "other change");
}

#[test]
fn a_push_is_not_retried_when_upstream_changed_compose_env() {
    let f = Fixture::new();
    let r = repo(&f);
    let theirs = f.upstream_commit(&[(REL, "KOMODO_DB=someone-else\n")], "their rotation");
    write_env(&f, NEW);
    r.commit_file(REL, "rotate").unwrap();
    let e = push_with_one_retry(&r, REL, "origin", "main")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("changed services/komodo/compose.env") && e.contains("stale"),
        "{e}"
    );
    // No stray commit on origin.
    assert_eq!(git_ok(&f.origin, &["rev-parse", "main"]), theirs);
}

#[test]
fn a_refusing_pre_receive_hook_fails_the_push_and_origin_is_unchanged() {
    let f = Fixture::new();
    let r = repo(&f);
    hook(
        &f.origin,
        "pre-receive",
        "echo 'protected branch: reviews required' >&2; exit 1",
    );
    let before = git_ok(&f.origin, &["rev-parse", "main"]);
    write_env(&f, NEW);
    r.commit_file(REL, "rotate").unwrap();
    let e = push_with_one_retry(&r, REL, "origin", "main")
        .unwrap_err()
        .to_string();
    assert!(e.contains("protected branch: reviews required"), "{e}");
    assert_eq!(git_ok(&f.origin, &["rev-parse", "main"]), before);
    assert!(
        r.push_dry_run("origin", "main").is_ok(),
        "dry-run does not run hooks"
    );
}

#[test]
fn a_refusing_commit_hook_fails_the_commit_and_nothing_is_committed() {
    let f = Fixture::new();
    let r = repo(&f);
    hook(
        &f.host.join(".git"),
        "pre-commit",
        "echo 'no secrets in commits' >&2; exit 1",
    );
    let before = f.head(&f.host);
    write_env(&f, NEW);
    let e = r.commit_file(REL, "rotate").unwrap_err().to_string();
    assert!(e.contains("no secrets in commits"), "{e}");
    assert_eq!(f.head(&f.host), before);
    assert_eq!(git_ok(&f.host, &["diff", "--cached", "--name-only"]), "");
}

#[test]
fn a_silent_remote_times_out() {
    let f = Fixture::new();
    let r = repo(&f);
    let port = silent_listener();
    git_ok(
        &f.host,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("git://127.0.0.1:{port}/o.git"),
        ],
    );
    let r = Repo {
        network_timeout: Duration::from_secs(2),
        ..r
    };
    write_env(&f, NEW);
    r.commit_file(REL, "rotate").unwrap();
    let t = std::time::Instant::now();
    let e = push_with_one_retry(&r, REL, "origin", "main").unwrap_err();
    assert!(matches!(e, GitError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("within 2s"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let e = r.push_dry_run("origin", "main").unwrap_err();
    assert!(matches!(e, GitError::Timeout { .. }), "{e}");
}

#[test]
fn push_dry_run_sees_a_moved_upstream() {
    let f = Fixture::new();
    let r = repo(&f);
    assert!(r.push_dry_run("origin", "main").is_ok());
    f.upstream_commit(&[("README", "x\n")], "moved");
    write_env(&f, NEW);
    r.commit_file(REL, "rotate").unwrap();
    let e = r.push_dry_run("origin", "main").unwrap_err().to_string();
    assert!(e.contains("push --dry-run"), "{e}");
}

/// `commit_on` (an undo setting origin's branch back while HEAD cannot reach it): a commit on
/// top of a fetched remote branch with only compose.env changed (nested path, every other entry
/// and the file's mode kept), made without moving HEAD or touching the index or the work tree;
/// `push_rev` sends exactly it, and is refused (no force) once the branch moved on again. A path
/// the commit lacks is refused by name, nothing made.
#[test]
fn a_commit_on_the_remote_branch_leaves_the_checkout_alone_and_is_pushed_as_is() {
    let f = Fixture::new();
    let r = repo(&f);
    // The file's mode must be kept by the new tree.
    git_ok(&f.host, &["update-index", "--chmod=+x", REL]);
    git_ok(&f.host, &["commit", "-q", "-m", "executable env file"]);
    git_ok(&f.host, &["push", "-q", "origin", "main"]);
    let upstream = f.upstream_commit(&[("docs/readme.md", "theirs\n")], "colleague");
    // The host's own commit, unpushed, and a staged and an unstaged change: none may move.
    std::fs::write(f.host.join("mine.txt"), "local\n").unwrap();
    git_ok(&f.host, &["add", "mine.txt"]);
    git_ok(&f.host, &["commit", "-q", "-m", "operator's own"]);
    std::fs::write(f.host.join("staged.txt"), "s\n").unwrap();
    git_ok(&f.host, &["add", "staged.txt"]);
    write_env(&f, "KOMODO_DB=uncommitted\n");
    let (head, status) = (f.head(&f.host), git_ok(&f.host, &["status", "--porcelain"]));
    r.fetch("origin").unwrap();
    let id = r
        .commit_on(
            "refs/remotes/origin/main",
            REL,
            BACK.as_bytes(),
            "set back\n\nK: v\n",
        )
        .unwrap();
    assert_eq!(
        (f.head(&f.host), git_ok(&f.host, &["status", "--porcelain"])),
        (head.clone(), status)
    );
    assert_eq!(
        std::fs::read_to_string(f.host.join(REL)).unwrap(),
        "KOMODO_DB=uncommitted\n"
    );
    assert_eq!(git_ok(&f.host, &["rev-parse", &format!("{id}^")]), upstream);
    assert_eq!(
        git_ok(&f.host, &["show", "--name-only", "--format=", &id]),
        REL
    );
    assert_eq!(
        git_ok(&f.host, &["show", &format!("{id}:{REL}")]) + "\n",
        BACK
    );
    assert_eq!(
        git_ok(&f.host, &["show", &format!("{id}:docs/readme.md")]),
        "theirs"
    );
    let mode = git_ok(&f.host, &["ls-tree", &id, REL]);
    assert!(mode.starts_with("100755 blob "), "{mode}");
    assert_eq!(
        git_ok(&f.host, &["log", "-1", "--format=%B", &id]),
        "set back\n\nK: v"
    );
    r.push_rev(&id, "origin", "main").unwrap();
    assert_eq!(f.head(&f.origin), id);
    assert_eq!(f.head(&f.host), head, "the checkout's branch did not move");
    // The branch moved on again: the same push is refused, origin untouched.
    let other = r
        .commit_on(&upstream, REL, NEW.as_bytes(), "stale\n")
        .unwrap();
    let e = r.push_rev(&other, "origin", "main").unwrap_err();
    assert!(
        matches!(&e, GitError::Refused(m) if m.contains("moved on")),
        "{e}"
    );
    assert_eq!(f.head(&f.origin), id);
    // A path the commit lacks: refused by name.
    let e = r
        .commit_on(
            &upstream,
            "services/none/compose.env",
            OLD.as_bytes(),
            "x\n",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("none"), "{e}");
}
