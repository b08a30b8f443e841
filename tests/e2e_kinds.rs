//! Issue 11, the env-only secret kinds, end to end on the rehearsal stack and a real Docker
//! engine, with the real `sops` as the referee of compose.env:
//! - verify: one row per env-only kind compose.env holds (jwt-secret, webhook-secret, passkey);
//!   a core recreated by hand with another KOMODO_JWT_SECRET is drift (exit 1) named by kind and
//!   container, in text, JSON and Prometheus, never with a value;
//! - rotate --secret jwt-secret / webhook-secret / env:KEY end to end, with their notices, and
//!   their refusals (a drifted holder: exit 3, nothing changed; store-backed keys: exit 2);
//! - the fault matrix and the SIGKILL matrix, generic: driven from the step list `rotate
//!   --secret K --dry-run` prints, so a new kind gets them by adding its name (run for
//!   jwt-secret): every step fails in turn (exit 4, all old) and a SIGKILL after every step is
//!   resumed (compose.env decides: all new from write-env on, else all old).

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::*;
use komodo_rotate::docker::{Engine, EnvPatch, Snapshot};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack, StackOptions, REHEARSAL_TOKEN_KEY};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Fixture {
    engine: Engine,
    stack: Stack,
    _dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

async fn fixture(test: &str, project: &str) -> Option<Fixture> {
    let engine = engine_or_skip(test).await?;
    let v = Command::new(BIN).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("(failpoints)"),
        "{BIN} was built without the failpoints feature: run the tests with --features failpoints"
    );
    if !require_tools(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let opts = StackOptions::new(project, dir.path(), &bin);
    let stack = stack::up(&engine, &opts).await.expect("rehearsal up");
    Some(Fixture {
        engine,
        stack,
        _dir: dir,
        _cleanup: cleanup,
    })
}

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
        assert_no_leak(&leak, &s.dir.join("state"));
        let prom_leaks = [&jwt, &other].iter().any(|x| prom.contains(x.expose()));
        assert!(!prom_leaks, "a value in the metrics file");
    });
}

/// The real Go sops decrypts compose.env: its value of `key`.
fn sops_get(s: &Stack, key: &str) -> Option<Secret> {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("sops")
        .args([
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg(s.compose_env())
        .env("SOPS_AGE_KEY_FILE", s.age_key())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| Secret::new(v.to_string()))
    })
}

/// The invariant of an env-only kind: compose.env (read by the real sops), core's and
/// periphery's `key` are one value, and no -next/-prev container is left. That value, or the split.
async fn agreed_on(engine: &Engine, s: &Stack, key: &str) -> Result<Secret, String> {
    let env = sops_get(s, key).ok_or_else(|| format!("sops cannot read {key}"))?;
    let mut split = Vec::new();
    for name in [&s.core, &s.periphery] {
        let held = komodo_rotate::docker::ContainerInfo::load(engine, name)
            .await
            .ok()
            .and_then(|c| c.env_value(key).cloned());
        if !held.is_some_and(|v| v.ct_eq(&env)) {
            split.push(format!(
                "{name}'s {key} differs from compose.env (or it is missing)"
            ));
        }
        for leftover in [format!("{name}-next"), format!("{name}-prev")] {
            if komodo_rotate::docker::ContainerInfo::load(engine, &leftover)
                .await
                .is_ok()
            {
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
        assert_no_leak(&refs, &s.dir.join("state"));
    });
}

/// The step names `rotate --secret KIND --dry-run` prints, in order.
fn step_names(s: &Stack, kind: &str) -> Vec<String> {
    let r = tool(s, &["rotate", "--secret", kind, "--dry-run"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let names: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (n, rest) = l.split_once(". ")?;
            n.parse::<usize>().ok()?;
            rest.split_whitespace().next().map(String::from)
        })
        .collect();
    assert!(names.len() >= 3, "no plan in: {}", r.text());
    names
}

/// The generic matrices for one env-only kind.
fn fault_and_crash_matrices(kind: &str, key: &str, project: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture(&format!("matrices {kind}"), project)) else {
        return;
    };
    let s = &f.stack;
    let steps = step_names(s, kind);
    println!("\n{kind}: steps from --dry-run: {}", steps.join(", "));
    let agreed = |what: &str| {
        rt.block_on(agreed_on(&f.engine, s, key))
            .unwrap_or_else(|e| panic!("{kind} {what}: split: {e}"))
    };
    let journal = s.dir.join("state/journal/current.json");
    let mut seen = vec![s.passkey.clone(), s.env_password.clone()];
    let mut rows = Vec::new();

    // Fault matrix: each step fails before it runs, and after it ran (but the last: after
    // commit the run is over). Expected: exit 4, all old, no journal.
    let mut points: Vec<String> = steps.iter().map(|n| format!("before:{n}")).collect();
    points.extend(
        steps[..steps.len() - 1]
            .iter()
            .map(|n| format!("after:{n}")),
    );
    for fp in &points {
        let before = agreed("before the case");
        let r = tool(
            s,
            &["rotate", "--secret", kind],
            &[("FAILPOINTS", &format!("{fp}=return"))],
        );
        let after = agreed(fp);
        let verdict = if after.ct_eq(&before) {
            "all old"
        } else {
            "all new"
        };
        rows.push(format!("{fp:<44} exit {:?}  {verdict}", r.code));
        assert_eq!(r.code, Some(4), "{fp}: {}", r.text());
        assert_eq!(verdict, "all old", "{fp}: {}", r.text());
        assert!(
            !journal.exists(),
            "{fp}: a clean rollback leaves no journal"
        );
    }

    // SIGKILL matrix: killed after staging and after each step but commit, then `resume`.
    // compose.env decides: from write-env on it holds NEW (roll forward, exit 0), before it
    // OLD (roll back, exit 4). A second resume has nothing to do.
    let write_env = steps
        .iter()
        .position(|n| n == "write-env")
        .expect("an env-only plan writes compose.env");
    let mut kills = vec![("after:stage".to_string(), None)];
    kills.extend(
        steps[..steps.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("after:{n}"), Some(i))),
    );
    for (point, at) in &kills {
        let before = agreed("before the kill");
        let r = tool(
            s,
            &["rotate", "--secret", kind],
            &[("FAILPOINTS", &format!("{point}=return(crash)"))],
        );
        assert_eq!(
            r.signal,
            Some(9),
            "{point}: must die by SIGKILL: {}",
            r.text()
        );
        assert!(journal.exists(), "{point}: journal kept");
        let res = tool(s, &["resume"], &[]);
        let after = agreed(point);
        let forward = at.is_some_and(|i| i >= write_env);
        let verdict = if after.ct_eq(&before) {
            "all old"
        } else {
            "all new"
        };
        rows.push(format!(
            "SIGKILL {point:<36} resume {:?}  {verdict}",
            res.code
        ));
        assert_eq!(verdict == "all new", forward, "{point}: {}", res.text());
        assert_eq!(
            res.code,
            Some(if forward { 0 } else { 4 }),
            "{point}: {}",
            res.text()
        );
        seen.push(after);
        let again = tool(s, &["resume"], &[]);
        assert_eq!(
            again.code,
            Some(0),
            "{point}: resume is idempotent: {}",
            again.text()
        );
    }
    println!("\nfault and crash matrix (rotate --secret {kind}):");
    for r in &rows {
        println!("  {r}");
    }
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    let refs: Vec<&Secret> = seen.iter().collect();
    assert_no_leak(&refs, &s.dir.join("state"));
}

#[test]
fn jwt_secret_fault_and_sigkill_matrices_from_its_step_list() {
    fault_and_crash_matrices("jwt-secret", "KOMODO_JWT_SECRET", "krt-kinds-matrix");
}
