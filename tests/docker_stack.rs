//! The rehearsal stack on the real engine: discovery by compose labels, env reading, Komodo
//! generation detection and crash-loop detection on the drifted stack (the seed incident); the
//! core stand-in's fault control failing a recreated core's health gate so the original comes
//! back; and the `rehearsal` command's `up`, `down`, `up --drift`, twice in a row.

mod docker_support;

use docker_support::{engine_or_skip, images, Cleanup};
use komodo_rotate::docker::crashloop::{self, Signature};
use komodo_rotate::docker::generation::{detect, Generation as KomodoGeneration};
use komodo_rotate::docker::{
    ContainerInfo, Deployment, DiscoverySpec, EnvPatch, HealthGate, Recreate, RunState,
};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Generation, StackOptions};
use std::time::Duration;

fn spec(project: &str) -> DiscoverySpec {
    DiscoverySpec {
        project: project.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_stack_is_discovered_and_core_is_crash_looping() {
    let Some(engine) = engine_or_skip("drifted_stack").await else {
        return;
    };
    let project = "krt-drift";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let mut opts = StackOptions::new(project, dir.path(), &bin);
    opts.drift = true;
    opts.generation = Generation::V1;
    let s = stack::up(&engine, &opts).await.expect("up --drift");
    assert!(
        !s.mongo_password.ct_eq(&s.env_password),
        "drift means A != B"
    );

    let d = Deployment::discover(&engine, &spec(project))
        .await
        .expect("discover");
    // compose 1.x names them `<project>_<service>_1`; discovery went by labels.
    assert_eq!(d.mongo, format!("{project}_mongo_1"));
    assert_eq!(d.core, format!("{project}_core_1"));
    assert_eq!(d.periphery, vec![format!("{project}_periphery_1")]);

    // Env: mongo holds A (the init password), core holds B under both v1 names.
    let mongo = ContainerInfo::load(&engine, &d.mongo).await.unwrap();
    let core = ContainerInfo::load(&engine, &d.core).await.unwrap();
    assert!(mongo
        .env_value("MONGO_INITDB_ROOT_PASSWORD")
        .unwrap()
        .ct_eq(&s.mongo_password));
    assert!(core
        .env_value("KOMODO_DATABASE_PASSWORD")
        .unwrap()
        .ct_eq(&s.env_password));
    assert!(core
        .env_value("KOMODO_DB_PASSWORD")
        .unwrap()
        .ct_eq(&s.env_password));
    assert_eq!(mongo.loopback_port("27017/tcp"), Some(s.mongo_port));
    assert!(!format!("{core:?}").contains(s.env_password.expose()));

    // Generation from compose.env's keys (decrypted with our SOPS store) and core's env.
    let ids = komodo_rotate::sops::Identities::from_key_file(&s.age_key()).unwrap();
    let plain = komodo_rotate::sops::SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap();
    let keys = plain.keys();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let core_keys: Vec<&str> = core.env_keys().collect();
    let g = detect(&keys, &core_keys).unwrap();
    assert_eq!(g.generation, KomodoGeneration::V1);
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    assert!(plain
        .get("KOMODO_DB_PASSWORD")
        .unwrap()
        .ct_eq(&s.env_password));

    // Crash loop: restarting or exited with code 1, restart count rising, SCRAM signature.
    let v = crashloop::observe(&engine, &d.core, Duration::from_secs(3), 50)
        .await
        .unwrap();
    assert!(v.looping, "{v:?}");
    assert_eq!(
        v.looks, 2,
        "a looping core never earns the one-look fast path: {v:?}"
    );
    assert!(v.exit_code == 1 || v.state == "running", "{v:?}");
    // Between restarts the engine shows it down with exit code 1 (core's `exit(1)`).
    let start = std::time::Instant::now();
    loop {
        let i = ContainerInfo::load(&engine, &d.core).await.unwrap();
        if matches!(i.state, RunState::Restarting | RunState::Exited) {
            assert_eq!(i.exit_code, 1);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "core never seen down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.signature, Some(Signature::AuthFailed));
    let logs = engine.logs_tail(&d.core, 200).await.unwrap();
    for secret in [&s.env_password, &s.mongo_password, &s.passkey] {
        assert!(
            !logs.iter().any(|l| l.contains(secret.expose())),
            "secret in core's log"
        );
    }

    // Recreating core with compose.env's value is not enough: Mongo still has A. With A it
    // passes the health gate; that is what `rescue` will do after changing Mongo.
    let gate = HealthGate {
        timeout: Duration::from_secs(45),
        stable_for: Duration::from_secs(3),
        poll: Duration::from_millis(250),
    };
    let fix = EnvPatch::new()
        .set("KOMODO_DATABASE_PASSWORD", s.mongo_password.clone())
        .set("KOMODO_DB_PASSWORD", s.mongo_password.clone());
    let rc = Recreate::prepare(&engine, &d.core, fix, 50).await.unwrap();
    assert!(
        rc.snapshot().should_run,
        "a crash-looping core is meant to run"
    );
    rc.run(&gate)
        .await
        .expect("core with the right password passes the gate");
    // Up for at least the gate's stable_for (3 s), longer than the 1 s look: one look settles it.
    let started = std::time::Instant::now();
    let v = crashloop::observe(&engine, &d.core, Duration::from_secs(1), 50)
        .await
        .unwrap();
    assert!(!v.looping, "{v:?}");
    assert_eq!(
        v.looks, 1,
        "a healthy long-running core needs one look: {v:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "one look must not wait out the interval: {:?}",
        started.elapsed()
    );
    assert_eq!(
        ContainerInfo::load(&engine, &d.core).await.unwrap().state,
        RunState::Running
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_stack_and_core_fault_control_roll_back_to_the_original() {
    komodo_testcontainers::stack::real::require_standin(
        "healthy_stack_and_core_fault_control_roll_back_to_the_original",
        komodo_testcontainers::stack::real::StandinControl::FailNextStart,
    );
    komodo_testcontainers::stack::real::require_standin(
        "healthy_stack_and_core_fault_control_roll_back_to_the_original",
        komodo_testcontainers::stack::real::StandinControl::PasskeyProbe,
    );
    let Some(engine) = engine_or_skip("healthy_stack").await else {
        return;
    };
    let project = "krt-healthy";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let s = stack::up(&engine, &StackOptions::new(project, dir.path(), &bin))
        .await
        .expect("up");
    assert!(s.mongo_password.ct_eq(&s.env_password));
    let d = Deployment::discover(&engine, &spec(project)).await.unwrap();
    let core = ContainerInfo::load(&engine, &d.core).await.unwrap();
    assert_eq!(core.health.as_deref(), Some("healthy"));
    let keys: Vec<&str> = core.env_keys().collect();
    assert_eq!(
        detect(&keys, &keys).unwrap().generation,
        KomodoGeneration::V2
    );
    let logs = engine.logs_tail(&d.core, 50).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("passkey accepted")),
        "{logs:?}"
    );
    // core answers on the published loopback port.
    let code = stack::http::get(&format!("127.0.0.1:{}", s.core_port), "/health", &[])
        .await
        .unwrap();
    assert_eq!(code, 200);
    // Issue 20: as a real core, `/version` is 200 and `/` (no UI) is 404.
    let core_addr = format!("127.0.0.1:{}", s.core_port);
    assert_eq!(
        stack::http::get(&core_addr, "/version", &[]).await.unwrap(),
        200
    );
    assert_eq!(stack::http::get(&core_addr, "/", &[]).await.unwrap(), 404);
    // Issue 20: mongo runs Komodo's official command line, naming what it ignores once.
    let mongo = ContainerInfo::load(&engine, &d.mongo).await.unwrap();
    assert!(mongo.is_running());
    let mongo_logs = engine.logs_tail(&d.mongo, 200).await.unwrap();
    let named: Vec<&String> = mongo_logs
        .iter()
        .filter(|l| l.contains("accepted without effect here: --wiredTigerCacheSizeGB 0.25"))
        .collect();
    assert_eq!(named.len(), 1, "{mongo_logs:?}");

    // The fault control: the recreated core fails its first start, the gate rejects it, and
    // the original (same ID) runs again.
    std::fs::write(s.control_dir().join("fail-next-start"), b"").unwrap();
    let patch = EnvPatch::new().set("KOMODO_JWT_SECRET", Secret::generate().unwrap());
    let rc = Recreate::prepare(&engine, &d.core, patch, 50)
        .await
        .unwrap();
    let gate = HealthGate {
        timeout: Duration::from_secs(45),
        stable_for: Duration::from_secs(3),
        poll: Duration::from_millis(250),
    };
    let e = rc.run(&gate).await.expect_err("replacement fails once");
    assert!(e.to_string().contains("health gate"), "{e}");
    assert!(
        !s.control_dir().join("fail-next-start").exists(),
        "the fault fires once"
    );
    let back = ContainerInfo::load(&engine, &d.core).await.unwrap();
    assert_eq!(back.id, core.id);
    assert_eq!(back.state, RunState::Running);
    stack::wait_healthy(&engine, &d.core, Duration::from_secs(30))
        .await
        .unwrap();
}

fn rehearsal(bin: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin.join("rehearsal"))
        .args(args)
        .args(["--project", "krt-cli", "--dir"])
        .arg(dir)
        .output()
        .expect("run rehearsal");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rehearsal {args:?} failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_command_up_down_drift_twice() {
    let Some(engine) = engine_or_skip("rehearsal_command").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new("krt-cli");
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let count = |engine: komodo_rotate::docker::Engine| async move {
        engine
            .list_by_labels(&[("com.docker.compose.project", "krt-cli")])
            .await
            .unwrap()
            .len()
    };
    for round in 0..2 {
        rehearsal(&bin, dir.path(), &["up"]);
        assert_eq!(count(engine.clone()).await, 3, "round {round}");
        let status = rehearsal(&bin, dir.path(), &["status"]);
        assert!(status.contains("not crash-looping"), "{status}");
        let cfg = std::fs::read_to_string(dir.path().join("komodo-rotate.toml")).unwrap();
        assert!(cfg.contains("uri = \"mongodb://127.0.0.1:"), "{cfg}");
        rehearsal(&bin, dir.path(), &["down"]);
        assert_eq!(count(engine.clone()).await, 0);
        assert!(!dir.path().join("compose.env").exists());
        let out = rehearsal(&bin, dir.path(), &["up", "--drift", "--generation", "v1"]);
        assert!(out.contains("drift"), "{out}");
        let status = rehearsal(&bin, dir.path(), &["status"]);
        assert!(status.contains("CRASH-LOOPING"), "{status}");
        use std::os::unix::fs::PermissionsExt;
        for f in ["compose.env", "age.key", "komodo-rotate.toml"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    rehearsal(&bin, dir.path(), &["down"]);
    assert_eq!(count(engine.clone()).await, 0);
}
