//! The undo's health gate judged as the old-state proof judges (issue 18, campaign seed
//! 2967158084): a db-password run rolled back after core's original was removed (as a
//! `docker-compose up -d` does), so the undo recreates core from its snapshot with the old
//! password while Mongo still holds the new one (change-db's undo comes later in the undo order).
//! Core is rejected by Mongo and does not settle: that is the rollback in progress, not a failed
//! undo. The undo goes on, Mongo goes back to OLD, and the proof waits for core: exit 4, every
//! plane on the old password, verify 0. It used to stop at the gate with exit 5, and every
//! `resume` after it stopped there again.

mod docker_support;
mod e2e_support;

use e2e_support::by_hand::shorten_health_timeout;
use e2e_support::*;

#[test]
fn a_db_rollback_whose_core_restore_meets_mongo_still_on_new_ends_at_exit_4() {
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("undo_health_db", "krt-undo-health", |_| {})) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let old = s.env_password.clone();

    // Killed right before commit: every step done, the originals parked as `-prev`.
    let r = tool(
        s,
        &["rotate", "--secret", "db-password"],
        &[("FAILPOINTS", "before:commit=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let new = sops_value(s).expect("compose.env's DB password");
    assert!(!new.ct_eq(&old));
    // core's original goes (compose removes a stray container of the service the same way).
    let prev = format!("{}-prev", s.core);
    rt.block_on(f.engine.remove(&prev))
        .expect("remove core's parked original");

    // resume rolls forward, the commit fails, the rollback restores core from its snapshot.
    let res = tool(s, &["resume"], &[("FAILPOINTS", "before:commit=return")]);
    assert_eq!(res.code, Some(4), "{}", res.text());
    assert!(
        res.stderr.contains("until its change is undone"),
        "the gate's failure was left to the proof: {}",
        res.text()
    );
    let now = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(now.ct_eq(&old), "every plane on the old DB password");
    assert_eq!(
        pymongo_login(s, &old),
        0,
        "pymongo logs in with the old password"
    );
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert_no_leak(&[&old, &new], &s.dir.join("state"));
}
