//! The recreate on container shapes compose produces beyond the plain one (issue 24 items 3, 4,
//! 5, 7, 10): a joined network namespace (`network_mode: service:X`), a holder stopped with
//! `compose stop`, anonymous volumes, `logging: driver: none`, a healthcheck start period, and
//! what the pre-flight refuses. Each outcome is read back with the `docker` CLI.

mod docker_support;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountType,
    RestartPolicy, RestartPolicyNameEnum,
};
use docker_support::{engine_or_skip, images, Cleanup};
use komodo_rotate::docker::crashloop;
use komodo_rotate::docker::discovery::{PROJECT_LABEL, SERVICE_LABEL};
use komodo_rotate::docker::{Engine, EnvPatch, HealthGate, Recreate};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::busybox_image;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const OLD: &str = "old-shape-secret-0123456789";
const NEW: &str = "new-shape-secret-9876543210";

/// Runs until TERM; touches /tmp/ready after $READY_AFTER seconds (0 by default).
const SCRIPT: &str = "/bin/busybox sleep ${READY_AFTER:-0}; /bin/busybox touch /tmp/ready; \
    echo started; trap 'exit 0' TERM; while true; do /bin/busybox sleep 1; done";

fn gate(timeout: Duration) -> HealthGate {
    HealthGate {
        timeout,
        stable_for: Duration::from_millis(600),
        poll: Duration::from_millis(150),
    }
}

fn patch() -> EnvPatch {
    EnvPatch::new().set("APP_SECRET", Secret::new(NEW.into()))
}

/// A busybox container of `project`/`service` running [`SCRIPT`], created with `host` and the
/// extra `env`, started unless `start` is false.
async fn container(
    engine: &Engine,
    project: &str,
    service: &str,
    env: &[&str],
    host: HostConfig,
    tweak: impl FnOnce(&mut ContainerCreateBody),
) -> String {
    let name = format!("{project}-{service}-1");
    let mut env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    env.push(format!("APP_SECRET={OLD}"));
    let mut body = ContainerCreateBody {
        image: Some(busybox_image()),
        entrypoint: Some(vec!["/bin/busybox".into()]),
        cmd: Some(vec!["sh".into(), "-c".into(), SCRIPT.into()]),
        env: Some(env),
        labels: Some(HashMap::from([
            (PROJECT_LABEL.to_string(), project.to_string()),
            (SERVICE_LABEL.to_string(), service.to_string()),
        ])),
        stop_timeout: Some(3),
        host_config: Some(host),
        ..Default::default()
    };
    tweak(&mut body);
    engine.create(&name, body).await.expect("create");
    engine.start(&name).await.expect("start");
    name
}

/// `docker inspect -f FORMAT NAME`, trimmed.
fn inspect(name: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, name])
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn env_of(name: &str) -> String {
    inspect(name, "{{range .Config.Env}}{{println .}}{{end}}")
}

fn unless_stopped() -> Option<RestartPolicy> {
    Some(RestartPolicy {
        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
        maximum_retry_count: None,
    })
}

/// Item 3: `network_mode: service:sidecar` (recorded as `container:<id>`). The engine reports
/// the sidecar's hostname and the image's ports in the joined container's config; the recreate
/// must not send them back, and lands in the same namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_network_namespace_is_recreated_as_compose_does() {
    let Some(engine) = engine_or_skip("joined_network_namespace").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-join";
    let _cleanup = Cleanup::new(p);
    let sidecar = container(&engine, p, "tailscale", &[], HostConfig::default(), |b| {
        b.hostname = Some("sidecar-host".into());
    })
    .await;
    let sidecar_id = inspect(&sidecar, "{{.Id}}");
    let host = HostConfig {
        network_mode: Some(format!("container:{sidecar_id}")),
        restart_policy: unless_stopped(),
        ..Default::default()
    };
    let app = container(&engine, p, "periphery", &[], host, |_| {}).await;
    assert_eq!(inspect(&app, "{{.Config.Hostname}}"), "sidecar-host");
    let before = inspect(&app, "{{.Id}}");
    let rc = Recreate::prepare(&engine, &app, patch(), 20)
        .await
        .expect("pre-flight accepts the create request");
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate in the joined namespace");
    assert_ne!(inspect(&app, "{{.Id}}"), before);
    assert_eq!(
        inspect(&app, "{{.HostConfig.NetworkMode}}"),
        format!("container:{sidecar_id}")
    );
    assert_eq!(inspect(&app, "{{.State.Status}}"), "running");
    assert_eq!(inspect(&app, "{{.Config.Hostname}}"), "sidecar-host");
    assert!(env_of(&app).contains(&format!("APP_SECRET={NEW}")));

    // The pre-flight proves the joined container is there to join, before anything changes.
    engine.stop(&sidecar, 3).await.unwrap();
    let e = Recreate::prepare(&engine, &app, patch(), 0)
        .await
        .expect_err("joined container stopped");
    let msg = e.to_string();
    assert!(
        msg.contains(&sidecar) && msg.contains("exited") && msg.contains(&app),
        "{msg}"
    );
    assert!(!msg.contains(NEW) && !msg.contains(OLD), "{msg}");
}

/// Item 4: a holder stopped with `compose stop` (exited under `unless-stopped`, exit 143 or 0)
/// stays stopped after the recreate, with its env patched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_holder_stays_stopped_with_its_env_patched() {
    let Some(engine) = engine_or_skip("stopped_holder").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-stopped";
    let _cleanup = Cleanup::new(p);
    let host = HostConfig {
        restart_policy: unless_stopped(),
        ..Default::default()
    };
    // `sleep` as PID 1 ignores TERM: the stop ends in SIGKILL, exit code 137.
    let name = container(&engine, p, "periphery", &[], host, |b| {
        b.cmd = Some(vec!["sleep".into(), "600".into()]);
        b.stop_timeout = Some(1);
    })
    .await;
    engine.stop(&name, 1).await.unwrap();
    assert_eq!(inspect(&name, "{{.State.Status}}"), "exited");
    assert_ne!(inspect(&name, "{{.State.ExitCode}}"), "0");
    let before = inspect(&name, "{{.Id}}");
    let rc = Recreate::prepare(&engine, &name, patch(), 20)
        .await
        .expect("prepare");
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate");
    assert_ne!(inspect(&name, "{{.Id}}"), before, "a new container");
    assert_eq!(
        inspect(&name, "{{.State.Status}}"),
        "created",
        "the replacement of a stopped holder must not be started"
    );
    assert!(env_of(&name).contains(&format!("APP_SECRET={NEW}")));
    for suffix in ["-next", "-prev"] {
        assert!(engine
            .try_inspect(&format!("{name}{suffix}"))
            .await
            .unwrap()
            .is_none());
    }
}

/// Item 5: anonymous volumes (`docker run -v /anon`, i.e. an image-style VOLUME, and compose's
/// `- /cvol`, a volume mount without a source) are mounted by name in the replacement, as
/// compose does on `up` without `-V`; their content is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_volumes_carry_over_by_name() {
    let Some(engine) = engine_or_skip("anonymous_volumes").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-anon";
    let _cleanup = Cleanup::new(p);
    let host = HostConfig {
        mounts: Some(vec![Mount {
            target: Some("/cvol".into()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let name = container(&engine, p, "app", &[], host, |b| {
        b.volumes = Some(vec!["/anon".into()]);
        // Leaves a marker in both volumes at the first start only.
        b.cmd = Some(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "for d in /anon /cvol; do [ -f $d/seed ] || echo first > $d/seed; done; {SCRIPT}"
            ),
        ]);
    })
    .await;
    let vols = |n: &str| inspect(n, "{{range .Mounts}}{{.Destination}}={{.Name}} {{end}}");
    let before = vols(&name);
    assert!(
        before.contains("/anon=") && before.contains("/cvol="),
        "{before}"
    );
    let rc = Recreate::prepare(&engine, &name, patch(), 20)
        .await
        .expect("prepare");
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate");
    let after = vols(&name);
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&after), sorted(&before), "the same volumes, by name");
    assert!(env_of(&name).contains(&format!("APP_SECRET={NEW}")));
    // Remove the container and its (unlabelled) anonymous volumes.
    engine
        .raw()
        .remove_container(
            &name,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await
        .unwrap();
}

/// Item 7: with `logging: driver: none` the snapshot, the pre-flight, verify's crash-loop look
/// and the recreate read the state without logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_driver_none_needs_no_logs() {
    let Some(engine) = engine_or_skip("logging_none").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-nolog";
    let _cleanup = Cleanup::new(p);
    let host = HostConfig {
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        restart_policy: unless_stopped(),
        ..Default::default()
    };
    let name = container(&engine, p, "core", &[], host, |_| {}).await;
    assert_eq!(inspect(&name, "{{.HostConfig.LogConfig.Type}}"), "none");
    // The pre-flight (0 lines) and the snapshot (some lines).
    Recreate::prepare(&engine, &name, EnvPatch::new(), 0)
        .await
        .expect("pre-flight without logs");
    let rc = Recreate::prepare(&engine, &name, patch(), 20)
        .await
        .expect("snapshot without logs");
    assert!(rc.snapshot().logs.is_empty());
    // Just started: two looks, then logs would be read.
    let v = crashloop::observe(&engine, &name, Duration::from_millis(300), 20)
        .await
        .expect("crash-loop look without logs");
    assert!(!v.looping && v.looks >= 2, "{v:?}");
    assert_eq!(v.signature, None);
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate");
    assert!(env_of(&name).contains(&format!("APP_SECRET={NEW}")));
    assert_eq!(inspect(&name, "{{.HostConfig.LogConfig.Type}}"), "none");
}

/// Item 10 (health gate): a replacement that needs its healthcheck's start period to become
/// healthy passes a gate whose configured timeout is shorter than that period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_gate_waits_out_the_start_period() {
    let Some(engine) = engine_or_skip("start_period").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-startp";
    let _cleanup = Cleanup::new(p);
    let name = container(
        &engine,
        p,
        "core",
        &["READY_AFTER=3"],
        HostConfig::default(),
        |b| {
            b.healthcheck = Some(HealthConfig {
                test: Some(vec![
                    "CMD".into(),
                    "/bin/busybox".into(),
                    "test".into(),
                    "-f".into(),
                    "/tmp/ready".into(),
                ]),
                interval: Some(300_000_000),
                timeout: Some(1_000_000_000),
                retries: Some(1),
                start_period: Some(6_000_000_000),
                start_interval: None,
            });
        },
    )
    .await;
    let rc = Recreate::prepare(&engine, &name, patch(), 0)
        .await
        .expect("prepare");
    let t = std::time::Instant::now();
    rc.run(&gate(Duration::from_secs(1)))
        .await
        .expect("the gate waits out the start period");
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(inspect(&name, "{{.State.Health.Status}}"), "healthy");
    assert!(env_of(&name).contains(&format!("APP_SECRET={NEW}")));
}

/// Item 5: what the recreate cannot do faithfully is refused by the pre-flight, nothing
/// changed: an original with auto-remove (the engine would delete it at the stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_flight_refuses_auto_remove() {
    let Some(engine) = engine_or_skip("auto_remove").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-rm";
    let _cleanup = Cleanup::new(p);
    let host = HostConfig {
        auto_remove: Some(true),
        ..Default::default()
    };
    let name = container(&engine, p, "periphery", &[], host, |_| {}).await;
    let id = inspect(&name, "{{.Id}}");
    let e = Recreate::prepare(&engine, &name, patch(), 0)
        .await
        .expect_err("auto-remove refused");
    let msg = e.to_string();
    assert!(msg.contains(&name) && msg.contains("auto-remove"), "{msg}");
    assert_eq!(inspect(&name, "{{.Id}}"), id);
    assert_eq!(inspect(&name, "{{.State.Status}}"), "running");
    assert!(env_of(&name).contains(&format!("APP_SECRET={OLD}")));
}

/// `docker run -d` through the CLI (the referee makes the shape, not the tool), in `project` as
/// compose labels it; returns the container's name.
fn cli_run(project: &str, service: &str, args: &[&str]) -> String {
    let name = format!("{project}-{service}-1");
    let mut cmd = Command::new("docker");
    cmd.args(["run", "-d", "--name", &name, "--stop-timeout", "3"])
        .args(["--label", &format!("{PROJECT_LABEL}={project}")])
        .args(["--label", &format!("{SERVICE_LABEL}={service}")])
        .args(["-e", &format!("APP_SECRET={OLD}")])
        .args(args)
        .args(["--entrypoint", "/bin/busybox", &busybox_image()])
        .args(["sh", "-c", SCRIPT]);
    let out = cmd.output().expect("docker CLI");
    assert!(
        out.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// A container created with `Config.MacAddress`, as compose 1.29's `mac_address:` does, by a
/// raw API 1.41 request through curl (the CLI here is newer than the engine and refuses
/// `--mac-address` below API 1.44), then started; returns its name.
fn api_run_with_mac(project: &str, service: &str, mac: &str) -> String {
    let name = format!("{project}-{service}-1");
    let body = serde_json::json!({
        "Image": busybox_image(),
        "Entrypoint": ["/bin/busybox"],
        "Cmd": ["sh", "-c", SCRIPT],
        "Env": [format!("APP_SECRET={OLD}")],
        "Labels": {PROJECT_LABEL: project, SERVICE_LABEL: service},
        "StopTimeout": 3,
        "MacAddress": mac,
    });
    let out = Command::new("curl")
        .args(["-sS", "-f", "--unix-socket", "/var/run/docker.sock"])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .arg(format!(
            "http://localhost/v1.41/containers/create?name={name}"
        ))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("docker")
        .args(["start", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker start {name}");
    name
}

/// Item 5: a configured MAC address (`mac_address:`, `docker run --mac-address`), which
/// bollard's models cannot carry, is kept by the replacement, and the create request names the
/// original image's platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_mac_address_and_the_platform_are_kept() {
    let Some(engine) = engine_or_skip("mac_address").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-mac";
    let _cleanup = Cleanup::new(p);
    // Locally administered, unlike the engine's generated 02:42:<IPv4>.
    let mac = "92:d0:c6:0a:29:33";
    let name = api_run_with_mac(p, "periphery", mac);
    let live_mac = |n: &str| {
        inspect(
            n,
            "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}",
        )
    };
    assert_eq!(inspect(&name, "{{.Config.MacAddress}}"), mac);
    assert_eq!(live_mac(&name), mac);
    let before = inspect(&name, "{{.Id}}");
    let rc = Recreate::prepare(&engine, &name, patch(), 20)
        .await
        .expect("prepare");
    let platform = inspect(&busybox_image(), "{{.Os}}/{{.Architecture}}");
    assert_eq!(rc.platform(), Some(platform.as_str()));
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate");
    assert_ne!(inspect(&name, "{{.Id}}"), before);
    assert_eq!(inspect(&name, "{{.State.Status}}"), "running");
    assert_eq!(inspect(&name, "{{.Config.MacAddress}}"), mac);
    assert_eq!(
        live_mac(&name),
        mac,
        "the replacement's interface has the MAC"
    );
    assert!(env_of(&name).contains(&format!("APP_SECRET={NEW}")));

    // Without a configured MAC, none is sent: the engine generates one as before.
    let plain = cli_run(p, "core", &[]);
    let rc = Recreate::prepare(&engine, &plain, patch(), 0)
        .await
        .expect("prepare");
    assert_eq!(rc.snapshot().mac_address, None);
    rc.run(&gate(Duration::from_secs(30)))
        .await
        .expect("recreate");
    assert_eq!(inspect(&plain, "{{.Config.MacAddress}}"), "");
}

/// Issue 24 (noticed in the last note): a container that joins a holder's network namespace
/// (`network_mode: service:core` on another service, recorded as `container:<id>`; or
/// `--network container:<name>`) would lose its network when the holder is recreated. The
/// pre-flight refuses by name, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_namespace_others_join_is_refused_by_name() {
    let Some(engine) = engine_or_skip("namespace_dependents").await else {
        return;
    };
    images(&engine).await;
    let p = "krt-shape-deps";
    let _cleanup = Cleanup::new(p);
    let core = cli_run(p, "core", &[]);
    let core_id = inspect(&core, "{{.Id}}");
    let by_id = cli_run(
        p,
        "exporter",
        &["--network", &format!("container:{core_id}")],
    );
    let lone = cli_run(p, "other", &[]);
    let e = Recreate::prepare(&engine, &core, patch(), 0)
        .await
        .expect_err("a dependent joins core's namespace");
    let msg = e.to_string();
    assert!(
        msg.contains(&core) && msg.contains(&by_id) && msg.contains("network namespace"),
        "{msg}"
    );
    assert!(!msg.contains(NEW) && !msg.contains(OLD), "{msg}");
    // A stopped dependent joined by name counts as well (its next start would fail).
    Command::new("docker")
        .args(["rm", "-f", &by_id])
        .output()
        .unwrap();
    let by_name = cli_run(p, "sidecar", &["--network", &format!("container:{core}")]);
    engine.stop(&by_name, 3).await.unwrap();
    let msg = Recreate::prepare(&engine, &core, patch(), 0)
        .await
        .expect_err("a stopped dependent by name")
        .to_string();
    assert!(msg.contains(&by_name) && msg.contains(&core), "{msg}");
    // Nothing changed.
    assert_eq!(inspect(&core, "{{.Id}}"), core_id);
    assert_eq!(inspect(&core, "{{.State.Status}}"), "running");
    assert!(env_of(&core).contains(&format!("APP_SECRET={OLD}")));
    // A container nobody joins is not refused.
    Recreate::prepare(&engine, &lone, patch(), 0)
        .await
        .expect("no dependents");
}
