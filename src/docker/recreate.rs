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
//! | start-replacement | start `<name>` (\*)             | same, replacement running                |
//! | health-gate       | (inspect only)                  | same                                     |
//! | commit            | remove `<name>-prev`            | `<name>` (replacement)                   |
//!
//! (\*) Only when the original was meant to run ([`Snapshot::should_run`]): the replacement of a
//! holder stopped with `compose stop` stays stopped (created, its env patched), and its health
//! gate only checks that.
//!
//! The original's ID (kept in the [`Snapshot`]) tells an untouched original from a committed
//! replacement when only `<name>` exists.

use super::engine::{CreateExtras, Engine};
use super::inspect::{ContainerInfo, RunState};
use super::DockerError;
use std::fmt;

mod faithful;
mod health;
mod patch;
mod restore;
mod snapshot;
mod state;
mod volumes;

pub use faithful::{create_conflict, MAX_STOP_GRACE_S};
pub use health::{settle, HealthGate};
pub use patch::EnvPatch;
pub use restore::{create_from_snapshot, ensure_running, nothing_under, Around};
pub use snapshot::Snapshot;
pub use state::RecreateState;
pub use volumes::AnonymousVolume;

pub const NEXT_SUFFIX: &str = "-next";
pub const PREV_SUFFIX: &str = "-prev";

/// The label in which compose records the hash of the config it created a container from.
pub const COMPOSE_CONFIG_HASH_LABEL: &str = "com.docker.compose.config-hash";

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
    /// The image's `os/arch[/variant]`, passed at create (compose passes the service's).
    platform: Option<String>,
}

impl fmt::Debug for Recreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recreate")
            .field("name", &self.snapshot.name)
            .field("patch", &self.patch)
            .field("image", &self.image)
            .field("platform", &self.platform)
            .finish()
    }
}

impl Recreate {
    /// Takes the snapshot and checks the preconditions without changing anything: the
    /// container exists, no `-next`/`-prev` leftovers, its image is present locally, and the
    /// recreate can be faithful (see [`faithful`]: the create request passes the engine's
    /// conflict rules, nothing the recreate would lose).
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
        let rc = Self::from_snapshot(engine, snapshot, patch).await?;
        rc.check_faithful().await?;
        Ok(rc)
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
        let platform = engine.image_platform(&image).await?;
        Ok(Recreate {
            engine: engine.clone(),
            snapshot,
            patch,
            image,
            platform,
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

    /// The platform the replacement is created for (the original image's).
    pub fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    /// What the create request carries beside its body: the image's platform and the
    /// original's configured MAC address.
    pub(crate) fn create_extras(&self) -> CreateExtras {
        CreateExtras {
            platform: self.platform.clone(),
            mac_address: self.snapshot.mac_address.clone(),
        }
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
                e.create_with(&self.next_name(), body, &self.create_extras())
                    .await?;
                self.connect_missing_networks(&self.next_name()).await
            }
            RecreateStep::StopOriginal => e.stop(self.name(), self.snapshot.stop_timeout()).await,
            RecreateStep::ParkOriginal => e.rename(self.name(), &self.prev_name()).await,
            RecreateStep::PromoteNext => e.rename(&self.next_name(), self.name()).await,
            // An original stopped on purpose (`compose stop`) gets a replacement that stays
            // stopped: created with the patched env, started by the next `compose up`/`start`.
            RecreateStep::StartReplacement if !self.snapshot.should_run => Ok(()),
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
        let state = self.state().await?;
        let first = match (self.step_on_from(&state).await?, state) {
            (Some(first), _) => first,
            (None, RecreateState::Committed) => {
                // `<name>` is not the original: ours, committed, or somebody else's (a concurrent
                // `docker compose up`). Either way it must hold the new value and pass the gate.
                let now = ContainerInfo::load(&self.engine, self.name()).await?;
                if !self.patch.is_applied_to(&now) {
                    return Err(self.err(format!(
                        "was replaced by another container ({}) that does not hold the new value",
                        &now.id[..now.id.len().min(12)]
                    )));
                }
                if last >= RecreateStep::HealthGate && self.snapshot.should_run {
                    settle(&self.engine, self.name(), gate).await?;
                }
                return Ok(());
            }
            (None, RecreateState::PrevOnly) => {
                return Err(self.err(format!(
                    "cannot finish: the replacement is gone and only {} is left; undo instead",
                    self.prev_name()
                )))
            }
            (None, RecreateState::Inconsistent(s)) => {
                return Err(self.err(format!("cannot finish from an unknown state: {s}")))
            }
            // Not reached: step_on_from leads on from every other state.
            (None, other) => return Err(self.err(format!("cannot finish from state {other:?}"))),
        };
        for step in RecreateStep::ALL {
            if step >= first && step <= last {
                self.apply(step, gate).await?;
            }
        }
        Ok(())
    }

    /// The first step that drives the recreate on from `state` (a created replacement is first
    /// connected to the networks it misses); `None` where no step leads on (committed, only
    /// `<name>-prev` left, inconsistent).
    async fn step_on_from(
        &self,
        state: &RecreateState,
    ) -> Result<Option<RecreateStep>, DockerError> {
        Ok(Some(match state {
            RecreateState::Untouched { .. } => RecreateStep::CreateNext,
            RecreateState::NextCreated { .. } => {
                self.connect_missing_networks(&self.next_name()).await?;
                RecreateStep::StopOriginal
            }
            RecreateState::Parked => RecreateStep::PromoteNext,
            RecreateState::Swapped { .. } => RecreateStep::StartReplacement,
            RecreateState::Committed | RecreateState::PrevOnly | RecreateState::Inconsistent(_) => {
                return Ok(None)
            }
        }))
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
