//! Issue 21, `rotate` and `resume` of the DB password on the FerretDB variant, end to end on ONE
//! FerretDB rehearsal stack (`rehearsal up --variant ferretdb`: Debian's postgresql-15 and the
//! FerretDB-SHAPED front end, not FerretDB's code), every outcome read from outside the tool:
//! Debian's real `psql` (a login over the published port: new ok, old refused; the role's stored
//! verifier read through the container's socket: 4096 iterations, 28-byte salt, byte-identical
//! after an undo), pymongo through the front end, the real `sops` for compose.env, the `docker`
//! CLI for the containers' env (ferretdb's FERRETDB_POSTGRESQL_URL included).
//!
//! In order, on the one stack (a stack costs ~15-30 s): `rotate --list` shows the variant and
//! db-password available; a URL-unsafe new value is refused (exit 3) with nothing changed; a
//! fault right after change-pg rolls back to the role's exact previous secret; a rotation
//! commits; then a few rows of the fault and SIGKILL matrices (`e2e_support::matrix`, rows kept
//! few for CI's budget) and kills inside change-pg, whose `resume` asks the role's verifier:
//! forward once it takes NEW, back while it takes OLD.

mod docker_support;
mod e2e_support;
mod ferret_stack_support;

use e2e_support::*;
use ferret_stack_support::{
    container_env, psql_login, psql_or_skip, pymongo, role_secret, secret_shape,
};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{Stack, Variant};
use std::time::Instant;

const URL_KEY: &str = "FERRETDB_POSTGRESQL_URL";
const REFUSED: &str = "password authentication failed for user \"admin\"";

/// The value every plane agrees on, each read by an outside tool, or a panic naming the split:
/// compose.env (real sops), PostgreSQL (psql logs in with it over TCP), the front end (pymongo
/// logs in and lists databases), core's and periphery's env and ferretdb's URL (docker
/// inspect), no `-next`/`-prev` left.
fn agreed(s: &Stack, psql: &str, when: &str) -> Secret {
    let env = sops_value(s).unwrap_or_else(|| panic!("{when}: the real sops cannot read {PW_KEY}"));
    let pg = s.postgres_port.expect("postgres's port");
    let mut split = Vec::new();
    if let Err(e) = psql_login(psql, pg, &env) {
        split.push(format!("psql refuses compose.env's value ({e})"));
    }
    let py = pymongo(s.mongo_port, "login", &env, None);
    if !py.ok {
        split.push(format!("pymongo through ferretdb: {py:?}"));
    }
    for c in [&s.core, &s.periphery] {
        if !referee::docker_env(c, PW_KEY).is_some_and(|v| v.ct_eq(&env)) {
            split.push(format!("{c}'s {PW_KEY} differs from compose.env"));
        }
    }
    let url = container_env(&s.mongo, URL_KEY);
    if !url.is_some_and(|u| u.expose().contains(&format!(":{}@", env.expose()))) {
        split.push(format!(
            "{}'s {URL_KEY} does not carry compose.env's value",
            s.mongo
        ));
    }
    let left: Vec<String> = [&s.core, &s.periphery, &s.mongo]
        .iter()
        .flat_map(|n| [format!("{n}-next"), format!("{n}-prev")])
        .collect();
    let refs: Vec<&str> = left.iter().map(String::as_str).collect();
    for name in referee::docker_inspect_many(&refs).keys() {
        split.push(format!("{name} is left over"));
    }
    assert!(
        split.is_empty(),
        "{when}: the planes split: {}",
        split.join("; ")
    );
    env
}

#[test]
fn ferret_rotate_refusals_commit_matrices_and_resume() {
    let test = "ferret_rotate";
    rt().block_on(async {
        require_failpoints();
        let Some(psql) = psql_or_skip(test) else {
            return;
        };
        let t0 = Instant::now();
        let project = format!("frot{}", std::process::id());
        let Some(f) = fixture_with(test, &project, |o| o.variant = Variant::FerretDb).await else {
            return;
        };
        let s = &f.stack;
        let pg = s.postgres.clone().expect("a postgres container");
        let pg_port = s.postgres_port.expect("postgres's port");
        let journal = s.dir.join("state/journal/current.json");
        eprintln!("{test}: stack up in {:.0?}", t0.elapsed());

        // --list: the variant, and db-password available on it.
        let l = tool(s, &["rotate", "--list"], &[]);
        assert_eq!(l.code, Some(0), "{}", l.text());
        assert!(
            l.stdout
                .lines()
                .any(|x| x.starts_with("variant") && x.contains("ferretdb")),
            "{}",
            l.text()
        );
        assert!(
            l.stdout
                .lines()
                .any(|x| x.starts_with("db-password") && x.contains(" available ")),
            "{}",
            l.text()
        );

        // A URL-unsafe new value (test builds can name it): refused before anything changes.
        let a = agreed(s, &psql, "at start");
        let role_a = role_secret(&pg);
        let unsafe_value = "Unsafe@pass/word-0123";
        let r = tool(
            s,
            &["rotate"],
            &[(
                "FAILPOINTS",
                &format!("rotate:new-value=return({unsafe_value})"),
            )],
        );
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(
            r.stderr.contains(URL_KEY) && r.stderr.contains("nothing was changed"),
            "{}",
            r.text()
        );
        assert!(!r.stderr.contains(unsafe_value) && !r.stdout.contains(unsafe_value));
        // Compared, not printed: a stored verifier is secret material.
        assert!(
            role_secret(&pg) == role_a,
            "the role's stored secret was touched"
        );
        assert!(agreed(s, &psql, "after the refusal").ct_eq(&a));
        assert!(!journal.exists(), "a refusal left a journal");

        // A fault right after change-pg: the undo puts the exact previous stored secret back,
        // byte for byte (no old plaintext involved), and every plane is on A.
        let r = tool(s, &["rotate"], &[("FAILPOINTS", "after:change-pg=return")]);
        assert_eq!(r.code, Some(4), "{}", r.text());
        fired::assert_own_failpoint(s, &r, "after:change-pg", "after:change-pg");
        // Compared, not printed: a stored verifier is secret material.
        assert!(
            role_secret(&pg) == role_a,
            "undo:change-pg did not restore the exact bytes"
        );
        assert!(agreed(s, &psql, "after the rollback").ct_eq(&a));

        // A rotation: the role takes B (a verifier of 4096 iterations and a 28-byte salt), A is
        // refused by PostgreSQL and through ferretdb (18), every holder and the URL hold B.
        let r = tool(s, &["rotate"], &[]);
        assert_eq!(r.code, Some(0), "{}", r.text());
        let b = agreed(s, &psql, "after the rotation");
        assert!(!b.ct_eq(&a), "the rotation did not change the value");
        assert_eq!(
            secret_shape(&role_secret(&pg)),
            (4096, 28),
            "the role's new verifier"
        );
        let old = psql_login(&psql, pg_port, &a).expect_err("psql still logs A in");
        assert!(old.contains(REFUSED), "{old}");
        let py = pymongo(s.mongo_port, "login", &a, None);
        assert_eq!(py.code, Some(18), "A through ferretdb: {py:?}");
        assert!(
            r.stdout.contains("POSTGRES_PASSWORD keeps its value"),
            "{}",
            r.text()
        );
        eprintln!("{test}: refusals and rotation done at {:.0?}", t0.elapsed());

        // The matrices, a few rows each (then verify 0 and the hygiene scan): the first step
        // and the URL-patching recreate fail; a kill before the decider (back); kills inside
        // change-pg (its done unrecorded: forward), before it applies and inside the rollback at
        // its undo (back).
        let ferretdb = format!("after:recreate:{}", s.mongo);
        let kind = matrix::Kind {
            args: &["--secret", "db-password"],
            decider: "change-pg",
        };
        let ag = |when: &str| agreed(s, &psql, when);
        matrix::run_some(
            s,
            &kind,
            Some(&["before:change-pg", ferretdb.as_str()]),
            Some(&["after:snapshot"]),
            &ag,
        );
        eprintln!("{test}: matrices done at {:.0?}", t0.elapsed());
        matrix::run_kills_inside_at(s, &kind, Some(&["change-pg"]), &ag);
        let unsafe_secret = Secret::new(unsafe_value.into());
        leak::assert_no_leak_anywhere(s, &[&a, &b, &unsafe_secret], &[]);
        eprintln!("{test}: all done in {:.0?}", t0.elapsed());
    });
}
