//! The git plane: the only module that runs `git`. It knows nothing of sops, Mongo or Docker; it
//! sees compose.env as a path inside a work tree and only ever commits what is already on disk
//! (ciphertext). It shells out to the `git` CLI rather than linking a git library so that the
//! user's own setup applies unchanged: credential helpers, the ssh agent and `~/.ssh/config`,
//! commit signing, hooks, `safe.directory`, and whatever transport the remote needs.
//!
//! Every call: `git -C <worktree>`, `GIT_TERMINAL_PROMPT=0`, a deadline (network calls: the
//! configured `[git] network_timeout`), `GIT_OPTIONAL_LOCKS=0` when read-only, nothing secret in
//! argv or env.

pub mod detached;
pub mod history;
pub mod peek;
pub mod publish;
pub mod pull;
pub mod quarantine;
pub mod revert;
pub mod run;

use run::{Opts, Output};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Local calls (status, commit, merge) get this long; a hook that hangs longer is a failure.
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed (no `git` on PATH)")]
    Missing,
    #[error("cannot run {what}: {msg}")]
    Spawn { what: String, msg: String },
    #[error("{what} did not answer within {secs:.0}s (remote unreachable or silent)")]
    Timeout { what: String, secs: f64 },
    #[error("{what} in {}: {reason}", worktree.display())]
    Failed {
        what: String,
        worktree: PathBuf,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// A git work tree, addressed by its top-level directory.
#[derive(Debug, Clone)]
pub struct Repo {
    pub worktree: PathBuf,
    pub network_timeout: Duration,
    /// Temp objects laid over the repository's (a read-only [`peek::Peek`]); None normally.
    pub overlay: Option<run::Overlay>,
}

/// The upstream of the checked-out branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// e.g. `origin`
    pub remote: String,
    /// e.g. `origin/main`
    pub tracking: String,
    /// e.g. `main` (the branch name on the remote)
    pub branch: String,
}

/// `git rev-parse --show-toplevel` run in `dir` (read-only, the local deadline).
fn toplevel(dir: &Path) -> Result<Output, GitError> {
    run::git(
        dir,
        &[OsStr::new("rev-parse"), OsStr::new("--show-toplevel")],
        Opts {
            timeout: LOCAL_TIMEOUT,
            read_only: true,
            overlay: None,
        },
        None,
    )
}

impl Repo {
    /// The work tree holding `file` and the file's path relative to its top level, or `None`
    /// when `file` is not inside a git work tree.
    pub fn discover(
        file: &Path,
        network_timeout: Duration,
    ) -> Result<Option<(Repo, String)>, GitError> {
        let abs = std::fs::canonicalize(file).map_err(|e| GitError::Io {
            path: file.to_path_buf(),
            source: e,
        })?;
        let dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
        let o = match toplevel(&dir) {
            // Without git (the image), a file with no `.git` above it is in no work tree;
            // with one above it, git is needed to say more.
            Err(GitError::Missing) if !dir.ancestors().any(|a| a.join(".git").exists()) => {
                return Ok(None)
            }
            o => o?,
        };
        if !o.ok() {
            if o.stderr.contains("not a git repository") {
                return Ok(None);
            }
            return Err(GitError::Failed {
                what: "git rev-parse".into(),
                worktree: dir,
                reason: o.reason(),
            });
        }
        let top = std::fs::canonicalize(o.stdout_line()).map_err(|e| GitError::Io {
            path: PathBuf::from(o.stdout_line()),
            source: e,
        })?;
        let rel = abs
            .strip_prefix(&top)
            .map_err(|_| GitError::Refused(format!("{} is outside its work tree", abs.display())))?
            .to_string_lossy()
            .into_owned();
        Ok(Some((
            Repo {
                worktree: top,
                network_timeout,
                overlay: None,
            },
            rel,
        )))
    }

    pub fn open(worktree: &Path, network_timeout: Duration) -> Result<Repo, GitError> {
        let o = toplevel(worktree)?;
        if !o.ok() {
            return Err(GitError::Refused(format!(
                "{} is not a git work tree: {}",
                worktree.display(),
                o.reason()
            )));
        }
        Ok(Repo {
            worktree: PathBuf::from(o.stdout_line()),
            network_timeout,
            overlay: None,
        })
    }

    fn call(&self, args: &[&str], read_only: bool, timeout: Duration) -> Result<Output, GitError> {
        let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let overlay = self.overlay.as_ref();
        run::git(
            &self.worktree,
            &a,
            Opts {
                timeout,
                read_only,
                overlay,
            },
            None,
        )
    }

    /// A read-only local query that must succeed.
    fn query(&self, args: &[&str]) -> Result<Output, GitError> {
        let o = self.call(args, true, LOCAL_TIMEOUT)?;
        if o.ok() {
            Ok(o)
        } else {
            Err(self.failed(args, &o))
        }
    }

    pub(crate) fn failed(&self, args: &[&str], o: &Output) -> GitError {
        GitError::Failed {
            what: format!("git {}", args.first().copied().unwrap_or("")),
            worktree: self.worktree.clone(),
            reason: o.reason(),
        }
    }

    /// A query with a path list appended after `--` (chunked, so argv stays short).
    fn query_paths(&self, args: &[&str], paths: &[String]) -> Result<Vec<String>, GitError> {
        let mut out = Vec::new();
        for chunk in paths.chunks(200) {
            let mut a: Vec<OsString> = args.iter().map(OsString::from).collect();
            a.push("--".into());
            a.extend(chunk.iter().map(OsString::from));
            let refs: Vec<&OsStr> = a.iter().map(OsString::as_os_str).collect();
            let o = run::git(
                &self.worktree,
                &refs,
                Opts {
                    timeout: LOCAL_TIMEOUT,
                    read_only: true,
                    overlay: self.overlay.as_ref(),
                },
                None,
            )?;
            if !o.ok() {
                return Err(self.failed(args, &o));
            }
            out.extend(o.nul_list());
        }
        Ok(out)
    }

    /// `rel` is in the index.
    pub fn is_tracked(&self, rel: &str) -> Result<bool, GitError> {
        Ok(!self
            .query_paths(&["ls-files", "-z"], &[rel.to_string()])?
            .is_empty())
    }

    /// `rel` differs from HEAD in the index or the work tree.
    pub fn is_modified(&self, rel: &str) -> Result<bool, GitError> {
        Ok(!self
            .query_paths(&["diff", "--name-only", "-z", "HEAD"], &[rel.to_string()])?
            .is_empty())
    }

    /// Tracked paths with local changes against HEAD (staged or not).
    pub fn modified_paths(&self) -> Result<Vec<String>, GitError> {
        Ok(self
            .query(&["diff", "--name-only", "-z", "HEAD"])?
            .nul_list())
    }

    /// HEAD's commit id, or None on an unborn branch.
    pub fn head(&self) -> Result<Option<String>, GitError> {
        let o = self.call(
            &["rev-parse", "-q", "--verify", "HEAD^{commit}"],
            true,
            LOCAL_TIMEOUT,
        )?;
        Ok(o.ok().then(|| o.stdout_line()))
    }

    pub fn rev(&self, rev: &str) -> Result<String, GitError> {
        Ok(self.query(&["rev-parse", "--verify", rev])?.stdout_line())
    }

    /// The upstream of the checked-out branch, if any (a detached HEAD has none).
    pub fn upstream(&self) -> Result<Option<Upstream>, GitError> {
        let b = self.call(
            &["symbolic-ref", "-q", "--short", "HEAD"],
            true,
            LOCAL_TIMEOUT,
        )?;
        if !b.ok() {
            return Ok(None);
        }
        let branch = b.stdout_line();
        let t = self.call(
            &[
                "rev-parse",
                "--abbrev-ref",
                "--symbolic-full-name",
                "@{upstream}",
            ],
            true,
            LOCAL_TIMEOUT,
        )?;
        if !t.ok() {
            return Ok(None);
        }
        let remote = self.config(&format!("branch.{branch}.remote"))?;
        let merge = self.config(&format!("branch.{branch}.merge"))?;
        match (remote, merge) {
            (Some(remote), Some(merge)) if remote != "." => Ok(Some(Upstream {
                remote,
                tracking: t.stdout_line(),
                branch: merge.trim_start_matches("refs/heads/").to_string(),
            })),
            _ => Ok(None),
        }
    }

    pub fn config(&self, key: &str) -> Result<Option<String>, GitError> {
        let o = self.call(&["config", "--get", key], true, LOCAL_TIMEOUT)?;
        Ok(o.ok().then(|| o.stdout_line()))
    }

    /// `git fetch <remote>` with the network deadline.
    pub fn fetch(&self, remote: &str) -> Result<(), GitError> {
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            remote,
        ];
        let o = self.call(&args, false, self.network_timeout)?;
        if o.ok() {
            Ok(())
        } else {
            Err(self.failed(&args, &o))
        }
    }

    /// (ahead, behind) of HEAD against `upstream`.
    pub fn ahead_behind(&self, upstream: &str) -> Result<(u32, u32), GitError> {
        let range = format!("HEAD...{upstream}");
        let o = self.query(&["rev-list", "--left-right", "--count", &range])?;
        let line = o.stdout_line();
        let n: Vec<u32> = line
            .split_whitespace()
            .filter_map(|n| n.parse::<u32>().ok())
            .collect();
        match n[..] {
            [ahead, behind] => Ok((ahead, behind)),
            _ => Err(GitError::Failed {
                what: "git rev-list --left-right --count".into(),
                worktree: self.worktree.clone(),
                reason: format!("no counts in its output ({range})"),
            }),
        }
    }

    /// Paths that differ between two commits (renames as delete + add).
    pub fn changed_between(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        Ok(self
            .query(&["diff", "--name-only", "-z", "--no-renames", from, to])?
            .nul_list())
    }

    /// Commits in `range` that touch `rel`.
    pub fn commits_touching(&self, range: &str, rel: &str) -> Result<u32, GitError> {
        let o = self.query(&["rev-list", "--count", range, "--", rel])?;
        o.stdout_line().parse().map_err(|_| GitError::Failed {
            what: "git rev-list --count".into(),
            worktree: self.worktree.clone(),
            reason: format!("no count in its output ({range})"),
        })
    }

    /// The blob `rev:rel`, or None when `rel` is not in that commit.
    pub fn blob(&self, rev: &str, rel: &str) -> Result<Option<Vec<u8>>, GitError> {
        let spec = format!("{rev}:{rel}");
        let o = self.call(&["cat-file", "blob", &spec], true, LOCAL_TIMEOUT)?;
        Ok(o.ok().then_some(o.stdout))
    }

    /// `rev:rel` exists (a blob or a tree).
    pub fn exists_at(&self, rev: &str, rel: &str) -> Result<bool, GitError> {
        let spec = format!("{rev}:{rel}");
        Ok(self
            .call(&["cat-file", "-e", &spec], true, LOCAL_TIMEOUT)?
            .ok())
    }

    /// Untracked, not ignored files at or below `paths`.
    pub fn untracked_in(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        self.query_paths(&["ls-files", "-z", "--others", "--exclude-standard"], paths)
    }

    /// Gitignored files at or below `paths`.
    pub fn ignored_in(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        self.query_paths(
            &[
                "ls-files",
                "-z",
                "--others",
                "--ignored",
                "--exclude-standard",
            ],
            paths,
        )
    }

    /// `git merge --ff-only <upstream>`; refuses anything but a fast-forward.
    pub fn merge_ff_only(&self, upstream: &str) -> Result<(), GitError> {
        let args = ["merge", "--ff-only", "--quiet", upstream];
        let o = self.call(&args, false, LOCAL_TIMEOUT)?;
        if o.ok() {
            Ok(())
        } else {
            Err(self.failed(&args, &o))
        }
    }
}
