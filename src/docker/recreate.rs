//! Recreate one container with a changed env, create-before-remove and undoable.
//!
//! A container's env is fixed at creation, so applying a new secret means a new container. Compose
//! creates the replacement before removing the original (research/anchors.md §4.1) but has no
//! rollback; Watchtower removes first and loses containers when create fails (§4.2). Here the
//! original is never removed until the replacement has passed its health gate, and every state
//! between two engine calls can be recognised from container names alone, so a later run (after a
//! crash) can finish or undo it:
//!
//! | step              | engine call                     | names afterwards                         |
//! |-------------------|---------------------------------|------------------------------------------|
//! | create-next       | create `<name>-next` (+networks)| `<name>` (original), `<name>-next`       |
//! | stop-original     | stop `<name>`                   | same, original stopped                   |
//! | park-original     | rename `<name>` → `-prev`       | `<name>-prev`, `<name>-next`             |
//! | promote-next      | rename `-next` → `<name>`       | `<name>-prev`, `<name>` (replacement)    |
//! | start-replacement | start `<name>`                  | same, replacement running                |
//! | health-gate       | (inspect only)                  | same                                     |
//! | commit            | remove `<name>-prev`            | `<name>` (replacement)                   |
//!
//! The original's ID (kept in the [`Snapshot`]) tells an untouched original from a committed
//! replacement when only `<name>` exists.

use super::engine::Engine;
use super::inspect::{ContainerInfo, RunState};
use super::DockerError;
use crate::secret::Secret;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkingConfig,
    RestartPolicyNameEnum,
};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

pub const NEXT_SUFFIX: &str = "-next";
pub const PREV_SUFFIX: &str = "-prev";

/// The label in which compose records the hash of the config it created a container from.
pub const COMPOSE_CONFIG_HASH_LABEL: &str = "com.docker.compose.config-hash";

/// The env keys to change and their new values. Debug shows key names only.
#[derive(Clone, Default)]
pub struct EnvPatch(Vec<(String, Secret)>);

impl fmt::Debug for EnvPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl EnvPatch {
    pub fn new() -> Self {
        EnvPatch::default()
    }

    /// Sets `key` to `value` (replacing an earlier `set` of the same key).
    pub fn set(mut self, key: impl Into<String>, value: Secret) -> Self {
        let key = key.into();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value));
        self
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `env` with every patched key's value replaced in place (all occurrences), and keys the
    /// container did not have appended in patch order. Nothing else changes, not even order.
    pub fn apply(&self, env: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(env.len() + self.0.len());
        let mut seen = vec![false; self.0.len()];
        for kv in env {
            let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
            match self.0.iter().position(|(k, _)| k == key) {
                Some(i) => {
                    seen[i] = true;
                    out.push(format!("{key}={}", self.0[i].1.expose()));
                }
                None => out.push(kv.clone()),
            }
        }
        for (i, (k, v)) in self.0.iter().enumerate() {
            if !seen[i] {
                out.push(format!("{k}={}", v.expose()));
            }
        }
        out
    }
}

/// Everything needed to rebuild or restore a container: its full inspect and its last log
/// lines, taken before anything changes (after a recreate the old logs and env are gone). It
/// holds the container's env, so callers must encrypt it at rest; Debug shows no env.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub original_id: String,
    /// Whether the original should be running again after an undo (it was running, restarting,
    /// or crashed under a restart policy that would bring it back).
    pub should_run: bool,
    pub inspect: ContainerInspectResponse,
    pub logs: Vec<String>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.name)
            .field("original_id", &self.original_id)
            .field("should_run", &self.should_run)
            .field("log_lines", &self.logs.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Inspects `name` and reads its last `log_lines` log lines.
    pub async fn take(
        engine: &Engine,
        name: &str,
        log_lines: usize,
    ) -> Result<Snapshot, DockerError> {
        let inspect = engine
            .try_inspect(name)
            .await?
            .ok_or_else(|| DockerError::NotFound(name.to_string()))?;
        let info = ContainerInfo::from_inspect(&inspect);
        if info.name != name {
            return Err(DockerError::Recreate {
                name: name.to_string(),
                msg: format!("resolves to container {:?}; use its name", info.name),
            });
        }
        let logs = engine.logs_tail(name, log_lines).await?;
        let policy = inspect
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name);
        let restarts_itself = matches!(
            policy,
            Some(
                RestartPolicyNameEnum::ALWAYS
                    | RestartPolicyNameEnum::UNLESS_STOPPED
                    | RestartPolicyNameEnum::ON_FAILURE
            )
        );
        let should_run = match info.state {
            RunState::Running | RunState::Restarting | RunState::Paused => true,
            RunState::Exited => restarts_itself && info.exit_code != 0,
            _ => false,
        };
        Ok(Snapshot {
            name: name.to_string(),
            original_id: info.id,
            should_run,
            inspect,
            logs,
        })
    }

    fn short_id(&self) -> &str {
        &self.original_id[..self.original_id.len().min(12)]
    }

    fn stop_timeout(&self) -> i32 {
        self.inspect
            .config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .map(|t| t.clamp(1, 300) as i32)
            .unwrap_or(10)
    }

    /// The networks the original was attached to, the one named by its network mode first
    /// (API < 1.44 accepts a single endpoint at create; the others are connected afterwards).
    fn networks(&self) -> Vec<(String, EndpointSettings)> {
        let mode = self
            .inspect
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Vec::new();
        }
        let mut nets: Vec<(String, EndpointSettings)> = self
            .inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, ep)| {
                let ep = self.clean_endpoint(&name, ep);
                (name, ep)
            })
            .collect();
        nets.sort_by(|a, b| (a.0 != mode, &a.0).cmp(&(b.0 != mode, &b.0)));
        nets
    }

    /// Keeps what the user configured on an endpoint (aliases, static IPAM, links, driver
    /// options) and drops what the engine assigned: IP, gateway, endpoint/network IDs, the MAC
    /// (Docker 25+ reports the generated MAC as if configured, moby #47228), and the alias equal
    /// to the old short ID, which the engine adds itself and which would pile up.
    fn clean_endpoint(&self, network: &str, ep: EndpointSettings) -> EndpointSettings {
        let default_bridge = network == "bridge";
        let aliases = ep.aliases.map(|a| {
            a.into_iter()
                .filter(|x| x != self.short_id() && *x != self.original_id)
                .collect::<Vec<_>>()
        });
        EndpointSettings {
            ipam_config: ep.ipam_config,
            links: ep.links,
            aliases: if default_bridge { None } else { aliases },
            driver_opts: ep.driver_opts,
            ..Default::default()
        }
    }

    /// The create request of the replacement: the original's config with `patch` applied to
    /// the env, the hostname dropped when it is the engine-assigned short ID, `image` as
    /// resolved by [`Recreate::prepare`], and only the first network (see [`Self::networks`]).
    ///
    /// When the patch changes the env, compose's `config-hash` label is dropped: the hash
    /// describes the config compose made the original from, which the replacement no longer
    /// has. Without it the next `compose up` recreates the container from the compose file and
    /// compose.env (as both compose 1.x and v2 do for a missing hash) instead of keeping it as
    /// "up to date" even when compose.env has gone back to the old values.
    pub fn create_body(&self, patch: &EnvPatch, image: &str) -> ContainerCreateBody {
        let c = self.inspect.config.clone().unwrap_or_default();
        let mut labels = c.labels;
        if !patch.is_empty() {
            if let Some(l) = labels.as_mut() {
                l.remove(COMPOSE_CONFIG_HASH_LABEL);
            }
        }
        let hostname = c.hostname.filter(|h| h != self.short_id());
        let env = c.env.as_deref().map(|e| patch.apply(e));
        let networking_config =
            self.networks()
                .into_iter()
                .next()
                .map(|(name, ep)| NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(name, ep)])),
                });
        ContainerCreateBody {
            hostname,
            domainname: c.domainname,
            user: c.user,
            attach_stdin: c.attach_stdin,
            attach_stdout: c.attach_stdout,
            attach_stderr: c.attach_stderr,
            exposed_ports: c.exposed_ports,
            tty: c.tty,
            open_stdin: c.open_stdin,
            stdin_once: c.stdin_once,
            env,
            cmd: c.cmd,
            healthcheck: c.healthcheck,
            args_escaped: c.args_escaped,
            image: Some(image.to_string()),
            volumes: c.volumes,
            working_dir: c.working_dir,
            entrypoint: c.entrypoint,
            network_disabled: c.network_disabled,
            on_build: c.on_build,
            labels,
            stop_signal: c.stop_signal,
            stop_timeout: c.stop_timeout,
            shell: c.shell,
            host_config: self.inspect.host_config.clone(),
            networking_config,
        }
    }
}

/// The health gate's parameters (DESIGN.md `[health]`).
#[derive(Debug, Clone, Copy)]
pub struct HealthGate {
    /// Give up after this long.
    pub timeout: Duration,
    /// Running, not restarting, restart count unchanged (and healthy, if it has a healthcheck)
    /// for this long.
    pub stable_for: Duration,
    pub poll: Duration,
}

impl Default for HealthGate {
    fn default() -> Self {
        HealthGate {
            timeout: Duration::from_secs(90),
            stable_for: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// The steps of a recreate, in order. Each is at most one mutating engine call (create-next
/// also connects extra networks), so a runner can journal before and after each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RecreateStep {
    CreateNext,
    StopOriginal,
    ParkOriginal,
    PromoteNext,
    StartReplacement,
    HealthGate,
    Commit,
}

impl RecreateStep {
    pub const ALL: [RecreateStep; 7] = [
        RecreateStep::CreateNext,
        RecreateStep::StopOriginal,
        RecreateStep::ParkOriginal,
        RecreateStep::PromoteNext,
        RecreateStep::StartReplacement,
        RecreateStep::HealthGate,
        RecreateStep::Commit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecreateStep::CreateNext => "create-next",
            RecreateStep::StopOriginal => "stop-original",
            RecreateStep::ParkOriginal => "park-original",
            RecreateStep::PromoteNext => "promote-next",
            RecreateStep::StartReplacement => "start-replacement",
            RecreateStep::HealthGate => "health-gate",
            RecreateStep::Commit => "commit",
        }
    }
}

/// Where a recreate stands, read from the engine by name (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecreateState {
    /// Only `<name>` exists and it is the original.
    Untouched { original_running: bool },
    /// `<name>-next` exists beside the original `<name>` (after create-next or stop-original).
    NextCreated { original_running: bool },
    /// The original is `<name>-prev`, the replacement still `<name>-next`, no `<name>`.
    Parked,
    /// The replacement is `<name>`, the original `<name>-prev`.
    Swapped { replacement_running: bool },
    /// Only `<name>-prev` exists: an undo removed the replacement and stopped there.
    PrevOnly,
    /// Only `<name>` exists and it is not the original: the recreate is done.
    Committed,
    /// A combination no step sequence produces; the text lists what exists.
    Inconsistent(String),
}

impl RecreateState {
    /// Classifies the names `<name>`, `<name>-next`, `<name>-prev` against the original's ID.
    pub async fn classify(
        engine: &Engine,
        name: &str,
        original_id: &str,
    ) -> Result<RecreateState, DockerError> {
        let main = load_opt(engine, name).await?;
        let next = load_opt(engine, &format!("{name}{NEXT_SUFFIX}")).await?;
        let prev = load_opt(engine, &format!("{name}{PREV_SUFFIX}")).await?;
        let is_orig = |c: &ContainerInfo| c.id == original_id;
        let active =
            |c: &ContainerInfo| matches!(c.state, RunState::Running | RunState::Restarting);
        Ok(match (&main, &next, &prev) {
            (Some(m), None, None) if is_orig(m) => RecreateState::Untouched {
                original_running: active(m),
            },
            (Some(_), None, None) => RecreateState::Committed,
            (Some(m), Some(n), None) if is_orig(m) && !is_orig(n) => RecreateState::NextCreated {
                original_running: active(m),
            },
            (None, Some(n), Some(p)) if is_orig(p) && !is_orig(n) => RecreateState::Parked,
            (Some(m), None, Some(p)) if is_orig(p) && !is_orig(m) => RecreateState::Swapped {
                replacement_running: active(m),
            },
            (None, None, Some(p)) if is_orig(p) => RecreateState::PrevOnly,
            _ => {
                let desc = |c: &Option<ContainerInfo>, n: String| match c {
                    Some(c) if is_orig(c) => format!("{n} (original)"),
                    Some(_) => format!("{n} (other)"),
                    None => format!("{n} (absent)"),
                };
                RecreateState::Inconsistent(format!(
                    "{}, {}, {}",
                    desc(&main, name.to_string()),
                    desc(&next, format!("{name}{NEXT_SUFFIX}")),
                    desc(&prev, format!("{name}{PREV_SUFFIX}"))
                ))
            }
        })
    }
}

async fn load_opt(engine: &Engine, name: &str) -> Result<Option<ContainerInfo>, DockerError> {
    Ok(engine
        .try_inspect(name)
        .await?
        .map(|r| ContainerInfo::from_inspect(&r)))
}

/// One recreate of one container. Build it with [`prepare`](Self::prepare) (a fresh run) or
/// [`from_snapshot`](Self::from_snapshot) (resuming a journaled run), then either call
/// [`run`](Self::run), or drive the steps with [`apply`](Self::apply) and journal around each.
pub struct Recreate {
    engine: Engine,
    snapshot: Snapshot,
    patch: EnvPatch,
    image: String,
}

impl fmt::Debug for Recreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recreate")
            .field("name", &self.snapshot.name)
            .field("patch", &self.patch)
            .field("image", &self.image)
            .finish()
    }
}

impl Recreate {
    /// Takes the snapshot and checks the preconditions without changing anything: the
    /// container exists, no `-next`/`-prev` leftovers, its image is present locally.
    pub async fn prepare(
        engine: &Engine,
        name: &str,
        patch: EnvPatch,
        log_lines: usize,
    ) -> Result<Recreate, DockerError> {
        for suffix in [NEXT_SUFFIX, PREV_SUFFIX] {
            let other = format!("{name}{suffix}");
            if engine.try_inspect(&other).await?.is_some() {
                return Err(DockerError::Recreate {
                    name: name.to_string(),
                    msg: format!("{other} exists: an earlier recreate was interrupted; resume or undo it first"),
                });
            }
        }
        let snapshot = Snapshot::take(engine, name, log_lines).await?;
        Self::from_snapshot(engine, snapshot, patch).await
    }

    /// Rebuilds a recreate from a journaled snapshot. The image is resolved again: the original
    /// tag if it still points at the original image, else the image ID, so a tag moved since
    /// never changes what runs. Fails if the original image is gone.
    pub async fn from_snapshot(
        engine: &Engine,
        snapshot: Snapshot,
        patch: EnvPatch,
    ) -> Result<Recreate, DockerError> {
        let name = snapshot.name.clone();
        let image_id = snapshot.inspect.image.clone().unwrap_or_default();
        let tag = snapshot
            .inspect
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let image = if !tag.is_empty() && engine.image_id(&tag).await?.as_deref() == Some(&image_id)
        {
            tag
        } else if !image_id.is_empty() && engine.image_id(&image_id).await?.is_some() {
            image_id
        } else {
            return Err(DockerError::Recreate {
                name,
                msg: format!("image {tag:?} ({image_id}) is not present locally; pull it first"),
            });
        };
        Ok(Recreate {
            engine: engine.clone(),
            snapshot,
            patch,
            image,
        })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn name(&self) -> &str {
        &self.snapshot.name
    }

    pub fn next_name(&self) -> String {
        format!("{}{NEXT_SUFFIX}", self.snapshot.name)
    }

    pub fn prev_name(&self) -> String {
        format!("{}{PREV_SUFFIX}", self.snapshot.name)
    }

    /// The image the replacement is created from.
    pub fn image(&self) -> &str {
        &self.image
    }

    pub async fn state(&self) -> Result<RecreateState, DockerError> {
        RecreateState::classify(&self.engine, self.name(), &self.snapshot.original_id).await
    }

    fn err(&self, msg: impl Into<String>) -> DockerError {
        DockerError::Recreate {
            name: self.name().to_string(),
            msg: msg.into(),
        }
    }

    /// Runs one step against the engine.
    pub async fn apply(&self, step: RecreateStep, gate: &HealthGate) -> Result<(), DockerError> {
        let e = &self.engine;
        match step {
            RecreateStep::CreateNext => {
                let body = self.snapshot.create_body(&self.patch, &self.image);
                e.create(&self.next_name(), body).await?;
                self.connect_missing_networks(&self.next_name()).await
            }
            RecreateStep::StopOriginal => e.stop(self.name(), self.snapshot.stop_timeout()).await,
            RecreateStep::ParkOriginal => e.rename(self.name(), &self.prev_name()).await,
            RecreateStep::PromoteNext => e.rename(&self.next_name(), self.name()).await,
            RecreateStep::StartReplacement => e.start(self.name()).await,
            RecreateStep::HealthGate => self.health_gate(gate).await,
            RecreateStep::Commit => self.commit().await,
        }
    }

    /// Connects the replacement `target` to every network of the original it lacks (create
    /// attaches only one; a crash can interrupt the connects).
    async fn connect_missing_networks(&self, target: &str) -> Result<(), DockerError> {
        let have = ContainerInfo::load(&self.engine, target)
            .await?
            .ip_addresses;
        for (net, ep) in self.snapshot.networks() {
            if !have.contains_key(&net) {
                self.engine.connect_network(&net, target, ep).await?;
            }
        }
        Ok(())
    }

    /// Every step in order; on failure, undoes and returns the failure (or, if the undo failed
    /// too, an error naming both).
    pub async fn run(&self, gate: &HealthGate) -> Result<(), DockerError> {
        match self.finish(gate).await {
            Ok(()) => Ok(()),
            Err(cause) => match self.undo().await {
                Ok(()) => Err(cause),
                Err(undo) => Err(self.err(format!("{cause}; undo failed too: {undo}"))),
            },
        }
    }

    /// Drives the recreate forward from whatever state it is in, through the health gate and
    /// commit. Idempotent: a committed recreate is left alone.
    pub async fn finish(&self, gate: &HealthGate) -> Result<(), DockerError> {
        self.finish_through(RecreateStep::Commit, gate).await
    }

    /// Drives the recreate forward from whatever state it is in, up to and including `last`
    /// (e.g. [`RecreateStep::HealthGate`] to leave the commit to the caller). Steps already
    /// done are skipped; the health gate is re-checked whenever it is within range.
    pub async fn finish_through(
        &self,
        last: RecreateStep,
        gate: &HealthGate,
    ) -> Result<(), DockerError> {
        let first = match self.state().await? {
            RecreateState::Untouched { .. } => RecreateStep::CreateNext,
            RecreateState::NextCreated { .. } => {
                self.connect_missing_networks(&self.next_name()).await?;
                RecreateStep::StopOriginal
            }
            RecreateState::Parked => RecreateStep::PromoteNext,
            RecreateState::Swapped { .. } => RecreateStep::StartReplacement,
            RecreateState::Committed => return Ok(()),
            RecreateState::PrevOnly => {
                return Err(self.err(format!(
                    "cannot finish: the replacement is gone and only {} is left; undo instead",
                    self.prev_name()
                )))
            }
            RecreateState::Inconsistent(s) => {
                return Err(self.err(format!("cannot finish from an unknown state: {s}")))
            }
        };
        for step in RecreateStep::ALL {
            if step >= first && step <= last {
                self.apply(step, gate).await?;
            }
        }
        Ok(())
    }

    /// Removes the parked original. Only after the health gate.
    pub async fn commit(&self) -> Result<(), DockerError> {
        match self.state().await? {
            RecreateState::Swapped { .. } => self.engine.remove(&self.prev_name()).await,
            RecreateState::Committed => Ok(()),
            other => Err(self.err(format!("cannot commit from state {other:?}"))),
        }
    }

    /// Puts the original back under its name (same container ID) and starts it if it was
    /// meant to run, removing the replacement, from any state short of committed.
    pub async fn undo(&self) -> Result<(), DockerError> {
        let e = &self.engine;
        let (name, next, prev) = (self.name(), self.next_name(), self.prev_name());
        match self.state().await? {
            RecreateState::Untouched { .. } => {}
            RecreateState::NextCreated { .. } => e.remove(&next).await?,
            RecreateState::Parked => {
                e.remove(&next).await?;
                e.rename(&prev, name).await?;
            }
            RecreateState::Swapped { .. } => {
                // The classifier proved `<name>` is not the original; check again right before
                // the only removal that could otherwise hit it.
                let id = ContainerInfo::load(e, name).await?.id;
                if id == self.snapshot.original_id {
                    return Err(self.err("refusing to remove the original"));
                }
                e.remove(&id).await?;
                e.rename(&prev, name).await?;
            }
            RecreateState::PrevOnly => e.rename(&prev, name).await?,
            RecreateState::Committed => {
                return Err(self.err(
                    "cannot undo: already committed and the original removed; recreate it from the snapshot instead",
                ))
            }
            RecreateState::Inconsistent(s) => {
                return Err(self.err(format!("cannot undo from an unknown state: {s}")))
            }
        }
        if self.snapshot.should_run {
            let now = ContainerInfo::load(e, name).await?;
            if !matches!(now.state, RunState::Running | RunState::Restarting) {
                e.start(name).await?;
            }
        }
        Ok(())
    }

    /// Waits until `<name>` is the replacement, running, not restarting, with an unchanged
    /// restart count and (if it has a healthcheck) healthy, for `stable_for`. Fails at once when
    /// it exits or has ever restarted: a replacement that crashed once is not trusted.
    pub async fn health_gate(&self, gate: &HealthGate) -> Result<(), DockerError> {
        let name = self.name();
        let unhealthy = |msg: String| DockerError::Unhealthy {
            name: name.to_string(),
            msg,
        };
        let start = Instant::now();
        let mut baseline: Option<(String, i64)> = None;
        let mut stable_since: Option<Instant> = None;
        loop {
            let info = ContainerInfo::load(&self.engine, name).await?;
            if info.id == self.snapshot.original_id {
                return Err(unhealthy(
                    "the original, not the replacement, holds the name".into(),
                ));
            }
            // A fresh replacement starts at 0 restarts; any restart means it crashed, even one
            // that happened before this gate began watching.
            let (id, restarts) = baseline.get_or_insert((info.id.clone(), 0));
            if *id != info.id {
                return Err(unhealthy(
                    "the container was replaced during the health gate".into(),
                ));
            }
            if info.restart_count != *restarts
                || matches!(
                    info.state,
                    RunState::Restarting | RunState::Exited | RunState::Dead
                )
            {
                let logs = self.engine.logs_tail(name, 50).await.unwrap_or_default();
                let why = super::crashloop::match_signature(&logs)
                    .map(|s| format!(": {}", s.describe()))
                    .unwrap_or_default();
                return Err(unhealthy(format!(
                    "{} (exit code {}, {} restarts since start){why}",
                    info.state.as_str(),
                    info.exit_code,
                    info.restart_count - *restarts
                )));
            }
            let ready = info.state == RunState::Running
                && matches!(info.health.as_deref(), None | Some("healthy"));
            if ready {
                let since = *stable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= gate.stable_for {
                    return Ok(());
                }
            } else {
                stable_since = None;
            }
            if start.elapsed() >= gate.timeout {
                return Err(unhealthy(format!(
                    "not stable after {:?}: {}{}",
                    gate.timeout,
                    info.state.as_str(),
                    info.health.map(|h| format!(", {h}")).unwrap_or_default()
                )));
            }
            tokio::time::sleep(gate.poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerConfig;

    #[test]
    fn patch_changes_exactly_the_keys_asked_in_place() {
        let env = vec![
            "PATH=/bin".to_string(),
            "KOMODO_DATABASE_PASSWORD=old".to_string(),
            "OTHER=x=y".to_string(),
            "KOMODO_DATABASE_PASSWORD=old2".to_string(),
        ];
        let p = EnvPatch::new()
            .set("KOMODO_DATABASE_PASSWORD", Secret::new("new".into()))
            .set("ADDED", Secret::new("a".into()));
        assert_eq!(
            p.apply(&env),
            vec![
                "PATH=/bin",
                "KOMODO_DATABASE_PASSWORD=new",
                "OTHER=x=y",
                "KOMODO_DATABASE_PASSWORD=new",
                "ADDED=a"
            ]
        );
        assert_eq!(format!("{p:?}"), r#"["KOMODO_DATABASE_PASSWORD", "ADDED"]"#);
    }

    #[test]
    fn snapshot_debug_hides_env_and_create_body_drops_engine_assigned_identity() {
        let id = "0123456789abcdef0123456789abcdef";
        let snap = Snapshot {
            name: "komodo-core-1".into(),
            original_id: id.into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                id: Some(id.into()),
                config: Some(ContainerConfig {
                    hostname: Some("0123456789ab".into()),
                    env: Some(vec!["SECRET=hunter2hunter2".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
        };
        let shown = format!("{snap:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let body = snap.create_body(&EnvPatch::new(), "img");
        assert_eq!(body.hostname, None);
        assert_eq!(body.image.as_deref(), Some("img"));
        assert_eq!(body.env, Some(vec!["SECRET=hunter2hunter2".to_string()]));
    }

    #[test]
    fn create_body_drops_compose_config_hash_only_when_the_env_changes() {
        let labels = HashMap::from([
            (COMPOSE_CONFIG_HASH_LABEL.to_string(), "abc".to_string()),
            ("com.docker.compose.service".to_string(), "core".to_string()),
        ]);
        let snap = Snapshot {
            name: "komodo_core_1".into(),
            original_id: "0123456789abcdef".into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                config: Some(ContainerConfig {
                    env: Some(vec!["K=old".into()]),
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
        };
        let same = snap.create_body(&EnvPatch::new(), "img");
        assert_eq!(same.labels.as_ref(), Some(&labels));
        let patched = snap.create_body(&EnvPatch::new().set("K", Secret::new("new".into())), "img");
        let l = patched.labels.unwrap();
        assert!(!l.contains_key(COMPOSE_CONFIG_HASH_LABEL), "{l:?}");
        assert_eq!(
            l.get("com.docker.compose.service").map(String::as_str),
            Some("core")
        );
    }
}
