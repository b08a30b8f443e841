//! Issue 18 items 6, 7, 8 and 13 (sops set), with the real binary and no Docker: a pending
//! journal stays visible after a reboot empties the lock dir (another config on the same
//! compose.env, `mongo set-password`, `sops set`, a scheduled `rotate --if-older-than` that is
//! not due); `resume` refuses another deployment's journal; a resume that cannot decide for a
//! run that had changed something is exit 5, not 3.

use komodo_rotate::audit::{self, AuditRecord};
use komodo_rotate::planes::{steps, RunContext};
use komodo_rotate::txn::{new_journal, StepStatus};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");

/// This binary's lock dir (tmpfs-like: emptied by a "reboot") and pending dir (persistent),
/// set for the library too, so these tests never touch /run/lock or /var/lib.
fn dirs() -> (PathBuf, PathBuf) {
    static ONCE: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("komodo-rotate-ops-{}", std::process::id()));
        let (lock, pending) = (root.join("run-lock"), root.join("var-lib-pending"));
        std::env::set_var("KOMODO_ROTATE_LOCK_DIR", &lock);
        std::env::set_var("KOMODO_ROTATE_PENDING_DIR", &pending);
        (lock, pending)
    })
    .clone()
}

fn tool(args: &[&str], stdin: &[u8]) -> Output {
    let (lock, pending) = dirs();
    let mut c = Command::new(BIN)
        .args(args)
        .env("KOMODO_ROTATE_LOCK_DIR", lock)
        .env("KOMODO_ROTATE_PENDING_DIR", pending)
        .env_remove("FAILPOINTS")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that refuses before it reads stdin closes the pipe first: that is no test failure
    // (its exit code and output say what happened), any other write error is.
    if let Err(e) = c.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing the tool's stdin: {e}"
        );
    }
    c.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn config(d: &Path, name: &str, env: &str, state: &str) -> PathBuf {
    let p = d.join(name);
    std::fs::write(
        &p,
        format!("compose_env = \"{env}\"\nstate_dir = \"{state}\"\nage_key_file = \"age.key\"\n"),
    )
    .unwrap();
    p
}

/// A journal of a run on `env` in `state/journal` that had started change-db.
fn interrupted(env: &Path, state: &Path) -> PathBuf {
    let dir = state.join("journal");
    let mut j = new_journal(
        "rotate",
        "db-password",
        env,
        RunContext {
            compose_env: env.to_path_buf(),
            ..Default::default()
        }
        .to_value(),
        vec![steps::snapshot(), steps::change_db(), steps::commit()],
    );
    j.steps[0].status = StepStatus::Done;
    j.steps[1].status = StepStatus::InFlight;
    j.persist(&dir).unwrap();
    dir.join("current.json")
}

fn age_key(d: &Path) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    std::fs::write(d.join("age.key"), id.to_string().expose_secret()).unwrap();
}

#[test]
fn after_a_reboot_every_reader_still_sees_the_pending_journal() {
    let (lock, _) = dirs();
    let d = tempfile::tempdir().unwrap();
    let env = d.path().join("compose.env");
    std::fs::write(&env, "KOMODO_DATABASE_PASSWORD=x\n").unwrap();
    std::os::unix::fs::symlink("compose.env", d.path().join("link.env")).unwrap();
    age_key(d.path());
    let a = config(d.path(), "a.toml", "compose.env", "state-a");
    let b = config(d.path(), "b.toml", "link.env", "state-b");
    // A rotated a minute ago (so a scheduled run is not due), then a later run was killed.
    let j = new_journal("rotate", "db-password", &env, Default::default(), vec![]);
    audit::append(
        &d.path().join("state-a/audit.log"),
        &AuditRecord::from_journal(&j, "committed", 0, None),
    )
    .unwrap();
    let journal = interrupted(&env, &d.path().join("state-a"));
    let before = std::fs::read(&journal).unwrap();

    // The reboot: /run/lock is a tmpfs.
    let _ = std::fs::remove_dir_all(&lock);

    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let o = tool(&["rotate", "--config", b], b"");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("state-a"), "another config: {}", text(&o));

    let o = tool(&["rotate", "--config", a, "--if-older-than", "30d"], b"");
    assert_eq!(
        o.status.code(),
        Some(3),
        "not due must not hide it: {}",
        text(&o)
    );
    assert!(text(&o).contains("resume"), "{}", text(&o));
    assert!(!text(&o).contains("not due"), "{}", text(&o));

    let o = tool(
        &[
            "mongo",
            "set-password",
            "--uri",
            "mongodb://127.0.0.1:9",
            "--user",
            "root",
            "--no-auth",
        ],
        b"new-password\n",
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("state-a"), "{}", text(&o));

    let o = tool(
        &[
            "sops",
            "set",
            env.to_str().unwrap(),
            "KOMODO_DATABASE_PASSWORD",
            "--age-key-file",
            "age.key",
        ],
        b"other\n",
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("pending") && text(&o).contains("state-a"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "KOMODO_DATABASE_PASSWORD=x\n"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "nobody touched the journal"
    );
}

#[test]
fn resume_refuses_another_deployments_journal_in_a_shared_state_dir() {
    dirs();
    let d = tempfile::tempdir().unwrap();
    age_key(d.path());
    let env_a = d.path().join("a.env");
    let env_c = d.path().join("c.env");
    for e in [&env_a, &env_c] {
        std::fs::write(e, "KOMODO_DATABASE_PASSWORD=x\n").unwrap();
    }
    // Both configs share the old default state_dir.
    let c = config(d.path(), "c.toml", "c.env", "shared");
    let journal = interrupted(&env_a, &d.path().join("shared"));
    let before = std::fs::read(&journal).unwrap();
    let o = tool(&["resume", "--config", c.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("a.env") && text(&o).contains("that deployment's config"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&journal).unwrap(), before);
}

#[test]
fn a_resume_that_cannot_decide_after_a_change_is_exit_5_not_3() {
    dirs();
    let d = tempfile::tempdir().unwrap();
    age_key(d.path());
    let env = d.path().join("compose.env");
    std::fs::write(&env, "KOMODO_DATABASE_PASSWORD=x\n").unwrap();
    let a = config(d.path(), "a.toml", "compose.env", "state");
    // change-db was in flight and the journal holds no sealed secrets: resume cannot decide,
    // and the planes may be split.
    let journal = interrupted(&env, &d.path().join("state"));
    let o = tool(&["resume", "--config", a.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("may be split"), "{}", text(&o));
    assert!(journal.exists(), "the journal is kept");
}

/// A journal whose every step is done (the process ended between the commit and clearing it):
/// nothing of it is pending, so the next run clears it, and says so in one line naming the run
/// (the campaign's seed 1096938132 saw it vanish without a word). Here a scheduled run that is
/// not due: exit 0, the journal gone, the note on stderr.
#[test]
fn a_committed_journal_left_behind_is_cleared_with_a_note_naming_its_run() {
    let d = tempfile::tempdir().unwrap();
    let env = d.path().join("compose.env");
    std::fs::write(&env, "KOMODO_DATABASE_PASSWORD=x\n").unwrap();
    age_key(d.path());
    let cfg = config(d.path(), "c.toml", "compose.env", "state");
    let state = d.path().join("state");
    let j = new_journal("rotate", "db-password", &env, Default::default(), vec![]);
    audit::append(
        &state.join("audit.log"),
        &AuditRecord::from_journal(&j, "committed", 0, None),
    )
    .unwrap();
    let journal = interrupted(&env, &state);
    let mut left = komodo_rotate::txn::Journal::load_pending(&state.join("journal"))
        .unwrap()
        .unwrap();
    for r in &mut left.steps {
        r.status = StepStatus::Done;
    }
    left.persist(&state.join("journal")).unwrap();
    let o = tool(
        &[
            "rotate",
            "--config",
            cfg.to_str().unwrap(),
            "--if-older-than",
            "30d",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!journal.exists(), "cleared: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let note: Vec<&str> = err.lines().filter(|l| l.contains("left behind")).collect();
    assert_eq!(note.len(), 1, "{err}");
    assert!(
        note[0].contains(&left.run_id)
            && note[0].contains("db-password")
            && note[0].contains("cleared"),
        "{err}"
    );
}
