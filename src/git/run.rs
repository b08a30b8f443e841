//! Running the `git` binary: always `-C <worktree>`, never a prompt, a clean git environment
//! (no inherited GIT_DIR / GIT_WORK_TREE / GIT_INDEX_FILE), and a deadline on every call. A call
//! that misses its deadline is killed with its whole process group (ssh, remote helpers), so a
//! remote that accepts a connection and stays silent cannot hang a run.

use super::GitError;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished git call printed. stdout is kept raw (paths may not be UTF-8; -z output).
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn stdout_line(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
    /// NUL-separated records (`-z` output), empty ones dropped.
    pub fn nul_list(&self) -> Vec<String> {
        self.stdout
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
    /// The last non-empty stderr line: git puts the reason there ("fatal: ..."). Credentials
    /// in a URL (`https://user:token@host`) are masked: the line ends up in errors and logs.
    pub fn reason(&self) -> String {
        redact_urls(
            self.stderr
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty() && !l.starts_with("hint:"))
                .unwrap_or("no message"),
        )
    }
}

/// How a call is made.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub timeout: Duration,
    /// Read-only call: GIT_OPTIONAL_LOCKS=0 so a `status` never takes index.lock.
    pub read_only: bool,
}

pub fn git(
    worktree: &Path,
    args: &[&OsStr],
    opts: Opts,
    stdin: Option<&[u8]>,
) -> Result<Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(worktree)
        .arg("-c")
        .arg("core.quotepath=off")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .env("LC_ALL", "C")
        .env("GIT_LITERAL_PATHSPECS", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_CEILING_DIRECTORIES")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if opts.read_only {
        cmd.env("GIT_OPTIONAL_LOCKS", "0");
    }
    let what = describe(args);
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            GitError::Missing
        } else {
            GitError::Spawn {
                what: what.clone(),
                msg: e.to_string(),
            }
        }
    })?;
    let pid = child.id() as libc::pid_t;
    let input = stdin.map(|b| b.to_vec());
    let mut child_in = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let (Some(w), Some(b)) = (child_in.as_mut(), input) {
            let _ = w.write_all(&b);
        }
        drop(child_in);
    });
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let reader_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(GitError::Spawn {
                    what,
                    msg: e.to_string(),
                })
            }
        }
    };
    let Some(status) = status else {
        // SAFETY: kill(2) on our own child's process group; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = child.wait();
        let _ = writer.join();
        let _ = reader_out.join();
        let _ = reader_err.join();
        return Err(GitError::Timeout {
            what,
            secs: opts.timeout.as_secs_f64(),
        });
    };
    let _ = writer.join();
    let stdout = reader_out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&reader_err.join().unwrap_or_default()).into_owned();
    Ok(Output {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

/// `git fetch origin`: the subcommand and its first non-option argument, never more (a path
/// list or a message must not end up in an error line).
fn describe(args: &[&OsStr]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    format!("git {}", words.join(" "))
}

/// `scheme://user:secret@host` → `scheme://***@host`, everywhere in `s`.
pub fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        match rest[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&rest[at..end]);
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            redact_urls("fatal: unable to access 'https://bot:ghp_SECRET@git.example/x.git/': 403"),
            "fatal: unable to access 'https://***@git.example/x.git/': 403"
        );
        assert_eq!(
            redact_urls("ssh://git@host:22/r and https://h/p"),
            "ssh://***@host:22/r and https://h/p"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
    }

    #[test]
    fn a_call_past_its_deadline_is_killed_with_its_children() {
        // `git -c alias...` runs a shell alias: sh and its sleep are in git's process group.
        let d = std::env::temp_dir();
        let t = Instant::now();
        let e = git(
            &d,
            &[
                OsStr::new("-c"),
                OsStr::new("alias.hang=!sleep 30"),
                OsStr::new("hang"),
            ],
            Opts {
                timeout: Duration::from_millis(300),
                read_only: true,
            },
            None,
        )
        .unwrap_err();
        assert!(matches!(e, GitError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
