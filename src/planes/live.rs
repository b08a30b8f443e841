//! The steps of a run, applied to the real planes. Every apply first checks whether its effect
//! is already there (so `resume` can replay it), and every undo works from a partly applied
//! step (so a step that died in flight can be rolled back).

use super::context::{
    earlier_recreates, sha256_hex, snapshot_key, written_file, SNAPSHOT_LOG_LINES,
};
pub use super::context::{LivePlanes, Staged, PREV_ENV_FILE, WRITTEN_ENV_FILE};
use super::run::RunContext;
use super::steps;
use super::value::eval_set;
use crate::config::Config;
use crate::docker::{DockerError, Recreate, RecreateStep, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::{login_works, LoginOutcome, MongoAdmin};
use crate::sops::{write_verified, SopsFile};
use crate::txn::failpoint::failpoint;
use crate::txn::{sealed, Journal, Planes, Step};
use std::path::{Path, PathBuf};
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
                let admin = MongoAdmin::connect(&self.target, &self.staged.old).await?;
                let r = admin
                    .change_password(&ctx.mongo_user, &self.staged.new)
                    .await;
                admin.close().await;
                Ok(r?)
            }
            steps::WRITE_ENV => {
                if ctx.env_already_new {
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
                super::git_steps::apply(step, j, self.cfg, &self.journal_dir)
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
                super::git_steps::undo(step, j, self.cfg, &self.journal_dir)
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
            steps::WRITE_ENV => undo_write_env(
                &self.journal_dir.join(prev_file(step)),
                &self.journal_dir.join(written_file(step)),
                &ctx.compose_env,
            ),
            steps::RECREATE => self.undo_recreate(step, &ctx, j).await,
            other => Err(unknown(other)),
        }
    }
}

impl LivePlanes<'_> {
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

    /// Sets the step's keys (no `set`: the run's key to NEW) in compose.env. Already there: done.
    fn write_env(&self, step: &Step, ctx: &RunContext, run_id: &str) -> Result<()> {
        let path = &ctx.compose_env;
        let values = if step.set.is_empty() {
            vec![(ctx.env_key.clone(), self.staged.new.clone())]
        } else {
            eval_set(&step.set, &self.staged)?
        };
        let _lock = env_lock(path)?;
        let file = SopsFile::load(path)?;
        let plain = file.decrypt(self.ids)?;
        if values
            .iter()
            .all(|(k, v)| plain.get(k).is_some_and(|now| now.ct_eq(v)))
        {
            return Ok(());
        }
        keep_previous(&self.journal_dir.join(prev_file(step)), file.bytes())?;
        keep_backup(self.cfg, run_id, file.bytes())?;
        let pairs: Vec<(&str, &crate::secret::Secret)> =
            values.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let bytes = file.with_values(self.ids, &pairs)?;
        // Recorded before the write, so an undo after a crash in between still knows.
        let w = self.journal_dir.join(written_file(step));
        fsutil::write_atomic(&w, sha256_hex(&bytes).as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&w, e))?;
        write_verified(path, &bytes, self.ids)?;
        prune_backups(self.cfg);
        Ok(())
    }
}

fn unknown(kind: &str) -> Error {
    Error::Precondition(format!(
        "the journal names a step kind this build does not know ({kind}); resume it with the build that started the run"
    ))
}

/// Where write-env keeps the bytes it replaced: one file per phase, so each phase's undo
/// returns to the state before that phase.
fn prev_file(step: &Step) -> String {
    match &step.phase {
        Some(p) => format!("{PREV_ENV_FILE}.{p}"),
        None => PREV_ENV_FILE.into(),
    }
}

fn env_lock(path: &Path) -> Result<fsutil::EnvLock> {
    fsutil::EnvLock::acquire(path, fsutil::ENV_LOCK_WAIT).map_err(|e| Error::io(path, e))
}

/// Puts compose.env's previous bytes back, but only over exactly the bytes write-env wrote: an
/// edit made meanwhile (another key changed with `sops set`) is never clobbered; the undo fails
/// instead, naming the file, and the rollback stops (exit 5).
pub fn undo_write_env(prev: &Path, w: &Path, path: &Path) -> Result<()> {
    let old = match std::fs::read(prev) {
        Ok(b) => b,
        // write-env never saved the old bytes, so it never wrote either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(prev, e)),
    };
    let _lock = env_lock(path)?;
    let now = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if now == old {
        return Ok(());
    }
    let written = match std::fs::read_to_string(w) {
        Ok(h) => Some(h),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(w, e)),
    };
    if written.is_some_and(|h| h.trim() == sha256_hex(&now)) {
        return fsutil::write_atomic(path, &old, Mode::KeepOr0600).map_err(|e| Error::io(path, e));
    }
    Err(Error::Precondition(format!(
        "{} changed under the run (it holds neither the original bytes nor what write-env wrote): not restored, so the edit made meanwhile is kept; the original is in {}",
        path.display(),
        prev.display()
    )))
}

/// Saves the bytes write-env replaces, once: on a replay the first copy is the original.
fn keep_previous(path: &Path, bytes: &[u8]) -> Result<()> {
    match fsutil::write_new(path, bytes, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The backups in `state_dir/backups/`, oldest first (their names sort by run id, i.e. by time).
pub fn backups(cfg: &Config) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cfg.backup_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("compose.env."))
        })
        .collect();
    v.sort();
    v
}

/// Keeps the newest `[backups] keep` backups and deletes the rest: each one holds an old
/// password readable by every recipient ever listed. Cleanup only: a failure is a warning.
pub fn prune_backups(cfg: &Config) {
    let all = backups(cfg);
    let excess = all.len().saturating_sub(cfg.backups.keep);
    for p in &all[..excess] {
        if let Err(e) = std::fs::remove_file(p) {
            eprintln!(
                "komodo-rotate: warning: cannot remove old backup {}: {e}",
                p.display()
            );
        }
    }
}

/// A copy of the replaced ciphertext in `state_dir/backups/`, for the rescue ladder. It is
/// ciphertext, so keeping it does not widen who can read the secret.
fn keep_backup(cfg: &Config, run_id: &str, bytes: &[u8]) -> Result<()> {
    let dir = cfg.backup_dir();
    crate::txn::lock::ensure_private_dir(&dir)?;
    let p = dir.join(format!("compose.env.{run_id}"));
    match fsutil::write_new(&p, bytes, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal dir and a compose.env where write-env replaced `ORIG` with `WROTE`.
    fn after_write_env() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let jd = d.path().join("journal");
        std::fs::create_dir(&jd).unwrap();
        let env = d.path().join("compose.env");
        keep_previous(&jd.join(PREV_ENV_FILE), b"ORIG").unwrap();
        std::fs::write(jd.join(WRITTEN_ENV_FILE), sha256_hex(b"WROTE")).unwrap();
        std::fs::write(&env, b"WROTE").unwrap();
        (d, jd, env)
    }

    #[test]
    fn undo_restores_over_exactly_what_write_env_wrote() {
        let (_d, jd, env) = after_write_env();
        undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
        // Idempotent: a replayed undo finds the original and changes nothing.
        undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
    }

    #[test]
    fn undo_never_clobbers_an_edit_made_meanwhile() {
        let (_d, jd, env) = after_write_env();
        std::fs::write(&env, b"WROTE+another key set by sops").unwrap();
        let e =
            undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap_err();
        assert!(e.to_string().contains(&env.display().to_string()), "{e}");
        assert!(e.to_string().contains("changed under the run"), "{e}");
        assert_eq!(
            std::fs::read(&env).unwrap(),
            b"WROTE+another key set by sops"
        );
        // Without a record of what was written, a difference is an edit too.
        std::fs::remove_file(jd.join(WRITTEN_ENV_FILE)).unwrap();
        std::fs::write(&env, b"WROTE").unwrap();
        assert!(undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).is_err());
        assert_eq!(std::fs::read(&env).unwrap(), b"WROTE");
    }

    /// A two-phase plan writes compose.env twice; each phase keeps its own saved bytes, so undoing
    /// the newer phase returns to the older phase's file, and undoing that one to the original.
    #[test]
    fn each_phase_undoes_to_the_state_before_it() {
        let d = tempfile::tempdir().unwrap();
        let jd = d.path();
        let env = d.path().join("compose.env");
        let one = Step::new(steps::WRITE_ENV).in_phase(Some("one"));
        let two = Step::new(steps::WRITE_ENV).in_phase(Some("two"));
        assert_ne!(prev_file(&one), prev_file(&two));
        assert_eq!(prev_file(&steps::write_env()), PREV_ENV_FILE);
        for (step, before, after) in [(&one, "ORIG", "P1"), (&two, "P1", "P2")] {
            keep_previous(&jd.join(prev_file(step)), before.as_bytes()).unwrap();
            std::fs::write(jd.join(written_file(step)), sha256_hex(after.as_bytes())).unwrap();
        }
        std::fs::write(&env, b"P2").unwrap();
        let undo =
            |s: &Step| undo_write_env(&jd.join(prev_file(s)), &jd.join(written_file(s)), &env);
        undo(&two).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"P1");
        undo(&one).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
    }

    #[test]
    fn undo_without_saved_bytes_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("compose.env");
        std::fs::write(&env, b"SOMETHING").unwrap();
        undo_write_env(
            &d.path().join(PREV_ENV_FILE),
            &d.path().join(WRITTEN_ENV_FILE),
            &env,
        )
        .unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"SOMETHING");
    }

    #[test]
    fn prune_keeps_the_newest_backups_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.env"), b"x").unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(
            &p,
            "compose_env = \"compose.env\"\nstate_dir = \"state\"\n[backups]\nkeep = 2\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&p)).unwrap();
        let dir = cfg.backup_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for id in [
            "20260101T000000Z-aa",
            "20260301T000000Z-cc",
            "20260201T000000Z-bb",
        ] {
            std::fs::write(dir.join(format!("compose.env.{id}")), b"old").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"not a backup").unwrap();
        prune_backups(&cfg);
        let left: Vec<String> = backups(&cfg)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                "compose.env.20260201T000000Z-bb",
                "compose.env.20260301T000000Z-cc"
            ]
        );
        assert!(dir.join("notes.txt").exists());
    }
}
