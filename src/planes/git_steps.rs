//! The git steps of a run (`git-commit`, `git-push`) and the git pre-flight, applied through
//! the git plane (src/git/). Every apply first asks "already done?" so `resume` can replay it;
//! every undo works from a partly applied step. Commit ids are kept in the journal dir next to
//! `compose.env.prev`: `git-commit.id` (ours) and `git-revert.id` (the revert git-push's undo
//! pushed, which also takes our commit back, so git-commit's undo then has nothing to do).
//!
//! Undo order: git-push's undo runs first (revert on the remote branch when ours reached it),
//! then git-commit's (drop our commit while HEAD is still it, the work tree left as it is for
//! write-env's undo; else a revert), then write-env's (old bytes back, equal to HEAD's).

use super::run::{GitTarget, RunContext};
use super::steps;
use crate::config::{Config, GitMode};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::git::publish::push_with_one_retry;
use crate::git::Repo;
use crate::txn::{Journal, Step};
use std::path::Path;

pub const COMMIT_ID_FILE: &str = "git-commit.id";
pub const REVERT_ID_FILE: &str = "git-revert.id";

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
        repo.fetch(remote).map_err(|e| {
            refuse(format!(
                "git pre-flight: {e}; fix access to {remote} or set [git] mode = \"commit\""
            ))
        })?;
        let tracking = format!("refs/remotes/{remote}/{branch}");
        let n = repo.commits_touching(&format!("HEAD..{tracking}"), &rel)?;
        if n > 0 {
            return Err(refuse(format!(
                "{remote}/{branch} has {n} commit(s) changing {rel} that {wt} lacks: pull first (`git -C {wt} pull --ff-only`), or the rotation would revert them"
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

fn message(cfg: &Config, j: &Journal) -> String {
    cfg.git.message(&j.secret, &j.run_id)
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

/// Our commit: the recorded id, else HEAD when it carries this run's message (the process died
/// between the commit and recording its id).
fn our_commit(repo: &Repo, cfg: &Config, j: &Journal, dir: &Path) -> Result<Option<String>> {
    if let Some(id) = read_id(dir, COMMIT_ID_FILE)? {
        return Ok(Some(id));
    }
    let Some(head) = repo.head()? else {
        return Ok(None);
    };
    if repo.message_of(&head)? == message(cfg, j).trim() {
        write_id(dir, COMMIT_ID_FILE, &head)?;
        return Ok(Some(head));
    }
    Ok(None)
}

/// Applies git-commit or git-push (other steps: nothing).
pub fn apply(step: &Step, j: &Journal, cfg: &Config, dir: &Path) -> Result<()> {
    let ctx = RunContext::of(j)?;
    let Some(t) = &ctx.git else {
        return Ok(());
    };
    let repo = repo(cfg, t)?;
    match step.kind.as_str() {
        steps::GIT_COMMIT => {
            if let Some(id) = our_commit(&repo, cfg, j, dir)? {
                if repo.is_ancestor(&id, "HEAD")? {
                    return Ok(());
                }
            }
            if !repo.is_modified(&t.path)? {
                // The file already equals HEAD's: there is nothing of ours to commit.
                return Ok(());
            }
            let id = repo.commit_file(&t.path, &message(cfg, j))?;
            write_id(dir, COMMIT_ID_FILE, &id)
        }
        steps::GIT_PUSH => {
            let Some((remote, branch)) = &t.push else {
                return Ok(());
            };
            // Pushing what the remote already has is a no-op, and a retry replays only commits
            // the remote lacks: a replay after a crash needs no separate check.
            let pushed = push_with_one_retry(&repo, &t.path, remote, branch)?;
            if read_id(dir, COMMIT_ID_FILE)?.as_deref() != Some(pushed.as_str())
                && repo.message_of(&pushed)? == message(cfg, j).trim()
            {
                // The retry replayed our commit onto the moved branch: a new id.
                write_id(dir, COMMIT_ID_FILE, &pushed)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Undoes git-commit or git-push, from any partial state.
pub fn undo(step: &Step, j: &Journal, cfg: &Config, dir: &Path) -> Result<()> {
    let ctx = RunContext::of(j)?;
    let Some(t) = &ctx.git else {
        return Ok(());
    };
    let repo = repo(cfg, t)?;
    match step.kind.as_str() {
        steps::GIT_COMMIT => {
            if read_id(dir, REVERT_ID_FILE)?.is_some() {
                // git-push's undo already reverted ours, on the remote branch and here.
                return Ok(());
            }
            if let Some(id) = our_commit(&repo, cfg, j, dir)? {
                repo.undo_commit(&id, &t.path, &undo_message(j))?;
            }
            Ok(())
        }
        steps::GIT_PUSH => {
            let Some((remote, branch)) = &t.push else {
                return Ok(());
            };
            let Some(id) = our_commit(&repo, cfg, j, dir)? else {
                return Ok(());
            };
            // Only the remote can say whether ours reached it: unreachable = not proven.
            repo.fetch(remote)?;
            let tracking = format!("refs/remotes/{remote}/{branch}");
            if let Some(rev) = read_id(dir, REVERT_ID_FILE)? {
                if repo.is_ancestor(&rev, &tracking)? {
                    return Ok(());
                }
            } else {
                if !repo.is_ancestor(&id, &tracking)? {
                    return Ok(());
                }
                if repo.is_ancestor("HEAD", &tracking)? {
                    repo.merge_ff_only(&tracking)?;
                }
                let rev = repo.revert_commit(&id, &t.path, &undo_message(j))?;
                write_id(dir, REVERT_ID_FILE, &rev)?;
            }
            let pushed = push_with_one_retry(&repo, &t.path, remote, branch)?;
            write_id(dir, REVERT_ID_FILE, &pushed)
        }
        _ => Ok(()),
    }
}

/// After a rollback: the env file in the work tree equals HEAD's (no stray local change).
pub fn old_state_is_back(j: &Journal, cfg: &Config) -> std::result::Result<(), String> {
    let ctx = RunContext::of(j).map_err(|e| e.to_string())?;
    let Some(t) = &ctx.git else {
        return Ok(());
    };
    let repo = repo(cfg, t).map_err(|e| e.to_string())?;
    match repo.is_modified(&t.path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!(
            "{} in {} differs from HEAD's",
            t.path,
            t.worktree.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}
