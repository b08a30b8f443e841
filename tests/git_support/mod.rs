//! Real git fixtures: a bare `origin` in a temp dir, a host clone (the checkout compose.env lives
//! in) and a pipeline clone (what the deploy job pulls), plus a config pointing at the host.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");

pub fn git(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git must be installed for the git plane tests");
    o
}

/// git that must succeed; returns stdout.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let o = git(dir, args);
    assert!(
        o.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub origin: PathBuf,
    pub host: PathBuf,
    pub pipeline: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Fixture {
    /// origin with `services/komodo/compose.env` and a `.gitignore` of `.env`; both clones.
    pub fn new() -> Fixture {
        Self::with_state_dir(None)
    }

    pub fn with_state_dir(state: Option<PathBuf>) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin.git");
        let seed = tmp.path().join("seed");
        git_ok(
            tmp.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                origin.to_str().unwrap(),
            ],
        );
        git_ok(
            tmp.path(),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                seed.to_str().unwrap(),
            ],
        );
        git_ok(&seed, &["checkout", "-q", "-b", "main"]);
        std::fs::create_dir_all(seed.join("services/komodo")).unwrap();
        std::fs::write(
            seed.join("services/komodo/compose.env"),
            "KOMODO_DB=ciphertext-1\n",
        )
        .unwrap();
        std::fs::write(seed.join(".gitignore"), ".env\n").unwrap();
        git_ok(&seed, &["add", "-A"]);
        git_ok(&seed, &["commit", "-q", "-m", "initial"]);
        git_ok(&seed, &["push", "-q", "-u", "origin", "main"]);
        let host = tmp.path().join("host");
        let pipeline = tmp.path().join("pipeline");
        for c in [&host, &pipeline] {
            git_ok(
                tmp.path(),
                &["clone", "-q", origin.to_str().unwrap(), c.to_str().unwrap()],
            );
        }
        let state = state.unwrap_or_else(|| tmp.path().join("state"));
        let config = tmp.path().join("komodo-rotate.toml");
        let f = Fixture {
            tmp,
            origin,
            host,
            pipeline,
            state,
            config,
        };
        f.write_config("");
        f
    }

    pub fn write_config(&self, git_section: &str) {
        std::fs::write(
            &self.config,
            format!(
                "compose_env = \"{}\"\nstate_dir = \"{}\"\n[discovery]\nproject = \"gitplane-none-{}\"\n{git_section}",
                self.host.join("services/komodo/compose.env").display(),
                self.state.display(),
                std::process::id()
            ),
        )
        .unwrap();
    }

    /// Commits `files` on origin's main through a scratch clone (someone else's push).
    pub fn upstream_commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        let w = self.tmp.path().join(format!("upstream-{}", rand_suffix()));
        git_ok(
            self.tmp.path(),
            &[
                "clone",
                "-q",
                self.origin.to_str().unwrap(),
                w.to_str().unwrap(),
            ],
        );
        for (p, body) in files {
            let full = w.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, body).unwrap();
        }
        git_ok(&w, &["add", "-A", "-f"]);
        git_ok(&w, &["commit", "-q", "-m", msg]);
        git_ok(&w, &["push", "-q", "origin", "main"]);
        git_ok(&w, &["rev-parse", "HEAD"])
    }

    pub fn kr(&self, args: &[&str]) -> Run {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("FAILPOINTS")
            .stdin(std::process::Stdio::null());
        run(c)
    }

    /// `komodo-rotate <sub> --config <fixture config> <args>`
    pub fn kr_cfg(&self, sub: &[&str], args: &[&str]) -> Run {
        let mut a: Vec<&str> = sub.to_vec();
        a.push("--config");
        let cfg = self.config.to_str().unwrap().to_string();
        a.push(&cfg);
        a.extend_from_slice(args);
        self.kr(&a)
    }

    pub fn head(&self, dir: &Path) -> String {
        git_ok(dir, &["rev-parse", "HEAD"])
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(mut c: Command) -> Run {
    let o = c.output().expect("run komodo-rotate");
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The check named `name` of a `verify --json` output: (status, detail).
pub fn check(json: &str, name: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["checks"].as_array()?.iter().find_map(|c| {
        (c["name"] == name).then(|| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
}

/// Every file below `dir` with its bytes (for "nothing changed" proofs), .git excluded.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A TCP listener that accepts and never answers: a remote that hangs.
pub fn silent_listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    port
}
