//! Shared helpers of the end-to-end tests of the product (verify, rotate, rescue, resume) on the
//! rehearsal stack: running the real binary, reading the three planes independently of the
//! code under test where it matters (the real `sops`, pymongo), and the secret-hygiene scan.

#![allow(dead_code)]

pub mod matrix;

use crate::docker_support::{engine_or_skip, images, Cleanup};
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::mongo::{login_works, LoginOutcome, Target};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack, StackOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

pub const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");
pub const PW_KEY: &str = "KOMODO_DATABASE_PASSWORD";

/// Everything the tool printed in this test process, for the hygiene scan.
pub static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        format!(
            "exit {:?} signal {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// The host-wide lock dir (`KOMODO_ROTATE_LOCK_DIR`) of runs against `stack`: each stack is a
/// host of its own, so tests running at once never see each other's pending journals (which
/// `mongo set-password` refuses to run beside, as it must on a real host).
pub fn host_lock_dir(stack: &Stack) -> std::path::PathBuf {
    stack.dir.join("host-locks")
}

/// Runs `komodo-rotate ARGS --config <stack config>` with `env`, no stdin.
pub fn tool(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(stack.config())
        .env_remove("FAILPOINTS")
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(stack))
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    finish(c.output().expect("run komodo-rotate"))
}

pub fn finish(out: Output) -> Run {
    use std::os::unix::process::ExitStatusExt;
    CAPTURED.lock().unwrap().extend_from_slice(&out.stdout);
    CAPTURED.lock().unwrap().extend_from_slice(&out.stderr);
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The tests' runtime: two workers, as the machine has two cores.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One test's rehearsal stack; everything of its project is removed when it is dropped, also
/// after a panic.
pub struct Fixture {
    pub engine: Engine,
    pub stack: Stack,
    pub dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

/// The engine (or a documented skip), the cross-check tools, the images, and a stack of
/// `project` made with `tune` applied to its options. `stack::up` returns once core is healthy
/// (with `drift`: crash-looping).
pub async fn fixture_with(
    test: &str,
    project: &str,
    tune: impl FnOnce(&mut StackOptions),
) -> Option<Fixture> {
    let engine = engine_or_skip(test).await?;
    if !require_tools(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let mut opts = StackOptions::new(project, dir.path(), &bin);
    tune(&mut opts);
    let stack = stack::up(&engine, &opts).await.expect("rehearsal up");
    Some(Fixture {
        engine,
        stack,
        dir,
        _cleanup: cleanup,
    })
}

/// Panics unless the tool under test carries the failpoints (tests that inject faults).
pub fn require_failpoints() {
    let v = Command::new(BIN).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("(failpoints)"),
        "{BIN} was built without the failpoints feature: run the tests with --features failpoints"
    );
}

/// The three planes as they are now.
pub struct Planes {
    pub env: Secret,
    pub mongo_accepts_env: bool,
    pub core: Option<Secret>,
    pub periphery: Option<Secret>,
}

pub async fn planes(engine: &Engine, stack: &Stack) -> Planes {
    let ids = Identities::from_key_file(&stack.age_key()).unwrap();
    let env = SopsFile::load(&stack.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(PW_KEY)
        .unwrap();
    let target = Target::new(
        &format!("mongodb://127.0.0.1:{}", stack.mongo_port),
        "admin",
    )
    .unwrap();
    let mongo_accepts_env = login_works(&target, &env).await == LoginOutcome::Accepted;
    let core = ContainerInfo::load(engine, &stack.core)
        .await
        .ok()
        .and_then(|c| c.env_value(PW_KEY).cloned());
    let periphery = ContainerInfo::load(engine, &stack.periphery)
        .await
        .ok()
        .and_then(|c| c.env_value(PW_KEY).cloned());
    Planes {
        env,
        mongo_accepts_env,
        core,
        periphery,
    }
}

/// The invariant: Mongo's live password, compose.env's value and core's (and periphery's) env
/// are one value. Returns that value, or a description of the split.
pub async fn agreed(engine: &Engine, stack: &Stack) -> Result<Secret, String> {
    let p = planes(engine, stack).await;
    let mut split = Vec::new();
    if !p.mongo_accepts_env {
        split.push("Mongo rejects compose.env's value");
    }
    if !p.core.as_ref().is_some_and(|c| c.ct_eq(&p.env)) {
        split.push("core's env differs from compose.env (or core is missing)");
    }
    if !p.periphery.as_ref().is_some_and(|c| c.ct_eq(&p.env)) {
        split.push("periphery's env differs from compose.env (or periphery is missing)");
    }
    for leftover in [
        format!("{}-next", stack.core),
        format!("{}-prev", stack.core),
    ] {
        if ContainerInfo::load(engine, &leftover).await.is_ok() {
            split.push("a -next/-prev container is left over");
        }
    }
    if split.is_empty() {
        Ok(p.env)
    } else {
        Err(split.join("; "))
    }
}

/// The real Go sops decrypts compose.env: its value of `PW_KEY`.
pub fn sops_value(stack: &Stack) -> Option<Secret> {
    sops_get(stack, PW_KEY)
}

/// The real Go sops decrypts compose.env: its value of `key`, as written in the file.
pub fn sops_get(stack: &Stack, key: &str) -> Option<Secret> {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("sops")
        .args([
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg(stack.compose_env())
        .env("SOPS_AGE_KEY_FILE", stack.age_key())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| Secret::new(v.to_string()))
    })
}

/// pymongo's verdict on `pw` (0 logs in, 1 rejected).
pub fn pymongo_login(stack: &Stack, pw: &Secret) -> i32 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/login.py");
    Command::new("python3")
        .arg(script)
        .env("MONGO_PORT", stack.mongo_port.to_string())
        .env("MONGO_USER", "admin")
        .env("MONGO_PW", pw.expose())
        .status()
        .map(|s| s.code().unwrap_or(2))
        .unwrap_or(2)
}

/// The external tools the product tests cross-check with; under CI=true they must be there.
pub fn require_tools(test: &str) -> bool {
    let sops = Command::new("sops")
        .arg("--version")
        .arg("--disable-version-check")
        .output()
        .is_ok_and(|o| o.status.success());
    let pymongo = Command::new("python3")
        .args(["-c", "import pymongo"])
        .status()
        .is_ok_and(|s| s.success());
    if sops && pymongo {
        return true;
    }
    let msg = format!("{test}: needs sops (found: {sops}) and pymongo (found: {pymongo}); run scripts/setup-test-env");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIP {msg}");
    false
}

/// Fails if any of `secrets` appears in what the tool printed, or in any file of `state_dir`.
pub fn assert_no_leak(secrets: &[&Secret], state_dir: &Path) {
    let mut hay = CAPTURED.lock().unwrap().clone();
    for entry in walk(state_dir) {
        hay.extend(std::fs::read(&entry).unwrap_or_default());
    }
    for s in secrets {
        let needle = s.expose().as_bytes();
        assert!(needle.len() >= 8, "hygiene scan needs real secrets");
        assert!(
            !hay.windows(needle.len()).any(|w| w == needle),
            "a plaintext secret leaked into the tool's output or its state dir"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
