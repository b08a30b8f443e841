//! What the git steps check about compose.env in the work tree around git's own reads and
//! writes of it: git-commit commits only the bytes this run's last write-env wrote (checked
//! before the commit and again on the blob committed), and an undo writes HEAD's copy into the
//! work tree only over HEAD's bytes or the run's own. A `sops set` by someone else does not take
//! our lock, so what git read is checked after the fact as well.

use super::run::GitTarget;
use super::steps;
use crate::error::{Error, Result};
use crate::fsutil::{self, EnvLock};
use crate::git::pull::identical_to;
use crate::git::Repo;
use crate::txn::{Journal, Step};
use std::path::Path;

fn last_write(j: &Journal) -> Option<&Step> {
    j.steps
        .iter()
        .rev()
        .find(|r| r.step.is(steps::WRITE_ENV))
        .map(|r| &r.step)
}

/// Before an undo puts HEAD's copy of the env file into the work tree (`revert_commit`): the
/// file must hold HEAD's bytes already, or exactly what this run's last write-env wrote. Anything
/// else is an edit made meanwhile (another key set with `sops set`): it is kept and the undo
/// fails naming the file, so the rollback stops (exit 5). The returned lock is held through the
/// revert, so no edit slips in between the check and git's write.
pub(super) fn guard_work_tree(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    ours: &str,
) -> Result<EnvLock> {
    let file = t.worktree.join(&t.path);
    let lock = EnvLock::acquire(&file, fsutil::ENV_LOCK_WAIT).map_err(|e| Error::io(&file, e))?;
    if identical_to(repo, "HEAD", &t.path, &file)? {
        return Ok(lock);
    }
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    if let Some(step) = last_write(j) {
        if super::context::wrote_exactly(dir, step, &bytes)? {
            return Ok(lock);
        }
    }
    Err(Error::Precondition(format!(
        "{} changed under the run (it holds neither HEAD's bytes nor what this run wrote): the git undo did not restore it, so the edit made meanwhile is kept; to finish the rollback, keep a copy of that change, put back what the run committed (`git -C {} checkout {ours} -- {}`), run `komodo-rotate resume`, then make the change again",
        file.display(),
        t.worktree.display(),
        t.path
    )))
}

fn foreign(t: &GitTarget) -> Error {
    Error::Precondition(format!(
        "{} changed under the run (it holds another edit than what this run wrote): not committed, the edit is kept",
        t.worktree.join(&t.path).display()
    ))
}

/// git-commit commits only what this run's last write-env wrote: a colleague's `sops set` that
/// read the file before write-env and wrote it back after would otherwise go out under our
/// trailer, and a rollback's revert would take their edit away with ours.
pub(super) fn refuse_foreign_bytes(t: &GitTarget, j: &Journal, dir: &Path) -> Result<()> {
    let Some(step) = last_write(j) else {
        return Ok(());
    };
    let file = t.worktree.join(&t.path);
    let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    if super::context::wrote_exactly(dir, step, &bytes)? {
        return Ok(());
    }
    Err(foreign(t))
}

/// After git-commit made commit `id`: the blob it holds is what the run's last write-env wrote.
/// git reads the work tree again after [`refuse_foreign_bytes`], so an edit landing between the
/// two would otherwise go out under our trailer; the caller then takes the commit back out (the
/// work tree keeps the edit).
pub(super) fn committed_exactly_ours(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    id: &str,
) -> Result<()> {
    let Some(step) = last_write(j) else {
        return Ok(());
    };
    match repo.blob(id, &t.path)? {
        Some(b) if super::context::wrote_exactly(dir, step, &b)? => Ok(()),
        _ => Err(foreign(t)),
    }
}
