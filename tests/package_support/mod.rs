//! Shared helpers of the package tests (tests/package_*.rs): what `scripts/package` built (it
//! names its outputs in `<target>/package.env`; `scripts/test` runs it before the tests), a
//! clean Debian bookworm image made from Debian's packages (`testcontainers/debian-image`), and
//! `docker run` of a shell script in it.

#![allow(dead_code)]

#[allow(clippy::duplicate_mod)]
#[path = "../common/ci.rs"]
pub mod ci;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");

/// `<target>/package.env` as scripts/package wrote it (DEB, IMAGE, VERSION, COMMIT).
pub struct Built {
    pub vars: BTreeMap<String, String>,
    pub target: PathBuf,
}

impl Built {
    pub fn get(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("{}: no {k}= in package.env", self.target.display()))
    }
}

/// The target dir this test was built in: the tool is `<target>/debug/komodo-rotate`.
pub fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Fails the test under CI (or skips it, saying why, elsewhere).
pub fn skip_or_fail(test: &str, why: &str) {
    if ci::under_ci() {
        panic!("{test}: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}

/// scripts/test builds the package in the background while the other tests run
/// (`KOMODO_ROTATE_PACKAGE_PID`, its log in `KOMODO_ROTATE_PACKAGE_LOG`): wait until it is done.
/// A failed build fails the test with the log's end.
fn wait_for_background_build(test: &str) {
    let Ok(pid) = std::env::var("KOMODO_ROTATE_PACKAGE_PID") else {
        return;
    };
    let log = std::env::var("KOMODO_ROTATE_PACKAGE_LOG").unwrap_or_default();
    let started = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    {
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    eprintln!(
        "{test}: waited {:.0} s for scripts/package (pid {pid})",
        started.elapsed().as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let done = text.lines().any(|l| l.starts_with("package: done"));
    if !done {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{test}: scripts/package (run by scripts/test) failed; end of {log}:\n{}",
            tail.join("\n")
        );
    }
}

/// What scripts/package built, with `need` among its keys; `None` (after `skip_or_fail`) when
/// it has not been run, or ran without the image when `need` asks for IMAGE.
pub fn built(test: &str, need: &[&str]) -> Option<Built> {
    wait_for_background_build(test);
    let target = target_dir();
    let file = target.join("package.env");
    let Ok(text) = std::fs::read_to_string(&file) else {
        skip_or_fail(
            test,
            &format!(
                "{} is missing: run scripts/package first (scripts/test does)",
                file.display()
            ),
        );
        return None;
    };
    let vars: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(k) = need.iter().find(|k| !vars.contains_key(**k)) {
        skip_or_fail(
            test,
            &format!(
                "{} has no {k}=: run scripts/package (without --deb)",
                file.display()
            ),
        );
        return None;
    }
    Some(Built { vars, target })
}

/// Whether the engine answers (else `skip_or_fail`).
pub fn engine(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_or_fail(
            test,
            "no Docker engine answers (scripts/setup-test-env starts one)",
        );
    }
    ok
}

/// The tag of the bookworm minbase image NAME of `testcontainers/debian-images.list` (built
/// once, by scripts/test before its build or by the first test that asks; the script keeps two
/// callers from building the same one at once).
pub fn debian_image(name: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testcontainers/debian-image");
    let out = Command::new(&script)
        .arg(name)
        .output()
        .expect("run testcontainers/debian-image");
    assert!(
        out.status.success(),
        "debian-image {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `docker run --rm` of `image` with `args` before the image, running `bash -euc script`.
pub fn run_script(image: &str, args: &[&str], script: &str) -> Output {
    Command::new("docker")
        .args(["run", "--rm", "--network", "none"])
        .args(args)
        .args([image, "bash", "-euo", "pipefail", "-c", script])
        .output()
        .expect("docker run")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
