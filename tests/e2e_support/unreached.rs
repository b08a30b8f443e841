//! A db-password rotation whose change-db finds Mongo stopped (the campaign's seed 3352959679,
//! op 4): the run waits in a failpoint (`before:change-db=sleep(...)`, recorded in flight, Mongo
//! not yet asked), is stopped with SIGSTOP while the docker CLI stops Mongo, and goes on. The
//! driver never selects a server, so `updateUser` never leaves: change-db proves it changed
//! nothing, the rollback leaves it out (no `undo:change-db`, which could not reach Mongo either),
//! and the run ends 4 with the journal cleared. Before the fix it ended 5 with both failing.
//!
//! Every plane is read by an outside tool: compose.env by the real sops, the containers by the
//! docker CLI, Mongo (started again) by pymongo; verify 0 right after.

use super::matrix::{journal_status, step_names};
use super::{finish, fired, host_lock_dir, pause, referee, sops_value, tool, BIN, PW_KEY};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ARGS: &[&str] = &["rotate", "--secret", "db-password"];
const USER: &str = "admin";

/// The row (see the module doc); `agreed` reads every plane through outside tools and panics
/// naming a split. Returns the values it saw, for the caller's hygiene scan.
pub fn mongo_stopped_before_change_db(s: &Stack, agreed: &dyn Fn(&str) -> Secret) -> Vec<Secret> {
    let label = "Mongo stopped before change-db";
    let t0 = Instant::now();
    let old = agreed("before the run");
    let steps = step_names(s, &ARGS[1..]);
    let i = steps
        .iter()
        .position(|n| n == "change-db")
        .expect("a change-db step");
    let _watch = super::leak::watch(s);
    let child = Command::new(BIN)
        .args(ARGS)
        .arg("--config")
        .arg(s.config())
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(s))
        .env("FAILPOINTS", "before:change-db=sleep(5000)")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run komodo-rotate");
    let journal = s.dir.join("state/journal/current.json");
    let t = Instant::now();
    while !(journal.exists() && journal_status(&journal, i) == "in-flight") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{label}: the run never recorded change-db in flight"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        // The run stays where it is (in the failpoint's sleep) while Mongo stops.
        let _stopped = pause(child.id());
        referee::docker_cli("stop", &s.mongo);
        assert!(!referee::docker_running(&s.mongo), "{label}: Mongo runs");
    }
    let res = finish(child.wait_with_output().expect("the run's output"));
    assert_eq!(res.code, Some(4), "{label}: {}", res.text());
    assert!(
        res.stderr.contains("could not be reached")
            && res.stderr.contains("every completed step was rolled back"),
        "{label}: {}",
        res.text()
    );
    assert!(
        !fired::progress(&res)
            .iter()
            .any(|(n, _)| n == "undo:change-db"),
        "{label}: an untouched change-db was undone: {}",
        res.text()
    );
    assert!(!journal.exists(), "{label}: the journal is kept");
    // Still stopped: the tool never starts Mongo. compose.env and the holders are on OLD.
    assert!(!referee::docker_running(&s.mongo), "{label}: Mongo runs");
    assert!(
        sops_value(s).is_some_and(|v| v.ct_eq(&old)),
        "{label}: compose.env (real sops) is not on the old value"
    );
    for name in [&s.core, &s.periphery] {
        assert!(
            referee::docker_env(name, PW_KEY).is_some_and(|v| v.ct_eq(&old)),
            "{label}: {name}'s env (docker inspect) is not on the old value"
        );
    }
    referee::docker_cli("start", &s.mongo);
    let t = Instant::now();
    loop {
        match referee::pymongo_verdict(s.mongo_port, USER, &old) {
            referee::PyLogin::Accepted => break,
            referee::PyLogin::Error(_) if t.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(300));
            }
            v => panic!("{label}: pymongo with the old password after Mongo's start: {v:?}"),
        }
    }
    let after = agreed("after Mongo came back");
    assert!(after.ct_eq(&old), "{label}: not all on the old value");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{label}: verify: {}", v.text());
    println!(
        "\n{label}: rotate {:?} (change-db untouched, rolled back), Mongo started, verify 0  {:.0} s",
        res.code,
        t0.elapsed().as_secs_f64()
    );
    vec![old]
}
