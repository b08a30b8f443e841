//! The undo of a `recreate` step, and what a run does when the deployment is unhealthy for a
//! reason outside its own kind (issue 25).
//!
//! An undo from any state short of committed renames the parked original back. Once the
//! original is gone (committed by this run, removed by a `docker compose up` that replaced the
//! container, or a later phase recreated it again), the undo recreates the container from the
//! sealed snapshot with the values it had: the container under the name now is recreated with
//! the snapshot's value of every key the step set (nothing else it carries changes), or, when
//! nothing holds the name, the container is made again from the snapshot. The restore's own
//! snapshot is sealed first (`<key>@undo`), so a kill at any point of it is finished by a replay.
//! Failpoints `before:restore:<step>` / `after:restore:<step>` surround each of its steps.

use super::context::{earlier_recreates, snapshot_key, LivePlanes, SNAPSHOT_LOG_LINES};
use super::run::RunContext;
use crate::docker::crashloop::{match_signature, Signature};
use crate::docker::recreate::{create_from_snapshot, ensure_running, nothing_under};
use crate::docker::{ContainerInfo, DockerError, EnvPatch, Recreate, RecreateState, Snapshot};
use crate::error::{Error, Result};
use crate::txn::failpoint::failpoint;
use crate::txn::{Journal, Step, StepStatus};

impl LivePlanes<'_> {
    /// The undo of a recreate step (see the module doc).
    pub(super) async fn undo_recreate(
        &self,
        step: &Step,
        ctx: &RunContext,
        j: &Journal,
    ) -> Result<()> {
        let key = snapshot_key(step, j);
        if !self.snapshot_path(&key).exists() {
            return missing_snapshot(step, j, &self.snapshot_path(&key));
        }
        let rec = self.recreate_for(step, ctx, j).await?;
        // A restore already under way (its own snapshot sealed) is finished first: the names
        // then read against the original's ID as no recreate state.
        if self.snapshot_path(&undo_key(step, j)).exists() {
            return self.restore_by_recreate(step, ctx, j, rec.snapshot()).await;
        }
        match rec.state().await? {
            RecreateState::Committed => {
                self.restore_by_recreate(step, ctx, j, rec.snapshot()).await
            }
            RecreateState::Inconsistent(_) if nothing_under(&self.engine, rec.name()).await? => {
                eprintln!(
                    "komodo-rotate: warning: {} is gone (no container holds its name): making it again from its snapshot",
                    rec.name()
                );
                match create_from_snapshot(&self.engine, rec.snapshot(), &self.gate()).await {
                    Err(e @ DockerError::Unhealthy { .. }) => {
                        self.undo_unsettled(ctx, j, rec.name(), e.into()).await
                    }
                    r => Ok(r?),
                }
            }
            _ => Ok(rec.undo().await?),
        }
    }

    /// The undo of a recreate whose original is gone: the container now under the name is
    /// recreated with the original's values of every key the step set, committed, so no
    /// `-prev` is left. Its own snapshot is journaled first (`<key>@undo`), so a replay
    /// finishes it from wherever a kill left it.
    pub(super) async fn restore_by_recreate(
        &self,
        step: &Step,
        ctx: &RunContext,
        j: &Journal,
        original: &Snapshot,
    ) -> Result<()> {
        let container = step.target.as_deref().unwrap_or_default();
        let mut patch = EnvPatch::new();
        for (k, _) in self.patch_of(step, ctx)? {
            let was = original.env_value(&k).ok_or_else(|| {
                Error::Precondition(format!(
                    "cannot restore {container}: its original had no {k}, and a recreate cannot remove a key"
                ))
            })?;
            patch = patch.set(k, was);
        }
        let key = undo_key(step, j);
        let snap = match self.load_snapshot(&key)? {
            Some(s) => s,
            None => {
                let Some(now) = self.engine.try_inspect(container).await? else {
                    // Nothing under the name (removed after a kill): make it from the snapshot.
                    return match create_from_snapshot(&self.engine, original, &self.gate()).await {
                        Err(e @ DockerError::Unhealthy { .. }) => {
                            self.undo_unsettled(ctx, j, container, e.into()).await
                        }
                        r => Ok(r?),
                    };
                };
                if patch.is_applied_to(&ContainerInfo::from_inspect(&now)) {
                    return self.settle_or_outside(ctx, j, original).await;
                }
                let s = Snapshot::take(&self.engine, container, SNAPSHOT_LOG_LINES).await?;
                self.save_snapshot_as(&key, &s, ctx)?;
                s
            }
        };
        let rec = Recreate::from_snapshot(&self.engine, snap, patch).await?;
        let r = rec
            .finish_observed(&self.gate(), |at, s| {
                failpoint(&format!("{}:restore:{}", at.as_str(), s.as_str())).map_err(|e| {
                    DockerError::Recreate {
                        name: container.to_string(),
                        msg: e.to_string(),
                    }
                })
            })
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e @ DockerError::Unhealthy { .. }) if rec.replacement_holds_patch().await? => {
                // Put back, but it does not settle: ours, or another kind's problem?
                self.undo_unsettled(ctx, j, container, e.into()).await?;
                // Outside the run's kind: the restore is done, the original removed.
                rec.commit().await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Starts the container if it was meant to run and waits for it to settle; a failure to
    /// settle that is outside the run's kind is noted instead.
    async fn settle_or_outside(
        &self,
        ctx: &RunContext,
        j: &Journal,
        original: &Snapshot,
    ) -> Result<()> {
        match ensure_running(&self.engine, original, &self.gate()).await {
            Ok(()) => Ok(()),
            Err(e @ DockerError::Unhealthy { .. }) => {
                self.undo_unsettled(ctx, j, &original.name, e.into()).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A container an undo put back on its old values does not settle. As the old-state proof
    /// judges it: for a run with a database, while the store step's undo (change-db, change-pg) is still to
    /// come the database may hold NEW, so a holder back on OLD is rejected by it (a database signature in its log):
    /// that is the rollback in progress, left to the old-state proof, which waits for the holder
    /// once Mongo is back on OLD. Otherwise a cause outside the run's kind is noted (exit 7,
    /// [`outside_or`](Self::outside_or)), and anything else is `err` (exit 5).
    pub(super) async fn undo_unsettled(
        &self,
        ctx: &RunContext,
        j: &Journal,
        container: &str,
        err: Error,
    ) -> Result<()> {
        // change-db (Mongo) or change-pg (FerretDB's role verifier): the store's step.
        let db_undo_to_come = [super::steps::change_db(), super::steps::change_pg()]
            .iter()
            .any(|step| {
                matches!(
                    j.status_of(step),
                    Some(s) if s != StepStatus::Pending && s != StepStatus::Undone
                )
            });
        if ctx.has_store() && db_undo_to_come {
            let logs = self
                .engine
                .logs_tail(container, 50)
                .await
                .unwrap_or_default();
            if match_signature(&logs).is_some() {
                eprintln!(
                    "komodo-rotate: {container} is back on the old value but the database still holds the new one until its change is undone; the old-state proof waits for it"
                );
                return Ok(());
            }
        }
        self.outside_or(ctx, container, err).await
    }

    /// `Ok` (the cause noted in [`LivePlanes::outside`]) when `container` fails to settle for a
    /// reason outside the run's kind (see [`outside_cause`](Self::outside_cause)), else `err`.
    pub(super) async fn outside_or(
        &self,
        ctx: &RunContext,
        container: &str,
        err: Error,
    ) -> Result<()> {
        match self.outside_cause(ctx, container).await {
            Some(sig) => {
                self.note_outside(container, sig);
                Ok(())
            }
            None => Err(err),
        }
    }

    /// Why `container` does not settle, when the reason is outside the run's kind: the run has no
    /// store (an env-only kind never touches the database), and the container's recent log
    /// carries a database signature (`docker::crashloop`): its database credential or address
    /// is wrong, which no value of this run can cause or cure. `None` otherwise.
    pub(super) async fn outside_cause(
        &self,
        ctx: &RunContext,
        container: &str,
    ) -> Option<Signature> {
        if ctx.has_store() {
            return None;
        }
        let logs = self.engine.logs_tail(container, 50).await.ok()?;
        match_signature(&logs)
    }

    /// Whether this process noted `container` unsettled for an outside cause (its recreate).
    pub(super) fn noted_outside(&self, container: &str) -> bool {
        let prefix = format!("{container}: ");
        let v = self.outside.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().any(|l| l.starts_with(&prefix))
    }

    pub(super) fn note_outside(&self, container: &str, sig: Signature) {
        let line = format!("{container}: {}", sig.describe());
        let mut v = self.outside.lock().unwrap_or_else(|e| e.into_inner());
        if !v.contains(&line) {
            eprintln!(
                "komodo-rotate: warning: {line}; not this run's secret: the run goes on, and ends with exit 7"
            );
            v.push(line);
        }
    }
}

/// A recreate step to undo without its snapshot. The first recreate of a container in a run
/// starts from the snapshot step's, so it missing means the journal dir lost it: the original's
/// values are unknown, and the undo fails naming the file (exit 5) instead of calling it done.
/// A repeat recreate seals its own snapshot before it touches the container: without it, the
/// step never changed anything, and there is nothing to undo.
fn missing_snapshot(step: &Step, j: &Journal, path: &std::path::Path) -> Result<()> {
    if earlier_recreates(step, j).is_empty() {
        return Err(Error::Precondition(format!(
            "cannot undo the recreate of {}: its snapshot {} is missing, so the values it had are unknown",
            step.target.as_deref().unwrap_or_default(),
            path.display()
        )));
    }
    Ok(())
}

/// The name of the restore's own snapshot for `step`.
fn undo_key(step: &Step, j: &Journal) -> String {
    format!("{}@undo", snapshot_key(step, j))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planes::steps;

    #[test]
    fn a_missing_snapshot_is_an_error_unless_a_repeat_recreate_never_began() {
        let p = |s: Step, ph: &str| s.in_phase(Some(ph));
        let plan = vec![
            steps::snapshot(),
            p(steps::recreate("per"), "one").with("K", "old,new"),
            p(steps::recreate("per"), "two").with("K", "new"),
            steps::commit(),
        ];
        let j = steps::passkey_journal(&plan);
        let path = std::path::Path::new("/state/journal/snapshot-per.age");
        let e = missing_snapshot(&plan[1], &j, path).unwrap_err();
        assert!(
            e.to_string().contains("per") && e.to_string().contains("snapshot-per.age"),
            "{e}"
        );
        missing_snapshot(&plan[2], &j, path).unwrap();
    }
}
