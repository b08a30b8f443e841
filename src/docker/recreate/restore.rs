//! Putting a container back when its original is gone (issue 25): the undo of a recreate that
//! was committed (the original removed) cannot rename anything back, so it recreates the
//! container from the journaled snapshot instead. Two ways, both resumable after a kill:
//!
//! - something holds the name (our replacement, or one a `docker compose up` made): a new
//!   [`Recreate`] of that container with the snapshot's values, driven step by step through
//!   [`Recreate::finish_observed`] so the caller can journal or inject faults around each step;
//! - nothing holds it (nor `-next`, nor `-prev`): [`create_from_snapshot`] makes the container
//!   again from the snapshot, under its name, and starts it if it was meant to run.

use super::super::engine::Engine;
use super::super::inspect::{ContainerInfo, RunState};
use super::super::DockerError;
use super::{settle, EnvPatch, HealthGate, Recreate, RecreateStep, Snapshot};
use super::{NEXT_SUFFIX, PREV_SUFFIX};

/// Which side of a step a hook of [`Recreate::finish_observed`] is called on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Around {
    Before,
    After,
}

impl Around {
    pub fn as_str(self) -> &'static str {
        match self {
            Around::Before => "before",
            Around::After => "after",
        }
    }
}

impl Recreate {
    /// [`finish`](Self::finish), with `at` called before and after each step it runs (an error
    /// from `at` stops there, as a failed step would). From a state no step leads on from
    /// (committed, or one only an undo can leave) it is `finish` itself.
    pub async fn finish_observed<F>(&self, gate: &HealthGate, mut at: F) -> Result<(), DockerError>
    where
        F: FnMut(Around, RecreateStep) -> Result<(), DockerError>,
    {
        let Some(first) = self.step_on_from(&self.state().await?).await? else {
            return self.finish(gate).await;
        };
        for step in RecreateStep::ALL.into_iter().filter(|s| *s >= first) {
            at(Around::Before, step)?;
            self.apply(step, gate).await?;
            at(Around::After, step)?;
        }
        Ok(())
    }

    /// Whether the container under the name now is not the original and holds the patch (the
    /// recreate's value is live there, whoever made the container).
    pub async fn replacement_holds_patch(&self) -> Result<bool, DockerError> {
        let Some(now) = self.engine.try_inspect(self.name()).await? else {
            return Ok(false);
        };
        let now = ContainerInfo::from_inspect(&now);
        Ok(now.id != self.snapshot.original_id && self.patch.is_applied_to(&now))
    }
}

/// Whether none of `<name>`, `<name>-next`, `<name>-prev` exists.
pub async fn nothing_under(engine: &Engine, name: &str) -> Result<bool, DockerError> {
    for n in [
        name.to_string(),
        format!("{name}{NEXT_SUFFIX}"),
        format!("{name}{PREV_SUFFIX}"),
    ] {
        if engine.try_inspect(&n).await?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes `snapshot`'s container again under its name (its image, env, labels, networks), then,
/// if it was meant to run, starts it and waits for it to settle. Resumable: a container already
/// under the name (an earlier call killed half way) is only started and settled.
pub async fn create_from_snapshot(
    engine: &Engine,
    snapshot: &Snapshot,
    gate: &HealthGate,
) -> Result<(), DockerError> {
    let name = snapshot.name.clone();
    let rec = Recreate::from_snapshot(engine, snapshot.clone(), EnvPatch::new()).await?;
    if engine.try_inspect(&name).await?.is_none() {
        let body = snapshot.create_body(&EnvPatch::new(), rec.image());
        engine
            .create_with(&name, body, &rec.create_extras())
            .await?;
    }
    rec.connect_missing_networks(&name).await?;
    ensure_running(engine, snapshot, gate).await
}

/// Starts `snapshot`'s container if it was meant to run and is not, then waits for it to settle.
pub async fn ensure_running(
    engine: &Engine,
    snapshot: &Snapshot,
    gate: &HealthGate,
) -> Result<(), DockerError> {
    if !snapshot.should_run {
        return Ok(());
    }
    let now = ContainerInfo::load(engine, &snapshot.name).await?;
    if !matches!(now.state, RunState::Running | RunState::Restarting) {
        engine.start(&snapshot.name).await?;
    }
    settle(engine, &snapshot.name, gate).await.map(|_| ())
}
