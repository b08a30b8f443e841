//! The product end to end on the rehearsal stack and a real Docker engine: the incident and its
//! rescue, rotation (twice), the generic fault and SIGKILL matrices over db-password's step list
//! (`e2e_support::matrix`), real faults (Mongo refusing updateUser, a new core failing its gate,
//! a read-only directory, a wrong age key, Mongo stopped, a failing undo), two runs at once, and
//! the secret-hygiene scan. The invariant after every case: Mongo's live password, compose.env's
//! value and core's and periphery's env are one value, the old one or the new one, never split.
//!
//! The cases share the engine and two CPU cores (see `SERIAL` on how they are scheduled).

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Stack};
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

fn state_dir(s: &Stack) -> std::path::PathBuf {
    s.dir.join("state")
}

async fn fixture(test: &str, project: &str, drift: bool) -> Option<Fixture> {
    require_failpoints();
    fixture_with(test, project, |o| o.drift = drift).await
}

#[test]
fn the_incident_is_found_by_verify_and_fixed_by_rescue() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("incident", "krt-e2e-incident", true)) else {
        return;
    };
    let s = &f.stack;
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops");

    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    assert!(
        v.stdout.contains("db-login") && v.stdout.contains("rejected"),
        "{}",
        v.text()
    );
    assert!(v.stdout.contains("crash-looping"), "{}", v.text());
    assert!(v.stdout.contains("stale-init-env"), "{}", v.text());

    let j = tool(s, &["verify", "--json"], &[]);
    let parsed: serde_json::Value = serde_json::from_str(&j.stdout).expect("verify --json");
    assert_eq!(parsed["verdict"], "drift");

    let dry = tool(s, &["rescue", "--dry-run"], &[]);
    assert_eq!(dry.code, Some(0), "{}", dry.text());
    assert!(dry.stdout.contains("change-db"), "{}", dry.text());
    assert!(
        rt.block_on(agreed(&f.engine, s)).is_err(),
        "dry run changed something"
    );

    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let value = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after rescue");
    assert!(
        value.ct_eq(&s.env_password),
        "rescue keeps compose.env's value"
    );
    rt.block_on(stack::wait_healthy(
        &f.engine,
        &s.core,
        Duration::from_secs(30),
    ))
    .expect("core stable after rescue");

    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    // Independent checks: the real sops reads compose.env, pymongo logs in with its value.
    let via_sops = sops_value(s).expect("real sops decrypts compose.env");
    assert!(via_sops.ct_eq(&s.env_password));
    assert_eq!(
        pymongo_login(s, &via_sops),
        0,
        "pymongo logs in with compose.env's value"
    );
    assert_eq!(
        pymongo_login(s, &s.mongo_password),
        1,
        "the old password is gone"
    );

    // Idempotent: a second rescue finds nothing to do.
    let again = tool(s, &["rescue"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.text());
    assert!(
        again.stdout.contains("nothing to rescue"),
        "{}",
        again.text()
    );

    let audit = std::fs::read_to_string(state_dir(s).join("audit.log")).unwrap();
    assert!(
        audit.contains("\"command\":\"rescue\"") && audit.contains("committed"),
        "{audit}"
    );
    e2e_support::leak::assert_no_leak_anywhere(
        s,
        &[&s.mongo_password, &s.env_password, &s.passkey],
        &[],
    );
}

#[test]
fn rotate_end_to_end_twice() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("rotate", "krt-e2e-rotate", false)) else {
        return;
    };
    let s = &f.stack;
    let mut seen: Vec<Secret> = vec![s.env_password.clone()];

    let dry = tool(s, &["rotate", "--dry-run"], &[]);
    assert_eq!(dry.code, Some(0), "{}", dry.text());
    for step in [
        "snapshot",
        "change-db",
        "write-env",
        "recreate:",
        "commit",
        "undo:",
    ] {
        assert!(
            dry.stdout.contains(step),
            "plan lacks {step}: {}",
            dry.text()
        );
    }
    assert!(
        rt.block_on(agreed(&f.engine, s))
            .unwrap()
            .ct_eq(&s.env_password),
        "dry run changed something"
    );

    for round in 1..=2 {
        let r = tool(s, &["rotate"], &[]);
        assert_eq!(r.code, Some(0), "round {round}: {}", r.text());
        assert!(
            r.stderr.contains("change-db ... ok"),
            "progress lines: {}",
            r.text()
        );
        let now = rt
            .block_on(agreed(&f.engine, s))
            .expect("planes agree after rotate");
        assert!(
            seen.iter().all(|old| !old.ct_eq(&now)),
            "round {round}: the secret did not change"
        );
        assert_eq!(now.len(), 40);
        let via_sops = sops_value(s).expect("real sops decrypts our compose.env");
        assert!(via_sops.ct_eq(&now));
        assert_eq!(pymongo_login(s, &now), 0);
        assert_eq!(
            pymongo_login(s, seen.last().unwrap()),
            1,
            "the previous password must stop working"
        );
        seen.push(now);

        let again = tool(s, &["resume"], &[]);
        assert_eq!(again.code, Some(0), "{}", again.text());
        assert!(again.stdout.contains("nothing to resume"));
        let v = tool(s, &["verify"], &[]);
        assert_eq!(v.code, Some(0), "{}", v.text());
    }
    let audit = komodo_rotate::audit::read_all(&state_dir(s).join("audit.log")).unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit
        .iter()
        .all(|a| a.outcome == "committed" && a.exit_code == 0));
    let refs: Vec<&Secret> = seen.iter().chain([&s.passkey]).collect();
    e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
}

/// One row of the printed fault matrix.
struct Row {
    fault: String,
    expected: i32,
    got: String,
    invariant: String,
}

#[test]
fn fault_matrix_real_faults_and_nothing_is_split() {
    komodo_testcontainers::stack::real::require_standin(
        "fault_matrix_real_faults_and_nothing_is_split",
        komodo_testcontainers::stack::real::StandinControl::FailNextStart,
    );
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("fault_matrix", "krt-e2e-faults", false)) else {
        return;
    };
    let s = &f.stack;
    let per = s.periphery.clone();
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: Vec<Secret> = vec![s.env_password.clone()];

    let case = |rows: &mut Vec<Row>,
                fault: String,
                expected: i32,
                env: Vec<(String, String)>,
                seen: &mut Vec<Secret>| {
        let before = rt
            .block_on(agreed(&f.engine, s))
            .expect("agreed before the case");
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = tool(s, &["rotate"], &env_ref);
        let after = rt.block_on(agreed(&f.engine, s));
        let invariant = match &after {
            Ok(v) if v.ct_eq(&before) => "all old".to_string(),
            Ok(v) => {
                seen.push(v.clone());
                "all new".to_string()
            }
            Err(split) => format!("SPLIT: {split}"),
        };
        let got = format!("exit {:?}", r.code);
        let ok = r.code == Some(expected) && invariant == "all old";
        rows.push(Row {
            fault: fault.clone(),
            expected,
            got,
            invariant,
        });
        assert!(ok, "fault {fault}: {}", r.text());
        assert!(
            !std::path::Path::new(&state_dir(s).join("journal/current.json")).exists(),
            "fault {fault}: a clean rollback leaves no journal"
        );
        r
    };

    // Real faults.
    // Each real fault is proven to have fired (and been used up by this row), and to be the only
    // failure: an unconsumed fault would otherwise fail a later row for the wrong reason.
    rt.block_on(mongo_control(s, "failNextUpdateUser"))
        .expect("test server control");
    let r = case(
        &mut rows,
        "mongo fails updateUser".into(),
        4,
        vec![],
        &mut seen,
    );
    // Consumed (no longer armed): the row's evidence that Mongo's fault is what failed it.
    fired::assert_own_fault(s, &r, "mongo fails updateUser", &[], &["change-db"]);
    assert!(
        r.stderr.contains("ShutdownInProgress") || r.stderr.contains("quiesce"),
        "change-db failed for another reason than the injected updateUser error: {}",
        r.text()
    );

    let flag = s.control_dir().join("fail-next-start");
    std::fs::write(&flag, b"").unwrap();
    let r = case(
        &mut rows,
        "new core fails its health gate".into(),
        4,
        vec![],
        &mut seen,
    );
    // The flag is gone (`armed`): core started with it, and that failed the gate.
    fired::assert_own_fault(
        s,
        &r,
        "new core fails its health gate",
        &[],
        &[&format!("recreate:{}", s.core)],
    );
    assert!(!flag.exists(), "{}", r.text());

    let immutable = |on: bool| {
        let st = std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(&s.dir)
            .status()
            .expect("chattr");
        assert!(st.success(), "chattr on {}", s.dir.display());
    };
    immutable(true);
    let ro = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        case(
            &mut rows,
            "compose.env's directory read-only".into(),
            3,
            vec![],
            &mut seen,
        )
    }));
    immutable(false);
    let r = ro.unwrap_or_else(|p| std::panic::resume_unwind(p));
    // Refused up front: no step ran, and the refusal names the directory.
    fired::assert_own_fault(s, &r, "read-only directory", &[], &[]);
    assert!(fired::progress(&r).is_empty(), "{}", r.text());
    assert!(
        r.stderr.contains(&s.dir.display().to_string()),
        "the refusal names the directory: {}",
        r.text()
    );

    let other_key = s.dir.join("other.key");
    let id = age::x25519::Identity::generate();
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&other_key, id.to_string().expose_secret()).unwrap();
    }
    let bad_cfg = s.dir.join("wrong-key.toml");
    let cfg = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("age.key", "other.key");
    std::fs::write(&bad_cfg, cfg).unwrap();
    let before = rt.block_on(agreed(&f.engine, s)).unwrap();
    let r = finish(
        std::process::Command::new(BIN)
            .args(["rotate", "--config"])
            .arg(&bad_cfg)
            .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(s))
            .output()
            .unwrap(),
    );
    let after = rt.block_on(agreed(&f.engine, s)).unwrap();
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.text());
    assert!(
        r.stderr.contains("other.key")
            || r.stderr.contains("recipient")
            || r.stderr.contains("age"),
        "the refusal is about the key: {}",
        r.text()
    );
    assert!(after.ct_eq(&before));
    rows.push(Row {
        fault: "wrong age key".into(),
        expected: 3,
        got: format!("exit {:?}", r.code),
        invariant: "all old".into(),
    });

    rt.block_on(f.engine.stop(&s.mongo, 5)).unwrap();
    let r = tool(s, &["rotate"], &[]);
    rt.block_on(f.engine.start(&s.mongo)).unwrap();
    let t0 = std::time::Instant::now();
    let after = loop {
        match rt.block_on(agreed(&f.engine, s)) {
            Ok(v) => break v,
            Err(e) if t0.elapsed() > Duration::from_secs(30) => panic!("after mongo restart: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert_eq!(r.code, Some(3), "{}", r.text());
    // The pre-flight's refusal names the login and says what is true: nothing changed. One
    // line, the driver's topology dump cut to its cause.
    assert!(
        r.stderr.contains("the login to MongoDB at")
            && r.stderr.contains("got no answer")
            && r.stderr.contains("nothing was changed")
            && !r.stderr.contains("Topology"),
        "{}",
        r.text()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.text());
    assert!(after.ct_eq(&before));
    rows.push(Row {
        fault: "mongo container stopped".into(),
        expected: 3,
        got: format!("exit {:?}", r.code),
        invariant: "all old".into(),
    });

    // An undo that fails: exit 5, the journal is kept, and `resume` finishes the rollback.
    let r = tool(
        s,
        &["rotate"],
        &[(
            "FAILPOINTS",
            &format!("before:recreate:{per}=return;before:undo:write-env=return"),
        )],
    );
    assert_eq!(r.code, Some(5), "{}", r.text());
    fired::assert_own_fault(
        s,
        &r,
        "undo of write-env fails",
        &[&format!("before:recreate:{per}"), "before:undo:write-env"],
        &[&format!("recreate:{per}"), "undo:write-env"],
    );
    assert!(
        r.stderr.contains("runbooks/interrupted-run.md"),
        "{}",
        r.text()
    );
    assert!(state_dir(s).join("journal/current.json").exists());
    let blocked = tool(s, &["rotate"], &[]);
    assert_eq!(
        blocked.code,
        Some(3),
        "a pending journal blocks rotate: {}",
        blocked.text()
    );
    assert!(blocked.stderr.contains("resume"));
    let v = tool(s, &["verify"], &[]);
    assert_eq!(
        v.code,
        Some(1),
        "verify reports the pending journal: {}",
        v.text()
    );
    let res = tool(s, &["resume"], &[]);
    assert_eq!(
        res.code,
        Some(4),
        "resume completes the rollback: {}",
        res.text()
    );
    fired::assert_own_fault(s, &res, "resume after the failed undo", &[], &[]);
    assert!(
        res.stderr
            .contains("rolling back (the interrupted run had already started its rollback)"),
        "{}",
        res.text()
    );
    let after = rt
        .block_on(agreed(&f.engine, s))
        .expect("agreed after resume");
    assert!(
        after.ct_eq(&before),
        "resume restored the old value everywhere"
    );
    rows.push(Row {
        fault: "undo of write-env fails, then resume".into(),
        expected: 5,
        got: format!("exit {:?} then resume {:?}", r.code, res.code),
        invariant: "all old".into(),
    });

    println!("\nfault matrix (rotate --secret db-password):");
    println!("{:<48} {:>8} {:>28}  invariant", "fault", "expected", "got");
    for r in &rows {
        println!(
            "{:<48} {:>8} {:>28}  {}",
            r.fault, r.expected, r.got, r.invariant
        );
    }
    let refs: Vec<&Secret> = seen.iter().chain([&s.passkey]).collect();
    e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
}

/// The generic matrices (tests/e2e_support/matrix.rs) over db-password's step list, one row per
/// rollback and resume branch (`run_branches`): every step fails before it ran (exit 4, all old),
/// and a SIGKILL after staging, on each side of change-db, before and after the commit is resumed
/// (Mongo decides: all new from change-db on, else all old).
#[test]
fn db_password_fault_and_sigkill_matrices_from_its_step_list() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("matrices", "krt-e2e-crash", false)) else {
        return;
    };
    let s = &f.stack;
    let agreed = |what: &str| {
        rt.block_on(agreed(&f.engine, s))
            .unwrap_or_else(|e| panic!("db-password {what}: split: {e}"))
    };
    let k = e2e_support::matrix::Kind {
        args: &["--secret", "db-password"],
        decider: "change-db",
    };
    e2e_support::matrix::run_branches(s, &k, &agreed);
}

/// Kills inside db-password's steps (between a plane's change and the journal's record of it,
/// before the decider touches Mongo, inside the rollback), each resumed by the branch of
/// resume's decision table it reaches (tests/e2e_support/matrix.rs `run_kills_inside_at`); then a
/// kill inside change-db with Mongo stopped, and with Mongo on a third password, before resume:
/// the two branches where resume cannot decide (tests/e2e_support/undecided.rs).
#[test]
fn db_password_kills_inside_steps_reach_each_resume_branch() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("kills-inside", "krt-e2e-inside", false)) else {
        return;
    };
    let s = &f.stack;
    let agreed = |what: &str| {
        rt.block_on(agreed(&f.engine, s))
            .unwrap_or_else(|e| panic!("db-password {what}: split: {e}"))
    };
    let k = e2e_support::matrix::Kind {
        args: &["--secret", "db-password"],
        decider: "change-db",
    };
    // Inside the decider (Mongo on NEW, unrecorded: forward) and the step after it (compose.env
    // NEW, unrecorded: forward); inside the snapshot nothing changed, and the recreates' partial
    // states are docker_recreate's and the env-only kinds' rows.
    e2e_support::matrix::run_kills_inside_at(s, &k, Some(&["change-db", "write-env"]), &agreed);
    // Resume's two branches that need more than a kill: Mongo stopped, Mongo on a third value.
    let mut seen = e2e_support::undecided::run(s, &agreed);
    // A fresh run whose change-db finds Mongo stopped: proven untouched, rolled back (exit 4).
    seen.extend(e2e_support::unreached::mongo_stopped_before_change_db(
        s, &agreed,
    ));
    let refs: Vec<&Secret> = seen.iter().chain([&s.passkey]).collect();
    e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
}

#[test]
fn two_rotations_at_once_one_proceeds_one_exits_6() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("concurrency", "krt-e2e-lock", false)) else {
        return;
    };
    let s = &f.stack;
    // The first run holds the lock while it sleeps in a failpoint before its first step.
    let _watch = e2e_support::leak::watch(s);
    let first = std::process::Command::new(BIN)
        .args(["rotate", "--config"])
        .arg(s.config())
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(s))
        .env("FAILPOINTS", "before:snapshot=sleep(4000)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = state_dir(s).join("lock");
    let t0 = std::time::Instant::now();
    while !komodo_rotate::txn::lock::RunLock::is_held(&lock).unwrap_or(false) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first run stays stopped, holding the lock, while the second runs: no timing bet.
    let stopped = pause(first.id());
    let second = tool(s, &["rotate"], &[]);
    drop(stopped);
    assert_eq!(second.code, Some(6), "{}", second.text());
    assert!(second.stderr.contains("lock"), "{}", second.text());
    let first = finish(first.wait_with_output().unwrap());
    assert_eq!(first.code, Some(0), "{}", first.text());
    let now = rt.block_on(agreed(&f.engine, s)).expect("agreed");
    assert!(!now.ct_eq(&s.env_password));
    e2e_support::leak::assert_no_leak_anywhere(s, &[&s.env_password, &now, &s.passkey], &[]);
}

/// Sends a fault-injection control to the rehearsal mongo (enabled there by MONGO_TEST_CONTROLS).
async fn mongo_control(s: &Stack, field: &str) -> Result<(), String> {
    use mongodb::bson::doc;
    let client = mongodb::Client::with_uri_str(format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        s.mongo_port
    ))
    .await
    .map_err(|e| e.to_string())?;
    client
        .database("admin")
        .run_command(doc! { "komodoTestControl": 1, field: true })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
