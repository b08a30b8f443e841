//! Reverting our commit when others followed it (the undo of `git-commit` / `git-push`), never
//! half done: a revert that would conflict (a later commit changed the same lines of the env
//! file, e.g. a colleague's `sops set` rewrote `sops_mac` / `sops_lastmodified`) is refused
//! before anything is touched; a revert or its commit that fails anyway leaves no REVERT_HEAD,
//! no unmerged index entry and the file's bytes exactly as they were.

use super::{GitError, Repo};
use crate::fsutil::{self, Mode};
use std::path::Path;

impl Repo {
    /// A commit on top of HEAD that reverts `id` (which changed only `rel`); returns its id.
    pub fn revert_commit(&self, id: &str, rel: &str, message: &str) -> Result<String, GitError> {
        self.revert_would_apply(id, "HEAD", rel)?;
        let file = self.worktree.join(rel);
        let before = match std::fs::read(&file) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(GitError::Io {
                    path: file,
                    source: e,
                })
            }
        };
        let applied = (|| {
            // The revert needs `rel` as HEAD has it: a rolled-forward work tree copy is ours anyway.
            self.must(&["checkout", "--quiet", "HEAD", "--", rel], None)?;
            self.must(&["revert", "--no-edit", "--no-commit", id], None)?;
            self.must(
                &["commit", "--quiet", "-F", "-", "--", rel],
                Some(message.as_bytes()),
            )?;
            self.rev("HEAD")
        })();
        if applied.is_err() {
            self.forget_revert(rel, &file, before.as_deref())?;
        }
        applied
    }

    /// Refuses (one line, naming the file and the conflict) a revert of `id` on top of `onto`
    /// that would not apply cleanly; nothing is touched either way.
    pub fn revert_would_apply(&self, id: &str, onto: &str, rel: &str) -> Result<(), GitError> {
        let Some(files) = self.revert_conflicts(id, onto)? else {
            return Ok(());
        };
        let short = &id[..id.len().min(12)];
        let wt = self.worktree.display();
        let file = self.worktree.join(rel);
        Err(GitError::Refused(format!(
            "cannot revert commit {short} on top of {onto} in {wt}: a conflict in {files} with later commit(s) that changed the same lines; nothing was changed, {} kept as it was: revert it by hand (`git -C {wt} revert {short}`, putting the old value back with sops where git conflicts)",
            file.display()
        )))
    }

    /// The files a revert of `id` on top of `onto` would leave conflicted (comma-separated), or
    /// None when it applies cleanly. Asked of `git merge-tree` (the same merge a revert runs:
    /// base `id`, ours `onto`, theirs `id^`): it writes objects only, never the index or work tree.
    pub fn revert_conflicts(&self, id: &str, onto: &str) -> Result<Option<String>, GitError> {
        let base = format!("--merge-base={id}");
        let parent = format!("{id}^");
        let args = [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            &base,
            onto,
            &parent,
        ];
        let o = self.write_call(&args, None, false)?;
        match o.code {
            0 => Ok(None),
            1 => {
                let out = String::from_utf8_lossy(&o.stdout);
                let files: Vec<&str> = out
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                Ok(Some(if files.is_empty() {
                    "files".to_string()
                } else {
                    files.join(", ")
                }))
            }
            _ => Err(self.failed(&args, &o)),
        }
    }

    /// After a failed revert: no revert in progress, `rel`'s index entry HEAD's again (other
    /// staged changes stay), and the file holding `before` again (byte for byte).
    fn forget_revert(&self, rel: &str, file: &Path, before: Option<&[u8]>) -> Result<(), GitError> {
        // `--quit` drops REVERT_HEAD and the sequencer state without touching index or work tree.
        let _ = self.write_call(&["revert", "--quit"], None, false)?;
        self.must(&["reset", "--quiet", "HEAD", "--", rel], None)?;
        let io = |e| GitError::Io {
            path: file.to_path_buf(),
            source: e,
        };
        match before {
            Some(b) => {
                if std::fs::read(file).ok().as_deref() != Some(b) {
                    fsutil::write_atomic(file, b, Mode::KeepOr0600).map_err(io)?;
                }
            }
            None => match std::fs::remove_file(file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            },
        }
        Ok(())
    }
}
