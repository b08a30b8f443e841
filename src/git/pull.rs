//! Would a fast-forward pull succeed? The blockers git itself would name (untracked files at
//! incoming paths, local changes to incoming files, a diverged branch), plus the two traps git
//! does NOT name: a gitignored file at an incoming path (git overwrites it silently) and
//! gitignored files inside a directory that blocks the pull (the `.env` an `rm -rf` would take).

use super::{GitError, Repo};
use std::path::Path;

/// An untracked file in the way of an incoming path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The untracked file (relative to the work tree).
    pub path: String,
    /// It is a regular file with exactly the bytes upstream brings at the same path.
    pub identical: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PullCheck {
    /// e.g. `origin/main`
    pub upstream: String,
    pub ahead: u32,
    pub behind: u32,
    /// Paths that differ between HEAD and upstream.
    pub incoming: Vec<String>,
    pub untracked_collisions: Vec<Collision>,
    /// Tracked files with local changes that upstream also changes.
    pub locally_modified: Vec<String>,
    /// Gitignored files at an incoming path: a pull overwrites them without a word.
    pub ignored_overwritten: Vec<String>,
    /// Gitignored files inside a directory that holds a collision (not tracked at HEAD).
    pub ignored_at_risk: Vec<String>,
}

impl PullCheck {
    pub fn diverged(&self) -> bool {
        self.ahead > 0 && self.behind > 0
    }

    /// git itself would refuse the fast-forward.
    pub fn blocked(&self) -> bool {
        self.diverged()
            || !self.untracked_collisions.is_empty()
            || !self.locally_modified.is_empty()
    }

    /// One line naming every blocker and trap; empty when there is none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.diverged() {
            parts.push(format!(
                "HEAD has diverged from {} ({} local, {} upstream commits)",
                self.upstream, self.ahead, self.behind
            ));
        }
        let same: Vec<&str> = self
            .untracked_collisions
            .iter()
            .filter(|c| c.identical)
            .map(|c| c.path.as_str())
            .collect();
        let differ: Vec<&str> = self
            .untracked_collisions
            .iter()
            .filter(|c| !c.identical)
            .map(|c| c.path.as_str())
            .collect();
        if !same.is_empty() {
            parts.push(format!(
                "untracked {} identical to the incoming file",
                same.join(", ")
            ));
        }
        if !differ.is_empty() {
            parts.push(format!(
                "untracked {} differing from the incoming file",
                differ.join(", ")
            ));
        }
        if !self.locally_modified.is_empty() {
            parts.push(format!(
                "local changes to {}",
                self.locally_modified.join(", ")
            ));
        }
        if !self.ignored_overwritten.is_empty() {
            parts.push(format!(
                "gitignored {} would be overwritten by the pull",
                self.ignored_overwritten.join(", ")
            ));
        }
        if !self.ignored_at_risk.is_empty() {
            parts.push(format!(
                "gitignored {} inside the blocking directory (do not rm -rf it)",
                self.ignored_at_risk.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Checks a fast-forward of HEAD to `upstream` (a remote-tracking ref, already fetched).
pub fn check(repo: &Repo, upstream: &str) -> Result<PullCheck, GitError> {
    let (ahead, behind) = repo.ahead_behind(upstream)?;
    let mut pc = PullCheck {
        upstream: upstream.to_string(),
        ahead,
        behind,
        ..Default::default()
    };
    if behind == 0 {
        return Ok(pc);
    }
    pc.incoming = repo.changed_between("HEAD", upstream)?;
    let incoming_set: std::collections::BTreeSet<&str> =
        pc.incoming.iter().map(String::as_str).collect();

    // Untracked files at an incoming path, or below one (a directory where a file comes).
    let mut colliding: Vec<String> = repo.untracked_in(&pc.incoming)?;
    // An untracked file where upstream brings a directory (a prefix of an incoming path).
    let mut prefixes = std::collections::BTreeSet::new();
    for p in &pc.incoming {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            prefixes.insert(acc.clone());
        }
    }
    for pre in &prefixes {
        let full = repo.worktree.join(pre);
        if full.symlink_metadata().is_ok_and(|m| !m.is_dir())
            && !repo.is_tracked(pre)?
            && !repo.ignored_in(std::slice::from_ref(pre))?.contains(pre)
        {
            colliding.push(pre.clone());
        }
    }
    colliding.sort();
    colliding.dedup();
    for path in colliding {
        let identical = incoming_set.contains(path.as_str())
            && identical_to(repo, upstream, &path, &repo.worktree.join(&path))?;
        pc.untracked_collisions.push(Collision { path, identical });
    }

    let modified = repo.modified_paths()?;
    pc.locally_modified = modified
        .into_iter()
        .filter(|m| incoming_set.contains(m.as_str()))
        .collect();

    pc.ignored_overwritten = repo
        .ignored_in(&pc.incoming)?
        .into_iter()
        .filter(|p| incoming_set.contains(p.as_str()))
        .collect();

    // The directories holding the collisions that HEAD does not track: whatever gitignored file
    // lives in them is what a "just delete the directory" cleanup destroys.
    let mut dirs = std::collections::BTreeSet::new();
    for c in &pc.untracked_collisions {
        if let Some(d) = untracked_top_dir(repo, &c.path)? {
            dirs.insert(d);
        }
    }
    let dirs: Vec<String> = dirs.into_iter().collect();
    if !dirs.is_empty() {
        pc.ignored_at_risk = repo
            .ignored_in(&dirs)?
            .into_iter()
            .filter(|p| !pc.ignored_overwritten.contains(p))
            .collect();
    }
    Ok(pc)
}

/// The top-most ancestor directory of `path` that HEAD does not have.
fn untracked_top_dir(repo: &Repo, path: &str) -> Result<Option<String>, GitError> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut acc = String::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        if !repo.exists_at("HEAD", &acc)? {
            return Ok(Some(acc));
        }
    }
    Ok(None)
}

/// `file` is a regular file (not a symlink) whose bytes equal the blob `rev:rel`.
pub fn identical_to(repo: &Repo, rev: &str, rel: &str, file: &Path) -> Result<bool, GitError> {
    let meta = match file.symlink_metadata() {
        Ok(m) => m,
        Err(_) => return Ok(false),
    };
    if !meta.file_type().is_file() {
        return Ok(false);
    }
    let Some(blob) = repo.blob(rev, rel)? else {
        return Ok(false);
    };
    let have = std::fs::read(file).map_err(|e| GitError::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    Ok(have == blob)
}
