//! The git steps of a run (`git-commit`, `git-push`) and the git pre-flight, applied through
//! the git plane (src/git/). Every apply first asks "already done?" so `resume` can replay it;
//! every undo works from a partly applied step. Commit ids are kept in the journal dir next to
//! `compose.env.prev`: `git-commit.id` (ours) and `git-revert.id` (the revert git-push's undo
//! pushed, which also takes our commit back, so git-commit's undo then has nothing to do).
//!
//! Undo order: git-push's undo runs first (revert on the remote branch when ours reached it),
//! then git-commit's (drop our commit while HEAD is still it, the work tree left as it is for
//! write-env's undo; else a revert), then write-env's (old bytes back, equal to HEAD's). Our
//! commit is found by its `Komodo-Rotate-Run` trailer, the recorded id only a fallback; a revert
//! writes compose.env only over the bytes this run wrote (see `git_guard.rs`).

use super::git_guard::{committed_exactly_ours, guard_work_tree, refuse_foreign_bytes};
use super::git_inverse::{self, Held, Values};
use super::run::{GitTarget, RunContext};
use super::steps;
use crate::config::{Config, GitMode};
use crate::error::{Error, Result};
use crate::fsutil::EnvLock;
use crate::fsutil::{self, Mode};
use crate::git::publish::push_with_one_retry;
use crate::git::pull::identical_to;
use crate::git::Repo;
use crate::txn::{Journal, Step};
use std::path::Path;

pub use super::layout::{COMMIT_ID_FILE, REVERT_ID_FILE};

/// The git pre-flight (read-only; a refusal is exit 3 with what to do). Resolves `[git] mode`:
/// `None` when the git steps are not in the plan.
pub fn preflight(cfg: &Config) -> Result<Option<GitTarget>> {
    let g = &cfg.git;
    if g.mode == GitMode::Off {
        return Ok(None);
    }
    let explicit = g.mode != GitMode::Auto;
    let env = cfg.compose_env.display();
    let Some((repo, rel)) = Repo::discover(&cfg.compose_env, g.network_timeout)? else {
        if explicit {
            return Err(refuse(format!(
                "[git] mode = \"{}\" but {env} is not in a git work tree; set [git] mode = \"off\" or \"auto\"",
                g.mode.as_str()
            )));
        }
        return Ok(None);
    };
    let wt = repo.worktree.display().to_string();
    if !repo.is_tracked(&rel)? {
        if explicit {
            return Err(refuse(format!(
                "[git] mode = \"{}\" but {rel} is not tracked in {wt}; commit it (`git -C {wt} add {rel}`) or set [git] mode = \"off\"",
                g.mode.as_str()
            )));
        }
        return Ok(None);
    }
    if repo.is_modified(&rel)? {
        return Err(refuse(format!(
            "{rel} has uncommitted changes in {wt}: commit or discard them first (`git -C {wt} diff -- {rel}`); a rotation commits only its own change"
        )));
    }
    let push = match g.mode {
        GitMode::Off | GitMode::Commit => None,
        GitMode::Push | GitMode::Auto => {
            let up = repo.upstream()?;
            let remote = non_empty(&g.remote).or_else(|| up.as_ref().map(|u| u.remote.clone()));
            let branch = non_empty(&g.branch).or_else(|| up.as_ref().map(|u| u.branch.clone()));
            match (remote, branch) {
                (Some(r), Some(b)) => Some((r, b)),
                _ if g.mode == GitMode::Push => {
                    return Err(refuse(format!(
                        "[git] mode = \"push\" but the checked-out branch of {wt} has no upstream: set [git] remote and branch, or `git -C {wt} branch -u origin/main`"
                    )))
                }
                _ => None,
            }
        }
    };
    if let Some((remote, branch)) = &push {
        let shown = crate::git::run::redact_urls(remote);
        repo.fetch(remote).map_err(|e| {
            refuse(format!(
                "git pre-flight: {e}; fix access to {shown} or set [git] mode = \"commit\""
            ))
        })?;
        let tracking = format!("refs/remotes/{remote}/{branch}");
        let n = repo.commits_touching(&format!("HEAD..{tracking}"), &rel)?;
        if n > 0 {
            return Err(refuse(format!(
                "{shown}/{branch} has {n} commit(s) changing {rel} that {wt} lacks: pull first (`git -C {wt} pull --ff-only`), or the rotation would revert them"
            )));
        }
        repo.push_dry_run(remote, branch).map_err(|e| {
            refuse(format!(
                "git pre-flight: {e}; pull first if behind (`git -C {wt} pull --ff-only`), fix the credentials, or set [git] mode = \"commit\""
            ))
        })?;
    }
    Ok(Some(GitTarget {
        worktree: repo.worktree,
        path: rel,
        push,
    }))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn refuse(msg: String) -> Error {
    Error::Precondition(msg)
}

/// git-commit right after the last write-env (the file's final state); git-push as the last step before commit.
pub fn add_steps(steps: &mut Vec<Step>, target: Option<&GitTarget>) {
    let Some(t) = target else { return };
    let at = steps
        .iter()
        .rposition(|s| s.is(steps::WRITE_ENV))
        .map_or(0, |i| i + 1);
    steps.insert(at, steps::git_commit());
    if t.push.is_some() {
        let end = steps
            .iter()
            .position(|s| s.is(steps::COMMIT))
            .unwrap_or(steps.len());
        steps.insert(end, steps::git_push());
    }
}

fn repo(cfg: &Config, t: &GitTarget) -> Result<Repo> {
    Ok(Repo::open(&t.worktree, cfg.git.network_timeout)?)
}

/// The run's git target and its repository; None when the run has no git steps.
fn target(j: &Journal, cfg: &Config) -> Result<Option<(GitTarget, Repo)>> {
    let Some(t) = RunContext::of(j)?.git else {
        return Ok(None);
    };
    let repo = repo(cfg, &t)?;
    Ok(Some((t, repo)))
}

/// The trailer that marks our commit: ids change under a rebase-and-retry or a rewording
/// hook, the trailer does not. Lookups never trust a recorded id alone.
pub const RUN_TRAILER: &str = "Komodo-Rotate-Run";

/// How far back in a history our commit is looked for (it is at most a few commits old).
const TRAILER_DEPTH: u32 = 200;

fn message(cfg: &Config, j: &Journal) -> String {
    let m = cfg.git.message(&j.secret, &j.run_id);
    format!("{}\n\n{RUN_TRAILER}: {}\n", m.trim_end(), j.run_id)
}

/// This run's commit in `rev`'s history, by its trailer.
fn ours_in(repo: &Repo, j: &Journal, rev: &str) -> Result<Option<String>> {
    Ok(repo.find_by_trailer(rev, RUN_TRAILER, &j.run_id, TRAILER_DEPTH)?)
}

fn undo_message(j: &Journal) -> String {
    format!("komodo-rotate: roll back {} (run {})", j.secret, j.run_id)
}

fn read_id(dir: &Path, file: &str) -> Result<Option<String>> {
    let p = dir.join(file);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn write_id(dir: &Path, file: &str, id: &str) -> Result<()> {
    let p = dir.join(file);
    fsutil::write_atomic(&p, format!("{id}\n").as_bytes(), Mode::Exactly(0o600))
        .map_err(|e| Error::io(&p, e))
}

/// Our commit in HEAD's history: found by this run's trailer (a rebase or a rewording hook
/// changes the id), else the recorded id. Recorded when found, for the next step.
fn our_commit(repo: &Repo, j: &Journal, dir: &Path) -> Result<Option<String>> {
    if let Some(id) = ours_in(repo, j, "HEAD")? {
        if read_id(dir, COMMIT_ID_FILE)?.as_deref() != Some(id.as_str()) {
            write_id(dir, COMMIT_ID_FILE, &id)?;
        }
        return Ok(Some(id));
    }
    read_id(dir, COMMIT_ID_FILE)
}

/// Applies git-commit or git-push (other steps: nothing).
pub fn apply(step: &Step, j: &Journal, cfg: &Config, dir: &Path, v: &Values<'_>) -> Result<()> {
    let Some((t, repo)) = target(j, cfg)? else {
        return Ok(());
    };
    let t = &t;
    match step.kind.as_str() {
        steps::GIT_COMMIT => {
            if ours_in(&repo, j, "HEAD")?.is_some() {
                return Ok(());
            }
            if !repo.is_modified(&t.path)? {
                // The file already equals HEAD's: there is nothing of ours to commit.
                return Ok(());
            }
            refuse_foreign_bytes(t, j, dir)?;
            let id = repo.commit_file(&t.path, &message(cfg, j))?;
            // git read the file again after the check: an edit landing in between went in.
            if let Err(e) = committed_exactly_ours(&repo, t, j, dir, &id) {
                repo.undo_commit(&id, &t.path, &undo_message(j))?;
                return Err(e);
            }
            write_id(dir, COMMIT_ID_FILE, &id)
        }
        steps::GIT_PUSH => {
            let Some((remote, branch)) = &t.push else {
                return Ok(());
            };
            // Ours already on the remote branch (a replay after a crash, or somebody's own
            // push took it along and the branch moved on since): done. Pushing HEAD again
            // would be refused as stale and roll back into a revert that conflicts.
            repo.fetch(remote)?;
            let tracking = format!("refs/remotes/{remote}/{branch}");
            if ours_in(&repo, j, &tracking)?.is_some() {
                return Ok(());
            }
            // No commit of ours, but the run's write went out under someone else's (swept in by
            // their `commit -a`): the remote branch holding the run's values is the push done.
            if ours_in(&repo, j, "HEAD")?.is_none()
                && matches!(
                    git_inverse::held_at(&repo, &tracking, t, j, dir, v)?,
                    Held::AllRun
                )
            {
                return Ok(());
            }
            // A retry replays only commits the remote lacks.
            push_with_one_retry(&repo, &t.path, remote, branch)?;
            // A retry replays our commit onto the moved branch (a new id): record it.
            our_commit(&repo, j, dir)?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Undoes git-commit or git-push, from any partial state.
pub fn undo(step: &Step, j: &Journal, cfg: &Config, dir: &Path, v: &Values<'_>) -> Result<()> {
    let Some((t, repo)) = target(j, cfg)? else {
        return Ok(());
    };
    let t = &t;
    match step.kind.as_str() {
        steps::GIT_COMMIT => {
            if read_id(dir, REVERT_ID_FILE)?.is_some() {
                // git-push's undo already reverted ours, on the remote branch and here.
                return Ok(());
            }
            let Some(id) = our_commit(&repo, j, dir)? else {
                // The run's write swept into someone else's commit: set back by value on top.
                if git_inverse::held_at(&repo, "HEAD", t, j, dir, v)?.has_run_value() {
                    let _lock = guard_work_tree(&repo, t, j, dir, "HEAD")?;
                    git_inverse::commit_by_value(&repo, t, j, dir, v, &undo_message(j))?;
                }
                return Ok(());
            };
            if repo.head()?.as_deref() == Some(id.as_str()) {
                // Dropping HEAD leaves the work tree alone (write-env's undo guards it).
                repo.undo_commit(&id, &t.path, &undo_message(j))?;
                return Ok(());
            }
            if !repo.is_ancestor(&id, "HEAD")? {
                return Ok(());
            }
            // A revert writes HEAD's copy into the work tree, so only over this run's own bytes.
            let _lock = guard_work_tree(&repo, t, j, dir, &id)?;
            revert_or_by_value(&repo, t, j, dir, v, &id)?;
            Ok(())
        }
        steps::GIT_PUSH => {
            let Some((remote, branch)) = &t.push else {
                return Ok(());
            };
            // Only the remote can say whether ours reached it: unreachable = not proven.
            repo.fetch(remote)?;
            let tracking = format!("refs/remotes/{remote}/{branch}");
            let recorded = read_id(dir, REVERT_ID_FILE)?;
            let push_recorded = match &recorded {
                Some(rev) if repo.is_ancestor(rev, &tracking)? => return Ok(()),
                Some(rev) => !drop_stale_revert(&repo, t, j, dir, rev, &tracking)?,
                None => false,
            };
            // HEAD cannot reach the branch (commits of its own, unpushed, and the branch changed
            // the file since): pushing HEAD is refused as stale on every try (the campaign's
            // lockout, seed 4178972239). The branch is set back on its own; HEAD's side is
            // git-commit's undo, or the revert recorded.
            if !repo.is_ancestor("HEAD", &tracking)?
                && repo.commits_touching(&format!("HEAD..{tracking}"), &t.path)? > 0
            {
                let ours_there = ours_in(&repo, j, &tracking)?.is_some();
                let at = (remote.as_str(), branch.as_str(), tracking.as_str());
                let m = undo_message(j);
                git_inverse::set_back_on_remote(&repo, t, j, dir, v, at, ours_there, &m)?;
                return Ok(());
            }
            if !push_recorded {
                // Ours on the remote branch, by trailer: after a rebase-and-retry or a rewording
                // hook the recorded id is stale, and "not there" would leave NEW on the remote.
                let made = match ours_in(&repo, j, &tracking)? {
                    Some(id) => {
                        let _lock = guard_work_tree(&repo, t, j, dir, &id)?;
                        // Before the fast-forward below moves the work tree: an undo that cannot
                        // apply (a run key someone else changed) is refused with the file as is.
                        if repo.revert_conflicts(&id, &tracking)?.is_some() {
                            git_inverse::held_at(&repo, &tracking, t, j, dir, v)?.or_conflict()?;
                        }
                        fast_forward(&repo, &tracking)?;
                        revert_or_by_value(&repo, t, j, dir, v, &id)?
                    }
                    // The run's write went out under someone else's commit: by value on top.
                    None if git_inverse::held_at(&repo, &tracking, t, j, dir, v)?
                        .has_run_value() =>
                    {
                        let _lock = guard_work_tree(&repo, t, j, dir, "HEAD")?;
                        fast_forward(&repo, &tracking)?;
                        git_inverse::commit_by_value(&repo, t, j, dir, v, &undo_message(j))?
                    }
                    None => return Ok(()),
                };
                match made {
                    Some(rev) => write_id(dir, REVERT_ID_FILE, &rev)?,
                    // The remote's copy holds the old values already: nothing to push.
                    None => return Ok(()),
                }
            }
            let pushed = push_with_one_retry(&repo, &t.path, remote, branch)?;
            write_id(dir, REVERT_ID_FILE, &pushed)
        }
        _ => Ok(()),
    }
}

fn fast_forward(repo: &Repo, tracking: &str) -> Result<()> {
    if repo.is_ancestor("HEAD", tracking)? {
        repo.merge_ff_only(tracking)?;
    }
    Ok(())
}

/// A revert this run made and recorded (`git-revert.id`) that never reached the remote branch,
/// while the branch moved on with commits changing the env file (a colleague's `sops set` pushed
/// between our revert and its push, or while the run lay killed): its push is refused on every
/// try, its base being stale (the campaign's lockout, seed 1093341921). It is local only, so it
/// is dropped from HEAD and the work tree's copy goes back to HEAD's; the undo then reverts again
/// on top of the remote branch. False, nothing touched, when its push can still go through (the
/// branch moved without touching the file: the push's retry rebases) or commits sit on top of it.
fn drop_stale_revert(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    rev: &str,
    tracking: &str,
) -> Result<bool> {
    if repo.commits_touching(&format!("{rev}..{tracking}"), &t.path)? == 0 {
        return Ok(false);
    }
    let file = t.worktree.join(&t.path);
    let _lock = EnvLock::acquire(&file, fsutil::ENV_LOCK_WAIT).map_err(|e| Error::io(&file, e))?;
    if repo.head()?.as_deref() == Some(rev) {
        if !repo.is_ancestor(&format!("{rev}^"), tracking)? {
            return Ok(false);
        }
        if !identical_to(repo, "HEAD", &t.path, &file)? {
            return Err(Error::Precondition(format!(
                "{} changed after this run's revert commit {}, which the remote refused (the branch moved on): the git undo cannot make it again on top of the branch without taking that edit away; keep a copy of the change, put the revert's copy back (`git -C {} checkout HEAD -- {}`), run `komodo-rotate resume`, then make the change again",
                file.display(),
                &rev[..rev.len().min(12)],
                t.worktree.display(),
                t.path
            )));
        }
        repo.undo_commit(rev, &t.path, &undo_message(j))?;
    } else if repo.is_ancestor(rev, "HEAD")? {
        return Ok(false);
    }
    // A kill after the drop can leave the revert's bytes in the work tree: HEAD's back.
    if identical_to(repo, rev, &t.path, &file)? && !identical_to(repo, "HEAD", &t.path, &file)? {
        if let Some(bytes) = repo.blob("HEAD", &t.path)? {
            fsutil::write_atomic(&file, &bytes, Mode::KeepOr0600)
                .map_err(|e| Error::io(&file, e))?;
        }
    }
    let p = dir.join(REVERT_ID_FILE);
    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
    Ok(true)
}

/// Takes our commit `id` back on top of HEAD: `git revert` when it applies cleanly (no later
/// commit edited compose.env), else a commit setting the run's keys back by value. The id of the
/// commit made, None when HEAD already holds the old values.
fn revert_or_by_value(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
    id: &str,
) -> Result<Option<String>> {
    if repo.revert_conflicts(id, "HEAD")?.is_none() {
        return Ok(Some(repo.revert_commit(id, &t.path, &undo_message(j))?));
    }
    git_inverse::commit_by_value(repo, t, j, dir, v, &undo_message(j))
}

/// After a rollback: the env file in the work tree equals HEAD's, or holds HEAD's values under
/// the run's keys (a colleague's uncommitted edit of another key is theirs).
pub fn old_state_is_back(
    j: &Journal,
    cfg: &Config,
    ids: &crate::sops::Identities,
) -> std::result::Result<(), String> {
    let ctx = RunContext::of(j).map_err(|e| e.to_string())?;
    let Some(t) = &ctx.git else {
        return Ok(());
    };
    let repo = repo(cfg, t).map_err(|e| e.to_string())?;
    match repo.is_modified(&t.path) {
        Ok(false) => Ok(()),
        Ok(true) => git_inverse::env_agrees_with_head(&repo, t, j, ids),
        Err(e) => Err(e.to_string()),
    }
}
