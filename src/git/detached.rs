//! A commit made on top of any commit (a fetched remote branch) without touching HEAD, the index
//! or the work tree, and its push: `hash-object`, one `mktree` per directory of the path, and
//! `commit-tree`. For an undo that must reach a remote branch the checkout cannot fast-forward
//! to (the operator's own commits sit on HEAD, unpushed, and the branch moved on): pushing HEAD
//! would carry their commits along and be refused as stale for ever.

use super::publish::PushFailure;
use super::{GitError, Repo};

impl Repo {
    /// A new commit whose parent is `parent` and whose tree is `parent`'s with `rel` holding
    /// `bytes` (its file mode kept); the message goes through stdin. Nothing else changes: no
    /// ref moves, the index and the work tree are untouched. Returns the commit id.
    pub fn commit_on(
        &self,
        parent: &str,
        rel: &str,
        bytes: &[u8],
        message: &str,
    ) -> Result<String, GitError> {
        let blob = self
            .must(&["hash-object", "-w", "--stdin"], Some(bytes))?
            .stdout_line();
        let parts: Vec<&str> = rel.split('/').collect();
        let mut id = blob;
        // Innermost directory first: each level's tree gets the new id of the level below.
        for depth in (0..parts.len()).rev() {
            let dir = parts[..depth].join("/");
            let name = parts[depth];
            let kind = if depth + 1 == parts.len() {
                "blob"
            } else {
                "tree"
            };
            id = self.tree_with(parent, &dir, name, kind, &id)?;
        }
        let c = self.must(
            &["commit-tree", &id, "-p", parent, "-F", "-"],
            Some(message.as_bytes()),
        )?;
        Ok(c.stdout_line())
    }

    /// `parent`'s tree at `dir` ("" for the root) with the entry `name` pointing at `id`.
    fn tree_with(
        &self,
        parent: &str,
        dir: &str,
        name: &str,
        kind: &str,
        id: &str,
    ) -> Result<String, GitError> {
        let at = if dir.is_empty() {
            format!("{parent}^{{tree}}")
        } else {
            format!("{parent}:{dir}")
        };
        let listing = self.must(&["ls-tree", "-z", &at], None)?.nul_list();
        let mut out = Vec::new();
        let mut found = false;
        for entry in listing {
            // "<mode> <type> <id>\t<name>"
            let Some((meta, n)) = entry.split_once('\t') else {
                continue;
            };
            if n == name {
                let mode = meta.split(' ').next().unwrap_or("100644");
                out.push(format!("{mode} {kind} {id}\t{n}"));
                found = true;
            } else {
                out.push(entry.clone());
            }
        }
        if !found {
            return Err(GitError::Refused(format!(
                "{name} is not in {at}: no commit made on top of it"
            )));
        }
        let mut input = out.join("\0").into_bytes();
        input.push(0);
        Ok(self.must(&["mktree", "-z"], Some(&input))?.stdout_line())
    }

    /// `git push <remote> <rev>:refs/heads/<branch>` with the network deadline (no force: a
    /// branch that moved on again refuses it).
    pub fn push_rev(&self, rev: &str, remote: &str, branch: &str) -> Result<(), GitError> {
        match self.push_spec(&format!("{rev}:refs/heads/{branch}"), remote) {
            Ok(()) => Ok(()),
            Err(PushFailure::Behind(r)) => Err(GitError::Refused(format!(
                "push rejected: {}/{branch} moved on again ({r})",
                super::run::redact_urls(remote)
            ))),
            Err(PushFailure::Other(e)) => Err(e),
        }
    }
}
