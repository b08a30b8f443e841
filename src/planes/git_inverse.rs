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

/// The run's keys and `rev`'s copy of compose.env decrypted; None when no write-env of the run
/// wrote, `rev` lacks the file, or its copy does not open (judged as before: by the trailer).
fn run_keys_at(
    repo: &Repo,
    rev: &str,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
) -> Result<Option<(RunEdit, crate::sops::Decrypted)>> {
    let Some(keys) = run_keys(v, j, dir)? else {
        return Ok(None);
    };
    let Some(bytes) = repo.blob(rev, &t.path)? else {
        return Ok(None);
    };
    let name = format!("{}:{}", rev, t.path);
    let opened = SopsFile::parse(bytes, &name).and_then(|f| f.decrypt(v.ids));
    Ok(opened.ok().map(|d| (keys, d)))
}

/// Whether `rev`'s copy holds what the run wrote under every run key, whoever committed it: the
/// run's write can go out under someone else's commit (an operator's `commit -a` while the run
/// lay killed after write-env, the campaign's seed 1602271867), with no commit of ours to find.
pub fn holds_run_values(
    repo: &Repo,
    rev: &str,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
) -> Result<bool> {
    Ok(
        run_keys_at(repo, rev, t, j, dir, v)?.is_some_and(|(e, now)| {
            e.keys
                .iter()
                .all(|k| now.get(&k.key).is_some_and(|x| x.ct_eq(&k.new)))
        }),
    )
}

/// Whether `rev`'s copy holds what the run wrote under some run key and no third value under
/// any: a commit by value there would take the run's write out. A third value (someone else's
/// edit of a run key) is not: the undo leaves it, as it did before judging by value.
pub fn holds_some_run_value(
    repo: &Repo,
    rev: &str,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
) -> Result<bool> {
    Ok(run_keys_at(repo, rev, t, j, dir, v)?
        .is_some_and(|(e, now)| inverse::needs_set_back(rev, &now, &e.keys).unwrap_or(false)))
}

/// Refuses (naming the file and the key) when `rev`'s copy holds a third value under a run key:
/// a revert by value would not apply. Nothing is touched.
pub fn check(
    repo: &Repo,
    rev: &str,
    t: &GitTarget,
    j: &Journal,
    dir: &Path,
    v: &Values<'_>,
) -> Result<()> {
    let (Some(keys), Some(f)) = (run_keys(v, j, dir)?, at(repo, rev, t)?) else {
        return Ok(());
    };
    inverse::needs_set_back(f.name(), &f.decrypt(v.ids)?, &keys.keys).map(|_| ())
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
