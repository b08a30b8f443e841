//! Issue 21, rescue on the FerretDB rehearsal stack (a real PostgreSQL, the FerretDB-SHAPED
//! front end), each case ending at verify 0 with the referees (Debian's psql, pymongo, the real
//! sops, the docker CLI) agreeing on compose.env's password:
//! - the first-init drift of `rehearsal up --drift` (no known password matches the role): no
//!   terminal and no `--yes` is refused (exit 3, nothing changed: the role's stored secret and
//!   every container the same); a run failed after ferretdb's recreate rolls back (exit 4) to the exact
//!   previous stored secret; a run killed right after setting the verifier is finished by
//!   `resume`; then verify 0;
//! - drift shape (b) (ferretdb's URL stale after a hand change): rescue recreates the holders, no
//!   verifier change; then shape (a) made by hand on the same stack, where the tool's last
//!   committed value is the candidate the verifier takes: rescue without `--yes`.
//!
//! Both end with the hygiene scan (`e2e_support::leak`): no password in the tool's output, the
//! stack dir or the containers' inspect.

mod docker_support;
mod e2e_support;
mod ferret_e2e_support;
mod ferret_stack_support;

use e2e_support::{fixture_with, rt, tool};
use ferret_e2e_support::*;
use ferret_stack_support::*;
use komodo_testcontainers::stack::Variant;
use std::time::Instant;

#[test]
fn ferret_rescue_first_init_drift_asks_rolls_back_exactly_resumes_and_ends_at_verify_0() {
    e2e_support::require_failpoints();
    let test = "ferret_rescue_first_init";
    let Some(psql) = psql_or_skip(test) else {
        return;
    };
    let rt = rt();
    let project = format!("fresa{}", std::process::id());
    let t0 = Instant::now();
    let Some(f) = rt.block_on(fixture_with(test, &project, |o| {
        o.variant = Variant::FerretDb;
        o.drift = true;
    })) else {
        return;
    };
    let s = &f.stack;
    let (a, b) = (s.mongo_password.clone(), s.env_password.clone());
    let pg = s.postgres.clone().unwrap();
    let first = role_secret(&pg);
    let ids0 = ids(s);

    // compose.env's value not URL-safe (compose would put it raw into ferretdb's URL): refused
    // before anything, even with --yes; the value named by its key only.
    let unsafe_pw = komodo_rotate::secret::Secret::new(format!("{}/@:x", b.expose()));
    sops_set(s, PW, &unsafe_pw);
    let r = tool(s, &["rescue", "--yes"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr.contains("outside A-Za-z0-9-._~") && r.stderr.contains("nothing was changed"),
        "{}",
        r.text()
    );
    assert!(
        role_secret(&pg) == first,
        "the role's stored secret is untouched"
    );
    assert_eq!(ids(s), ids0, "no container was recreated");
    sops_set(s, PW, &b);

    // No terminal, no --yes: refused, nothing changed.
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr
            .contains("no known password matches role admin's verifier")
            && r.stderr
                .contains("without any password and without stopping PostgreSQL")
            && r.stderr.contains("pass --yes")
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.text()
    );
    // Compared without printing: a stored verifier is no password, but enough for an offline
    // guess.
    assert!(
        role_secret(&pg) == first,
        "the role's stored secret is untouched"
    );
    assert_eq!(ids(s), ids0, "no container was recreated");

    // A failure once the verifier is set and ferretdb recreated: rolled back, the stored secret
    // restored byte for byte, ferretdb back on its URL.
    let fp = format!("after:recreate:{}=return", s.mongo);
    let r = tool(s, &["rescue", "--yes"], &[("FAILPOINTS", &fp)]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(
        role_secret(&pg) == first,
        "the undo restores the exact secret"
    );
    psql_login(&psql, s.postgres_port.unwrap(), &a).expect("the role takes A again");
    let url = container_env(&s.mongo, URL).unwrap();
    assert!(url.expose().contains(&format!(":{}@", b.expose())));

    // Killed right after the verifier is set: resume rolls forward (compose.env decides).
    let fp = "after:change-pg=return(crash)".to_string();
    let r = tool(s, &["rescue", "--yes"], &[("FAILPOINTS", &fp)]);
    assert_eq!(r.signal, Some(9), "{}", r.text());
    assert_eq!(
        secret_shape(&role_secret(&pg)),
        (4096, 28),
        "the verifier was set"
    );
    let r = tool(s, &["resume"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());

    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(0), "{}\n{rows:#?}", r.text());
    planes_agree(&psql, s, &b, &a, true);
    // No password in the tool's output, the stack dir (journal, state) or the containers'
    // inspect (env aside).
    e2e_support::leak::assert_no_leak_anywhere(s, &[&a, &b], &[]);
    eprintln!("{test}: done in {:?}", t0.elapsed());
}

#[test]
fn ferret_rescue_stale_url_then_first_init_with_the_last_committed_value() {
    e2e_support::require_failpoints();
    let test = "ferret_rescue_stale_url";
    let Some(psql) = psql_or_skip(test) else {
        return;
    };
    let rt = rt();
    let project = format!("fresb{}", std::process::id());
    let t0 = Instant::now();
    let Some(f) = rt.block_on(fixture_with(test, &project, |o| {
        o.variant = Variant::FerretDb
    })) else {
        return;
    };
    let s = &f.stack;
    let a = s.env_password.clone();
    let pg = s.postgres.clone().unwrap();

    // (b): the role and compose.env on B, ferretdb's URL and the holders on A.
    let b = stale_url_by_hand(s, &a);
    let before = role_secret(&pg);
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(!r.stderr.contains("change-pg"), "{}", r.text());
    assert!(
        role_secret(&pg) == before,
        "the role already took compose.env's value"
    );
    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(0), "{}\n{rows:#?}", r.text());
    planes_agree(&psql, s, &b, &a, true);

    // (a): compose.env to C and the whole file deployed; the role keeps B, which only the
    // tool's record of its last committed value still holds.
    let c = rt.block_on(first_init_by_hand(None, s));
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(
        r.stderr
            .contains("verifier takes the password from last committed")
            || r.stderr.contains("verifier takes the password from"),
        "{}",
        r.text()
    );
    assert!(r.stderr.contains("change-pg"), "{}", r.text());
    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(0), "{}\n{rows:#?}", r.text());
    planes_agree(&psql, s, &c, &b, true);
    e2e_support::leak::assert_no_leak_anywhere(s, &[&a, &b, &c], &[]);
    eprintln!("{test}: done in {:?}", t0.elapsed());
}
