//! `repo unblock`: the safe version of the cleanup that ended the outage by `rm -rf` (and took a
//! gitignored `.env` of live secrets with it). Fetch; list what blocks the fast-forward; refuse
//! unless every blocker is an untracked file byte-identical to the incoming one; move those into
//! `state_dir/quarantine/<time>/` (nothing deleted), leave gitignored files where they are, then
//! `git merge --ff-only`. A failed merge puts the moved files back.

use crate::cli::{RepoCommand, RepoUnblockArgs};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::git::{pull, quarantine, Repo};
use crate::txn::lock::RunLock;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const RUNBOOK_BLOCKED_PULL: &str = "runbooks/blocked-pull.md";

/// A merge that brings a compose.env whose secrets differ from the live ones (or cannot be
/// compared) is refused: the next deploy would hand containers a password Mongo rejects.
fn refuse_env_change(cfg: &Config, repo: &Repo, tracking: &str) -> Result<()> {
    let Ok(Some((r, rel))) = Repo::discover(&cfg.compose_env, cfg.git.network_timeout) else {
        return Ok(());
    };
    if r.worktree != repo.worktree
        || repo.commits_touching(&format!("HEAD..{tracking}"), &rel)? == 0
    {
        return Ok(());
    }
    let why = match super::verify_git::env_change(cfg, repo, tracking, &rel) {
        super::verify_git::EnvChange::Same => return Ok(()),
        super::verify_git::EnvChange::Changed(keys) => format!(
            "{tracking} changes {} in {rel}, which differ from the live values (a deploy of it would hand the containers secrets Mongo or they do not hold)",
            keys.join(", ")
        ),
        super::verify_git::EnvChange::Unknown(e) => {
            format!("cannot compare {tracking}'s {rel} with the live values: {e}")
        }
    };
    Err(Error::Precondition(format!(
        "{why}; check it with `komodo-rotate verify`, or pass --allow-env-change if the change is intended; see {RUNBOOK_BLOCKED_PULL}; nothing changed"
    )))
}

pub fn run(c: RepoCommand) -> Result<i32> {
    match c {
        RepoCommand::Unblock(a) => unblock(a),
    }
}

fn unblock(a: RepoUnblockArgs) -> Result<i32> {
    let cfg = Config::load(a.config.config.as_deref())?;
    let quiet = super::quiet();
    // The merge may change compose.env: never while a rotation runs.
    let _lock = if a.dry_run {
        None
    } else {
        Some(RunLock::acquire(&cfg.lock_path())?)
    };
    let repo = match &a.repo {
        Some(dir) => Repo::open(dir, cfg.git.network_timeout)?,
        None => match Repo::discover(&cfg.compose_env, cfg.git.network_timeout)? {
            Some((r, _)) => r,
            None => {
                return Err(Error::Precondition(format!(
                    "{} is not in a git work tree; pass --repo DIR; nothing changed",
                    cfg.compose_env.display()
                )))
            }
        },
    };
    let up = repo.upstream()?.ok_or_else(|| {
        Error::Precondition(format!(
            "the checked-out branch of {} has no upstream (git branch --set-upstream-to); nothing changed",
            repo.worktree.display()
        ))
    })?;
    repo.fetch(&up.remote).map_err(|e| {
        Error::Precondition(format!("cannot fetch {}: {e}; nothing changed", up.remote))
    })?;
    let pc = pull::check(&repo, &up.tracking)?;
    if pc.behind == 0 {
        println!(
            "{} is up to date with {}; nothing to do",
            repo.worktree.display(),
            up.tracking
        );
        return Ok(crate::error::exit::OK);
    }
    refuse_unless_safe(&pc)?;
    if !a.allow_env_change {
        refuse_env_change(&cfg, &repo, &up.tracking)?;
    }

    let root = quarantine_root(&cfg.state_dir.join("quarantine"));
    let prefix = if a.dry_run { "dry-run: would " } else { "" };
    if !quiet || a.dry_run {
        for c in &pc.untracked_collisions {
            println!(
                "{prefix}quarantine {} -> {} (identical to {}'s)",
                c.path,
                root.join(&c.path).display(),
                up.tracking
            );
        }
        for k in &pc.ignored_at_risk {
            println!("{prefix}keep gitignored {k} in place, untouched");
        }
        println!(
            "{prefix}fast-forward {} to {} ({} commit(s), git merge --ff-only)",
            repo.worktree.display(),
            up.tracking,
            pc.behind
        );
    }
    if a.dry_run {
        println!("dry-run: nothing changed");
        return Ok(crate::error::exit::OK);
    }

    let kept_before = digests(&repo.worktree, &pc.ignored_at_risk)?;
    let mut moved = Vec::new();
    for c in &pc.untracked_collisions {
        // Checked again right before the move: the file may have changed since the plan.
        let step = (|| -> Result<quarantine::Moved> {
            if !pull::identical_to(&repo, &up.tracking, &c.path, &repo.worktree.join(&c.path))? {
                return Err(Error::Precondition(format!(
                    "{} changed while unblocking; it differs from the incoming file now",
                    c.path
                )));
            }
            Ok(quarantine::move_one(&repo.worktree, &c.path, &root)?)
        })();
        match step {
            Ok(m) => moved.push(m),
            Err(e) => return Err(put_back(&moved, "quarantine", e.to_string())),
        }
    }
    if let Err(e) = repo.merge_ff_only(&up.tracking) {
        return Err(put_back(&moved, "git merge --ff-only", e.to_string()));
    }
    let kept_after = digests(&repo.worktree, &pc.ignored_at_risk)?;
    if kept_before != kept_after {
        return Err(Error::Precondition(format!(
            "the pull changed gitignored files it should not have touched: {}; see {RUNBOOK_BLOCKED_PULL}",
            pc.ignored_at_risk.join(", ")
        )));
    }
    let head = repo.rev("HEAD")?;
    if !quiet {
        for m in &moved {
            println!("moved {} -> {}", m.from.display(), m.to.display());
        }
        println!(
            "fast-forwarded to {} ({}); {} file(s) quarantined, {} gitignored file(s) kept",
            &head[..head.len().min(12)],
            up.tracking,
            moved.len(),
            pc.ignored_at_risk.len()
        );
    }
    Ok(crate::error::exit::OK)
}

/// Everything but identical untracked files is refused, all at once, by name.
fn refuse_unless_safe(pc: &pull::PullCheck) -> Result<()> {
    let mut why = Vec::new();
    if pc.diverged() {
        why.push(format!(
            "HEAD has diverged from {} ({} local commit(s)): merge or rebase by hand",
            pc.upstream, pc.ahead
        ));
    }
    let differ: Vec<&str> = pc
        .untracked_collisions
        .iter()
        .filter(|c| !c.identical)
        .map(|c| c.path.as_str())
        .collect();
    if !differ.is_empty() {
        why.push(format!(
            "untracked {} differ(s) from the incoming file: compare and move it yourself",
            differ.join(", ")
        ));
    }
    if !pc.locally_modified.is_empty() {
        why.push(format!(
            "local changes to {}: commit or stash them (never discarded here)",
            pc.locally_modified.join(", ")
        ));
    }
    if !pc.ignored_overwritten.is_empty() {
        why.push(format!(
            "gitignored {} would be overwritten by the pull: move it aside yourself",
            pc.ignored_overwritten.join(", ")
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(Error::Precondition(format!(
            "repo unblock refused, nothing moved: {}; see {RUNBOOK_BLOCKED_PULL}",
            why.join("; ")
        )))
    }
}

/// Puts the quarantined files back after a failure; exit 3 when all are back, 5 when not.
fn put_back(moved: &[quarantine::Moved], step: &str, cause: String) -> Error {
    let failed = quarantine::restore(moved);
    if failed.is_empty() {
        Error::Precondition(format!(
            "{step} failed: {cause}; every quarantined file was put back, nothing changed"
        ))
    } else {
        Error::RollbackIncomplete {
            step: step.into(),
            cause,
            undo_failure: failed
                .iter()
                .map(|(p, e)| format!("{}: {e}", p.display()))
                .collect::<Vec<_>>()
                .join("; "),
            runbook: RUNBOOK_BLOCKED_PULL.into(),
        }
    }
}

/// `quarantine/20261202T133000Z` (a suffix when that second is taken).
fn quarantine_root(base: &Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now.format(&fmt).unwrap_or_else(|_| "now".into());
    let mut p = base.join(&stamp);
    let mut n = 1;
    while p.symlink_metadata().is_ok() {
        n += 1;
        p = base.join(format!("{stamp}-{n}"));
    }
    p
}

/// SHA-256 of each file (the bytes themselves are dropped at once: they may be secrets).
fn digests(worktree: &Path, rels: &[String]) -> Result<Vec<[u8; 32]>> {
    rels.iter()
        .map(|r| {
            let p = worktree.join(r);
            let bytes = zeroize::Zeroizing::new(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
            Ok(Sha256::digest(&*bytes).into())
        })
        .collect()
}
