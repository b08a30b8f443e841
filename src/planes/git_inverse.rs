//! git's side of the inverse edit (issue 18): when `git revert` of our commit would conflict
//! (commits followed ours that edited compose.env: every sops edit rewrites `sops_mac` and
//! `sops_lastmodified`, so a revert under a colleague's `sops set` always conflicts), the undo
//! makes a new commit on top of HEAD that sets only the run's keys back to their old values
//! (`inverse`): a revert by value. It does so only while HEAD's copy holds what the run wrote
//! under each run key; a run key someone else changed is a conflict naming the file and the key.
//! The rollback proof then asks the run's keys, not the bytes, to agree with HEAD's.

use super::inverse::{self, KeptEdit, RunEdit};
/// The undos by value of a run and their line (the sink in [`Values`]), for the callers outside.
pub use super::inverse::{kept_line, KeptEdits};
use super::run::{GitTarget, RunContext};
use super::value::Staged;
use crate::error::{Error, Result};
use crate::git::pull::identical_to;
use crate::git::Repo;
use crate::sops::{Identities, SopsFile};
use crate::txn::{Journal, Step};
use std::path::Path;

/// What git's undo needs to set the run's keys back by value: the identities that open
/// compose.env and the staged old/new values; where a set-back is told (`kept`).
pub struct Values<'a> {
    pub ids: &'a Identities,
    pub staged: &'a Staged,
    pub kept: &'a inverse::KeptEdits,
}

fn run_keys(v: &Values<'_>, j: &Journal, dir: &Path) -> Result<Option<RunEdit>> {
    let ctx = RunContext::of(j)?;
    inverse::of_run(dir, v.ids, v.staged, j, &ctx)
}

/// compose.env as commit `rev` has it, parsed; None when `rev` lacks it.
fn at(repo: &Repo, rev: &str, t: &GitTarget) -> Result<Option<SopsFile>> {
    let Some(bytes) = repo.blob(rev, &t.path)? else {
        return Ok(None);
    };
    let name = format!("{}:{}", rev, t.path);
    Ok(Some(SopsFile::parse(bytes, &name)?))
}

/// What a commit's copy of compose.env holds under the run's keys, whoever committed it: the
/// run's write can go out under someone else's commit (an operator's `commit -a` while the run
/// lay killed after write-env, the campaign's seed 1602271867), with no commit of ours to find.
#[derive(Debug)]
pub enum Held {
    /// Every run key on what the run wrote.
    AllRun,
    /// Some run key on what the run wrote, none on a third value: a commit by value there
    /// would take the run's write out.
    SomeRun,
    /// Every run key on its old value (or the run wrote nothing, or `rev` lacks the file).
    NoRun,
    /// The copy does not open (parse or decrypt): judged as before, by the trailer; an undo of
    /// our own commit that must set keys back there fails naming it.
    Unreadable(Error),
    /// A run key on a third value: someone else's edit of it, a real conflict for an undo of
    /// our own commit (the error names the copy and the key); left alone otherwise.
    Third(Error),
}

impl Held {
    /// The run's write is there, under some key.
    pub fn has_run_value(&self) -> bool {
        matches!(self, Held::AllRun | Held::SomeRun)
    }

    /// A third value, or a copy that does not open, as the error naming it (an undo of our own
    /// commit cannot set keys back there).
    pub fn or_conflict(self) -> Result<Held> {
        match self {
            Held::Third(e) | Held::Unreadable(e) => Err(e),
            h => Ok(h),
        }
    }
}

/// What `rev`'s copy holds under the run's keys.
pub fn held_at(
    repo: &Repo,
    rev: &str,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
) -> Result<Held> {
    let Some(bytes) = repo.blob(rev, &t.path)? else {
        return Ok(Held::NoRun);
    };
    let name = format!("{}:{}", rev, t.path);
    let f = match SopsFile::parse(bytes, &name) {
        Ok(f) => f,
        Err(e) => return Ok(Held::Unreadable(e.into())),
    };
    let Some(e) = run_keys(v, j, dir)? else {
        return Ok(Held::NoRun);
    };
    let now = match f.decrypt(v.ids) {
        Ok(d) => d,
        Err(e) => return Ok(Held::Unreadable(e.into())),
    };
    let all = e
        .keys
        .iter()
        .all(|k| now.get(&k.key).is_some_and(|x| x.ct_eq(&k.new)));
    Ok(match inverse::needs_set_back(&name, &now, &e.keys) {
        _ if all => Held::AllRun,
        Ok(true) => Held::SomeRun,
        Ok(false) => Held::NoRun,
        Err(e) => Held::Third(e),
    })
}

/// A commit on top of HEAD that sets the run's keys back to their old values in compose.env;
/// None when HEAD's copy holds them already. The caller holds compose.env's lock. The work tree's
/// file must hold HEAD's bytes (else committing it would take an uncommitted edit along: the undo
/// fails naming the file, the edit kept); a commit that fails leaves the file's bytes as they were.
pub fn commit_by_value(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
    message: &str,
) -> Result<Option<String>> {
    let (Some(keys), Some(head)) = (run_keys(v, j, dir)?, at(repo, "HEAD", t)?) else {
        return Ok(None);
    };
    if inverse::set_back_bytes(&head, v.ids, &keys)?.is_none() {
        return Ok(None);
    }
    let file = t.worktree.join(&t.path);
    if !identical_to(repo, "HEAD", &t.path, &file)? {
        return Err(Error::Precondition(format!(
            "{} has uncommitted changes beside HEAD's copy: the git undo (a commit setting the run's keys back) would take them along, so nothing was committed and the edit is kept; commit or discard it (`git -C {} diff -- {}`), then run `komodo-rotate resume`",
            file.display(),
            t.worktree.display(),
            t.path
        )));
    }
    let before = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
    let kept = inverse::set_back(&file, v.ids, &keys)?;
    match repo.commit_file(&t.path, message) {
        Ok(id) => {
            if let Some(k) = kept {
                v.kept.note(KeptEdit {
                    commit: Some(id.clone()),
                    ..k
                });
            }
            Ok(Some(id))
        }
        Err(e) => {
            let _ = repo.unstage(&t.path);
            crate::fsutil::write_atomic(&file, &before, crate::fsutil::Mode::KeepOr0600)
                .map_err(|e| Error::io(&file, e))?;
            Err(e.into())
        }
    }
}

/// The remote branch (`tracking`, fetched) set back by value on its own: a commit on top of it
/// with the run's keys on their old values, made without HEAD, the index or the work tree, and
/// pushed. For a checkout that cannot reach the branch (its own commits on HEAD, the branch
/// changed compose.env since): HEAD's side is git-commit's undo. `ours_there`: our commit is in
/// the branch's history, so a third value under a run key is a conflict (named, nothing pushed);
/// otherwise only a branch holding the run's values (swept in by someone's commit) is touched.
/// The commit's id; None when the branch holds the old values already.
#[allow(clippy::too_many_arguments)]
pub fn set_back_on_remote(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
    (remote, branch, tracking): (&str, &str, &str),
    ours_there: bool,
    message: &str,
) -> Result<Option<String>> {
    let held = held_at(repo, tracking, t, j, dir, v)?;
    if ours_there {
        held.or_conflict()?;
    } else if !held.has_run_value() {
        return Ok(None);
    }
    let (Some(keys), Some(f)) = (run_keys(v, j, dir)?, at(repo, tracking, t)?) else {
        return Ok(None);
    };
    let Some((bytes, kept)) = inverse::set_back_bytes(&f, v.ids, &keys)? else {
        return Ok(None);
    };
    let id = repo.commit_on(tracking, &t.path, &bytes, message)?;
    repo.push_rev(&id, remote, branch)?;
    v.kept.note(KeptEdit {
        file: t.worktree.join(&t.path).display().to_string(),
        commit: Some(id.clone()),
        ..kept
    });
    Ok(Some(id))
}

/// After a rollback: compose.env in the work tree holds HEAD's bytes, or at least HEAD's values
/// under every key the run's write-env steps set (another key's uncommitted edit is someone
/// else's, kept).
pub fn env_agrees_with_head(
    repo: &Repo,
    t: &GitTarget,
    j: &Journal,
    ids: &Identities,
) -> std::result::Result<(), String> {
    let file = t.worktree.join(&t.path);
    if identical_to(repo, "HEAD", &t.path, &file).map_err(|e| e.to_string())? {
        return Ok(());
    }
    let differs = || format!("{} in {} differs from HEAD's", t.path, t.worktree.display());
    let ctx = RunContext::of(j).map_err(|e| e.to_string())?;
    let mut keys: Vec<String> = j
        .steps
        .iter()
        .map(|r| &r.step)
        .filter(|s: &&Step| s.is(super::steps::WRITE_ENV))
        .flat_map(|s| inverse::step_key_names(s, &ctx))
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Err(differs());
    }
    let head = at(repo, "HEAD", t)
        .map_err(|e| e.to_string())?
        .ok_or_else(differs)?
        .decrypt(ids)
        .map_err(|e| e.to_string())?;
    let now = SopsFile::load(&file)
        .and_then(|f| f.decrypt(ids))
        .map_err(|e| e.to_string())?;
    if inverse::same_values(&head, &now, &keys) {
        Ok(())
    } else {
        Err(format!(
            "{} in {} differs from HEAD's under {}",
            t.path,
            t.worktree.display(),
            keys.join(", ")
        ))
    }
}
