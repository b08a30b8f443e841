//! The write side of the git plane, for the transaction's `git-commit` and `git-push` steps:
//! commit exactly one path (compose.env, ciphertext) on top of HEAD, push it with the network
//! deadline, and the undos (drop our commit while it is still HEAD, else revert it; push a
//! revert). Hooks and signing apply as configured by the user; a refusing hook is a failure.

use super::run::{self, Opts};
use super::{GitError, Repo, LOCAL_TIMEOUT};
use std::ffi::OsStr;

/// How `undo_commit` took our commit back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// HEAD was still our commit: HEAD moved back to its parent (work tree untouched).
    Dropped,
    /// Commits followed ours: a revert commit (this id) on top.
    Reverted(String),
    /// Our commit is not in HEAD's history (already gone).
    NotThere,
}

/// Why a push failed.
#[derive(Debug)]
pub enum PushFailure {
    /// The remote moved on (non-fast-forward): worth one retry after a fetch.
    Behind(String),
    /// Refused otherwise (a hook, permissions, a protected branch) or unreachable.
    Other(GitError),
}

impl Repo {
    pub(super) fn write_call(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        network: bool,
    ) -> Result<run::Output, GitError> {
        let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let timeout = if network {
            self.network_timeout
        } else {
            LOCAL_TIMEOUT
        };
        run::git(
            &self.worktree,
            &a,
            Opts {
                timeout,
                read_only: false,
                overlay: self.overlay.as_ref(),
            },
            stdin,
        )
    }

    pub(super) fn must(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<run::Output, GitError> {
        let o = self.write_call(args, stdin, false)?;
        if o.ok() {
            Ok(o)
        } else {
            Err(self.failed(args, &o))
        }
    }

    /// Commits only `rel` (whatever else is staged stays staged, uncommitted) on top of HEAD.
    /// The message goes through stdin. Returns the new commit id.
    pub fn commit_file(&self, rel: &str, message: &str) -> Result<String, GitError> {
        self.must(
            &["commit", "--quiet", "--only", "-F", "-", "--", rel],
            Some(message.as_bytes()),
        )?;
        self.rev("HEAD")
    }

    /// `rel`'s index entry back to HEAD's (the work tree untouched).
    pub fn unstage(&self, rel: &str) -> Result<(), GitError> {
        self.must(&["reset", "--quiet", "HEAD", "--", rel], None)
            .map(|_| ())
    }

    /// Takes commit `id` (which changed only `rel`) back. While HEAD is `id`, HEAD moves to its
    /// parent by compare-and-swap and only `rel`'s index entry follows; the work tree is left
    /// as it is (write-env's undo puts the old bytes back). Otherwise a revert commit.
    pub fn undo_commit(&self, id: &str, rel: &str, message: &str) -> Result<Undone, GitError> {
        let head = self.head()?.unwrap_or_default();
        if head == id {
            let parent = self.rev(&format!("{id}^"))?;
            self.must(
                &[
                    "update-ref",
                    "-m",
                    "komodo-rotate: undo",
                    "HEAD",
                    &parent,
                    id,
                ],
                None,
            )?;
            self.must(&["reset", "--quiet", &parent, "--", rel], None)?;
            return Ok(Undone::Dropped);
        }
        let ancestor = self
            .write_call(&["merge-base", "--is-ancestor", id, "HEAD"], None, false)?
            .ok();
        if !ancestor {
            return Ok(Undone::NotThere);
        }
        Ok(Undone::Reverted(self.revert_commit(id, rel, message)?))
    }

    /// `ancestor` is in the history of `rev` (false when either is unknown).
    pub fn is_ancestor(&self, ancestor: &str, rev: &str) -> Result<bool, GitError> {
        Ok(self
            .write_call(&["merge-base", "--is-ancestor", ancestor, rev], None, false)?
            .ok())
    }

    /// The newest commit among the last `limit` of `rev`'s history whose message has the line
    /// `<key>: <value>` (a trailer: it survives rebases and commit-msg hooks that rewrite the
    /// rest of the message, e.g. DCO sign-off or Gerrit's Change-Id). None when `rev` is unknown.
    pub fn find_by_trailer(
        &self,
        rev: &str,
        key: &str,
        value: &str,
        limit: u32,
    ) -> Result<Option<String>, GitError> {
        let n = format!("--max-count={limit}");
        let o = self.write_call(
            &["log", "-z", &n, "--format=%H%x1f%B", rev, "--"],
            None,
            false,
        )?;
        if !o.ok() {
            return Ok(None);
        }
        let want = format!("{key}: {value}");
        Ok(o.nul_list().into_iter().find_map(|rec| {
            let (id, body) = rec.split_once('\x1f')?;
            body.lines()
                .any(|l| l.trim_end() == want)
                .then(|| id.trim().to_string())
        }))
    }

    /// The full message of commit `rev`.
    pub fn message_of(&self, rev: &str) -> Result<String, GitError> {
        Ok(self
            .must(&["log", "-1", "--format=%B", rev, "--"], None)?
            .stdout_line())
    }

    /// `git push <remote> HEAD:refs/heads/<branch>` with the network deadline.
    pub fn push(&self, remote: &str, branch: &str) -> Result<(), PushFailure> {
        self.push_spec(&format!("HEAD:refs/heads/{branch}"), remote)
    }

    /// `git push <remote> <spec>` with the network deadline.
    pub(super) fn push_spec(&self, spec: &str, remote: &str) -> Result<(), PushFailure> {
        let args = ["push", "--quiet", "--porcelain", remote, spec];
        let o = self
            .write_call(&args, None, true)
            .map_err(PushFailure::Other)?;
        if o.ok() {
            return Ok(());
        }
        let text = format!("{}\n{}", String::from_utf8_lossy(&o.stdout), o.stderr);
        if text.contains("[rejected]")
            && (text.contains("fetch first") || text.contains("non-fast-forward"))
        {
            return Err(PushFailure::Behind(o.reason()));
        }
        Err(PushFailure::Other(GitError::Failed {
            what: "git push".into(),
            worktree: self.worktree.clone(),
            reason: push_reason(&text, &o.reason()),
        }))
    }

    /// `git push --dry-run`: credentials, reachability and fast-forward, nothing sent.
    pub fn push_dry_run(&self, remote: &str, branch: &str) -> Result<(), GitError> {
        let spec = format!("HEAD:refs/heads/{branch}");
        let args = ["push", "--dry-run", "--quiet", "--porcelain", remote, &spec];
        let o = self.write_call(&args, None, true)?;
        if o.ok() {
            Ok(())
        } else {
            let text = format!("{}\n{}", String::from_utf8_lossy(&o.stdout), o.stderr);
            Err(GitError::Failed {
                what: "git push --dry-run".into(),
                worktree: self.worktree.clone(),
                reason: push_reason(&text, &o.reason()),
            })
        }
    }

    /// Replays HEAD's own commits onto `onto` (a fetched upstream), keeping the work tree.
    pub fn rebase_onto(&self, onto: &str) -> Result<(), GitError> {
        let o = self.write_call(&["rebase", "--quiet", onto], None, false)?;
        if o.ok() {
            return Ok(());
        }
        let _ = self.write_call(&["rebase", "--abort"], None, false);
        Err(self.failed(&["rebase"], &o))
    }
}

/// The remote's own words when it gave any (`remote: ...` lines of a refusing hook), else git's.
fn push_reason(text: &str, fallback: &str) -> String {
    let remote: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("remote: "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if remote.is_empty() {
        run::redact_urls(fallback)
    } else {
        run::redact_urls(&format!("refused by the remote: {}", remote.join(" / ")))
    }
}

/// The `git-push` step's policy: push; when the remote moved on, fetch once, and retry once
/// only if none of the new upstream commits touch `rel` (else our base is stale: fail). Returns
/// the commit id that was pushed (it changes when the retry replayed our commit).
pub fn push_with_one_retry(
    repo: &Repo,
    rel: &str,
    remote: &str,
    branch: &str,
) -> Result<String, GitError> {
    match repo.push(remote, branch) {
        Ok(()) => return repo.rev("HEAD"),
        Err(PushFailure::Other(e)) => return Err(e),
        Err(PushFailure::Behind(_)) => {}
    }
    repo.fetch(remote)?;
    let tracking = format!("refs/remotes/{remote}/{branch}");
    let shown = run::redact_urls(remote);
    let touched = repo.commits_touching(&format!("HEAD..{tracking}"), rel)?;
    if touched > 0 {
        return Err(GitError::Refused(format!(
            "push rejected: {shown}/{branch} moved on and changed {rel} in {touched} commit(s); not retried (the rotation's base is stale)"
        )));
    }
    repo.rebase_onto(&tracking)?;
    match repo.push(remote, branch) {
        Ok(()) => repo.rev("HEAD"),
        Err(PushFailure::Behind(r)) => Err(GitError::Refused(format!(
            "push rejected twice ({r}); {shown}/{branch} keeps moving"
        ))),
        Err(PushFailure::Other(e)) => Err(e),
    }
}
