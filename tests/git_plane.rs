//! The git plane with real git (no mocks): a bare `origin`, a host clone and a pipeline clone.
//! The outage reproduced and `repo unblock`, its refusals (nothing moved), `verify`'s git rows and
//! gauges, and a remote that accepts TCP and never answers.

mod git_support;
mod ops_support;

use git_support::*;
use ops_support::{parse_prometheus, runbook, value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const LITELLM: &str = "services:\n  litellm:\n    image: ghcr.io/berriai/litellm:main\n";
const DOT_ENV: &[u8] = b"LITELLM_MASTER_KEY=sk-live-do-not-lose\n";

/// The outage: the host has an untracked `services/litellm/` (a compose.yaml byte-identical to
/// the one upstream adds, and a gitignored `.env` of live secrets); upstream adds the file.
fn outage() -> Fixture {
    let f = Fixture::new();
    let dir = f.host.join("services/litellm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), LITELLM).unwrap();
    std::fs::write(dir.join(".env"), DOT_ENV).unwrap();
    f.upstream_commit(&[("services/litellm/compose.yaml", LITELLM)], "add litellm");
    f
}

fn verify_json(f: &Fixture, prom: &Path) -> Run {
    f.kr_cfg(
        &["verify"],
        &["--json", "--prometheus", prom.to_str().unwrap()],
    )
}

#[test]
fn the_outage_is_seen_by_verify_and_unblocked_safely() {
    let f = outage();
    // What the pipeline's pull does on the host: refused by git.
    let pull = git(&f.host, &["pull", "--ff-only", "-q"]);
    assert!(!pull.status.success());
    assert!(String::from_utf8_lossy(&pull.stderr).contains("untracked working tree files"));
    let before = f.head(&f.host);

    let prom = f.tmp.path().join("verify.prom");
    let v = verify_json(&f, &prom);
    assert_eq!(v.code, Some(1), "{}", v.text());
    let (st, d) = check(&v.stdout, "git-pull").expect("git-pull row");
    assert_eq!(st, "drift", "{d}");
    assert!(d.contains("services/litellm/compose.yaml identical"), "{d}");
    assert!(d.contains("repo unblock"), "{d}");
    let (st, d) = check(&v.stdout, "git-ignored-at-risk").expect("env trap row");
    assert_eq!(st, "drift");
    assert!(d.contains("services/litellm/.env"), "{d}");
    assert_eq!(check(&v.stdout, "git-env").unwrap().0, "ok");
    let (st, d) = check(&v.stdout, "git-upstream").unwrap();
    assert_eq!(st, "ok", "{d}");
    assert!(d.contains("0 ahead, 1 behind origin/main"), "{d}");
    let text = std::fs::read_to_string(&prom).unwrap();
    let s = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, want) in [
        ("komodo_rotate_git_pull_blocked", 1.0),
        ("komodo_rotate_git_untracked_collisions", 1.0),
        ("komodo_rotate_git_ignored_files_at_risk", 1.0),
        ("komodo_rotate_git_behind_commits", 1.0),
        ("komodo_rotate_git_ahead_commits", 0.0),
        ("komodo_rotate_git_fetch_ok", 1.0),
        ("komodo_rotate_git_compose_env_committed", 1.0),
    ] {
        assert_eq!(value(&s, name, None), Some(want), "{name}\n{text}");
    }
    assert!(text.contains("komodo_rotate_check{check=\"git-pull\"} 1\n"));

    // The plan moves nothing.
    let snap = snapshot(&f.host);
    let dry = f.kr_cfg(&["repo", "unblock"], &["--dry-run"]);
    assert_eq!(dry.code, Some(0), "{}", dry.text());
    assert!(
        dry.stdout
            .contains("would quarantine services/litellm/compose.yaml"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("keep gitignored services/litellm/.env"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("nothing changed"));
    assert_eq!(snapshot(&f.host), snap, "dry-run changed the checkout");
    assert_eq!(f.head(&f.host), before);
    assert!(!f.state.join("quarantine").exists());

    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stdout.contains("fast-forwarded to"), "{}", r.stdout);
    // The identical file is in quarantine at the same relative path, 0700 directories.
    let q = std::fs::read_dir(f.state.join("quarantine"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let moved = q.join("services/litellm/compose.yaml");
    assert_eq!(std::fs::read_to_string(&moved).unwrap(), LITELLM);
    for d in [
        f.state.join("quarantine"),
        q.clone(),
        q.join("services"),
        q.join("services/litellm"),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    // The gitignored .env is untouched, byte for byte; the checkout equals upstream.
    assert_eq!(
        std::fs::read(f.host.join("services/litellm/.env")).unwrap(),
        DOT_ENV
    );
    assert_eq!(f.head(&f.host), git_ok(&f.origin, &["rev-parse", "main"]));
    assert_eq!(git_ok(&f.host, &["status", "--porcelain"]), "");
    // And the pipeline's pull works from now on.
    assert!(git(&f.host, &["pull", "--ff-only", "-q"]).status.success());
    let v = verify_json(&f, &prom);
    assert_eq!(
        check(&v.stdout, "git-pull").unwrap().0,
        "ok",
        "{}",
        v.stdout
    );
    assert!(check(&v.stdout, "git-ignored-at-risk").is_none());
}

#[test]
fn a_differing_untracked_file_is_refused_and_nothing_moves() {
    let f = outage();
    std::fs::write(
        f.host.join("services/litellm/compose.yaml"),
        "edited on the host\n",
    )
    .unwrap();
    let snap = snapshot(&f.host);
    let before = f.head(&f.host);
    for args in [&["--dry-run"][..], &[][..]] {
        let r = f.kr_cfg(&["repo", "unblock"], args);
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(
            r.stderr.contains("services/litellm/compose.yaml differ"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("nothing moved"), "{}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    assert_eq!(snapshot(&f.host), snap);
    assert_eq!(f.head(&f.host), before);
    assert!(!f.state.join("quarantine").exists());
}

#[test]
fn local_changes_to_incoming_files_are_refused_never_discarded() {
    let f = Fixture::new();
    f.upstream_commit(
        &[("services/komodo/compose.env", "KOMODO_DB=ciphertext-2\n")],
        "upstream",
    );
    std::fs::write(
        f.host.join("services/komodo/compose.env"),
        "KOMODO_DB=host-edit\n",
    )
    .unwrap();
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr
            .contains("local changes to services/komodo/compose.env"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(f.host.join("services/komodo/compose.env")).unwrap(),
        "KOMODO_DB=host-edit\n"
    );
    // verify names it too, and says compose.env is not HEAD's.
    let prom = f.tmp.path().join("v.prom");
    let v = verify_json(&f, &prom);
    assert_eq!(check(&v.stdout, "git-env").unwrap().0, "drift");
    let (st, d) = check(&v.stdout, "git-pull").unwrap();
    assert_eq!(st, "drift");
    assert!(
        d.contains("local changes to services/komodo/compose.env"),
        "{d}"
    );
}

#[test]
fn a_gitignored_file_upstream_starts_tracking_is_refused() {
    // git would overwrite an ignored file at an incoming path without a word.
    let f = Fixture::new();
    std::fs::create_dir_all(f.host.join("services/app")).unwrap();
    std::fs::write(f.host.join("services/app/.env"), DOT_ENV).unwrap();
    f.upstream_commit(&[("services/app/.env", "PLACEHOLDER=1\n")], "track .env");
    let prom = f.tmp.path().join("v.prom");
    let v = verify_json(&f, &prom);
    let (st, d) = check(&v.stdout, "git-pull").unwrap();
    assert_eq!(st, "drift", "{d}");
    assert!(
        d.contains("silently overwrite gitignored services/app/.env"),
        "{d}"
    );
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr
            .contains("gitignored services/app/.env would be overwritten"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(f.host.join("services/app/.env")).unwrap(),
        DOT_ENV
    );
}

#[test]
fn a_diverged_checkout_is_refused() {
    let f = Fixture::new();
    f.upstream_commit(&[("a.txt", "up\n")], "upstream");
    std::fs::write(f.host.join("b.txt"), "host\n").unwrap();
    git_ok(&f.host, &["add", "b.txt"]);
    git_ok(&f.host, &["commit", "-q", "-m", "host"]);
    let before = f.head(&f.host);
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("diverged"), "{}", r.stderr);
    assert_eq!(f.head(&f.host), before);
}

#[test]
fn a_failed_merge_puts_the_quarantined_files_back() {
    let f = outage();
    // Another git process holds the index lock: the merge must fail after the move.
    std::fs::write(f.host.join(".git/index.lock"), "").unwrap();
    let before = f.head(&f.host);
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("put back"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(f.host.join("services/litellm/compose.yaml")).unwrap(),
        LITELLM
    );
    assert_eq!(
        std::fs::read(f.host.join("services/litellm/.env")).unwrap(),
        DOT_ENV
    );
    assert_eq!(f.head(&f.host), before);
}

#[test]
fn quarantine_on_another_filesystem_copies_then_removes() {
    // /dev/shm is a tmpfs: rename(2) fails with EXDEV and the copy path runs.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        assert!(
            !matches!(std::env::var("CI").map(|v| v.trim().to_ascii_lowercase()).as_deref(), Ok(v) if !["", "false", "0", "no", "off"].contains(&v)),
            "/dev/shm missing under CI"
        );
        eprintln!("SKIP no /dev/shm");
        return;
    }
    let st = tempfile::tempdir_in(shm).unwrap();
    let f = Fixture::with_state_dir(Some(st.path().join("state")));
    let dir = f.host.join("services/litellm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), LITELLM).unwrap();
    f.upstream_commit(&[("services/litellm/compose.yaml", LITELLM)], "add litellm");
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let q = std::fs::read_dir(f.state.join("quarantine"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(q.join("services/litellm/compose.yaml")).unwrap(),
        LITELLM
    );
    assert_eq!(f.head(&f.host), git_ok(&f.origin, &["rev-parse", "main"]));
}

#[test]
fn a_silent_remote_times_out_offline_is_a_warning() {
    let f = outage();
    let port = silent_listener();
    git_ok(
        &f.host,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("git://127.0.0.1:{port}/origin.git"),
        ],
    );
    f.write_config("[git]\nnetwork_timeout = \"2s\"\n");
    let t = std::time::Instant::now();
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr.contains("did not answer within 2s"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing changed"), "{}", r.stderr);
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    // verify: the offline fetch is a warning; what the last fetch knew is still reported.
    let prom = f.tmp.path().join("v.prom");
    let v = verify_json(&f, &prom);
    let (st, d) = check(&v.stdout, "git-upstream").unwrap();
    assert_eq!(st, "info", "{d}");
    assert!(d.contains("offline"), "{d}");
    let s = parse_prometheus(&std::fs::read_to_string(&prom).unwrap()).unwrap();
    assert_eq!(value(&s, "komodo_rotate_git_fetch_ok", None), Some(0.0));
}

#[test]
fn unpushed_compose_env_commits_are_drift_and_modes_are_honoured() {
    let f = Fixture::new();
    std::fs::write(
        f.host.join("services/komodo/compose.env"),
        "KOMODO_DB=ciphertext-2\n",
    )
    .unwrap();
    git_ok(&f.host, &["commit", "-q", "-am", "rotate"]);
    let prom = f.tmp.path().join("v.prom");
    let v = verify_json(&f, &prom);
    let (st, d) = check(&v.stdout, "git-upstream").unwrap();
    assert_eq!(st, "drift", "{d}");
    assert!(
        d.contains("changed in 1 commit(s) not on origin/main"),
        "{d}"
    );
    assert!(!d.contains("ciphertext"), "{d}");

    f.write_config("[git]\nmode = \"off\"\n");
    let v = verify_json(&f, &prom);
    assert_eq!(check(&v.stdout, "git").unwrap().0, "info");
    assert!(check(&v.stdout, "git-upstream").is_none());
    let s = parse_prometheus(&std::fs::read_to_string(&prom).unwrap()).unwrap();
    assert!(s.iter().all(|x| !x.name.starts_with("komodo_rotate_git_")));

    // Untracked compose.env: auto is quiet about it, an explicit mode calls it drift.
    git_ok(
        &f.host,
        &["rm", "-q", "--cached", "services/komodo/compose.env"],
    );
    f.write_config("");
    let v = verify_json(&f, &prom);
    assert_eq!(check(&v.stdout, "git").unwrap().0, "info", "{}", v.stdout);
    f.write_config("[git]\nmode = \"commit\"\n");
    let v = verify_json(&f, &prom);
    let (st, d) = check(&v.stdout, "git").unwrap();
    assert_eq!(st, "drift", "{d}");
    assert!(d.contains("not tracked"), "{d}");
}

#[test]
fn up_to_date_is_nothing_to_do_and_no_repo_is_refused() {
    let f = Fixture::new();
    let r = f.kr_cfg(&["repo", "unblock"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stdout.contains("up to date"), "{}", r.stdout);
    let plain = f.tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let r = f.kr_cfg(&["repo", "unblock"], &["--repo", plain.to_str().unwrap()]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("not a git work tree"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1);
}

#[test]
fn the_blocked_pull_runbook_works_as_written() {
    let f = outage();
    let bin_dir = Path::new(BIN)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for b in runbook("blocked-pull.md")
        .into_iter()
        .filter(|b| b.is_sh() && !b.no_test())
    {
        let want = b.expected_exit().unwrap_or(0);
        let out = Command::new("sh")
            .arg("-euc")
            .arg(&b.text)
            .env(
                "PATH",
                format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .env("CONFIG", &f.config)
            .env("REPO", &f.host)
            .env_remove("FAILPOINTS")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(want),
            "blocked-pull.md:{}: {}\n{}",
            b.line,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(f.head(&f.host), git_ok(&f.origin, &["rev-parse", "main"]));
    assert_eq!(
        std::fs::read(f.host.join("services/litellm/.env")).unwrap(),
        DOT_ENV
    );
}
