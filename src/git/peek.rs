//! A read-only look at a remote branch, for `verify` (which may run under a hardened unit where
//! the repository is read-only: `ProtectSystem=strict`). `git ls-remote` names the remote tip;
//! when the checkout lacks it, the objects are fetched into a private temp object directory with
//! the repository's own objects as alternates. No ref, FETCH_HEAD, pack, lock or log in `.git`
//! is written, and nothing outside the temp dir; the temp dir goes when the [`Peek`] is dropped.
//! Justification over "let verify write .git": verify's promise is read-only, the repository's
//! path differs per host (a shipped unit cannot list it in `ReadWritePaths=`), and moving the
//! remote-tracking refs behind the operator's back would change what `git status` tells them.

use super::run::{self, Opts, Overlay};
use super::{GitError, Repo, LOCAL_TIMEOUT};
use std::ffi::OsStr;
use std::path::PathBuf;

/// The remote tip and (when it had to be fetched) the temp objects holding it. Query it through
/// [`Peek::repo`], which sees those objects.
#[derive(Debug)]
pub struct Peek {
    /// The commit id of the remote branch now.
    pub rev: String,
    pub repo: Repo,
    dir: Option<PathBuf>,
}

impl Drop for Peek {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Repo {
    fn plain(&self, args: &[&str], timeout: std::time::Duration) -> Result<run::Output, GitError> {
        let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        run::git(
            &self.worktree,
            &a,
            Opts {
                timeout,
                read_only: true,
                overlay: self.overlay.as_ref(),
            },
            None,
        )
    }

    /// The remote's `refs/heads/<branch>` now (`git ls-remote`, network deadline), with its
    /// objects readable through the returned repo. Writes nothing into the repository.
    pub fn peek(&self, remote: &str, branch: &str) -> Result<Peek, GitError> {
        let head = format!("refs/heads/{branch}");
        let o = self.plain(
            &["ls-remote", "--quiet", remote, &head],
            self.network_timeout,
        )?;
        if !o.ok() {
            return Err(self.failed(&["ls-remote"], &o));
        }
        let rev = o
            .stdout_line()
            .lines()
            .find_map(|l| {
                let (id, name) = l.split_once('\t')?;
                (name == head).then(|| id.to_string())
            })
            .ok_or_else(|| {
                GitError::Refused(format!(
                    "{} has no branch {branch}",
                    run::redact_urls(remote)
                ))
            })?;
        if self.has_commit(&rev)? {
            return Ok(Peek {
                rev,
                repo: self.clone(),
                dir: None,
            });
        }
        let dir = private_temp_dir()?;
        let objects = dir.join("objects");
        std::fs::create_dir(&objects).map_err(|e| GitError::Io {
            path: objects.clone(),
            source: e,
        })?;
        let own = self.plain(
            &[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "objects",
            ],
            LOCAL_TIMEOUT,
        )?;
        let mut repo = self.clone();
        repo.overlay = Some(Overlay {
            objects,
            alternate: PathBuf::from(own.stdout_line()),
        });
        let peek = Peek {
            rev,
            repo,
            dir: Some(dir),
        };
        // --refmap= : no opportunistic remote-tracking update; no FETCH_HEAD; no auto gc.
        let args = [
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--refmap=",
            remote,
            &head,
        ];
        let o = peek.repo.plain(&args, self.network_timeout)?;
        if !o.ok() {
            return Err(self.failed(&["fetch"], &o));
        }
        if !peek.repo.has_commit(&peek.rev)? {
            return Err(GitError::Refused(format!(
                "{}/{branch} moved while it was read; check again",
                run::redact_urls(remote)
            )));
        }
        Ok(peek)
    }

    fn has_commit(&self, rev: &str) -> Result<bool, GitError> {
        let spec = format!("{rev}^{{commit}}");
        Ok(self.plain(&["cat-file", "-e", &spec], LOCAL_TIMEOUT)?.ok())
    }
}

/// A fresh 0700 directory under the temp dir (a private /tmp under the hardened unit).
fn private_temp_dir() -> Result<PathBuf, GitError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let d = base.join(format!(
            "komodo-rotate-peek-{}-{nanos}-{n}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(GitError::Io { path: d, source: e }),
        }
    }
    Err(GitError::Refused(format!(
        "cannot create a temp directory in {}",
        base.display()
    )))
}
