//! The steps of a run, applied to the real planes. Every apply first checks whether its effect
//! is already there (so `resume` can replay it), and every undo works from a partly applied
//! step (so a step that died in flight can be rolled back).

use super::context::{earlier_recreates, snapshot_key, SNAPSHOT_LOG_LINES};
pub use super::context::{LivePlanes, Staged, PREV_ENV_FILE, WRITTEN_ENV_FILE};
use super::run::RunContext;
use super::steps;
pub use super::write_env::{backups, prune_backups, undo_write_env};
use crate::docker::{DockerError, Recreate, RecreateStep, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::{login_works, LoginOutcome, MongoAdmin, MongoError};
use crate::txn::failpoint::failpoint;
use crate::txn::{sealed, Journal, Planes, Step};
use zeroize::Zeroizing;

impl Planes for LivePlanes<'_> {
    async fn apply(&mut self, step: &Step, j: &Journal) -> Result<()> {
        let ctx = RunContext::of(j)?;
        match step.kind.as_str() {
            steps::SNAPSHOT => {
                let recipients = self.recipients(&ctx)?;
                for (name, _) in ctx.holders() {
                    let p = self.snapshot_path(name);
                    if p.exists() {
                        continue;
                    }
                    let snap = Snapshot::take(&self.engine, name, SNAPSHOT_LOG_LINES).await?;
                    let body = Zeroizing::new(serde_json::to_vec(&snap).map_err(|e| {
                        Error::Precondition(format!("cannot serialise the snapshot of {name}: {e}"))
                    })?);
                    let armored = sealed::seal(&body, &recipients)
                        .map_err(|e| Error::Precondition(e.to_string()))?;
                    fsutil::write_atomic(&p, armored.as_bytes(), Mode::Exactly(0o600))
                        .map_err(|e| Error::io(&p, e))?;
                }
                Ok(())
            }
            steps::CHANGE_DB => {
                if login_works(&self.target, &self.staged.new).await == LoginOutcome::Accepted {
                    return Ok(());
                }
                let admin = MongoAdmin::connect(&self.target, &self.staged.old)
                    .await
                    .map_err(untouched_if_never_sent)?;
                let r = admin
                    .change_password(&ctx.mongo_user, &self.staged.new)
                    .await;
                admin.close().await;
                r.map_err(untouched_if_never_sent)
            }
            steps::CHANGE_PG => super::pg_step::apply(self, &ctx).await,
            steps::WRITE_ENV => {
                if ctx.is_rescue() {
                    return Ok(());
                }
                self.write_env(step, &ctx, &j.run_id)
            }
            steps::RECREATE => {
                let container = step.target.as_deref().unwrap_or_default();
                self.prepare_repeat_recreate(step, &ctx, j).await?;
                let mut rec = self.recreate_for(step, &ctx, j).await?;
                if let Some(again) = rec.rebase_if_replaced(SNAPSHOT_LOG_LINES).await? {
                    // Somebody else (a concurrent `docker compose up`) replaced it with a
                    // container that lacks the new value. Mongo and compose.env already hold NEW:
                    // roll forward by recreating that container, and undo to it, not the original.
                    eprintln!(
                        "komodo-rotate: warning: {container} was replaced by another container during the run and does not hold the new value; recreating it again"
                    );
                    self.save_snapshot_as(&snapshot_key(step, j), again.snapshot(), &ctx)?;
                    rec = again;
                }
                match rec
                    .finish_through(RecreateStep::HealthGate, &self.gate())
                    .await
                {
                    // The value is live there, but the container does not settle: this run's
                    // fault, or another kind's (issue 25)?
                    Err(e @ DockerError::Unhealthy { .. })
                        if rec.replacement_holds_patch().await? =>
                    {
                        self.outside_or(&ctx, container, e.into()).await
                    }
                    r => Ok(r?),
                }
            }
            steps::WRITE_FILE => self.write_file(step, &ctx),
            steps::GIT_COMMIT | steps::GIT_PUSH => {
                super::git_steps::apply(step, j, self.cfg, &self.journal_dir, &self.git_values())
            }
            steps::COMMIT => {
                // Proof first: a failure here is a failed step, and the run rolls back.
                let outside = super::proof::new_state_is_live(self, j)
                    .await
                    .map_err(|e| Error::Precondition(format!("proof before commit: {e}")))?;
                for (container, sig) in outside {
                    self.note_outside(&container, sig);
                }
                // The tool's own record of what is live now: rescue's first candidate after a
                // hand edit and redeploy removed every other copy (issue 20 item 4a).
                let saved = self.recipients(&ctx).and_then(|r| {
                    super::last_value::save(self.cfg, &j.secret, &self.staged.new, &r)
                });
                if let Err(e) = saved {
                    eprintln!(
                        "komodo-rotate: warning: {} not recorded as last committed: {e}",
                        j.secret
                    );
                }
                // The new state is live and healthy. Removing the parked originals is cleanup:
                // a failure here is reported, never rolled back.
                for s in j.steps.iter().filter(|r| r.step.is(steps::RECREATE)) {
                    match self.recreate_for(&s.step, &ctx, j).await {
                        Ok(rec) => {
                            let r = match failpoint("commit:remove-prev") {
                                Ok(()) => rec.commit().await.map_err(Error::from),
                                Err(e) => Err(e),
                            };
                            if let Err(e) = r {
                                self.leave_leftover(&rec, e).await;
                            }
                        }
                        Err(e) => eprintln!("komodo-rotate: warning: {e}"),
                    }
                }
                Ok(())
            }
            other => Err(unknown(other)),
        }
    }

    async fn undo(&mut self, step: &Step, j: &Journal) -> Result<()> {
        let ctx = RunContext::of(j)?;
        match step.kind.as_str() {
            steps::SNAPSHOT | steps::COMMIT => Ok(()),
            steps::WRITE_FILE => self.undo_write_file(step, &ctx).await,
            steps::GIT_COMMIT | steps::GIT_PUSH => {
                super::git_steps::undo(step, j, self.cfg, &self.journal_dir, &self.git_values())
            }
            steps::CHANGE_DB => match login_works(&self.target, &self.staged.new).await {
                LoginOutcome::Accepted => {
                    let admin = MongoAdmin::connect(&self.target, &self.staged.new).await?;
                    let r = admin
                        .change_password(&ctx.mongo_user, &self.staged.old)
                        .await;
                    admin.close().await;
                    Ok(r?)
                }
                LoginOutcome::Rejected => match login_works(&self.target, &self.staged.old).await {
                    LoginOutcome::Accepted => Ok(()),
                    LoginOutcome::Rejected => Err(Error::Precondition(format!(
                        "MongoDB at {}: neither the old nor the new password of {} logs in",
                        self.target.server(),
                        ctx.mongo_user
                    ))),
                    LoginOutcome::Unreachable(r) => Err(Error::Precondition(r)),
                },
                LoginOutcome::Unreachable(r) => Err(Error::Precondition(r)),
            },
            steps::CHANGE_PG => super::pg_step::undo(self, &ctx).await,
            steps::WRITE_ENV => super::write_env::undo_write_env(
                step,
                &ctx,
                &self.staged,
                self.ids,
                &self.journal_dir,
                &self.kept,
            ),
            steps::RECREATE => self.undo_recreate(step, &ctx, j).await,
            other => Err(unknown(other)),
        }
    }
}

impl LivePlanes<'_> {
    /// What the git steps need to judge compose.env by value (the run's keys, old and new).
    fn git_values(&self) -> super::git_inverse::Values<'_> {
        super::git_inverse::Values {
            ids: self.ids,
            staged: &self.staged,
            kept: &self.kept,
        }
    }

    /// A parked original the commit could not remove: recorded, so verify names it and the next
    /// run removes it (planes::leftovers).
    async fn leave_leftover(&self, rec: &Recreate, e: Error) {
        let prev = rec.prev_name();
        let id = match self.engine.try_inspect(&prev).await {
            Ok(Some(c)) => c.id.unwrap_or_default(),
            _ => String::new(),
        };
        let recorded = id == rec.snapshot().original_id
            && super::leftovers::record(
                self.cfg,
                super::leftovers::Leftover {
                    name: prev.clone(),
                    id,
                },
            )
            .is_ok();
        eprintln!(
            "komodo-rotate: warning: {e}; {prev} is left over{}",
            if recorded {
                " (recorded: the next rotate, rescue or resume removes it)"
            } else {
                ""
            }
        );
    }

    /// Before a repeat recreate (a container an earlier phase of this run already recreated,
    /// whose original is parked as `<name>-prev`): commits the earlier recreate (its
    /// replacement passed its gate; `-prev` is removed so the names are free), then snapshots
    /// the container as the earlier phase left it, under [`snapshot_key`]. Once that snapshot
    /// exists this is a no-op, so a replay after a crash resumes the recreate itself.
    async fn prepare_repeat_recreate(
        &self,
        step: &Step,
        ctx: &RunContext,
        j: &Journal,
    ) -> Result<()> {
        let Some(earlier) = earlier_recreates(step, j).last().copied() else {
            return Ok(());
        };
        let key = snapshot_key(step, j);
        if self.snapshot_path(&key).exists() {
            return Ok(());
        }
        self.recreate_for(earlier, ctx, j).await?.commit().await?;
        let container = step.target.as_deref().unwrap_or_default();
        let snap = Snapshot::take(&self.engine, container, SNAPSHOT_LOG_LINES).await?;
        self.save_snapshot_as(&key, &snap, ctx)
    }
}

fn unknown(kind: &str) -> Error {
    Error::Precondition(format!(
        "the journal names a step kind this build does not know ({kind}); resume it with the build that started the run"
    ))
}

/// change-db's failure, marked untouched when Mongo never got the `updateUser` (only its read-only
/// login check ran before).
fn untouched_if_never_sent(e: MongoError) -> Error {
    if e.never_sent() {
        Error::untouched(e)
    } else {
        e.into()
    }
}
