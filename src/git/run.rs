//! Running the `git` binary: always `-C <worktree>`, never a prompt, an allow-listed environment
//! (see [`child_env`]: no secret of ours, no inherited GIT_DIR / GIT_WORK_TREE), and a deadline on every call. A call
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
pub struct Opts<'a> {
    pub timeout: Duration,
    /// Read-only call: GIT_OPTIONAL_LOCKS=0 so a `status` never takes index.lock.
    pub read_only: bool,
    /// Objects written to (and read from) a temp dir, the repository's own as alternates.
    pub overlay: Option<&'a Overlay>,
}

/// A temp object directory laid over a repository's (see `peek.rs`).
#[derive(Debug, Clone)]
pub struct Overlay {
    pub objects: std::path::PathBuf,
    pub alternate: std::path::PathBuf,
}

pub fn git(
    worktree: &Path,
    args: &[&OsStr],
    opts: Opts<'_>,
    stdin: Option<&[u8]>,
) -> Result<Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .envs(child_env(std::env::vars_os()))
        .arg("-C")
        .arg(worktree)
        .arg("-c")
        .arg("core.quotepath=off")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .env("LC_ALL", "C")
        .env("GIT_LITERAL_PATHSPECS", "1")
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
    if let Some(o) = opts.overlay {
        cmd.env("GIT_OBJECT_DIRECTORY", &o.objects)
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &o.alternate);
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

/// Variables git's children (hooks, credential helpers, ssh, gpg) may see, by exact name.
const ALLOWED: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "TZ",
    "LANG",
    "LANGUAGE",
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "KRB5CCNAME",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "GIT_EXEC_PATH",
    "GNUPGHOME",
    "GPG_AGENT_INFO",
    "GPG_TTY",
    "DBUS_SESSION_BUS_ADDRESS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// ... and by prefix: locale, XDG dirs (git's and ssh's config), the ssh command, the user's git
/// config redirections and the identity of commits.
const ALLOWED_PREFIXES: &[&str] = &[
    "LC_",
    "XDG_",
    "GIT_SSH",
    "GIT_CONFIG_",
    "GIT_AUTHOR_",
    "GIT_COMMITTER_",
    "GCM_",
];

/// The environment a git child gets: only what git, ssh, ssh-agent, credential helpers and
/// signing need (an allow-list), so the age private key (`SOPS_AGE_KEY*`) and every `KOMODO_*`
/// value of ours never reach a hook, a credential helper or ssh. The repository-selecting
/// variables (GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, ...) are not on the list: `-C` decides.
pub fn child_env(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    vars.filter(|(k, _)| {
        let Some(k) = k.to_str() else { return false };
        let never = k.starts_with("SOPS_") || k.starts_with("KOMODO_");
        !never && (ALLOWED.contains(&k) || ALLOWED_PREFIXES.iter().any(|p| k.starts_with(p)))
    })
    .collect()
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
    redact_urls(&format!("git {}", words.join(" ")))
}

/// `scheme://user:secret@host` → `scheme://***@host`, everywhere in `s`.
pub fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        // The whole token up to a space or quote: a raw `/` in a password must not end it early.
        // Any `@` in it masks what comes before (over-masking a path beats leaking a token).
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        match rest[..end].find('@') {
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
        // A raw `/` in the password does not end the masking early.
        assert_eq!(
            redact_urls("git push https://bot:ab/cd@h/x.git main"),
            "git push https://***@h/x.git main"
        );
        // The name of a call (in Timeout and Spawn errors) is masked too.
        let args = ["fetch", "--quiet", "https://u:tok@h/r.git"].map(OsStr::new);
        assert_eq!(describe(&args), "git fetch https://***@h/r.git");
    }

    #[test]
    fn children_get_only_allow_listed_variables() {
        let vars = [
            "HOME",
            "PATH",
            "SSH_AUTH_SOCK",
            "GNUPGHOME",
            "LANG",
            "LC_ALL",
            "XDG_CONFIG_HOME",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_GLOBAL",
            "http_proxy",
            // never:
            "SOPS_AGE_KEY",
            "SOPS_AGE_KEY_FILE",
            "SOPS_AGE_KEY_CMD",
            "KOMODO_DB_PASSWORD",
            "KOMODO_ROTATE_LOCK_DIR",
            "AWS_SECRET_ACCESS_KEY",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "MONGO_URL",
            "FAILPOINTS",
        ];
        let got = child_env(
            vars.iter()
                .map(|k| (std::ffi::OsString::from(k), std::ffi::OsString::from("v"))),
        );
        let names: Vec<String> = got
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, &vars[..10]);
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
                overlay: None,
            },
            None,
        )
        .unwrap_err();
        assert!(matches!(e, GitError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
