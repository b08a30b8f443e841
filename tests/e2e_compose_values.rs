//! The rehearsal stack with compose.env's DB password written the way Komodo's own template
//! writes values: quoted, with an inline comment (`KOMODO_DATABASE_PASSWORD="pw" # ...`).
//! compose hands the containers `pw`; the tool must compare and write that value, not the bytes
//! sops keeps (issue 24 item 1: before, verify reported DRIFT on a healthy stack, and rescue set
//! Mongo and core to the quoted string, so the next `compose up -d` crash-looped core).
//!
//! verify exits 0 on the healthy stack; rescue finds nothing to rescue and `compose up -d`
//! keeps core working; rotate commits, and after `compose up -d` core, periphery and Mongo
//! agree on the new value; verify 0 again. Then two generations' keys on different values:
//! verify says DRIFT naming both, rotate refuses (exit 3) with nothing changed.

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::{finish, rt, tool, BIN};
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::mongo::{login_works, LoginOutcome, Target};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Stack, StackOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "KOMODO_DATABASE_PASSWORD";

/// compose.env's `key` set to the raw bytes `raw` with the tool's own `sops set`.
fn set_raw(s: &Stack, key: &str, raw: &str) {
    let mut child = Command::new(BIN)
        .args(["sops", "set"])
        .arg(s.compose_env())
        .arg(key)
        .arg("--age-key-file")
        .arg(s.age_key())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, Some(0), "sops set: {}", r.text());
}

fn raw_value(s: &Stack, key: &str) -> String {
    e2e_support::sops_get(s, key)
        .expect("the real sops decrypts compose.env")
        .expose()
        .to_string()
}

/// After `compose up -d`: core healthy, core and periphery hold `value`, Mongo accepts it.
async fn working_on(engine: &Engine, s: &Stack, value: &Secret) {
    s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    stack::wait_healthy(engine, &s.core, Duration::from_secs(60))
        .await
        .expect("core healthy after compose up -d");
    for name in [&s.core, &s.periphery] {
        let c = ContainerInfo::load(engine, name).await.unwrap();
        assert!(
            c.env_value(KEY).is_some_and(|v| v.ct_eq(value)),
            "{name}'s {KEY} is not the value compose reads from compose.env"
        );
    }
    let target = Target::new(&format!("mongodb://127.0.0.1:{}", s.mongo_port), "admin").unwrap();
    assert_eq!(login_works(&target, value).await, LoginOutcome::Accepted);
}

#[test]
fn a_quoted_password_with_a_comment_is_read_as_compose_reads_it() {
    let rt = rt();
    let Some(engine) = rt.block_on(engine_or_skip("e2e_compose_values")) else {
        return;
    };
    if !e2e_support::require_tools("e2e_compose_values") {
        return;
    }
    let project = "krt-values-quoted";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = rt.block_on(images(&engine));
    let s = rt
        .block_on(stack::up(
            &engine,
            &StackOptions::new(project, dir.path(), &bin),
        ))
        .expect("compose up");
    let pw = s.env_password.clone();
    let quoted = format!("\"{}\" # the DB root password", pw.expose());
    set_raw(&s, KEY, &quoted);
    rt.block_on(working_on(&engine, &s, &pw));

    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "verify on the healthy stack: {}", v.text());

    let r = tool(&s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stdout.contains("nothing to rescue"), "{}", r.text());
    assert_eq!(
        raw_value(&s, KEY),
        quoted,
        "rescue leaves compose.env alone"
    );
    rt.block_on(working_on(&engine, &s, &pw));

    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let new = raw_value(&s, KEY);
    assert!(
        new.chars().all(|c| c.is_ascii_alphanumeric()) && new != pw.expose(),
        "rotate writes the new value unquoted"
    );
    let new = Secret::new(new);
    rt.block_on(working_on(&engine, &s, &new));
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "verify after rotate: {}", v.text());

    // Two naming generations on different values: which one core gets depends on the compose
    // file, so verify says DRIFT naming them and rotate refuses with nothing changed.
    set_raw(&s, "KOMODO_DB_USERNAME", "admin");
    set_raw(&s, "KOMODO_DB_PASSWORD", "stale-v1-password-0123");
    let before = std::fs::read(s.compose_env()).unwrap();
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    // An upgraded host: v2's pair leads, v1's stale key is named.
    assert!(
        v.stdout
            .contains("KOMODO_DB_PASSWORD holds another value than KOMODO_DATABASE_PASSWORD"),
        "{}",
        v.text()
    );
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr
            .contains("KOMODO_DB_PASSWORD holds another value than KOMODO_DATABASE_PASSWORD"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("stale-v1-password"), "{}", r.text());
    assert_eq!(std::fs::read(s.compose_env()).unwrap(), before);
    assert!(
        rt.block_on(login_works(
            &Target::new(&format!("mongodb://127.0.0.1:{}", s.mongo_port), "admin").unwrap(),
            &new
        )) == LoginOutcome::Accepted
    );
}
