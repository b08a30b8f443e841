//! Shared helpers of the end-to-end tests of the product (verify, rotate, rescue, resume) on the
//! rehearsal stack: running the real binary, reading the three planes independently of the code
//! under test (`referee`: the real `sops`, pymongo, the `docker` CLI), the evidence of which
//! fault fired (`fired`), and the secret-hygiene scan (`leak`).

#![allow(dead_code)]

pub mod by_hand;
pub mod fired;
pub mod leak;
pub mod matrix;
pub mod referee;
pub mod reset_auth;
#[allow(clippy::duplicate_mod)]
#[path = "../common/stack_sops.rs"]
pub mod stack_sops;
pub mod undecided;
pub mod unreached;

/// The real Go sops decrypts compose.env: its value of `key`, as written in the file.
pub use stack_sops::sops_get;

use crate::docker_support::{engine_or_skip, images, Cleanup};
use komodo_rotate::docker::Engine;
use komodo_rotate::secret::Secret;
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
    let _watch = leak::watch(stack);
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

/// A process of the tool stopped with SIGSTOP until this is dropped (SIGCONT, also on a panic).
/// Tests that act while a run waits in a failpoint (`sleep(...)`) stop it first: the run stays
/// where it is however long the action takes on a loaded machine, so the sleep only has to
/// cover the moment between the run's progress line and the stop.
pub struct Paused(i32);

/// Stops `pid` (see `Paused`).
pub fn pause(pid: u32) -> Paused {
    let pid = i32::try_from(pid).expect("pid");
    // SAFETY: kill(2) with a pid of a child of this test and a valid signal number.
    let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(rc, 0, "SIGSTOP {pid}: {}", std::io::Error::last_os_error());
    Paused(pid)
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as in `pause`.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
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

/// The three planes as they are now, each read by a referee outside the tool (`referee`): the
/// real `sops` reads compose.env, pymongo logs in with its value, `docker inspect` reads core's and
/// periphery's env. (`engine` is kept for the callers; the tool's engine client reads nothing.)
pub struct Planes {
    pub env: Secret,
    pub mongo_accepts_env: bool,
    pub core: Option<Secret>,
    pub periphery: Option<Secret>,
}

/// As before: a Mongo that gives no verdict (stopped, unreachable) counts as not accepting.
pub async fn planes(_engine: &Engine, stack: &Stack) -> Planes {
    let env = sops_value(stack)
        .unwrap_or_else(|| panic!("the real sops cannot read {PW_KEY} from compose.env"));
    Planes {
        mongo_accepts_env: referee::pymongo_verdict(stack.mongo_port, "admin", &env)
            == referee::PyLogin::Accepted,
        env,
        core: referee::docker_env(&stack.core, PW_KEY),
        periphery: referee::docker_env(&stack.periphery, PW_KEY),
    }
}

/// `planes`, or why compose.env cannot be read (by the real sops) or Mongo gives no verdict.
pub fn try_planes(stack: &Stack) -> Result<Planes, String> {
    let env = sops_value(stack)
        .ok_or_else(|| format!("the real sops cannot read {PW_KEY} from compose.env"))?;
    let (verdict, found) = std::thread::scope(|sc| {
        let py = sc.spawn(|| referee::pymongo_verdict(stack.mongo_port, "admin", &env));
        let found = referee::docker_inspect_many(&[&stack.core, &stack.periphery]);
        (py.join().expect("pymongo thread"), found)
    });
    let mongo_accepts_env = match verdict {
        referee::PyLogin::Accepted => true,
        referee::PyLogin::Rejected => false,
        referee::PyLogin::Error(c) => {
            return Err(format!(
            "pymongo has no verdict on compose.env's value (login.py exit {c}: Mongo unreachable?)"
        ))
        }
    };
    Ok(Planes {
        env,
        mongo_accepts_env,
        core: found
            .get(&stack.core)
            .and_then(|c| referee::env_in(c, PW_KEY)),
        periphery: found
            .get(&stack.periphery)
            .and_then(|c| referee::env_in(c, PW_KEY)),
    })
}

/// The invariant: Mongo's live password, compose.env's value and core's (and periphery's) env
/// are one value, and no -next/-prev container is left. Returns that value, or a description of
/// the split. Every plane is read through an outside tool (see `planes`).
pub async fn agreed(_engine: &Engine, stack: &Stack) -> Result<Secret, String> {
    let p = try_planes(stack)?;
    let mut split = Vec::new();
    if !p.mongo_accepts_env {
        split.push("Mongo (pymongo) rejects compose.env's value".to_string());
    }
    if !p.core.as_ref().is_some_and(|c| c.ct_eq(&p.env)) {
        split.push(
            "core's env (docker inspect) differs from compose.env (or core is missing)".into(),
        );
    }
    if !p.periphery.as_ref().is_some_and(|c| c.ct_eq(&p.env)) {
        split.push(
            "periphery's env (docker inspect) differs from compose.env (or periphery is missing)"
                .into(),
        );
    }
    let leftovers: Vec<String> = [&stack.core, &stack.periphery]
        .iter()
        .flat_map(|n| [format!("{n}-next"), format!("{n}-prev")])
        .collect();
    let refs: Vec<&str> = leftovers.iter().map(String::as_str).collect();
    for name in referee::docker_inspect_many(&refs).keys() {
        split.push(format!("{name} is left over"));
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

/// pymongo's verdict on `pw` (0 logs in, 1 rejected, 2 no verdict).
pub fn pymongo_login(stack: &Stack, pw: &Secret) -> i32 {
    match referee::pymongo_verdict(stack.mongo_port, "admin", pw) {
        referee::PyLogin::Accepted => 0,
        referee::PyLogin::Rejected => 1,
        referee::PyLogin::Error(_) => 2,
    }
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
    if crate::docker_support::ci::under_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIP {msg}");
    false
}

/// Fails if any of `secrets` (in any encoding `leak::forms` knows) appears in what the tool
/// printed, or in any file under `state_dir` (which must exist); with the stack dir as the parent
/// of `state_dir`, prefer `leak::assert_no_leak_anywhere`, which looks everywhere a run writes.
pub fn assert_no_leak(secrets: &[&Secret], state_dir: &Path) {
    leak::assert_no_leak_in(secrets, state_dir);
}
