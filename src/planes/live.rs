//! The steps of a run, applied to the real planes. Every apply first checks whether its effect
//! is already there (so `resume` can replay it), and every undo works from a partly applied
//! step (so a step that died in flight can be rolled back).

use crate::config::Config;
use crate::docker::{Engine, EnvPatch, HealthGate, Recreate, RecreateStep, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::{login_works, LoginOutcome, MongoAdmin, Target};
use crate::secret::Secret;
use crate::sops::{write_verified, Identities, SopsFile};
use crate::txn::{sealed, Journal, Planes, Step};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Lines of each container's log kept in its snapshot.
const SNAPSHOT_LOG_LINES: usize = 200;
pub const PREV_ENV_FILE: &str = "compose.env.prev";

/// The old and new value of the secret being rotated. Sealed in the journal, never printed.
pub struct Staged {
    pub old: Secret,
    pub new: Secret,
}

impl Staged {
    pub fn seal(&self, recipients: &[String]) -> Result<String> {
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({
                "old": self.old.expose(),
                "new": self.new.expose(),
            }))
            .map_err(|e| Error::Precondition(format!("cannot serialise staged secrets: {e}")))?,
        );
        sealed::seal(&body, recipients).map_err(|e| Error::Precondition(e.to_string()))
    }

    pub fn open(armored: &str, ids: &Identities) -> Result<Staged> {
        let bytes = sealed::open(armored, ids)
            .map_err(|e| Error::Precondition(format!("journal secrets: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Pair {
            old: String,
            new: String,
        }
        let p: Pair = serde_json::from_slice(bytes.expose_secret()).map_err(|_| {
            Error::Precondition("journal secrets are not in the expected form".into())
        })?;
        Ok(Staged {
            old: Secret::new(p.old),
            new: Secret::new(p.new),
        })
    }
}

pub struct LivePlanes<'a> {
    pub cfg: &'a Config,
    pub ids: &'a Identities,
    pub engine: Engine,
    pub target: Target,
    pub staged: Staged,
    pub journal_dir: PathBuf,
}

impl LivePlanes<'_> {
    fn gate(&self) -> HealthGate {
        HealthGate {
            timeout: self.cfg.health.timeout,
            stable_for: self.cfg.health.stable_for,
            ..HealthGate::default()
        }
    }

    fn snapshot_path(&self, container: &str) -> PathBuf {
        self.journal_dir.join(format!("snapshot-{container}.age"))
    }

    async fn recreate_for(&self, container: &str, j: &Journal) -> Result<Recreate> {
        let p = self.snapshot_path(container);
        let armored = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let bytes = sealed::open(&armored, self.ids)
            .map_err(|e| Error::Precondition(format!("{}: {e}", p.display())))?;
        let snap: Snapshot = serde_json::from_slice(bytes.expose_secret()).map_err(|_| {
            Error::Precondition(format!("{}: not a container snapshot", p.display()))
        })?;
        let mut patch = EnvPatch::new();
        for key in j
            .context
            .container_keys
            .get(container)
            .into_iter()
            .flatten()
        {
            patch = patch.set(key.clone(), self.staged.new.clone());
        }
        Ok(Recreate::from_snapshot(&self.engine, snap, patch).await?)
    }

    fn recipients(&self, j: &Journal) -> Result<Vec<String>> {
        Ok(SopsFile::load(&j.context.compose_env)?.recipients())
    }
}

impl Planes for LivePlanes<'_> {
    async fn apply(&mut self, step: &Step, j: &Journal) -> Result<()> {
        match step {
            Step::Snapshot => {
                let recipients = self.recipients(j)?;
                for (name, keys) in &j.context.container_keys {
                    if keys.is_empty() {
                        continue;
                    }
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
            Step::ChangeDb => {
                if login_works(&self.target, &self.staged.new).await == LoginOutcome::Accepted {
                    return Ok(());
                }
                let admin = MongoAdmin::connect(&self.target, &self.staged.old).await?;
                let r = admin
                    .change_password(&j.context.mongo_user, &self.staged.new)
                    .await;
                admin.close().await;
                Ok(r?)
            }
            Step::WriteEnv => {
                if j.context.env_already_new {
                    return Ok(());
                }
                let path = &j.context.compose_env;
                let file = SopsFile::load(path)?;
                let plain = file.decrypt(self.ids)?;
                if plain
                    .get(&j.context.env_key)
                    .is_some_and(|v| v.ct_eq(&self.staged.new))
                {
                    return Ok(());
                }
                keep_previous(&self.journal_dir.join(PREV_ENV_FILE), file.bytes())?;
                keep_backup(self.cfg, &j.run_id, file.bytes())?;
                let bytes =
                    file.with_values(self.ids, &[(j.context.env_key.as_str(), &self.staged.new)])?;
                write_verified(path, &bytes, self.ids)?;
                Ok(())
            }
            Step::Recreate { container } => {
                let rec = self.recreate_for(container, j).await?;
                rec.finish_through(RecreateStep::HealthGate, &self.gate())
                    .await?;
                Ok(())
            }
            Step::GitCommit | Step::GitPush => {
                super::git_steps::apply(step, j, self.cfg, &self.journal_dir)
            }
            Step::Commit => {
                // The new state is live and healthy. Removing the parked originals is cleanup:
                // a failure here is reported, never rolled back.
                for s in &j.steps {
                    if let Step::Recreate { container } = &s.step {
                        match self.recreate_for(container, j).await {
                            Ok(rec) => {
                                if let Err(e) = rec.commit().await {
                                    eprintln!("komodo-rotate: warning: {e}");
                                }
                            }
                            Err(e) => eprintln!("komodo-rotate: warning: {e}"),
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn undo(&mut self, step: &Step, j: &Journal) -> Result<()> {
        match step {
            Step::Snapshot | Step::Commit => Ok(()),
            Step::GitCommit | Step::GitPush => {
                super::git_steps::undo(step, j, self.cfg, &self.journal_dir)
            }
            Step::ChangeDb => match login_works(&self.target, &self.staged.new).await {
                LoginOutcome::Accepted => {
                    let admin = MongoAdmin::connect(&self.target, &self.staged.new).await?;
                    let r = admin
                        .change_password(&j.context.mongo_user, &self.staged.old)
                        .await;
                    admin.close().await;
                    Ok(r?)
                }
                LoginOutcome::Rejected => match login_works(&self.target, &self.staged.old).await {
                    LoginOutcome::Accepted => Ok(()),
                    LoginOutcome::Rejected => Err(Error::Precondition(format!(
                        "MongoDB at {}: neither the old nor the new password of {} logs in",
                        self.target.server(),
                        j.context.mongo_user
                    ))),
                    LoginOutcome::Unreachable(r) => Err(Error::Precondition(r)),
                },
                LoginOutcome::Unreachable(r) => Err(Error::Precondition(r)),
            },
            Step::WriteEnv => {
                let prev = self.journal_dir.join(PREV_ENV_FILE);
                let old = match std::fs::read(&prev) {
                    Ok(b) => b,
                    // write-env never saved the old bytes, so it never wrote either.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(Error::io(&prev, e)),
                };
                let path = &j.context.compose_env;
                let now = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                if now != old {
                    fsutil::write_atomic(path, &old, Mode::KeepOr0600)
                        .map_err(|e| Error::io(path, e))?;
                }
                Ok(())
            }
            Step::Recreate { container } => {
                if !self.snapshot_path(container).exists() {
                    return Ok(());
                }
                let rec = self.recreate_for(container, j).await?;
                rec.undo().await?;
                Ok(())
            }
        }
    }
}

/// Saves the bytes write-env replaces, once: on a replay the first copy is the original.
fn keep_previous(path: &Path, bytes: &[u8]) -> Result<()> {
    match fsutil::write_new(path, bytes, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
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
