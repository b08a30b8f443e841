//! The `mongo-test-server` process: its first stdout line, the official image's init variables
//! (with their error cases), test controls by env, and a clean exit on SIGTERM.

use bson::doc;
use komodo_rotate::mongo::{login_works, LoginOutcome, MongoAdmin, Target};
use komodo_rotate::secret::Secret;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_mongo-test-server");
const PW: &str = "bin-Test-pw-0123456789";

fn server(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("MONGO_INITDB_ROOT_USERNAME")
        .env_remove("MONGO_INITDB_ROOT_PASSWORD")
        .env_remove("MONGO_TEST_CONTROLS")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Starts the process and returns it with the address from `listening on ADDR`.
async fn spawn(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = server(dir, env).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("first line in time")
        .unwrap()
        .expect("a first line");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (child, addr)
}

fn target(addr: &str) -> Target {
    Target::new(&format!("mongodb://{addr}/?directConnection=true"), "root")
        .unwrap()
        .with_timeout(Duration::from_secs(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initdb_variables_seed_root_once_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, format!("{PW}\n")).unwrap();
    let data = dir.path().join("db");
    let (child, addr) = spawn(
        &data,
        &[
            ("MONGO_INITDB_ROOT_USERNAME", "root"),
            ("MONGO_INITDB_ROOT_PASSWORD_FILE", pwfile.to_str().unwrap()),
        ],
    )
    .await;
    let t = target(&addr);
    assert_eq!(
        login_works(&t, &Secret::new(PW.into())).await,
        LoginOutcome::Accepted
    );
    // SIGTERM (what `docker stop` sends to PID 1) ends it cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(PW), "password in the server log: {log}");

    // Same DIR, other password: the store is kept (the incident's drift).
    let (_child, addr) = spawn(
        &data,
        &[
            ("MONGO_INITDB_ROOT_USERNAME", "root"),
            ("MONGO_INITDB_ROOT_PASSWORD", "other-pw-999"),
        ],
    )
    .await;
    let t = target(&addr);
    assert_eq!(
        login_works(&t, &Secret::new(PW.into())).await,
        LoginOutcome::Accepted
    );
    assert_eq!(
        login_works(&t, &Secret::new("other-pw-999".into())).await,
        LoginOutcome::Rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_init_variables_and_arguments_exit_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (env, code, needle) in [
        (
            vec![
                ("MONGO_INITDB_ROOT_USERNAME", "root"),
                ("MONGO_INITDB_ROOT_PASSWORD", PW),
                ("MONGO_INITDB_ROOT_PASSWORD_FILE", "/etc/hostname"),
            ],
            1,
            "exclusive",
        ),
        (
            vec![("MONGO_INITDB_ROOT_PASSWORD", PW)],
            1,
            "MONGO_INITDB_ROOT_USERNAME",
        ),
        (
            vec![("MONGO_INITDB_ROOT_USERNAME", "root")],
            1,
            "MONGO_INITDB_ROOT_PASSWORD",
        ),
    ] {
        let out = server(&dir.path().join("db"), &env).output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{env:?}: {err}");
        assert!(err.contains(needle), "{env:?}: {err}");
        assert!(!err.contains(PW), "{err}");
    }
    assert!(
        !dir.path().join("db").exists(),
        "a refused start creates nothing"
    );
    let out = Command::new(BIN).arg("--bogus").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["--bind", "nowhere"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_controls_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = spawn(
        &dir.path().join("db"),
        &[
            ("MONGO_INITDB_ROOT_USERNAME", "root"),
            ("MONGO_INITDB_ROOT_PASSWORD", PW),
            ("MONGO_TEST_CONTROLS", "1"),
        ],
    )
    .await;
    let admin = MongoAdmin::connect(&target(&addr), &Secret::new(PW.into()))
        .await
        .unwrap();
    let r = admin
        .run_admin_command(doc! {"komodoTestControl": 1, "failNextUpdateUser": 64})
        .await
        .unwrap();
    assert_eq!(r.get_i32("failNextUpdateUser"), Ok(64));
    let e = admin
        .change_password("root", &Secret::new("never-applied-1".into()))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("WriteConcernFailed") || e.to_string().contains("64"),
        "{e}"
    );
    admin.close().await;
}
