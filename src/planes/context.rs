//! The live planes a run acts on (config, identities, engine, Mongo target, the staged old/new
//! values, the journal dir) and the small helpers shared by the step implementations
//! (`live.rs`) and the proofs (`proof.rs`), so that neither imports the other.

use super::run::RunContext;
use super::value::eval_set;
use crate::config::Config;
use crate::docker::{Engine, EnvPatch, HealthGate, Recreate, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::Target;
use crate::secret::Secret;
use crate::sops::{Identities, SopsFile};
use crate::txn::{sealed, Step};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Lines of each container's log kept in its snapshot.
pub(super) const SNAPSHOT_LOG_LINES: usize = 200;
pub const PREV_ENV_FILE: &str = "compose.env.prev";
/// SHA-256 (hex) of the bytes write-env wrote: its undo restores only over exactly those bytes.
pub const WRITTEN_ENV_FILE: &str = "compose.env.written";

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
    pub(super) fn gate(&self) -> HealthGate {
        HealthGate {
            timeout: self.cfg.health.timeout,
            stable_for: self.cfg.health.stable_for,
            ..HealthGate::default()
        }
    }

    pub(super) fn snapshot_path(&self, container: &str) -> PathBuf {
        self.journal_dir.join(format!("snapshot-{container}.age"))
    }

    /// The journaled snapshot of `container`, if the snapshot step took one.
    pub(super) fn load_snapshot(&self, container: &str) -> Result<Option<Snapshot>> {
        let p = self.snapshot_path(container);
        let armored = match std::fs::read_to_string(&p) {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&p, e)),
        };
        let bytes = sealed::open(&armored, self.ids)
            .map_err(|e| Error::Precondition(format!("{}: {e}", p.display())))?;
        let snap: Snapshot = serde_json::from_slice(bytes.expose_secret()).map_err(|_| {
            Error::Precondition(format!("{}: not a container snapshot", p.display()))
        })?;
        Ok(Some(snap))
    }

    /// Seals `snap` into the journal directory (replacing an earlier one of that container).
    pub(super) fn save_snapshot(&self, snap: &Snapshot, ctx: &RunContext) -> Result<()> {
        let name = &snap.name;
        let body = Zeroizing::new(serde_json::to_vec(snap).map_err(|e| {
            Error::Precondition(format!("cannot serialise the snapshot of {name}: {e}"))
        })?);
        let armored = sealed::seal(&body, &self.recipients(ctx)?)
            .map_err(|e| Error::Precondition(e.to_string()))?;
        let p = self.snapshot_path(name);
        fsutil::write_atomic(&p, armored.as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&p, e))
    }

    /// The recreate of `step` (a `recreate` step): its container's snapshot, patched with the
    /// step's `set`, or, with no `set`, every key the context names for it set to NEW.
    pub(super) async fn recreate_for(&self, step: &Step, ctx: &RunContext) -> Result<Recreate> {
        let container = step.target.as_deref().unwrap_or_default();
        let p = self.snapshot_path(container);
        let snap = self.load_snapshot(container)?.ok_or_else(|| {
            Error::Precondition(format!("{}: no snapshot of {container}", p.display()))
        })?;
        let mut patch = EnvPatch::new();
        for (key, value) in self.patch_of(step, ctx)? {
            patch = patch.set(key, value);
        }
        Ok(Recreate::from_snapshot(&self.engine, snap, patch).await?)
    }

    /// What a recreate step sets in its container's env, evaluated.
    pub(super) fn patch_of(&self, step: &Step, ctx: &RunContext) -> Result<Vec<(String, Secret)>> {
        if !step.set.is_empty() {
            return eval_set(&step.set, &self.staged);
        }
        let container = step.target.as_deref().unwrap_or_default();
        Ok(ctx
            .container_keys
            .get(container)
            .into_iter()
            .flatten()
            .map(|k| (k.clone(), self.staged.new.clone()))
            .collect())
    }

    pub(super) fn recipients(&self, ctx: &RunContext) -> Result<Vec<String>> {
        Ok(SopsFile::load(&ctx.compose_env)?.recipients())
    }
}
