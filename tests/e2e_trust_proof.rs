//! Issue 9, "proofs and carriers", end to end on the rehearsal stack and a real Docker engine:
//! a core holding the DB credential in a carrier no step can patch (refused, nothing
//! changed, flagged by verify); a concurrent `docker compose up`-style replacement of core with
//! the OLD env mid-run (before its recreate: rolled forward; after it: the proof before commit
//! refuses and the run rolls back); and a rollback that leaves a holder on NEW (exit 5, not 4).
//! Each case prints its row of the fault matrix. The cases share the engine, so they run one at
//! a time.

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine, EnvPatch, HealthGate, Recreate, Snapshot};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

fn state_dir(s: &Stack) -> std::path::PathBuf {
    s.dir.join("state")
}

fn row(fault: &str, expected: &str, got: &str, invariant: &str) {
    println!("fault matrix row: {fault:<58} {expected:>8} {got:>10}  {invariant}");
}

fn verdict(now: &Result<Secret, String>, before: &Secret) -> String {
    match now {
        Ok(v) if v.ct_eq(before) => "all old".into(),
        Ok(_) => "all new".into(),
        Err(split) => format!("SPLIT: {split}"),
    }
}

/// A `docker compose up` that recreates `name` from `from`'s config (its env included): stop and
/// remove `name`, create a container with the same name, labels and config, start it.
async fn compose_up_from(engine: &Engine, from: &str, name: &str) {
    let snap = Snapshot::take(engine, from, 0).await.expect("snapshot");
    let image = snap
        .inspect
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .expect("image");
    engine.stop(name, 5).await.expect("stop");
    engine.remove(name).await.expect("remove");
    engine
        .create(name, snap.create_body(&EnvPatch::new(), &image))
        .await
        .expect("create");
    engine.start(name).await.expect("start");
}

/// Runs `rotate` with `failpoints`; when a stderr line contains `when`, runs `act` (the run is
/// asleep in a failpoint then). Returns the run and whether `act` ran.
fn rotate_with_hook(s: &Stack, failpoints: &str, when: &str, act: impl FnOnce()) -> (Run, bool) {
    let mut child = Command::new(BIN)
        .args(["rotate", "--config"])
        .arg(s.config())
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(s))
        .env("FAILPOINTS", failpoints)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let mut acted = false;
    let mut act = Some(act);
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(180)) {
        if line.contains(when) {
            if let Some(a) = act.take() {
                let _stopped = pause(child.id());
                a();
                acted = true;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    CAPTURED.lock().unwrap().extend_from_slice(&out.stdout);
    CAPTURED
        .lock()
        .unwrap()
        .extend_from_slice(stderr.as_bytes());
    use std::os::unix::process::ExitStatusExt;
    (
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        },
        acted,
    )
}

async fn fixture(test: &str, project: &str) -> Option<Fixture> {
    require_failpoints();
    fixture_with(test, project, |_| {}).await
}

#[test]
fn a_carrier_the_plan_cannot_patch_is_refused_and_flagged() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("carrier", "krt-tp-carrier")) else {
        return;
    };
    let s = &f.stack;
    // A hand-written compose that gives core the password inside a URI too, with a raw `@`
    // (not percent-encoded): a URI no driver reads as written, so no step may patch it. (A
    // well-formed URI carrier is patched: tests/e2e_carriers.rs.)
    let uri = Secret::new(format!(
        "postgres://admin:{}@x@postgres:5432/postgres",
        s.env_password.expose()
    ));
    rt.block_on(async {
        let rec = Recreate::prepare(
            &f.engine,
            &s.core,
            EnvPatch::new().set("FERRETDB_POSTGRESQL_URL", uri),
            0,
        )
        .await
        .unwrap();
        let gate = HealthGate {
            timeout: Duration::from_secs(60),
            stable_for: Duration::from_secs(2),
            ..HealthGate::default()
        };
        rec.run(&gate).await.unwrap();
    });
    let core_id = rt
        .block_on(ContainerInfo::load(&f.engine, &s.core))
        .unwrap()
        .id;
    let before = rt.block_on(agreed(&f.engine, s)).expect("agreed before");

    for cmd in ["rotate", "rescue"] {
        let r = tool(s, &[cmd], &[]);
        assert_eq!(r.code, Some(3), "{cmd}: {}", r.text());
        let last = r.stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(&s.core) && last.contains("FERRETDB_POSTGRESQL_URL"),
            "{cmd} names container and key: {}",
            r.text()
        );
        assert!(last.contains("nothing was changed"), "{}", r.text());
        let now = rt.block_on(agreed(&f.engine, s));
        assert!(
            now.as_ref().is_ok_and(|v| v.ct_eq(&before)),
            "{cmd} changed something"
        );
        let id = rt
            .block_on(ContainerInfo::load(&f.engine, &s.core))
            .unwrap()
            .id;
        assert_eq!(id, core_id, "{cmd} recreated core");
        assert!(!state_dir(s).join("journal/current.json").exists());
        row(
            &format!("{cmd}: core holds an unpatchable FERRETDB_POSTGRESQL_URL"),
            "3",
            &format!("exit {:?}", r.code),
            &verdict(&now, &before),
        );
    }
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    let line = v
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("carrier {}", s.core)))
        .unwrap_or_else(|| panic!("verify names the carrier: {}", v.text()));
    assert!(
        line.contains("DRIFT") && line.contains("FERRETDB_POSTGRESQL_URL"),
        "{line}"
    );
    row(
        "verify: core holds an unpatchable FERRETDB_POSTGRESQL_URL",
        "1",
        &format!("exit {:?}", v.code),
        "reported",
    );
    e2e_support::leak::assert_no_leak_anywhere(s, &[&s.env_password, &s.passkey], &[]);
}

#[test]
fn core_replaced_by_compose_up_mid_run_never_ends_in_success_on_old() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("replaced", "krt-tp-replaced")) else {
        return;
    };
    let s = &f.stack;
    let core = s.core.clone();

    // 1. Between write-env and core's recreate: core's recreate finds somebody else's container
    //    on OLD under the name, and rolls forward by recreating it with NEW.
    let before = rt.block_on(agreed(&f.engine, s)).expect("agreed before");
    let (r, acted) = rotate_with_hook(s, "after:write-env=sleep(3000)", "write-env ... ok", || {
        rt.block_on(compose_up_from(&f.engine, &core, &core))
    });
    assert!(acted, "the hook never ran: {}", r.text());
    let now = rt.block_on(agreed(&f.engine, s));
    let got = verdict(&now, &before);
    row(
        "core replaced (OLD env) after write-env",
        "0",
        &format!("exit {:?}", r.code),
        &got,
    );
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert_eq!(got, "all new", "{}", r.text());
    assert!(
        r.stderr.contains("was replaced by another container"),
        "{}",
        r.text()
    );
    let new = now.unwrap();

    // 2. After core's recreate, before commit: the proof before commit sees core on OLD, the
    //    run rolls back (the undo removes the stranger and puts the original back): exit 4.
    let (r, acted) = rotate_with_hook(
        s,
        &format!("after:recreate:{core}=sleep(3000)"),
        &format!("recreate:{core} ... ok"),
        || rt.block_on(compose_up_from(&f.engine, &format!("{core}-prev"), &core)),
    );
    assert!(acted, "the hook never ran: {}", r.text());
    let now = rt.block_on(agreed(&f.engine, s));
    let got = verdict(&now, &new);
    row(
        "core replaced (OLD env) after its recreate",
        "4",
        &format!("exit {:?}", r.code),
        &got,
    );
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(r.stderr.contains("proof before commit"), "{}", r.text());
    assert_eq!(got, "all old", "{}", r.text());
    assert!(!state_dir(s).join("journal/current.json").exists());
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    e2e_support::leak::assert_no_leak_anywhere(s, &[&s.env_password, &new, &s.passkey], &[]);
}

#[test]
fn a_rollback_that_leaves_a_holder_on_new_is_exit_5_not_4() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("rollback-proof", "krt-tp-rollback")) else {
        return;
    };
    let s = &f.stack;
    let per = s.periphery.clone();
    let before = rt.block_on(agreed(&f.engine, s)).expect("agreed before");
    // After periphery's recreate its snapshot disappears, so its undo has nothing to restore and
    // returns; the forced failure at commit then rolls everything else back.
    let snap = state_dir(s).join(format!("journal/snapshot-{per}.age"));
    let (r, acted) = rotate_with_hook(
        s,
        &format!("after:recreate:{per}=sleep(3000);before:commit=return"),
        &format!("recreate:{per} ... ok"),
        || std::fs::remove_file(&snap).expect("remove the snapshot"),
    );
    assert!(acted, "the hook never ran: {}", r.text());
    let now = rt.block_on(agreed(&f.engine, s));
    let got = verdict(&now, &before);
    row(
        "rollback leaves periphery on NEW",
        "5",
        &format!("exit {:?}", r.code),
        &got,
    );
    assert_eq!(r.code, Some(5), "{}", r.text());
    assert!(
        r.stderr.contains(&per) && r.stderr.contains("runbooks/"),
        "{}",
        r.text()
    );
    assert!(
        state_dir(s).join("journal/current.json").exists(),
        "journal kept"
    );
    assert!(got.starts_with("SPLIT"), "{got}");
    e2e_support::leak::assert_no_leak_anywhere(s, &[&s.env_password, &s.passkey], &[]);
}
