//! Issue 11, the env-only secret kinds, end to end on the rehearsal stack and a real Docker
//! engine. verify: one row per env-only kind compose.env holds (jwt-secret, webhook-secret,
//! passkey), and a core recreated by hand with another KOMODO_JWT_SECRET is drift (exit 1)
//! named by kind and container, in text, JSON and Prometheus, never with a value.

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::*;
use komodo_rotate::docker::{Engine, EnvPatch, Snapshot};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack, StackOptions};
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
