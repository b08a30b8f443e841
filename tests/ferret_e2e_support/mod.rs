//! Shared steps of the FerretDB verify and rescue end-to-end tests (issue 21): the tool's verify
//! rows as JSON, the two drift shapes made by hand as a user makes them, and the referees'
//! verdict that every plane agrees on one password (Debian's `psql`, pymongo through the
//! FerretDB-shaped front end, the real `sops`, the `docker` CLI; none of them the tool's code).

#![allow(dead_code)]

use crate::e2e_support::{tool, Run};
use crate::ferret_stack_support::*;
use komodo_rotate::docker::Engine;
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Stack};
use std::time::{Duration, Instant};

pub const PW: &str = "KOMODO_DATABASE_PASSWORD";
pub const URL: &str = "FERRETDB_POSTGRESQL_URL";

/// `verify --json`: the run and its rows (name, status, detail).
pub fn verify(s: &Stack) -> (Run, Vec<(String, String, String)>) {
    let r = tool(s, &["verify", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("verify --json: {e}\n{}", r.text()));
    let rows = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (f("name"), f("status"), f("detail"))
        })
        .collect();
    (r, rows)
}

/// The row `name`'s (status, detail); panics naming every row when it is missing.
pub fn row(rows: &[(String, String, String)], name: &str) -> (String, String) {
    rows.iter()
        .find(|r| r.0 == name)
        .map(|r| (r.1.clone(), r.2.clone()))
        .unwrap_or_else(|| panic!("no row {name} in {rows:#?}"))
}

/// Drift shape (b), by hand: the role changed through the front end (`updateUser`, pymongo) and
/// compose.env with `sops set`, ferretdb left running on its old URL (read once), core and
/// periphery on the old value. Returns the new password.
pub fn stale_url_by_hand(s: &Stack, old: &Secret) -> Secret {
    let new = Secret::generate().unwrap();
    let upd = pymongo(s.mongo_port, "update", old, Some(&new));
    assert!(upd.ok, "updateUser through the front end: {upd:?}");
    sops_set(s, PW, &new);
    new
}

/// Drift shape (a), by hand: compose.env edited, then the whole file deployed again (`up -d`):
/// postgres is recreated but keeps its initialised role, ferretdb, core and periphery take the
/// new value; core crash-loops (code 1; waited for when `engine` is given). Returns the new
/// password.
pub async fn first_init_by_hand(engine: Option<&Engine>, s: &Stack) -> Secret {
    let new = Secret::generate().unwrap();
    sops_set(s, PW, &new);
    s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    if let Some(engine) = engine {
        let core = stack::container_name(&s.project, "core");
        stack::wait_crash_loop(engine, &core, Duration::from_secs(90))
            .await
            .expect("core crash-loops after the redeploy");
    }
    new
}

/// The referees agree that every plane holds `pw`: sops reads it from compose.env, psql logs in
/// with it over TCP (scram-sha-256) and not with `old`, pymongo logs in through the front end,
/// ferretdb's URL, core's and periphery's env carry it (`docker inspect`), and the role's
/// verifier is the tool's shape (4096 iterations, 28-byte salt) when `rewritten`.
pub fn planes_agree(psql: &str, s: &Stack, pw: &Secret, old: &Secret, rewritten: bool) {
    assert!(
        sops_get(s, PW).is_some_and(|v| v.ct_eq(pw)),
        "sops: compose.env holds the password"
    );
    let pg = s.postgres.clone().expect("postgres");
    let port = s.postgres_port.expect("postgres port");
    psql_login(psql, port, pw).expect("psql logs in with the password");
    assert!(
        psql_login(psql, port, old).is_err(),
        "psql: the old password is refused"
    );
    if rewritten {
        assert_eq!(
            secret_shape(&role_secret(&pg)),
            (4096, 28),
            "the tool's verifier"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = pymongo(s.mongo_port, "login", pw, None);
        if r.ok || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(r.ok, "pymongo through the front end: {r:?}");
    let o = pymongo(s.mongo_port, "login", old, None);
    assert_eq!(
        o.code,
        Some(18),
        "the old password through the front end: {o:?}"
    );
    let ferretdb = stack::container_name(&s.project, "ferretdb");
    let url = container_env(&ferretdb, URL).expect("ferretdb's URL");
    assert!(
        url.expose().contains(&format!(":{}@", pw.expose())),
        "ferretdb's URL carries the password"
    );
    for svc in ["core", "periphery"] {
        let c = stack::container_name(&s.project, svc);
        assert!(
            container_env(&c, PW).is_some_and(|v| v.ct_eq(pw)),
            "{svc}'s env holds the password"
        );
    }
}

/// `docker inspect`'s Id of each container of the stack (nothing recreated: the same Ids).
pub fn ids(s: &Stack) -> Vec<String> {
    ["postgres", "ferretdb", "core", "periphery"]
        .iter()
        .map(|svc| {
            let name = stack::container_name(&s.project, svc);
            let out = std::process::Command::new("docker")
                .args(["inspect", "--format", "{{.Id}}", &name])
                .output()
                .expect("docker inspect");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect()
}
