//! The two branches of `resume`'s decision table (src/commands/resume.rs, `decide`) where it
//! cannot decide, each reached by a real kill inside db-password's change-db (Mongo already on
//! NEW, the journal still saying change-db is in flight: `journal:persist=N*off->return(crash)`)
//! and one change made from outside before `resume` (issue 23, item 2):
//!
//! - Mongo unreachable (its container stopped with the docker CLI): resume exits 5 ("… run
//!   resume again when MongoDB answers", README "Exit codes", runbooks/interrupted-run.md), keeps
//!   the journal and changes nothing; once Mongo is started again, resume rolls forward (exit 0).
//! - Mongo accepting neither value (pymongo set a third password): resume exits 5 naming
//!   runbooks/no-password-survives.md ("accepts neither the old nor the new password"), keeps
//!   the journal and changes nothing; with Mongo put back on the old value (pymongo), resume
//!   rolls back ("Mongo still accepts the old password", exit 4).
//!
//! Every plane is read by an outside tool: compose.env by the real sops, Mongo by pymongo, the
//! containers (and Mongo's running state) by the docker CLI, through `agreed` and `referee`.

use super::matrix::{journal_status, resume_direction, step_names};
use super::{fired, leak, referee, sops_value, tool, Run};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::time::{Duration, Instant};

const ARGS: &[&str] = &["rotate", "--secret", "db-password"];
const USER: &str = "admin";

/// Kills db-password's run inside change-db (Mongo changed, its `done` unrecorded) and checks,
/// with pymongo, that the kill landed there. Returns the run's (old, new).
fn kill_inside_change_db(s: &Stack, label: &str) -> (Secret, Secret) {
    let steps = step_names(s, &ARGS[1..]);
    let i = steps
        .iter()
        .position(|n| n == "change-db")
        .expect("a change-db step");
    // Journal writes: 1 stages, each step writes in-flight (2+2i) and done (3+2i).
    let fp = format!("journal:persist={}*off->return(crash)", 2 + 2 * i);
    let r = tool(s, ARGS, &[("FAILPOINTS", &fp)]);
    assert_eq!(r.signal, Some(9), "{label}: no SIGKILL: {}", r.text());
    let journal = s.dir.join("state/journal/current.json");
    assert_eq!(
        journal_status(&journal, i),
        "in-flight",
        "{label}: killed elsewhere: {}",
        r.text()
    );
    let (old, new) = leak::pending_pair(s);
    assert_eq!(
        referee::pymongo_verdict(s.mongo_port, USER, &new),
        referee::PyLogin::Accepted,
        "{label}: Mongo is not on the run's new value: the kill was not after updateUser"
    );
    (old, new)
}

/// The planes as `resume` must leave them when it cannot decide: compose.env (real sops) and
/// core's and periphery's env (docker CLI) still on `old`, the journal kept with change-db in
/// flight.
fn untouched(s: &Stack, label: &str, old: &Secret, res: &Run) {
    assert!(
        sops_value(s).is_some_and(|v| v.ct_eq(old)),
        "{label}: compose.env (real sops) is not on the old value: {}",
        res.text()
    );
    let found = referee::docker_inspect_many(&[&s.core, &s.periphery]);
    for name in [&s.core, &s.periphery] {
        assert!(
            found
                .get(name.as_str())
                .and_then(|c| referee::env_in(c, super::PW_KEY))
                .is_some_and(|v| v.ct_eq(old)),
            "{label}: {name}'s env (docker inspect) is not on the old value: {}",
            res.text()
        );
    }
    let journal = s.dir.join("state/journal/current.json");
    assert!(
        journal.exists(),
        "{label}: the journal is gone: {}",
        res.text()
    );
    fired::assert_fired(res, label, &[], &[]);
    assert!(
        fired::progress(res).is_empty(),
        "{label}: resume ran a step: {}",
        res.text()
    );
}

/// Both rows (see the module doc), on `s`; `agreed` reads every plane through outside tools and
/// panics naming a split. Returns the values the rows saw, for the caller's hygiene scan.
pub fn run(s: &Stack, agreed: &dyn Fn(&str) -> Secret) -> Vec<Secret> {
    let mut rows = Vec::new();
    let mut seen = mongo_stopped(s, agreed, &mut rows);
    seen.extend(mongo_on_a_third_password(s, agreed, &mut rows));
    println!("\nkills inside change-db where resume cannot decide (rotate --secret db-password):");
    for r in &rows {
        println!("  {r}");
    }
    seen
}

/// Mongo unreachable: killed inside change-db, Mongo stopped, resume (5, nothing changed), Mongo
/// started, resume (0, all new). Adds its rows to `rows`; returns the values it saw.
pub fn mongo_stopped(
    s: &Stack,
    agreed: &dyn Fn(&str) -> Secret,
    rows: &mut Vec<String>,
) -> Vec<Secret> {
    let mut seen = Vec::new();
    let label = "inside change-db, Mongo stopped";
    let t0 = Instant::now();
    let before = agreed("before the kill");
    let (old, new) = kill_inside_change_db(s, label);
    assert!(old.ct_eq(&before), "{label}: the run's old value");
    referee::docker_cli("stop", &s.mongo);
    assert!(!referee::docker_running(&s.mongo), "{label}: Mongo runs");
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(5), "{label}: {}", res.text());
    assert!(
        res.stderr
            .contains("the journal is kept, run resume again when MongoDB answers")
            && res.stderr.contains("the planes may be split"),
        "{label}: {}",
        res.text()
    );
    untouched(s, label, &old, &res);
    assert!(
        !referee::docker_running(&s.mongo),
        "{label}: resume started Mongo"
    );
    rows.push(format!("{label:<44} resume {:?}  (no decision)", res.code));
    // The runbook's way on: start Mongo, resume again.
    referee::docker_cli("start", &s.mongo);
    let t = Instant::now();
    while matches!(
        referee::pymongo_verdict(s.mongo_port, USER, &new),
        referee::PyLogin::Error(_)
    ) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{label}: Mongo never answered after its start"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(0), "{label}, Mongo back: {}", res.text());
    assert!(
        resume_direction(&res).starts_with("rolling forward"),
        "{label}, Mongo back: {}",
        res.text()
    );
    fired::assert_own_fault(s, &res, &format!("{label}, Mongo back"), &[], &[]);
    let after = agreed("after Mongo came back");
    assert!(after.ct_eq(&new), "{label}: not all on the run's new value");
    rows.push(format!(
        "{:<44} resume {:?}  all new  (rolling forward)  {:.0} s",
        "  then Mongo started",
        res.code,
        t0.elapsed().as_secs_f64()
    ));
    seen.extend([old, new]);
    seen
}

/// Mongo accepting neither value: killed inside change-db, Mongo set to a third password,
/// resume (5, nothing changed), Mongo put back on the old value, resume (4, all old). Adds its
/// rows to `rows`; returns the values it saw.
pub fn mongo_on_a_third_password(
    s: &Stack,
    agreed: &dyn Fn(&str) -> Secret,
    rows: &mut Vec<String>,
) -> Vec<Secret> {
    let mut seen = Vec::new();
    let label = "inside change-db, Mongo on a third password";
    let t0 = Instant::now();
    let before = agreed("before the kill");
    let (old, new) = kill_inside_change_db(s, label);
    assert!(old.ct_eq(&before), "{label}: the run's old value");
    let third = Secret::generate().unwrap();
    referee::pymongo_set_password(s.mongo_port, USER, &new, &third);
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(5), "{label}: {}", res.text());
    assert!(
        res.stderr
            .contains("accepts neither the old nor the new password")
            && res.stderr.contains("runbooks/no-password-survives.md"),
        "{label}: {}",
        res.text()
    );
    untouched(s, label, &old, &res);
    for (what, pw, want) in [
        ("the third", &third, referee::PyLogin::Accepted),
        ("the old", &old, referee::PyLogin::Rejected),
        ("the new", &new, referee::PyLogin::Rejected),
    ] {
        assert_eq!(
            referee::pymongo_verdict(s.mongo_port, USER, pw),
            want,
            "{label}: pymongo with {what} password after resume"
        );
    }
    rows.push(format!("{label:<44} resume {:?}  (no decision)", res.code));
    // Mongo put back on the old value from outside: resume can decide now, and rolls back.
    referee::pymongo_set_password(s.mongo_port, USER, &third, &old);
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(4), "{label}, Mongo on old: {}", res.text());
    assert!(
        resume_direction(&res).starts_with("rolling back (Mongo still accepts the old password)"),
        "{label}, Mongo on old: {}",
        res.text()
    );
    fired::assert_own_fault(s, &res, &format!("{label}, Mongo on old"), &[], &[]);
    let after = agreed("after Mongo was put back");
    assert!(after.ct_eq(&old), "{label}: not all on the old value");
    rows.push(format!(
        "{:<44} resume {:?}  all old  (rolling back)  {:.0} s",
        "  then Mongo put back on the old value",
        res.code,
        t0.elapsed().as_secs_f64()
    ));
    let again = tool(s, &["resume"], &[]);
    assert_eq!(again.code, Some(0), "{label}: {}", again.text());
    seen.extend([old, new, third]);
    seen
}
