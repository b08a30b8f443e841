//! The secret-hygiene scan (issue 23, item 4). Values: the ones a test names, plus every old and
//! new value a run staged, taken from the journal's sealed secrets (decrypted here with the
//! stack's age key through the `age` crate, not the tool's code) — also the values of runs that
//! were rolled back, which the test never sees otherwise. `tool()` watches the journal while a
//! run lasts and keeps every sealed blob it saw. Places: everything the tool printed in this
//! process, every file under the stack dir (state, host lock dir, runbook /tmp dir and its
//! `.prom` files, compose.env's checkout with its `.git`, unpacked with the `git` CLI), any
//! extra dir (an origin repo), and the stack's containers as `docker inspect` shows them without
//! their env (labels, command, config). Encodings: the raw bytes, base64 (standard and URL-safe,
//! any alignment), hex (either case), and a printed prefix (the first 8 characters). A directory
//! that does not exist fails the scan instead of scanning as empty.

use super::{host_lock_dir, CAPTURED};
use base64::Engine as _;
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Every sealed-secrets blob seen in a journal in this process, with the key file that opens it.
static SEALED: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// Shortest value the scan accepts (a shorter one would match by chance).
const MIN_LEN: usize = 8;
/// The printed prefix searched for.
const PREFIX: usize = 8;

fn journal_path(stack: &Stack) -> PathBuf {
    stack.dir.join("state/journal/current.json")
}

/// Keeps the sealed secrets of the journal at `journal`, if it holds any new ones.
fn harvest(journal: &Path, key: &Path) {
    let Ok(text) = std::fs::read_to_string(journal) else {
        return;
    };
    let Ok(j) = serde_json::from_str::<serde_json::Value>(&text) else {
        return; // caught mid-write by the watcher; the next look reads it whole
    };
    if let Some(s) = j["sealed_secrets"].as_str() {
        let mut all = SEALED.lock().unwrap();
        if !all.iter().any(|(_, x)| x == s) {
            all.push((key.to_path_buf(), s.to_string()));
        }
    }
}

/// Watches the stack's journal while a run lasts (polled every 2 ms) and keeps its sealed
/// secrets; stops (after a last look) when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn watch(stack: &Stack) -> Watcher {
    let journal = journal_path(stack);
    let key = stack.age_key();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut last = None;
        loop {
            let done = s.load(Ordering::Relaxed);
            let meta = std::fs::metadata(&journal)
                .ok()
                .map(|m| (m.len(), m.modified().ok()));
            if meta.is_some() && meta != last {
                harvest(&journal, &key);
            }
            last = meta;
            if done {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    Watcher {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The old and new values of every run seen (see `watch`) and of the journal there is now.
pub fn journal_values(stack: &Stack) -> Vec<Secret> {
    harvest(&journal_path(stack), &stack.age_key());
    let mut out = Vec::new();
    for (key, sealed) in SEALED.lock().unwrap().iter() {
        let body = open(sealed, key);
        let pair: serde_json::Value =
            serde_json::from_slice(&body).expect("sealed secrets are a JSON object");
        for k in ["old", "new"] {
            let v = pair[k].as_str().expect("sealed old/new").to_string();
            out.push(Secret::new(v));
        }
    }
    out
}

/// The (old, new) pair the pending journal of `stack` sealed, opened as `journal_values` opens it
/// (the age crate, the stack's key): for a test that must act with a value only the run knows.
pub fn pending_pair(stack: &Stack) -> (Secret, Secret) {
    let text = std::fs::read_to_string(journal_path(stack)).expect("a pending journal");
    let j: serde_json::Value = serde_json::from_str(&text).expect("journal JSON");
    harvest(&journal_path(stack), &stack.age_key());
    let sealed = j["sealed_secrets"].as_str().expect("sealed secrets");
    let pair: serde_json::Value =
        serde_json::from_slice(&open(sealed, &stack.age_key())).expect("a JSON object");
    let get = |k: &str| Secret::new(pair[k].as_str().expect("sealed old/new").to_string());
    (get("old"), get("new"))
}

/// Decrypts an armored age blob with the X25519 identity in `key` (the age crate itself).
fn open(armored: &str, key: &Path) -> Vec<u8> {
    use std::str::FromStr;
    let text = std::fs::read_to_string(key).expect("the stack's age key");
    let id = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| age::x25519::Identity::from_str(l.trim()).expect("age identity"))
        .expect("an AGE-SECRET-KEY line");
    let d = age::Decryptor::new(age::armor::ArmoredReader::new(armored.as_bytes()))
        .expect("an age file");
    let mut r = d
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .expect("the stack's key opens the journal's sealed secrets");
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Every form of `value` the scan looks for: raw, base64 (standard and URL-safe, with or
/// without padding, in each of the 3 alignments a value can have inside a longer encoded
/// text), hex (lower and upper case), and its first `PREFIX` characters.
pub fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![value.to_vec(), value[..PREFIX.min(value.len())].to_vec()];
    out.push(hex::encode(value).into_bytes());
    out.push(hex::encode_upper(value).into_bytes());
    for eng in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for lead in 0..3usize {
            // Encoding `lead` unknown bytes before the value: the characters that depend on
            // the value alone start at ceil(lead*8/6) and end before the last partial group.
            let mut buf = vec![0u8; lead];
            buf.extend_from_slice(value);
            let enc = eng.encode(&buf);
            let start = (lead * 8).div_ceil(6);
            let end = (buf.len() * 8) / 6;
            if end > start + PREFIX {
                out.push(enc.as_bytes()[start..end].to_vec());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Panics naming the place and the form when any form of any of `values` is in `hay`.
fn check(values: &[Secret], hay: &[u8], place: &str) {
    for (i, v) in values.iter().enumerate() {
        let raw = v.expose().as_bytes();
        assert!(raw.len() >= MIN_LEN, "hygiene scan needs real secrets");
        for (j, f) in forms(raw).iter().enumerate() {
            assert!(
                !memmem(hay, f),
                "value #{i} (form #{j}: 0 raw, then prefix/hex/base64) leaked into {place}"
            );
        }
    }
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` (which must exist), without following symlinks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    assert!(
        dir.is_dir(),
        "hygiene scan: {} does not exist (a missing dir would scan as empty)",
        dir.display()
    );
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// The git repositories under `dir`: work trees' `.git` dirs and bare repos.
fn repos_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if d.join("objects").is_dir() && d.join("HEAD").is_file() {
            out.push(d.clone());
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
    }
    out
}

/// Every object of the repository at `git_dir`, decompressed, by the git CLI.
fn git_objects(git_dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "--batch-all-objects", "--batch", "--unordered"])
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git cat-file in {}: {}",
        git_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The stack's containers (`docker ps -a` by compose project) as `docker inspect` shows them,
/// their env left out (holding the live value there is their job).
fn containers_without_env(project: &str) -> Vec<(String, Vec<u8>)> {
    let ps = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .expect("docker ps");
    assert!(ps.status.success(), "docker ps failed");
    let mut out = Vec::new();
    for name in String::from_utf8_lossy(&ps.stdout).lines() {
        if let Some(mut c) = super::referee::docker_inspect(name) {
            if let Some(cfg) = c["Config"].as_object_mut() {
                cfg.remove("Env");
            }
            out.push((name.to_string(), serde_json::to_vec(&c).unwrap()));
        }
    }
    out
}

/// Files of the stack dir that hold plaintext by design: the age key, and the password file core
/// reads (a plane, like a container's env; the tool seals its earlier content as `.prev.age`).
fn by_design(stack: &Stack, p: &Path) -> bool {
    p == stack.age_key() || p == stack.password_file()
}

/// The full scan (see the module doc) for `secrets` plus every value the runs staged, over the
/// stack dir, `extra_dirs`, the tool's output in this process and the stack's containers.
pub fn assert_no_leak_anywhere(stack: &Stack, secrets: &[&Secret], extra_dirs: &[&Path]) {
    let mut values: Vec<Secret> = secrets.iter().map(|s| (*s).clone()).collect();
    values.extend(journal_values(stack));
    check(&values, &CAPTURED.lock().unwrap(), "the tool's output");
    assert!(
        host_lock_dir(stack).is_dir() || !stack.dir.join("state").is_dir(),
        "hygiene scan: the host lock dir {} is missing",
        host_lock_dir(stack).display()
    );
    let mut dirs = vec![stack.dir.as_path()];
    dirs.extend_from_slice(extra_dirs);
    for d in dirs {
        for f in files_under(d) {
            if by_design(stack, &f) {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap_or_default();
            check(&values, &bytes, &f.display().to_string());
        }
        for repo in repos_under(d) {
            check(
                &values,
                &git_objects(&repo),
                &format!("the objects of the git repository {}", repo.display()),
            );
        }
    }
    for (name, inspect) in containers_without_env(&stack.project) {
        check(
            &values,
            &inspect,
            &format!("container {name} (docker inspect, env left out)"),
        );
    }
    println!(
        "hygiene scan: {} values ({} from journals) clean everywhere",
        values.len(),
        values.len() - secrets.len()
    );
}

/// The scan over the tool's output in this process only (for a run that writes `secrets` to a
/// file by design, as salvage-env does).
pub fn assert_not_printed(secrets: &[&Secret]) {
    let values: Vec<Secret> = secrets.iter().map(|s| (*s).clone()).collect();
    check(&values, &CAPTURED.lock().unwrap(), "the tool's output");
}

/// The scan over one directory and the tool's output (kept for the existing callers; prefer
/// `assert_no_leak_anywhere`).
pub fn assert_no_leak_in(secrets: &[&Secret], dir: &Path) {
    let values: Vec<Secret> = secrets.iter().map(|s| (*s).clone()).collect();
    check(&values, &CAPTURED.lock().unwrap(), "the tool's output");
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        check(&values, &bytes, &f.display().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_found_inside_longer_text() {
        let v = b"Zq3vX9pLm2RtY7wKc4NbH8sJd6FgA1eU5oIiPy0T";
        for lead in 0..3 {
            let mut buf = b"xyz"[..lead].to_vec();
            buf.extend_from_slice(v);
            buf.extend_from_slice(b"tail");
            for enc in [
                base64::engine::general_purpose::STANDARD.encode(&buf),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf),
                hex::encode(&buf),
                hex::encode_upper(&buf),
            ] {
                let hay = format!("log: {enc} end");
                assert!(
                    forms(v).iter().any(|f| memmem(hay.as_bytes(), f)),
                    "missed {enc}"
                );
            }
        }
        assert!(forms(v).iter().any(|f| memmem(b"pw=Zq3vX9pL...", f)));
        assert!(!forms(v).iter().any(|f| memmem(b"nothing of it here", f)));
        // A directory that is not there fails instead of scanning as empty.
        let gone = std::panic::catch_unwind(|| files_under(Path::new("/nonexistent/state")));
        assert!(gone.is_err(), "a missing dir scanned as empty");
    }
}
