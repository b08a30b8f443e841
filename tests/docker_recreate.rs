//! The undoable recreate on the real engine: a container with a rich create config (two networks
//! with aliases, a named volume and a bind mount, labels, restart policy, healthcheck, init, a
//! published port, entrypoint and cmd) is recreated with one env key changed; everything else in
//! its config must survive. Every partial state between two engine calls is left on purpose,
//! classified from names alone by a fresh `Recreate` built from the snapshot (as `resume` would),
//! and repaired in both directions.

mod docker_support;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use docker_support::{engine_or_skip, images, Cleanup};
use komodo_rotate::docker::discovery::{PROJECT_LABEL, SERVICE_LABEL};
use komodo_rotate::docker::{
    ContainerInfo, Engine, EnvPatch, HealthGate, Recreate, RecreateState, RecreateStep, RunState,
    Snapshot,
};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::busybox_image;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const OLD: &str = "old-secret-value-0123456789";
const NEW: &str = "new-secret-value-9876543210";

fn gate() -> HealthGate {
    HealthGate {
        timeout: Duration::from_secs(30),
        stable_for: Duration::from_secs(2),
        poll: Duration::from_millis(200),
    }
}

struct Fixture {
    project: String,
    name: String,
    front: String,
    back: String,
    bind_dir: tempfile::TempDir,
}

async fn fixture(engine: &Engine, project: &str) -> Fixture {
    images(engine).await;
    let front = format!("{project}_front");
    let back = format!("{project}_back");
    let label = HashMap::from([(PROJECT_LABEL.to_string(), project.to_string())]);
    for n in [&front, &back] {
        engine
            .raw()
            .create_network(NetworkCreateRequest {
                name: n.clone(),
                driver: Some("bridge".into()),
                labels: Some(label.clone()),
                ..Default::default()
            })
            .await
            .expect("network");
    }
    engine
        .raw()
        .create_volume(VolumeCreateRequest {
            name: Some(format!("{project}_data")),
            labels: Some(label),
            ..Default::default()
        })
        .await
        .expect("volume");
    let f = Fixture {
        project: project.into(),
        name: format!("{project}-app-1"),
        front,
        back,
        bind_dir: tempfile::tempdir().expect("tempdir"),
    };
    create_original(engine, &f).await;
    f
}

/// The script fails at start when APP_MODE=broken, so a patch can make the replacement crash.
const SCRIPT: &str = "if [ \"$APP_MODE\" = broken ]; then echo 'FATAL: broken mode'; exit 1; fi; \
    echo started; trap 'exit 0' TERM; while true; do /bin/busybox sleep 1; done";

async fn create_original(engine: &Engine, f: &Fixture) -> String {
    let body = ContainerCreateBody {
        image: Some(busybox_image()),
        entrypoint: Some(vec!["/bin/busybox".into()]),
        cmd: Some(vec!["sh".into(), "-c".into(), SCRIPT.into()]),
        env: Some(vec![
            format!("APP_SECRET={OLD}"),
            "KEEP=unchanged".into(),
            "APP_MODE=ok".into(),
        ]),
        labels: Some(HashMap::from([
            (PROJECT_LABEL.to_string(), f.project.clone()),
            (SERVICE_LABEL.to_string(), "app".to_string()),
            ("custom.label".to_string(), "kept".to_string()),
        ])),
        exposed_ports: Some(vec!["8080/tcp".into()]),
        working_dir: Some("/data".into()),
        stop_timeout: Some(3),
        healthcheck: Some(HealthConfig {
            test: Some(vec!["CMD".into(), "/bin/busybox".into(), "true".into()]),
            interval: Some(500_000_000),
            timeout: Some(2_000_000_000),
            retries: Some(2),
            start_period: Some(0),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            init: Some(true),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            network_mode: Some(f.front.clone()),
            port_bindings: Some(HashMap::from([(
                "8080/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            mounts: Some(vec![
                Mount {
                    target: Some("/data".into()),
                    source: Some(format!("{}_data", f.project)),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                },
                Mount {
                    target: Some("/host".into()),
                    source: Some(f.bind_dir.path().display().to_string()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                f.front.clone(),
                EndpointSettings {
                    aliases: Some(vec!["app".into(), "app-front".into()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let id = engine.create(&f.name, body).await.expect("create original");
    engine
        .connect_network(
            &f.back,
            &f.name,
            EndpointSettings {
                aliases: Some(vec!["app-back".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("connect back");
    engine.start(&f.name).await.expect("start original");
    komodo_testcontainers::stack::wait_healthy(engine, &f.name, Duration::from_secs(30))
        .await
        .expect("original healthy");
    id
}

async fn reset(engine: &Engine, f: &Fixture) {
    for suffix in ["", "-next", "-prev"] {
        engine
            .remove(&format!("{}{suffix}", f.name))
            .await
            .expect("remove");
    }
    create_original(engine, f).await;
}

fn patch(value: &str) -> EnvPatch {
    EnvPatch::new().set("APP_SECRET", Secret::new(value.into()))
}

/// Aliases per network, without the engine-added short-ID alias.
fn aliases(raw: &bollard::models::ContainerInspectResponse) -> Vec<(String, Vec<String>)> {
    let short: String = raw
        .id
        .clone()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let mut out: Vec<(String, Vec<String>)> = raw
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(n, ep)| {
            let mut a: Vec<String> = ep.aliases.unwrap_or_default();
            a.retain(|x| *x != short);
            a.sort();
            (n, a)
        })
        .collect();
    out.sort();
    out
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

/// The replacement's create config equals the original's, field by field, except exactly what
/// must change: the patched env value and the engine-assigned hostname.
fn assert_preserved(
    before: &bollard::models::ContainerInspectResponse,
    after: &bollard::models::ContainerInspectResponse,
) {
    assert_ne!(before.id, after.id, "a new container was expected");
    let cb = serde_json::to_value(before.config.clone().unwrap()).unwrap();
    let ca = serde_json::to_value(after.config.clone().unwrap()).unwrap();
    assert_eq!(
        without(cb.clone(), &["Env", "Hostname"]),
        without(ca.clone(), &["Env", "Hostname"])
    );
    let env_b: Vec<String> = serde_json::from_value(cb["Env"].clone()).unwrap();
    let env_a: Vec<String> = serde_json::from_value(ca["Env"].clone()).unwrap();
    let expected: Vec<String> = env_b
        .iter()
        .map(|kv| {
            if kv.starts_with("APP_SECRET=") {
                format!("APP_SECRET={NEW}")
            } else {
                kv.clone()
            }
        })
        .collect();
    assert_eq!(env_a, expected, "only APP_SECRET may change");
    // Hostname: the engine's short ID, never the old one pinned.
    let new_short: String = after.id.clone().unwrap().chars().take(12).collect();
    assert_eq!(ca["Hostname"], Value::String(new_short));
    let hb = serde_json::to_value(before.host_config.clone().unwrap()).unwrap();
    let ha = serde_json::to_value(after.host_config.clone().unwrap()).unwrap();
    assert_eq!(hb, ha, "HostConfig must be identical");
    assert_eq!(aliases(before), aliases(after), "networks and aliases");
    let mounts = |r: &bollard::models::ContainerInspectResponse| {
        let mut m: Vec<(Option<String>, Option<String>, Option<bool>)> = r
            .mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.source, m.destination, m.rw))
            .collect();
        m.sort();
        m
    };
    assert_eq!(mounts(before), mounts(after));
}

async fn assert_original_back(engine: &Engine, f: &Fixture, original_id: &str) {
    let info = ContainerInfo::load(engine, &f.name).await.expect("inspect");
    assert_eq!(
        info.id, original_id,
        "the original container (same ID) must be back"
    );
    assert_eq!(info.state, RunState::Running);
    assert_eq!(info.env_value("APP_SECRET").map(|s| s.expose()), Some(OLD));
    for suffix in ["-next", "-prev"] {
        assert!(
            engine
                .try_inspect(&format!("{}{suffix}", f.name))
                .await
                .unwrap()
                .is_none(),
            "{suffix} left behind"
        );
    }
}

async fn assert_committed(engine: &Engine, f: &Fixture, original_id: &str) {
    let info = ContainerInfo::load(engine, &f.name).await.expect("inspect");
    assert_ne!(info.id, original_id);
    assert_eq!(info.state, RunState::Running);
    assert_eq!(info.env_value("APP_SECRET").map(|s| s.expose()), Some(NEW));
    for suffix in ["-next", "-prev"] {
        assert!(engine
            .try_inspect(&format!("{}{suffix}", f.name))
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_changes_env_and_preserves_everything_else() {
    let Some(engine) = engine_or_skip("recreate_changes_env").await else {
        return;
    };
    let _cleanup = Cleanup::new("krt-rec-full");
    let f = fixture(&engine, "krt-rec-full").await;
    let before = engine.inspect(&f.name).await.unwrap();
    let rc = Recreate::prepare(&engine, &f.name, patch(NEW), 20)
        .await
        .expect("prepare");
    assert_eq!(
        rc.image(),
        busybox_image(),
        "the tag still names the original image"
    );
    assert!(rc.snapshot().logs.iter().any(|l| l == "started"));
    rc.run(&gate()).await.expect("recreate");
    let after = engine.inspect(&f.name).await.unwrap();
    assert_preserved(&before, &after);
    assert_committed(&engine, &f, before.id.as_deref().unwrap()).await;
    // Idempotent: finishing again changes nothing.
    rc.finish(&gate()).await.expect("finish again");
    assert_eq!(engine.inspect(&f.name).await.unwrap().id, after.id);
    // The snapshot round-trips through serde (the journal stores it encrypted) and its Debug
    // never shows env.
    let json = serde_json::to_vec(rc.snapshot()).unwrap();
    let back: Snapshot = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.original_id, before.id.clone().unwrap());
    assert!(!format!("{back:?} {rc:?}").contains(OLD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_gate_undoes_to_the_same_original() {
    let Some(engine) = engine_or_skip("failed_health_gate").await else {
        return;
    };
    let _cleanup = Cleanup::new("krt-rec-fail");
    let f = fixture(&engine, "krt-rec-fail").await;
    let original = ContainerInfo::load(&engine, &f.name).await.unwrap().id;
    let broken = patch(NEW).set("APP_MODE", Secret::new("broken".into()));
    let rc = Recreate::prepare(&engine, &f.name, broken, 20)
        .await
        .unwrap();
    let err = rc.run(&gate()).await.expect_err("the replacement crashes");
    let msg = err.to_string();
    assert!(
        msg.contains("health gate") && msg.contains(&f.name),
        "{msg}"
    );
    assert!(
        !msg.contains(NEW) && !msg.contains(OLD),
        "secret in error: {msg}"
    );
    assert_original_back(&engine, &f, &original).await;
}

/// Leaves the recreate after `done` steps, as a crash would, then classifies it from a fresh
/// `Recreate` built from the serialised snapshot.
async fn leave_partial(engine: &Engine, f: &Fixture, done: usize) -> (Recreate, String) {
    let rc = Recreate::prepare(engine, &f.name, patch(NEW), 20)
        .await
        .unwrap();
    for step in &RecreateStep::ALL[..done] {
        rc.apply(*step, &gate())
            .await
            .unwrap_or_else(|e| panic!("{step:?}: {e}"));
    }
    let snap: Snapshot =
        serde_json::from_slice(&serde_json::to_vec(rc.snapshot()).unwrap()).unwrap();
    let id = snap.original_id.clone();
    let resumed = Recreate::from_snapshot(engine, snap, patch(NEW))
        .await
        .unwrap();
    (resumed, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partial_state_is_recognised_and_repaired_both_ways() {
    let Some(engine) = engine_or_skip("every_partial_state").await else {
        return;
    };
    let _cleanup = Cleanup::new("krt-rec-partial");
    let f = fixture(&engine, "krt-rec-partial").await;
    let expected = |done: usize| match done {
        0 => RecreateState::Untouched {
            original_running: true,
        },
        1 => RecreateState::NextCreated {
            original_running: true,
        },
        2 => RecreateState::NextCreated {
            original_running: false,
        },
        3 => RecreateState::Parked,
        4 => RecreateState::Swapped {
            replacement_running: false,
        },
        // After start-replacement and after the health gate: the same names.
        5 | 6 => RecreateState::Swapped {
            replacement_running: true,
        },
        _ => RecreateState::Committed,
    };
    for done in 0..=RecreateStep::ALL.len() {
        for forward in [true, false] {
            reset(&engine, &f).await;
            let (rc, original) = leave_partial(&engine, &f, done).await;
            let state = rc.state().await.unwrap();
            assert_eq!(state, expected(done), "after {done} steps");
            if forward {
                rc.finish(&gate())
                    .await
                    .unwrap_or_else(|e| panic!("finish after {done}: {e}"));
                assert_committed(&engine, &f, &original).await;
                assert_eq!(rc.state().await.unwrap(), RecreateState::Committed);
            } else if done == RecreateStep::ALL.len() {
                let e = rc
                    .undo()
                    .await
                    .expect_err("nothing to undo to after commit");
                assert!(e.to_string().contains("already committed"), "{e}");
            } else {
                rc.undo()
                    .await
                    .unwrap_or_else(|e| panic!("undo after {done}: {e}"));
                assert_original_back(&engine, &f, &original).await;
                assert!(matches!(
                    rc.state().await.unwrap(),
                    RecreateState::Untouched { .. }
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_undo_is_recognised_and_finished() {
    let Some(engine) = engine_or_skip("interrupted_undo").await else {
        return;
    };
    let _cleanup = Cleanup::new("krt-rec-undo");
    let f = fixture(&engine, "krt-rec-undo").await;
    let (rc, original) = leave_partial(&engine, &f, 5).await;
    // An undo that crashed right after removing the replacement: only -prev is left.
    engine.remove(&f.name).await.unwrap();
    assert_eq!(rc.state().await.unwrap(), RecreateState::PrevOnly);
    let e = rc
        .finish(&gate())
        .await
        .expect_err("cannot finish without the replacement");
    assert!(e.to_string().contains("undo instead"), "{e}");
    // Discovery refuses to pick a leftover and says why.
    let spec = komodo_rotate::docker::DiscoverySpec {
        project: f.project.clone(),
        mongo_service: "app".into(),
        core_service: "app".into(),
        periphery_services: vec!["app".into()],
        ..Default::default()
    };
    let d = komodo_rotate::docker::Deployment::discover(&engine, &spec)
        .await
        .unwrap_err();
    assert!(d.to_string().contains("interrupted recreate"), "{d}");
    // A crash after the rename back, before the start: the original is there but stopped.
    engine
        .rename(&format!("{}-prev", f.name), &f.name)
        .await
        .unwrap();
    assert_eq!(
        rc.state().await.unwrap(),
        RecreateState::Untouched {
            original_running: false
        }
    );
    rc.undo().await.unwrap();
    assert_original_back(&engine, &f, &original).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_refuses_leftovers_and_missing_containers() {
    let Some(engine) = engine_or_skip("prepare_refuses").await else {
        return;
    };
    let _cleanup = Cleanup::new("krt-rec-refuse");
    let f = fixture(&engine, "krt-rec-refuse").await;
    let e = Recreate::prepare(&engine, "krt-rec-refuse-nothing-1", patch(NEW), 5)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "container krt-rec-refuse-nothing-1 not found"
    );
    let (_rc, _) = leave_partial(&engine, &f, 1).await;
    let e = Recreate::prepare(&engine, &f.name, patch(NEW), 5)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("-next exists"), "{e}");
}
