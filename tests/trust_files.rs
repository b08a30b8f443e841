//! Issue 9, files/locks/hygiene items that need the real binary but no Docker: the lock and the
//! pending-journal check keyed by compose.env's canonical path (two configs, one compose.env),
//! `mongo set-password` refusing while a journal is pending, core dumps off, `LimitCORE=0`.

use komodo_rotate::planes::{steps, RunContext};
use komodo_rotate::txn::lock::RunLock;
use komodo_rotate::txn::{new_journal, Journal, StepStatus};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");

/// One host-wide lock dir for this test binary (the tool and the library read it from the
/// environment), so these tests never touch /run/lock.
fn lock_dir() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("komodo-rotate-locks-{}", std::process::id()));
        std::env::set_var("KOMODO_ROTATE_LOCK_DIR", &d);
        d
    })
    .clone()
}

fn tool(args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .env("KOMODO_ROTATE_LOCK_DIR", lock_dir())
        .env_remove("FAILPOINTS")
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two configs with different state dirs; B reaches compose.env through a symlink.
fn two_configs(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let env = d.join("compose.env");
    std::fs::write(&env, "KOMODO_DATABASE_PASSWORD=x\n").unwrap();
    std::os::unix::fs::symlink("compose.env", d.join("link.env")).unwrap();
    let a = d.join("a.toml");
    std::fs::write(
        &a,
        "compose_env = \"compose.env\"\nstate_dir = \"state-a\"\n",
    )
    .unwrap();
    let b = d.join("b.toml");
    std::fs::write(&b, "compose_env = \"link.env\"\nstate_dir = \"state-b\"\n").unwrap();
    (env, a, b)
}

#[test]
fn two_configs_one_compose_env_see_each_others_lock_and_journal() {
    lock_dir();
    let d = tempfile::tempdir().unwrap();
    let (env, _a, b) = two_configs(d.path());
    let b = b.to_str().unwrap();

    // A run of config A holds its lock: config B's run is refused with exit 6.
    let held = RunLock::acquire_guarding(&d.path().join("state-a/lock"), &env).unwrap();
    let o = tool(&["rotate", "--config", b], b"");
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("another config"), "{}", stderr(&o));
    drop(held);

    // Config A's run was interrupted: config B refuses (exit 3), naming A's state dir.
    let ja = d.path().join("state-a/journal");
    let mut j = new_journal(
        "rotate",
        "db-password",
        &env,
        RunContext {
            compose_env: env.clone(),
            ..Default::default()
        }
        .to_value(),
        vec![steps::change_db(), steps::commit()],
    );
    j.steps[0].status = StepStatus::InFlight;
    j.persist(&ja).unwrap();
    for cmd in ["rotate", "rescue"] {
        let o = tool(&[cmd, "--config", b], b"");
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("state-a"), "{cmd}: {}", stderr(&o));
        assert!(!d.path().join("state-b/journal/current.json").exists());
    }

    // Cleared: the pointer goes with the journal.
    Journal::clear(&ja).unwrap();
    // Pointers live in the persistent pending dir ($KOMODO_ROTATE_LOCK_DIR/pending here).
    let left: Vec<_> = std::fs::read_dir(lock_dir().join("pending"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pending"))
        .filter(|e| {
            std::fs::read(e.path())
                .unwrap()
                .ends_with(b"state-a/journal")
        })
        .collect();
    assert!(left.is_empty(), "stale pending pointer left: {left:?}");
}

#[test]
fn mongo_set_password_refuses_while_a_journal_is_pending() {
    lock_dir();
    let d = tempfile::tempdir().unwrap();
    let (env, _, _) = two_configs(d.path());
    let ja = d.path().join("state-a/journal");
    let mut j = new_journal(
        "rotate",
        "db-password",
        &env,
        RunContext {
            compose_env: env.clone(),
            ..Default::default()
        }
        .to_value(),
        vec![steps::change_db()],
    );
    j.steps[0].status = StepStatus::InFlight;
    j.persist(&ja).unwrap();
    let args = [
        "mongo",
        "set-password",
        "--uri",
        "mongodb://127.0.0.1:9",
        "--user",
        "root",
        "--no-auth",
    ];
    let o = tool(&args, b"new-password\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("pending"), "{}", stderr(&o));
    assert!(stderr(&o).contains("state-a"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("new-password"));
    Journal::clear(&ja).unwrap();

    // The URI checks are mongo.rs's: a remote host is a usage error, before anything else.
    let mut remote = args;
    remote[3] = "mongodb://10.1.2.3:27017";
    let o = tool(&remote, b"new-password\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a loopback"), "{}", stderr(&o));
}

#[test]
fn the_process_cannot_dump_core() {
    use std::os::unix::process::CommandExt;
    // Start the child with core dumps allowed, so only the tool itself can turn them off.
    let mut cmd = Command::new(BIN);
    // SAFETY: setrlimit is async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let big = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &big) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // `mongo check` waits on stdin: look at its limits while it does.
    let mut c = cmd
        .args([
            "mongo",
            "check",
            "--uri",
            "mongodb://127.0.0.1:9",
            "--user",
            "root",
        ])
        .env("KOMODO_ROTATE_LOCK_DIR", lock_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn with RLIMIT_CORE raised (needs root to raise the hard limit)");
    let t0 = std::time::Instant::now();
    let line = loop {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", c.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_else(|| panic!("{limits}"))
            .to_owned();
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[4..6] == ["0", "0"] || t0.elapsed() > std::time::Duration::from_secs(5) {
            break line;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(c.stdin.take());
    let _ = c.wait();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&f[4..6], ["0", "0"], "{line}");
}

#[test]
fn systemd_units_disable_core_dumps() {
    for unit in ["komodo-rotate.service", "komodo-rotate-verify.service"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd")
            .join(unit);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "LimitCORE=0"),
            "{unit} lacks LimitCORE=0"
        );
    }
}

/// A run committed but its journal could not be cleared: `resume` is a no-op that clears it,
/// and a new run is not refused because of it.
#[test]
fn a_committed_journal_left_behind_is_a_no_op_for_resume_and_no_block_for_rotate() {
    lock_dir();
    let d = tempfile::tempdir().unwrap();
    let (env, a, _) = two_configs(d.path());
    let a = a.to_str().unwrap();
    let ja = d.path().join("state-a/journal");
    let committed = || {
        let mut j = new_journal(
            "rotate",
            "db-password",
            &env,
            RunContext {
                compose_env: env.clone(),
                ..Default::default()
            }
            .to_value(),
            vec![steps::change_db(), steps::commit()],
        );
        for r in &mut j.steps {
            r.status = StepStatus::Done;
        }
        j.persist(&ja).unwrap();
    };
    committed();
    let o = tool(&["resume", "--config", a], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("had committed"),
        "{o:?}"
    );
    assert!(Journal::load_pending(&ja).unwrap().is_none());

    committed();
    let o = tool(&["rotate", "--config", a], b"");
    // It gets past the pending check (and stops later, at the missing age identity).
    assert!(!stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(Journal::load_pending(&ja).unwrap().is_none());
}
