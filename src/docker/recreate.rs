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
use std::fmt;

mod health;
mod restore;
mod snapshot;
mod state;

pub use health::{settle, HealthGate};
pub use restore::{create_from_snapshot, ensure_running, nothing_under, Around};
pub use snapshot::Snapshot;
pub use state::RecreateState;

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

    /// Whether `info`'s env holds every patched key with its patched value.
    pub fn is_applied_to(&self, info: &ContainerInfo) -> bool {
        self.0
            .iter()
            .all(|(k, v)| info.env_value(k).is_some_and(|x| x.ct_eq(v)))
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
            RecreateState::Committed => {
                // `<name>` is not the original: ours, committed, or somebody else's (a concurrent
                // `docker compose up`). Either way it must hold the new value and pass the gate.
                let now = ContainerInfo::load(&self.engine, self.name()).await?;
                if !self.patch.is_applied_to(&now) {
                    return Err(self.err(format!(
                        "was replaced by another container ({}) that does not hold the new value",
                        &now.id[..now.id.len().min(12)]
                    )));
                }
                if last >= RecreateStep::HealthGate {
                    settle(&self.engine, self.name(), gate).await?;
                }
                return Ok(());
            }
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

    /// When somebody else replaced `<name>` with a container that lacks the patch (the state
    /// reads Committed, but it is not ours): a recreate of the container holding the name now,
    /// with the same patch, so the run can roll forward. `None` when that is not the case.
    pub async fn rebase_if_replaced(
        &self,
        log_lines: usize,
    ) -> Result<Option<Recreate>, DockerError> {
        if self.state().await? != RecreateState::Committed {
            return Ok(None);
        }
        let now = ContainerInfo::load(&self.engine, self.name()).await?;
        if self.patch.is_applied_to(&now) {
            return Ok(None);
        }
        let snapshot = Snapshot::take(&self.engine, self.name(), log_lines).await?;
        Ok(Some(
            Recreate::from_snapshot(&self.engine, snapshot, self.patch.clone()).await?,
        ))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse};
    use std::collections::HashMap;

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
