//! Issue 18 item 8 on the rehearsal stack: the exit code follows from what changed. A second
//! `--secret` refused after the first committed is exit 4 and does not say "nothing was
//! changed"; a proven rollback whose journal cannot be cleared is exit 4, as its audit record
//! says, and `resume` clears that journal.

mod docker_support;
mod e2e_support;

use e2e_support::*;

fn audit_codes(s: &komodo_testcontainers::stack::Stack) -> Vec<i64> {
    std::fs::read_to_string(s.dir.join("state/audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["exit_code"].as_i64())
        .collect()
}

#[test]
fn exit_codes_follow_what_changed() {
    require_failpoints();
    let rt = rt();
    let Some(f) = rt.block_on(fixture_with(
        "exit_codes_follow_what_changed",
        "krt-ops-codes",
        |_| {},
    )) else {
        return;
    };
    let s = &f.stack;
    let before = rt.block_on(agreed(&f.engine, s)).expect("agree at start");

    // db-password commits, then env:KOMODO_NO_SUCH_KEY is refused in its pre-flight.
    let r = tool(
        s,
        &[
            "rotate",
            "--secret",
            "db-password",
            "--secret",
            "env:KOMODO_NO_SUCH_KEY",
        ],
        &[],
    );
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(!r.stderr.contains("nothing was changed"), "{}", r.text());
    assert!(
        r.stderr.contains("db-password committed before"),
        "{}",
        r.text()
    );
    let rotated = rt.block_on(agreed(&f.engine, s)).expect("agree after");
    assert!(!rotated.ct_eq(&before), "db-password kept its new value");

    // A failed recreate rolls back (proven), and the journal cannot be cleared.
    let r = tool(
        s,
        &["rotate"],
        &[(
            "FAILPOINTS",
            &format!(
                "before:recreate:{}=return;journal:clear=return",
                s.periphery
            ),
        )],
    );
    assert_eq!(r.code, Some(4), "{}", r.text());
    let recreate = format!("recreate:{}", s.periphery);
    // The step's own failure shows as its FAILED line; the error printed last is the journal's.
    fired::assert_own_fault(
        s,
        &r,
        "recreate fails, journal not cleared",
        &["journal:clear"],
        &[&recreate],
    );
    assert_eq!(audit_codes(s).last(), Some(&4), "the audit record agrees");
    assert!(r.stderr.contains("resume"), "{}", r.text());
    let journal = s.dir.join("state/journal/current.json");
    assert!(journal.exists(), "the journal is kept");
    let back = rt
        .block_on(agreed(&f.engine, s))
        .expect("agree after rollback");
    assert!(back.ct_eq(&rotated), "all old");

    // The journal records a rollback that ran to its end: resume finishes it as a rollback
    // (exit 4, never 0: nothing was rotated) and clears the journal.
    let r = tool(s, &["resume"], &[]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(
        r.stderr
            .contains("rolling back (the interrupted run had already started its rollback)"),
        "{}",
        r.text()
    );
    assert!(!journal.exists(), "resume cleared it: {}", r.text());
    let after = rt
        .block_on(agreed(&f.engine, s))
        .expect("agree after resume");
    assert!(after.ct_eq(&rotated));
}
