//! The live planes a run acts on (config, identities, engine, Mongo target, the staged old/new
//! values, the journal dir) and the small helpers shared by the step implementations
//! (`live.rs`) and the proofs (`proof.rs`), so that neither imports the other.

use super::run::{RunContext, FORM_FILE, FORM_URI};
use super::value::eval_set;
pub use super::value::Staged;
use crate::config::Config;
use crate::docker::{uri, Engine, EnvPatch, HealthGate, Recreate, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::Target;
use crate::secret::Secret;
use crate::sops::{Identities, SopsFile};
use crate::txn::{sealed, Journal, Step};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Lines of each container's log kept in its snapshot.
pub(super) const SNAPSHOT_LOG_LINES: usize = 200;
pub use super::layout::{sha256_hex, written_file, PREV_ENV_FILE, WRITTEN_ENV_FILE};

pub struct LivePlanes<'a> {
    pub cfg: &'a Config,
    pub ids: &'a Identities,
    pub engine: Engine,
    pub target: Target,
    pub staged: Staged,
    pub journal_dir: PathBuf,
    /// Containers that do not settle for a reason outside the run's kind (one line each,
    /// container and cause, never a value): the run ends on its own kind, with exit 7.
    pub outside: std::sync::Mutex<Vec<String>>,
    /// The undos by value (`inverse`): each told on stderr, all in the run's audit record.
    pub kept: super::inverse::KeptEdits,
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
        self.journal_dir
            .join(super::layout::snapshot_file(container))
    }

    /// The journaled snapshot of `container`, if the snapshot step took one.
    pub(super) fn load_snapshot(&self, container: &str) -> Result<Option<Snapshot>> {
        load_sealed_snapshot(&self.snapshot_path(container), self.ids)
    }

    /// Seals `snap` into the journal directory under `key` (a container name, or
    /// [`snapshot_key`]'s name for a repeat recreate), replacing an earlier one.
    pub(super) fn save_snapshot_as(
        &self,
        key: &str,
        snap: &Snapshot,
        ctx: &RunContext,
    ) -> Result<()> {
        let name = &snap.name;
        let body = Zeroizing::new(serde_json::to_vec(snap).map_err(|e| {
            Error::Precondition(format!("cannot serialise the snapshot of {name}: {e}"))
        })?);
        let armored = sealed::seal(&body, &self.recipients(ctx)?)
            .map_err(|e| Error::Precondition(e.to_string()))?;
        let p = self.snapshot_path(key);
        fsutil::write_atomic(&p, armored.as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&p, e))
    }

    /// The recreate of `step` (a `recreate` step): its snapshot ([`snapshot_key`]), patched with
    /// the step's `set`, or, with no `set`, every key the context names for it set to NEW.
    pub(super) async fn recreate_for(
        &self,
        step: &Step,
        ctx: &RunContext,
        j: &Journal,
    ) -> Result<Recreate> {
        let container = step.target.as_deref().unwrap_or_default();
        let key = snapshot_key(step, j);
        let p = self.snapshot_path(&key);
        let snap = self.load_snapshot(&key)?.ok_or_else(|| {
            Error::Precondition(format!("{}: no snapshot of {container}", p.display()))
        })?;
        let mut patch = EnvPatch::new();
        for (key, value) in self.patch_of(step, ctx)? {
            // A URI keeps every byte but its password: patched from the snapshot's value.
            let value = if ctx.form(&key) == FORM_URI {
                let was = snap.env_value(&key).ok_or_else(|| {
                    Error::Precondition(format!("{}: {container} has no {key}", p.display()))
                })?;
                uri::with_password(&key, &was, &value)
                    .map_err(|e| Error::Precondition(format!("{container}: {e}")))?
            } else {
                value
            };
            patch = patch.set(key, value);
        }
        Ok(Recreate::from_snapshot(&self.engine, snap, patch).await?)
    }

    /// What a recreate step sets in its container's env, evaluated; the value a URI-form key's
    /// password is to hold. A file-form key keeps its value (the path): write-file changes
    /// the file behind it.
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
            .filter(|k| ctx.form(k) != FORM_FILE)
            .map(|k| (k.clone(), self.staged.new.clone()))
            .collect())
    }

    pub(super) fn recipients(&self, ctx: &RunContext) -> Result<Vec<String>> {
        Ok(SopsFile::load(&ctx.compose_env)?.recipients())
    }
}

/// The sealed snapshot at `p` (a journal dir's `snapshot_file`), if there is one.
pub(super) fn load_sealed_snapshot(
    p: &std::path::Path,
    ids: &Identities,
) -> Result<Option<Snapshot>> {
    let armored = match std::fs::read_to_string(p) {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(p, e)),
    };
    let bytes = sealed::open(&armored, ids)
        .map_err(|e| Error::Precondition(format!("{}: {e}", p.display())))?;
    let snap: Snapshot = serde_json::from_slice(bytes.expose_secret())
        .map_err(|_| Error::Precondition(format!("{}: not a container snapshot", p.display())))?;
    Ok(Some(snap))
}

/// The recreate steps of `j` on the same container as `step`, before it (a multi-phase plan
/// recreates a container once per phase that changes it).
pub(super) fn earlier_recreates<'j>(step: &Step, j: &'j Journal) -> Vec<&'j Step> {
    let at = j
        .steps
        .iter()
        .position(|r| r.step == *step)
        .unwrap_or(j.steps.len());
    j.steps[..at]
        .iter()
        .map(|r| &r.step)
        .filter(|s| s.is(super::steps::RECREATE) && s.target == step.target)
        .collect()
}

/// The name of the snapshot a recreate step starts from: its container's name for the first
/// recreate of that container in the run (the snapshot step took it), else
/// `<container>@<phase>`: the container as the earlier phase left it, taken by the step itself.
pub(super) fn snapshot_key(step: &Step, j: &Journal) -> String {
    let container = step.target.as_deref().unwrap_or_default();
    let earlier = earlier_recreates(step, j).len();
    if earlier == 0 {
        return container.to_string();
    }
    match &step.phase {
        Some(p) => format!("{container}@{p}"),
        None => format!("{container}@{earlier}"),
    }
}

/// `bytes` are exactly what write-env `step` recorded writing into compose.env (false when it
/// recorded nothing: it never wrote). For the other undos that touch compose.env (git's), so
/// they too restore only over this run's own bytes. Here, beside the journal dir's names, so
/// write-env (live.rs) and git's undos (git_steps.rs) share it without importing each other.
pub fn wrote_exactly(journal_dir: &std::path::Path, step: &Step, bytes: &[u8]) -> Result<bool> {
    let w = journal_dir.join(written_file(step));
    match std::fs::read_to_string(&w) {
        Ok(h) => Ok(h.trim() == sha256_hex(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(&w, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planes::steps;

    #[test]
    fn a_container_recreated_again_in_a_later_phase_gets_a_snapshot_of_its_own() {
        let p = |s: Step, ph: &str| s.in_phase(Some(ph));
        let plan = vec![
            steps::snapshot(),
            p(steps::recreate("per"), "accept-both").with("K", "old,new"),
            p(steps::recreate("core"), "send-new").with("C", "new"),
            p(steps::recreate("per"), "accept-new").with("K", "new"),
            steps::commit(),
        ];
        let j = steps::passkey_journal(&plan);
        assert_eq!(snapshot_key(&plan[1], &j), "per");
        assert_eq!(snapshot_key(&plan[2], &j), "core");
        assert_eq!(snapshot_key(&plan[3], &j), "per@accept-new");
        assert_eq!(earlier_recreates(&plan[3], &j), vec![&plan[1]]);
        assert!(earlier_recreates(&plan[1], &j).is_empty());
    }
}
