//! The rehearsal stack: a Komodo-shaped compose project on the local engine, built without a
//! registry. Containers, network and volume carry the labels `docker compose -p PROJECT` would
//! give them, so komodo-rotate discovers them exactly as it would a real deployment.
//!
//! `up` replaces any earlier stack of the same project, so it is idempotent. With `drift` it
//! reproduces the incident: mongo initialised with password A, compose.env (and so core) holding
//! B, core crash-looping.

pub mod http;
pub mod image;
pub mod tar;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{ListNetworksOptions, ListVolumesOptions, RemoveVolumeOptions};
use image::ImageSpec;
use komodo_rotate::docker::crashloop;
use komodo_rotate::docker::discovery::{PROJECT_LABEL, SERVICE_LABEL};
use komodo_rotate::docker::{ContainerInfo, Engine, RunState};
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_rotate::secret::Secret;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroize;

pub const MONGO_IMAGE: &str = "komodo-rehearsal/mongo:dev";
pub const CORE_IMAGE: &str = "komodo-rehearsal/core:dev";
pub const PERIPHERY_IMAGE: &str = "komodo-rehearsal/periphery:dev";
pub const BUSYBOX_IMAGE: &str = "komodo-rehearsal/busybox:dev";
pub const DB_USERNAME: &str = "admin";

/// compose.env naming, as in Komodo's own templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V1,
    V2,
}

impl std::str::FromStr for Generation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1" => Ok(Generation::V1),
            "v2" => Ok(Generation::V2),
            other => Err(format!("--generation {other:?}: expected v1 or v2")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub project: String,
    /// Where compose.env, age.key, komodo-rotate.toml and the core control dir go.
    pub dir: PathBuf,
    pub generation: Generation,
    pub drift: bool,
    /// Where the stand-in binaries are (a cargo target profile dir).
    pub bin_dir: PathBuf,
}

impl StackOptions {
    pub fn new(project: &str, dir: &Path, bin_dir: &Path) -> StackOptions {
        StackOptions {
            project: project.to_string(),
            dir: dir.to_path_buf(),
            generation: Generation::V2,
            drift: false,
            bin_dir: bin_dir.to_path_buf(),
        }
    }
}

/// A running stack: names and ports, and the secrets it was made with (held in memory only,
/// for tests; nothing here is printed).
#[derive(Debug)]
pub struct Stack {
    pub project: String,
    pub dir: PathBuf,
    pub mongo: String,
    pub core: String,
    pub periphery: String,
    pub network: String,
    pub mongo_port: u16,
    pub core_port: u16,
    /// The password mongo was initialised with (A).
    pub mongo_password: Secret,
    /// The password compose.env and core hold (B; equal to A unless drifted).
    pub env_password: Secret,
    pub passkey: Secret,
}

impl Stack {
    pub fn compose_env(&self) -> PathBuf {
        self.dir.join("compose.env")
    }
    pub fn age_key(&self) -> PathBuf {
        self.dir.join("age.key")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("komodo-rotate.toml")
    }
    /// Mounted at /control in core: `fail-next-start` here makes core's next start fail.
    pub fn control_dir(&self) -> PathBuf {
        self.dir.join("control")
    }
}

pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}-1")
}

/// [`build_binaries_with`] without extra features.
pub fn build_binaries() -> Result<PathBuf, String> {
    build_binaries_with(&[])
}

/// The target profile dir holding the workspace's binaries, for tests: `cargo build`s the
/// stand-ins (and mongo-test-server) first so the images hold current code. `features` should
/// repeat the features the calling test was built with (e.g. `komodo-rotate/failpoints`), so
/// the shared library is not compiled a second time with another feature set.
pub fn build_binaries_with(features: &[&str]) -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "komodo-testcontainers", "--bins"])
        .arg("--manifest-path")
        .arg(&manifest);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cargo build of the stand-ins: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the stand-ins failed: {status}"));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Ok(target.join("debug"))
}

/// Builds (or reuses) the four rehearsal images from the binaries in `bin_dir`.
pub async fn ensure_images(engine: &Engine, bin_dir: &Path) -> Result<(), String> {
    let bin = |n: &str| {
        let p = bin_dir.join(n);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{} is missing: cargo build -p komodo-testcontainers --bins",
                p.display()
            ))
        }
    };
    let mut mongo = ImageSpec::for_binary(MONGO_IMAGE, &bin("mongo-test-server")?)?;
    mongo.dirs.push("/data/db".into());
    mongo.cmd = ["--bind", "0.0.0.0:27017", "--data-dir", "/data/db"]
        .map(String::from)
        .to_vec();
    let mut core = ImageSpec::for_binary(CORE_IMAGE, &bin("core-standin")?)?;
    core.dirs.push("/control".into());
    let periphery = ImageSpec::for_binary(PERIPHERY_IMAGE, &bin("periphery-standin")?)?;
    for spec in [mongo, core, periphery, ImageSpec::busybox(BUSYBOX_IMAGE)?] {
        spec.ensure(engine).await?;
    }
    Ok(())
}

fn labels(project: &str, service: &str, dir: &Path) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT_LABEL.to_string(), project.to_string()),
        (SERVICE_LABEL.to_string(), service.to_string()),
        ("com.docker.compose.container-number".into(), "1".into()),
        ("com.docker.compose.oneoff".into(), "False".into()),
        (
            "com.docker.compose.project.working_dir".into(),
            dir.display().to_string(),
        ),
    ])
}

struct Service<'a> {
    project: &'a str,
    service: &'a str,
    image: &'a str,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    mounts: Vec<Mount>,
    publish: Option<&'a str>,
    healthcheck: Option<Vec<String>>,
    init: bool,
}

/// A port free on 127.0.0.1 right now (the kernel picks it; the window before the engine binds
/// it is a few milliseconds).
fn free_loopback_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

async fn create_service(
    engine: &Engine,
    network: &str,
    dir: &Path,
    s: Service<'_>,
) -> Result<String, String> {
    let name = container_name(s.project, s.service);
    // A fixed host port, as a real compose file has (`9120:9120`): an ephemeral one would move
    // on every restart and every recreate, so the config's Mongo URI and any client of core's
    // port would go stale.
    let port_bindings = match s.publish {
        Some(p) => Some(HashMap::from([(
            p.to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(free_loopback_port()?.to_string()),
            }]),
        )])),
        None => None,
    };
    let body = ContainerCreateBody {
        image: Some(s.image.to_string()),
        env: Some(s.env),
        cmd: s.cmd,
        labels: Some(labels(s.project, s.service, dir)),
        exposed_ports: s.publish.map(|p| vec![p.to_string()]),
        healthcheck: s.healthcheck.map(|test| HealthConfig {
            test: Some(test),
            interval: Some(1_000_000_000),
            timeout: Some(3_000_000_000),
            retries: Some(3),
            start_period: Some(0),
            start_interval: None,
        }),
        stop_timeout: Some(5),
        host_config: Some(HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            network_mode: Some(network.to_string()),
            port_bindings,
            mounts: if s.mounts.is_empty() {
                None
            } else {
                Some(s.mounts)
            },
            init: s.init.then_some(true),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings {
                    aliases: Some(vec![s.service.to_string(), name.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    engine
        .create(&name, body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(name)
}

fn env_line(k: &str, v: &Secret) -> String {
    format!("{k}={}", v.expose())
}

/// Brings the stack up (replacing any earlier one of the same project) and waits until core is
/// healthy, or, with `drift`, until it is crash-looping.
pub async fn up(engine: &Engine, opts: &StackOptions) -> Result<Stack, String> {
    down(engine, &opts.project, Some(&opts.dir)).await?;
    ensure_images(engine, &opts.bin_dir).await?;
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let dir = opts
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let control = dir.join("control");
    std::fs::create_dir_all(&control).map_err(|e| format!("{}: {e}", control.display()))?;
    let project = opts.project.as_str();

    let gen = |e: getrandom::Error| format!("random: {e}");
    let mongo_password = Secret::generate().map_err(gen)?;
    let env_password = if opts.drift {
        Secret::generate().map_err(gen)?
    } else {
        mongo_password.clone()
    };
    let passkey = Secret::generate().map_err(gen)?;
    let jwt = Secret::generate().map_err(gen)?;
    let webhook = Secret::generate().map_err(gen)?;
    let user = Secret::new(DB_USERNAME.into());

    // compose.env, in the generation's naming (research/komodo.md §1.3).
    let (user_key, pw_key) = match opts.generation {
        Generation::V2 => ("KOMODO_DATABASE_USERNAME", "KOMODO_DATABASE_PASSWORD"),
        Generation::V1 => ("KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD"),
    };
    let compose_env: Vec<String> = vec![
        env_line(user_key, &user),
        env_line(pw_key, &env_password),
        env_line("KOMODO_PASSKEY", &passkey),
        env_line("PERIPHERY_PASSKEYS", &passkey),
        env_line("KOMODO_JWT_SECRET", &jwt),
        env_line("KOMODO_WEBHOOK_SECRET", &webhook),
        "KOMODO_TITLE=Komodo rehearsal".into(),
    ];

    // Network and volume, labelled as compose labels them.
    let network = format!("{project}_default");
    engine
        .raw()
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([
                (PROJECT_LABEL.to_string(), project.to_string()),
                ("com.docker.compose.network".into(), "default".into()),
            ])),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create network {network}: {e}"))?;
    let volume = format!("{project}_mongo-data");
    engine
        .raw()
        .create_volume(VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(HashMap::from([
                (PROJECT_LABEL.to_string(), project.to_string()),
                ("com.docker.compose.volume".into(), "mongo-data".into()),
            ])),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create volume {volume}: {e}"))?;

    let mongo = create_service(
        engine,
        &network,
        &dir,
        Service {
            project,
            service: "mongo",
            image: MONGO_IMAGE,
            env: vec![
                env_line("MONGO_INITDB_ROOT_USERNAME", &user),
                env_line("MONGO_INITDB_ROOT_PASSWORD", &mongo_password),
                "MONGO_TEST_CONTROLS=1".into(),
            ],
            cmd: None,
            mounts: vec![Mount {
                target: Some("/data/db".into()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }],
            publish: Some("27017/tcp"),
            healthcheck: None,
            init: true,
        },
    )
    .await?;
    engine.start(&mongo).await.map_err(|e| e.to_string())?;
    let mongo_port = ContainerInfo::load(engine, &mongo)
        .await
        .map_err(|e| e.to_string())?
        .loopback_port("27017/tcp")
        .ok_or("mongo has no published port")?;
    wait_tcp(mongo_port, Duration::from_secs(30)).await?;

    // Periphery and core get compose.env via env_file; core also gets the DB address, and in
    // v1 compose maps KOMODO_DB_* onto core's KOMODO_DATABASE_*.
    let periphery = create_service(
        engine,
        &network,
        &dir,
        Service {
            project,
            service: "periphery",
            image: PERIPHERY_IMAGE,
            env: compose_env.clone(),
            cmd: None,
            mounts: vec![],
            publish: None,
            healthcheck: Some(vec![
                "CMD".into(),
                "/usr/local/bin/periphery-standin".into(),
                "--healthcheck".into(),
            ]),
            init: false,
        },
    )
    .await?;
    engine.start(&periphery).await.map_err(|e| e.to_string())?;

    let mut core_env = compose_env.clone();
    core_env.push("KOMODO_DATABASE_ADDRESS=mongo:27017".into());
    core_env.push("CORE_STANDIN_SELECTION_TIMEOUT_S=5".into());
    if opts.generation == Generation::V1 {
        core_env.push(env_line("KOMODO_DATABASE_USERNAME", &user));
        core_env.push(env_line("KOMODO_DATABASE_PASSWORD", &env_password));
    }
    let core = create_service(
        engine,
        &network,
        &dir,
        Service {
            project,
            service: "core",
            image: CORE_IMAGE,
            env: core_env,
            cmd: None,
            mounts: vec![Mount {
                target: Some("/control".into()),
                source: Some(control.display().to_string()),
                typ: Some(MountType::BIND),
                ..Default::default()
            }],
            publish: Some("9120/tcp"),
            healthcheck: Some(vec![
                "CMD".into(),
                "/usr/local/bin/core-standin".into(),
                "--healthcheck".into(),
            ]),
            init: false,
        },
    )
    .await?;
    engine.start(&core).await.map_err(|e| e.to_string())?;
    let core_port = ContainerInfo::load(engine, &core)
        .await
        .map_err(|e| e.to_string())?
        .loopback_port("9120/tcp")
        .unwrap_or(0);

    // Files: age identity, compose.env encrypted to it with our own SOPS store, the config.
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let key_file = format!(
        "# created by komodo-testcontainers rehearsal\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let mut key_bytes = key_file.into_bytes();
    let wrote = write_atomic(&dir.join("age.key"), &key_bytes, Mode::Exactly(0o600));
    key_bytes.zeroize();
    wrote.map_err(|e| format!("{}/age.key: {e}", dir.display()))?;
    let mut plain = compose_env.join("\n");
    plain.push('\n');
    let enc = komodo_rotate::sops::encrypt_new(plain.as_bytes(), std::slice::from_ref(&recipient));
    plain.zeroize();
    let enc = enc.map_err(|e| format!("encrypt compose.env: {e}"))?;
    write_atomic(&dir.join("compose.env"), &enc, Mode::Exactly(0o600))
        .map_err(|e| format!("{}/compose.env: {e}", dir.display()))?;
    let config = format!(
        "# komodo-rotate config for the rehearsal stack (project {project}).\n\
         # export SOPS_AGE_KEY_FILE={dir}/age.key\n\
         compose_env = \"{dir}/compose.env\"\n\
         state_dir = \"{dir}/state\"\n\
         age_key_file = \"{dir}/age.key\"\n\n\
         [discovery]\n\
         project = \"{project}\"\n\
         services = {{ mongo = \"mongo\", core = \"core\", periphery = [\"periphery\"] }}\n\n\
         [mongo]\n\
         uri = \"mongodb://127.0.0.1:{mongo_port}\"\n\
         auth_source = \"admin\"\n\n\
         [health]\n\
         timeout = \"60s\"\n\
         stable_for = \"3s\"\n",
        dir = dir.display()
    );
    write_atomic(
        &dir.join("komodo-rotate.toml"),
        config.as_bytes(),
        Mode::Exactly(0o600),
    )
    .map_err(|e| format!("{}/komodo-rotate.toml: {e}", dir.display()))?;

    let stack = Stack {
        project: project.to_string(),
        dir,
        mongo,
        core,
        periphery,
        network,
        mongo_port,
        core_port,
        mongo_password,
        env_password,
        passkey,
    };
    if opts.drift {
        wait_crash_loop(engine, &stack.core, Duration::from_secs(60)).await?;
    } else {
        wait_healthy(engine, &stack.core, Duration::from_secs(60)).await?;
    }
    Ok(stack)
}

async fn wait_tcp(port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "127.0.0.1:{port} did not accept connections in {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `name` reports healthy (its healthcheck passes).
pub async fn wait_healthy(engine: &Engine, name: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let info = ContainerInfo::load(engine, name)
            .await
            .map_err(|e| e.to_string())?;
        if info.state == RunState::Running && info.health.as_deref() == Some("healthy") {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let logs = engine.logs_tail(name, 5).await.unwrap_or_default();
            return Err(format!(
                "{name} not healthy after {timeout:?}: {} (restarts {}, health {:?}); last log: {}",
                info.state.as_str(),
                info.restart_count,
                info.health,
                logs.last().map(String::as_str).unwrap_or("")
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until `name` has restarted at least twice after failing.
pub async fn wait_crash_loop(engine: &Engine, name: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let info = ContainerInfo::load(engine, name)
            .await
            .map_err(|e| e.to_string())?;
        if info.restart_count >= 2 && info.exit_code != 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "{name} did not crash-loop within {timeout:?} ({}, {} restarts)",
                info.state.as_str(),
                info.restart_count
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Removes every container, network and volume of `project` (by label), and the files the
/// stack wrote into `dir`. Missing things are fine.
pub async fn down(engine: &Engine, project: &str, dir: Option<&Path>) -> Result<(), String> {
    let containers = engine
        .list_by_labels(&[(PROJECT_LABEL, project)])
        .await
        .map_err(|e| e.to_string())?;
    for c in containers {
        if let Some(id) = c.id {
            engine.remove(&id).await.map_err(|e| e.to_string())?;
        }
    }
    let filter = HashMap::from([(
        "label".to_string(),
        vec![format!("{PROJECT_LABEL}={project}")],
    )]);
    let nets = engine
        .raw()
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .map_err(|e| format!("list networks: {e}"))?;
    for n in nets {
        if let Some(id) = n.id {
            engine
                .raw()
                .remove_network(&id)
                .await
                .map_err(|e| format!("remove network {}: {e}", n.name.unwrap_or_default()))?;
        }
    }
    let vols = engine
        .raw()
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .map_err(|e| format!("list volumes: {e}"))?;
    for v in vols.volumes.unwrap_or_default() {
        engine
            .raw()
            .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
            .await
            .map_err(|e| format!("remove volume {}: {e}", v.name))?;
    }
    if let Some(dir) = dir {
        for f in ["compose.env", "age.key", "komodo-rotate.toml"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        for d in ["control", "state"] {
            let _ = std::fs::remove_dir_all(dir.join(d));
        }
    }
    Ok(())
}

/// One line per container of `project`, plus core's crash-loop verdict. No env values.
pub async fn status(engine: &Engine, project: &str) -> Result<Vec<String>, String> {
    let list = engine
        .list_by_labels(&[(PROJECT_LABEL, project)])
        .await
        .map_err(|e| e.to_string())?;
    let mut names: Vec<String> = list
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok(vec![format!("project {project}: no containers")]);
    }
    let mut out = Vec::new();
    for n in &names {
        let i = ContainerInfo::load(engine, n)
            .await
            .map_err(|e| e.to_string())?;
        let ports: Vec<String> = i
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container))
            .collect();
        out.push(format!(
            "{:<28} {:<10} restarts={:<3} exit={:<3} health={:<9} {}",
            n,
            i.state.as_str(),
            i.restart_count,
            i.exit_code,
            i.health.as_deref().unwrap_or("-"),
            ports.join(" ")
        ));
    }
    let core = container_name(project, "core");
    if names.contains(&core) {
        let v = crashloop::observe(engine, &core, Duration::from_secs(1), 50)
            .await
            .map_err(|e| e.to_string())?;
        out.push(match (v.looping, v.signature) {
            (true, Some(s)) => format!("{core}: CRASH-LOOPING: {}", s.describe()),
            (true, None) => format!("{core}: CRASH-LOOPING (no known log signature)"),
            (false, _) => format!("{core}: not crash-looping"),
        });
    }
    Ok(out)
}
