//! Issue 11, the env-only secret kinds, end to end on the rehearsal stack and a real Docker
//! engine, with the real `sops` as the referee of compose.env:
//! - verify: one row per env-only kind compose.env holds (jwt-secret, webhook-secret, passkey);
//!   a core recreated by hand with another KOMODO_JWT_SECRET is drift (exit 1) named by kind and
//!   container, in text, JSON and Prometheus, never with a value;
//! - rotate --secret jwt-secret / webhook-secret / env:KEY end to end, with their notices, and
//!   their refusals (a drifted holder: exit 3, nothing changed; store-backed keys: exit 2);
//! - the generic fault and SIGKILL matrices (`e2e_support::matrix`, driven from the step list
//!   `rotate --secret K --dry-run` prints) for each of the three: every step fails in turn (exit
//!   4, all old) and a SIGKILL after every step is resumed (compose.env decides: all new from
//!   write-env on, else all old); then kills inside steps (`run_kills_inside_at`): jwt-secret
//!   inside write-env and each recreate, the other two inside write-env; for each, before
//!   write-env applies and inside the rollback: every branch of resume's env-only decision.

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_rotate::docker::{Engine, EnvPatch, Snapshot};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack, REHEARSAL_TOKEN_KEY};
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

/// compose.env's value of `key`, read by our store (the real sops is the referee elsewhere).
fn env_value(s: &Stack, key: &str) -> Secret {
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(key)
        .unwrap_or_else(|| panic!("compose.env has no {key}"))
}

/// Recreates `name` by hand as an operator would (`docker rm -f` + `docker run` with the same
/// config), with `key` set to `value` in its env.
async fn recreate_with(engine: &Engine, name: &str, key: &str, value: Secret) {
    let snap = Snapshot::take(engine, name, 0).await.expect("snapshot");
    let image = snap
        .inspect
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .expect("image");
    engine.stop(name, 5).await.expect("stop");
    engine.remove(name).await.expect("remove");
    engine
        .create(
            name,
            snap.create_body(&EnvPatch::new().set(key, value), &image),
        )
        .await
        .expect("create");
    engine.start(name).await.expect("start");
}

fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} row:\n{text}"))
}

async fn fixture(test: &str, project: &str) -> Option<Fixture> {
    require_failpoints();
    fixture_with(test, project, |_| {}).await
}

#[test]
fn verify_names_an_env_only_kind_whose_holder_drifted() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let Some(f) = fixture(
            "verify_names_an_env_only_kind_whose_holder_drifted",
            "krt-kinds-verify",
        )
        .await
        else {
            return;
        };
        let s = &f.stack;
        let jwt = env_value(s, "KOMODO_JWT_SECRET");
        let webhook = env_value(s, "KOMODO_WEBHOOK_SECRET");

        // A fresh stack: every env-only kind present, every holder on compose.env's value.
        let v = tool(s, &["verify"], &[]);
        assert_eq!(v.code, Some(0), "{}", v.text());
        for kind in ["jwt-secret", "webhook-secret", "passkey"] {
            let l = line_of(&v.stdout, kind);
            assert!(l.contains(" ok "), "{l}");
            assert!(l.contains(&s.core) && l.contains(&s.periphery), "{l}");
        }

        // core recreated by hand with another JWT secret: drift, named by kind and container.
        let other = Secret::generate().unwrap();
        recreate_with(&f.engine, &s.core, "KOMODO_JWT_SECRET", other.clone()).await;
        stack::wait_healthy(&f.engine, &s.core, Duration::from_secs(60))
            .await
            .expect("core healthy on its own JWT secret");
        let p = s.dir.join("verify.prom");
        let v = tool(s, &["verify", "--prometheus", p.to_str().unwrap()], &[]);
        assert_eq!(v.code, Some(1), "{}", v.text());
        let l = line_of(&v.stdout, "jwt-secret");
        assert!(l.contains("DRIFT"), "{l}");
        assert!(
            l.contains(&format!("KOMODO_JWT_SECRET in {} differ", s.core)),
            "names the container: {l}"
        );
        assert!(
            l.contains(&format!("KOMODO_JWT_SECRET in {} match", s.periphery)),
            "{l}"
        );
        for kind in ["webhook-secret", "passkey"] {
            assert!(line_of(&v.stdout, kind).contains(" ok "), "{}", v.stdout);
        }
        assert!(
            line_of(&v.stdout, "db-login").contains(" ok "),
            "{}",
            v.stdout
        );
        let prom = std::fs::read_to_string(&p).unwrap();
        assert!(
            prom.contains("komodo_rotate_check{check=\"jwt-secret\",kind=\"jwt-secret\"} 1\n"),
            "{prom}"
        );
        assert!(
            prom.contains("komodo_rotate_check{check=\"db-login\",kind=\"db-password\"} 0\n"),
            "{prom}"
        );

        let j = tool(s, &["verify", "--json"], &[]);
        assert_eq!(j.code, Some(1), "{}", j.text());
        let parsed: serde_json::Value = serde_json::from_str(&j.stdout).expect("verify --json");
        let row = parsed["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "jwt-secret")
            .expect("a jwt-secret row");
        assert_eq!(row["status"], "drift");
        assert!(row["detail"].as_str().unwrap().contains(&s.core), "{row}");

        let mut leak = vec![&jwt, &webhook, &other, &s.passkey, &s.env_password];
        leak.retain(|x| x.len() >= 8);
        e2e_support::leak::assert_no_leak_anywhere(s, &leak, &[]);
        let prom_leaks = [&jwt, &other].iter().any(|x| prom.contains(x.expose()));
        assert!(!prom_leaks, "a value in the metrics file");
    });
}

/// The invariant of an env-only kind: compose.env (read by the real sops), core's and
/// periphery's `key` (read by `docker inspect`, the CLI) are one value, and no -next/-prev
/// container is left. That value, or the split. (`engine` is kept for the callers.)
async fn agreed_on(_engine: &Engine, s: &Stack, key: &str) -> Result<Secret, String> {
    let env = sops_get(s, key).ok_or_else(|| format!("sops cannot read {key}"))?;
    let mut split = Vec::new();
    for name in [&s.core, &s.periphery] {
        let held = referee::docker_env(name, key);
        if !held.is_some_and(|v| v.ct_eq(&env)) {
            split.push(format!(
                "{name}'s {key} (docker inspect) differs from compose.env (or it is missing)"
            ));
        }
        for leftover in [format!("{name}-next"), format!("{name}-prev")] {
            if referee::container_exists(&leftover) {
                split.push(format!("{leftover} is left over"));
            }
        }
    }
    if split.is_empty() {
        Ok(env)
    } else {
        Err(split.join("; "))
    }
}

#[test]
fn env_only_kinds_rotate_end_to_end_and_refuse_what_they_cannot_prove() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let Some(f) = fixture(
            "env_only_kinds_rotate_end_to_end_and_refuse_what_they_cannot_prove",
            "krt-kinds-rotate",
        )
        .await
        else {
            return;
        };
        let s = &f.stack;
        let mut seen: Vec<Secret> = vec![s.passkey.clone(), s.env_password.clone()];
        let token = format!("env:{REHEARSAL_TOKEN_KEY}");
        for (kind, key, extra) in [
            ("jwt-secret", "KOMODO_JWT_SECRET", &[][..]),
            ("webhook-secret", "KOMODO_WEBHOOK_SECRET", &[][..]),
            (
                token.as_str(),
                REHEARSAL_TOKEN_KEY,
                &["--length", "64", "--charset", "hex"][..],
            ),
        ] {
            let before = agreed_on(&f.engine, s, key).await.expect("agreed before");
            seen.push(before.clone());
            let mut args = vec!["rotate", "--secret", kind];
            args.extend_from_slice(extra);
            let r = tool(s, &args, &[]);
            assert_eq!(r.code, Some(0), "{kind}: {}", r.text());
            let after = agreed_on(&f.engine, s, key)
                .await
                .unwrap_or_else(|e| panic!("{kind}: split after rotate: {e}"));
            assert!(!after.ct_eq(&before), "{kind}: the value did not change");
            seen.push(after.clone());
            assert!(
                r.stdout.contains(&format!("rotated {kind}")),
                "{}",
                r.text()
            );
            match kind {
                "jwt-secret" => assert!(
                    r.stderr
                        .contains("warning: every logged-in Komodo user is logged out"),
                    "{}",
                    r.text()
                ),
                "webhook-secret" => assert!(
                    r.stdout.contains("notice: update every git-host webhook")
                        && r.stderr.contains("get 401"),
                    "{}",
                    r.text()
                ),
                _ => {
                    assert_eq!(after.len(), 64, "--length");
                    assert!(
                        after.expose().bytes().all(|b| b.is_ascii_hexdigit()),
                        "--charset hex"
                    );
                }
            }
            // The DB password was not touched; verify sees every kind consistent.
            assert!(s.env_password.ct_eq(&sops_get(s, PW_KEY).unwrap()));
            let v = tool(s, &["verify"], &[]);
            assert_eq!(v.code, Some(0), "{kind}: {}", v.text());
        }

        // Refused at parse: keys whose live copy is elsewhere (exit 2, the right kind named).
        for (key, hint) in [
            ("KOMODO_DATABASE_PASSWORD", "--secret db-password"),
            ("KOMODO_PASSKEY", "--secret passkey"),
            ("KOMODO_INIT_ADMIN_PASSWORD", "km set user"),
        ] {
            let r = tool(s, &["rotate", "--secret", &format!("env:{key}")], &[]);
            assert_eq!(r.code, Some(2), "{}", r.text());
            assert!(r.stderr.contains(hint), "{}", r.text());
        }
        // A key compose.env lacks: pre-flight, exit 3.
        let r = tool(s, &["rotate", "--secret", "env:NOT_IN_THE_FILE"], &[]);
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(r.stderr.contains("has no NOT_IN_THE_FILE"), "{}", r.text());
        // Bad generator options: exit 2, one message naming the option.
        let r = tool(
            s,
            &["rotate", "--secret", "jwt-secret", "--length", "8"],
            &[],
        );
        assert_eq!(r.code, Some(2), "{}", r.text());
        assert!(r.stderr.contains("16 to 4096"), "{}", r.text());

        // A holder with another value is drift: refused, exit 3, named; nothing changed.
        let jwt_before = agreed_on(&f.engine, s, "KOMODO_JWT_SECRET").await.unwrap();
        let other = Secret::generate().unwrap();
        seen.push(other.clone());
        recreate_with(&f.engine, &s.periphery, "KOMODO_JWT_SECRET", other.clone()).await;
        stack::wait_healthy(&f.engine, &s.periphery, Duration::from_secs(60))
            .await
            .expect("periphery healthy");
        let env_bytes = std::fs::read(s.compose_env()).unwrap();
        let r = tool(s, &["rotate", "--secret", "jwt-secret"], &[]);
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(
            r.stderr.contains(&format!(
                "{} holds a KOMODO_JWT_SECRET that differs",
                s.periphery
            )),
            "{}",
            r.text()
        );
        assert_eq!(
            std::fs::read(s.compose_env()).unwrap(),
            env_bytes,
            "compose.env untouched"
        );
        let core = komodo_rotate::docker::ContainerInfo::load(&f.engine, &s.core)
            .await
            .unwrap();
        assert!(core
            .env_value("KOMODO_JWT_SECRET")
            .unwrap()
            .ct_eq(&jwt_before));

        let refs: Vec<&Secret> = seen.iter().collect();
        e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
    });
}

/// The generic matrices (tests/e2e_support/matrix.rs) for one env-only kind, on a stack of its
/// own, then kills inside the steps named by `inside` (see `matrix::run_kills_inside_at`).
/// `every_row`: the whole fault and kill matrix; else one row per rollback and resume branch
/// ([`BRANCH_FAULTS`], [`BRANCH_KILLS`]).
fn matrices(kind: &str, key: &str, project: &str, inside: &[&str], every_row: bool) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture(&format!("matrices {kind}"), project)) else {
        return;
    };
    let s = &f.stack;
    let agreed = |what: &str| {
        rt.block_on(agreed_on(&f.engine, s, key))
            .unwrap_or_else(|e| panic!("{kind} {what}: split: {e}"))
    };
    let k = matrix::Kind {
        args: &["--secret", kind],
        decider: "write-env",
    };
    if every_row {
        matrix::run(s, &k, &agreed);
    } else {
        let core = format!("after:recreate:{project}_core_1");
        let mut faults: Vec<&str> = BRANCH_FAULTS.to_vec();
        faults.push(&core);
        matrix::run_some(s, &k, Some(&faults), Some(BRANCH_KILLS), &agreed);
    }
    matrix::run_kills_inside_at(s, &k, Some(inside), &agreed);
}

/// Kills inside every step that changes a plane (compose.env, then each holder's recreate),
/// before write-env applies, and inside the rollback: every env-only branch of resume.
const EVERY_PLANE_STEP: &[&str] = &["write-env", "recreate:"];
/// The same branches with the decider's inside kill only: webhook-secret and `env:KEY` run the
/// code of jwt-secret's steps (one module, `kinds::env_only`: an env-only key, the same
/// holders), whose every row runs in jwt-secret's matrices; this keeps their matrices off the
/// suite's critical path.
const EACH_RESUME_BRANCH: &[&str] = &["write-env"];
/// Their fault rows: a failure before compose.env changes, right after it changed, after a
/// holder was recreated (added with the project's container name) and in the last step; each
/// rolls back a different set of undos.
const BRANCH_FAULTS: &[&str] = &["before:write-env", "after:write-env", "before:commit"];
/// Their kill rows: resume rolls back (compose.env not yet NEW), forward (NEW, holders not yet
/// recreated), and finds the run committed.
const BRANCH_KILLS: &[&str] = &["after:snapshot", "after:write-env", "after:commit"];

#[test]
fn jwt_secret_fault_and_sigkill_matrices_from_its_step_list() {
    matrices(
        "jwt-secret",
        "KOMODO_JWT_SECRET",
        "krt-kinds-matrix",
        EVERY_PLANE_STEP,
        true,
    );
}

#[test]
fn webhook_secret_fault_and_sigkill_matrices_from_its_step_list() {
    matrices(
        "webhook-secret",
        "KOMODO_WEBHOOK_SECRET",
        "krt-kinds-matrix-wh",
        EACH_RESUME_BRANCH,
        false,
    );
}

#[test]
fn env_key_fault_and_sigkill_matrices_from_its_step_list() {
    matrices(
        &format!("env:{REHEARSAL_TOKEN_KEY}"),
        REHEARSAL_TOKEN_KEY,
        "krt-kinds-matrix-env",
        EACH_RESUME_BRANCH,
        false,
    );
}
