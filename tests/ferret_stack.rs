//! The FerretDB rehearsal stack (issue 21), checked from outside: `rehearsal up --variant
//! ferretdb` made by docker-compose from the ferretdb.compose.yaml shape, a real PostgreSQL
//! (Debian's postgresql-15) refereed by Debian's `psql`, the FerretDB-SHAPED front end (not
//! FerretDB's code) refereed by pymongo, compose.env by the real sops.
//!
//! One healthy stack carries the whole healthy story in order (each step needs the state the
//! previous one left, and a stack costs ~20-40 s); the drifted stack is the second test.

mod docker_support;
mod ferret_stack_support;

use docker_support::{engine_or_skip, images, Cleanup};
use ferret_stack_support::*;
use komodo_rotate::docker::crashloop::{self, Signature};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, StackOptions, Variant};
use std::time::{Duration, Instant};

const STALE: &str = "password authentication failed for user \"admin\"";

fn opts(project: &str, dir: &std::path::Path, bin: &std::path::Path, drift: bool) -> StackOptions {
    let mut o = StackOptions::new(project, dir, bin);
    o.variant = Variant::FerretDb;
    o.drift = drift;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferret_stack_healthy_psql_pymongo_and_sops_agree_and_update_user_is_alter_role() {
    let test = "ferret_stack_healthy";
    let Some(engine) = engine_or_skip(test).await else {
        return;
    };
    let Some(psql) = psql_or_skip(test) else {
        return;
    };
    let bin = images(&engine).await;
    let project = format!("fstack{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(&project);
    cleanup.dir = Some(tmp.path().to_path_buf());
    let t0 = Instant::now();
    let s = stack::up(&engine, &opts(&project, tmp.path(), &bin, false))
        .await
        .expect("ferret stack up");
    eprintln!("{test}: stack up in {:?}", t0.elapsed());
    let pg = s.postgres.clone().expect("a postgres container");
    let pg_port = s.postgres_port.expect("postgres's port");
    let a = s.env_password.clone();
    let wrong = Secret::generate().unwrap();

    // compose.env (real sops), postgres's init env and ferretdb's URL all hold A.
    let env_pw = sops_get(&s, "KOMODO_DATABASE_PASSWORD").expect("sops decrypts compose.env");
    assert!(env_pw.ct_eq(&a), "compose.env holds the stack's password");
    assert!(container_env(&pg, "POSTGRES_PASSWORD").is_some_and(|p| p.ct_eq(&a)));
    let url = container_env(&s.mongo, "FERRETDB_POSTGRESQL_URL").expect("ferretdb's URL");
    assert_eq!(
        url.expose(),
        format!("postgres://admin:{}@postgres:5432/postgres", a.expose()),
        "compose interpolated the URL raw"
    );

    // psql: the right password logs in, a wrong one is refused; initdb's verifier.
    psql_login(&psql, pg_port, &a).expect("psql logs in with the password");
    let refused = psql_login(&psql, pg_port, &wrong).unwrap_err();
    assert!(refused.contains(STALE), "{refused}");
    let first = role_secret(&pg);
    assert_eq!(secret_shape(&first), (4096, 16), "initdb's verifier");

    // pymongo through the front end: SCRAM-SHA-256 with A, 18 with a wrong one, ping's PG leg.
    let ok = pymongo(s.mongo_port, "login", &a, None);
    assert!(ok.ok, "{ok:?}");
    let bad = pymongo(s.mongo_port, "login", &wrong, None);
    assert_eq!(
        (bad.code, bad.errmsg.as_deref()),
        (Some(18), Some("Authentication failed.")),
        "{bad:?}"
    );
    assert!(pymongo(s.mongo_port, "ping", &wrong, None).ok);

    // updateUser through the front end is ALTER ROLE: psql sees a new verifier with a 28-byte
    // salt and 4096 iterations, B logs in to PostgreSQL, A is refused.
    let b = Secret::generate().unwrap();
    let upd = pymongo(s.mongo_port, "update", &a, Some(&b));
    assert!(upd.ok, "{upd:?}");
    let second = role_secret(&pg);
    assert_ne!(second, first);
    assert_eq!(
        secret_shape(&second),
        (4096, 28),
        "DocumentDB-shaped verifier"
    );
    psql_login(&psql, pg_port, &b).expect("psql logs in with the new password");
    assert!(psql_login(&psql, pg_port, &a).unwrap_err().contains(STALE));

    // The running front end's URL still holds A: its next new PostgreSQL connection fails, so
    // every login (right or wrong password) and ping answer code 1 with PostgreSQL's message.
    for (what, pw, action) in [("B", &b, "login"), ("A", &a, "login"), ("-", &a, "ping")] {
        let r = pymongo(s.mongo_port, action, pw, None);
        assert_eq!(r.code, Some(1), "{what} {action}: {r:?}");
        assert!(
            r.errmsg.as_deref().is_some_and(|m| m.starts_with(STALE)),
            "{r:?}"
        );
    }

    // By hand, as the runbook order says: compose.env to B, recreate ferretdb (its URL is
    // read once). The new front end logs B in; A is code 18 again.
    sops_set(&s, "KOMODO_DATABASE_PASSWORD", &b);
    s.compose()
        .run_ok(&["up", "-d", "--no-deps", "ferretdb"])
        .expect("recreate ferretdb");
    let ferretdb = stack::container_name(&project, "ferretdb");
    let url = container_env(&ferretdb, "FERRETDB_POSTGRESQL_URL").unwrap();
    assert!(url.expose().contains(&format!(":{}@", b.expose())));
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = pymongo(s.mongo_port, "login", &b, None);
        if r.ok || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(r.ok, "B through the recreated front end: {r:?}");
    assert_eq!(pymongo(s.mongo_port, "login", &a, None).code, Some(18));
    eprintln!("{test}: all checks in {:?}", t0.elapsed());
    drop(cleanup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferret_stack_drift_core_crash_loops_with_the_ferretdb_signature() {
    let test = "ferret_stack_drift";
    let Some(engine) = engine_or_skip(test).await else {
        return;
    };
    let Some(psql) = psql_or_skip(test) else {
        return;
    };
    let bin = images(&engine).await;
    let project = format!("fdrift{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(&project);
    cleanup.dir = Some(tmp.path().to_path_buf());
    let t0 = Instant::now();
    let s = stack::up(&engine, &opts(&project, tmp.path(), &bin, true))
        .await
        .expect("drifted ferret stack up");
    eprintln!("{test}: stack up in {:?}", t0.elapsed());
    let pg = s.postgres.clone().unwrap();
    let (a, b) = (&s.mongo_password, &s.env_password);
    assert!(!a.ct_eq(b));

    // compose.env, postgres's env and ferretdb's URL moved on to B; the role kept A.
    assert!(sops_get(&s, "KOMODO_DATABASE_PASSWORD").is_some_and(|p| p.ct_eq(b)));
    assert!(container_env(&pg, "POSTGRES_PASSWORD").is_some_and(|p| p.ct_eq(b)));
    let url = container_env(&s.mongo, "FERRETDB_POSTGRESQL_URL").unwrap();
    assert!(url.expose().contains(&format!(":{}@", b.expose())));
    let logs = engine.logs_tail(&pg, 200).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("Skipping initialization")),
        "postgres was recreated on its initialised data dir"
    );
    psql_login(&psql, s.postgres_port.unwrap(), a).expect("the role still takes A");
    assert!(psql_login(&psql, s.postgres_port.unwrap(), b)
        .unwrap_err()
        .contains(STALE));

    // The front end's URL is stale: code 1 with PostgreSQL's message, whatever the client sends.
    let r = pymongo(s.mongo_port, "login", b, None);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.errmsg.as_deref().is_some_and(|m| m.starts_with(STALE)));

    // Core crash-loops with FerretDB's signature (the tool's crash-loop reader is the one the
    // plane's verify uses; the log line itself is checked too).
    let v = crashloop::observe(&engine, &s.core, Duration::from_secs(2), 50)
        .await
        .unwrap();
    assert!(v.looping, "{v:?}");
    assert_eq!(v.signature, Some(Signature::FerretAuthFailed), "{v:?}");
    let core_logs = engine.logs_tail(&s.core, 50).await.unwrap();
    assert!(
        core_logs
            .iter()
            .any(|l| l.contains("SCRAM failure: password authentication failed for user")),
        "{core_logs:?}"
    );
    eprintln!("{test}: all checks in {:?}", t0.elapsed());
    drop(cleanup);
}
