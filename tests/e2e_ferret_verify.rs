//! Issue 21, verify on the FerretDB rehearsal stack (a real PostgreSQL, the FerretDB-SHAPED front
//! end): one stack, verify on it healthy (exit 0), then after each drift shape made by hand
//! (exit 1, the rows naming the right cause). The referees (Debian's psql, pymongo, the real
//! sops, the docker CLI) read the same state the rows describe.

mod docker_support;
mod e2e_support;
mod ferret_e2e_support;
mod ferret_stack_support;

use e2e_support::{fixture_with, rt};
use ferret_e2e_support::*;
use ferret_stack_support::*;
use komodo_testcontainers::stack::Variant;
use std::time::Instant;

#[test]
fn ferret_verify_healthy_then_stale_url_then_first_init_drift() {
    let test = "ferret_verify";
    let Some(psql) = psql_or_skip(test) else {
        return;
    };
    let rt = rt();
    let project = format!("fverify{}", std::process::id());
    let t0 = Instant::now();
    let Some(f) = rt.block_on(fixture_with(test, &project, |o| {
        o.variant = Variant::FerretDb
    })) else {
        return;
    };
    let s = &f.stack;
    let a = s.env_password.clone();

    // Healthy: exit 0, every FerretDB row ok, and the referees agree on A.
    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(row(&rows, "variant").1.contains("FerretDB deployment"));
    for name in ["pg-role", "ferretdb-url", "db-login", "postgres-init-env"] {
        assert_eq!(row(&rows, name).0, "ok", "{name}: {rows:#?}");
    }
    planes_agree(&psql, s, &a, &secret_other(), false);
    // The default services.mongo (no `mongo = "ferretdb"`) finds the ferretdb service.
    let text = std::fs::read_to_string(s.config()).unwrap();
    let default = s.dir.join("default-services.toml");
    komodo_rotate::fsutil::write_atomic(
        &default,
        text.replace("mongo = \"ferretdb\", ", "").as_bytes(),
        komodo_rotate::fsutil::Mode::Exactly(0o600),
    )
    .unwrap();
    let d = e2e_support::finish(
        std::process::Command::new(e2e_support::BIN)
            .args(["verify", "--config"])
            .arg(&default)
            .env("KOMODO_ROTATE_LOCK_DIR", e2e_support::host_lock_dir(s))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(d.code, Some(0), "default services.mongo: {}", d.text());

    // (b) ferretdb's URL stale after a hand change: the role and compose.env on B.
    let b = stale_url_by_hand(s, &a);
    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(1), "{}", r.text());
    assert_eq!(row(&rows, "pg-role").0, "ok", "{rows:#?}");
    let (st, url) = row(&rows, "ferretdb-url");
    assert_eq!(st, "drift");
    assert!(
        url.contains("differs from compose.env") && url.contains("refuses it"),
        "{url}"
    );
    let (st, login) = row(&rows, "db-login");
    assert_eq!(st, "drift");
    assert!(
        login.contains("code 1") && login.contains("FERRETDB_POSTGRESQL_URL"),
        "{login}"
    );
    let core = format!("env {}", s.core);
    assert_eq!(row(&rows, &core).0, "drift", "{rows:#?}");
    // Referees: PostgreSQL takes B and refuses A, the front end answers code 1 (its URL holds A),
    // compose.env holds B, ferretdb's URL still A.
    let port = s.postgres_port.unwrap();
    psql_login(&psql, port, &b).expect("psql: B");
    assert!(psql_login(&psql, port, &a).is_err());
    assert_eq!(pymongo(s.mongo_port, "login", &b, None).code, Some(1));
    assert!(sops_get(s, PW).is_some_and(|v| v.ct_eq(&b)));
    assert!(container_env(&s.mongo, URL)
        .is_some_and(|u| u.expose().contains(&format!(":{}@", a.expose()))));

    // (a) compose.env edited and the whole file deployed again: the role keeps B, everything
    // else holds C, core crash-loops with FerretDB's code 1.
    let c = rt.block_on(first_init_by_hand(Some(&f.engine), s));
    let (r, rows) = verify(s);
    assert_eq!(r.code, Some(1), "{}", r.text());
    let (st, role) = row(&rows, "pg-role");
    assert_eq!(st, "drift");
    assert!(
        role.contains("does not accept compose.env's KOMODO_DATABASE_PASSWORD"),
        "{role}"
    );
    let (st, url) = row(&rows, "ferretdb-url");
    assert_eq!(st, "drift");
    assert!(
        url.contains("carries compose.env's password") && url.contains("refuses it"),
        "{url}"
    );
    assert_eq!(row(&rows, "postgres-init-env").0, "ok");
    let (st, cause) = row(&rows, "core-cause");
    assert_eq!(st, "drift");
    assert!(
        cause.contains("code 1") && cause.contains("not core's password"),
        "{cause}"
    );
    let (_, state) = row(&rows, "core-state");
    assert!(
        state.contains("FERRETDB_POSTGRESQL_URL") && !state.contains("rejected core's password"),
        "{state}"
    );
    psql_login(&psql, port, &b).expect("psql: the role kept B");
    assert!(psql_login(&psql, port, &c).is_err());
    assert_eq!(pymongo(s.mongo_port, "login", &c, None).code, Some(1));
    assert!(sops_get(s, PW).is_some_and(|v| v.ct_eq(&c)));
    let pg = s.postgres.clone().unwrap();
    assert!(container_env(&pg, "POSTGRES_PASSWORD").is_some_and(|v| v.ct_eq(&c)));
    eprintln!("{test}: done in {:?}", t0.elapsed());
}

fn secret_other() -> komodo_rotate::secret::Secret {
    komodo_rotate::secret::Secret::generate().unwrap()
}
