//! Running the tool binary: its output, its exit, and what `/proc` showed while it ran (every
//! process's argv, and the environment of the tool and its children), for the leak scan.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Tool {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub lock_dir: PathBuf,
    pub tmp: PathBuf,
    /// The age private key, given to the tool as `SOPS_AGE_KEY` as an operator's shell may
    /// export it beside the config's key file: it must reach none of the tool's children
    /// (issue 18 item 10), which the leak scan checks.
    pub age_env: Option<String>,
}

/// The `AGE-SECRET-KEY-1…` line of an age key file.
pub fn age_secret(file: &Path) -> Option<String> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(String::from)
}

pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Distinct argv and environments seen in /proc during the run, each with where it was
    /// seen (`argv of P`, `environ of child P`, `environ of the tool`).
    pub proc_samples: BTreeSet<(String, Vec<u8>)>,
    pub secs: f64,
    pub hung: bool,
}

impl Run {
    pub fn text(&self) -> String {
        format!(
            "$ komodo-rotate {}\nexit {:?} signal {:?} ({:.1}s{})\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.signal,
            self.secs,
            if self.hung { ", HUNG: killed" } else { "" },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

fn proc_tree() -> HashMap<u32, u32> {
    let mut m = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // pid (comm) state ppid ...
                if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                    if let Some(pp) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                        m.insert(pid, pp);
                    }
                }
            }
        }
    }
    m
}

fn descends(tree: &HashMap<u32, u32>, mut pid: u32, root: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match tree.get(&pid) {
            Some(&pp) if pp > 1 => pid = pp,
            _ => return false,
        }
    }
    false
}

fn sample(root: u32, me: u32, into: &Mutex<BTreeSet<(String, Vec<u8>)>>) {
    let tree = proc_tree();
    let mut got = into.lock().unwrap();
    let tool_argv = std::fs::read(format!("/proc/{root}/cmdline")).unwrap_or_default();
    for &pid in tree.keys() {
        if pid == me {
            continue;
        }
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let prog =
            String::from_utf8_lossy(argv.split(|b| *b == 0).next().unwrap_or(b"")).into_owned();
        if !argv.is_empty() {
            got.insert((format!("argv of {prog}"), argv.clone()));
        }
        if descends(&tree, pid, root) {
            if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
                // A child between fork and exec still shows the tool's own argv and env.
                let label = if pid == root || !argv.is_empty() && argv == tool_argv {
                    "environ of the tool".to_string()
                } else {
                    format!("environ of child {prog}")
                };
                got.insert((label, env));
            }
        }
    }
}

impl Tool {
    /// Runs `komodo-rotate ARGS --config CFG`; `kill_after` SIGKILLs it; `during` runs on
    /// another thread once the child started (a concurrent world action).
    pub fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        kill_after: Option<Duration>,
        during: Option<Box<dyn FnOnce() + Send>>,
    ) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let t0 = Instant::now();
        let mut c = Command::new(&self.bin);
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("FAILPOINTS")
            .env("KOMODO_ROTATE_LOCK_DIR", &self.lock_dir)
            .env("TMPDIR", &self.tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(k) = &self.age_env {
            c.env("SOPS_AGE_KEY", k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("spawn komodo-rotate");
        let pid = child.id();
        let samples = Arc::new(Mutex::new(BTreeSet::new()));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (samples, done) = (samples.clone(), done.clone());
            let me = std::process::id();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    sample(pid, me, &samples);
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        };
        let during = during.map(std::thread::spawn);
        let hung = Arc::new(AtomicBool::new(false));
        // The tool bounds each wait by its health timeout, per kind: a call naming several
        // kinds may take each one's time (seed 2135982605: three kinds beside a core
        // crash-looping for another reason, each proof waiting out the 60 s gate, passed 240 s).
        let kinds = args.iter().filter(|a| **a == "--secret").count().max(1) as u64;
        let killer = {
            let (done, hung) = (done.clone(), hung.clone());
            std::thread::spawn(move || {
                let limit = Duration::from_secs(240 * kinds);
                let t = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let el = t.elapsed();
                    if kill_after.is_some_and(|k| el >= k) || el >= limit {
                        if el >= limit {
                            hung.store(true, Ordering::Relaxed);
                        }
                        unsafe { libc_kill(pid as i32, 9) };
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let out = child.wait_with_output().expect("wait komodo-rotate");
        done.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        let _ = killer.join();
        if let Some(d) = during {
            let _ = d.join();
        }
        let proc_samples = std::mem::take(&mut *samples.lock().unwrap());
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            proc_samples,
            secs: t0.elapsed().as_secs_f64(),
            hung: hung.load(Ordering::Relaxed),
        }
    }

    /// The step names of `rotate --secret KIND --dry-run`'s plan.
    pub fn steps(&self, kind: &str) -> Vec<String> {
        let r = self.run(&["rotate", "--secret", kind, "--dry-run"], &[], None, None);
        r.stdout
            .lines()
            .filter_map(|l| {
                let (n, rest) = l.trim_start().split_once(". ")?;
                n.parse::<usize>().ok()?;
                rest.split_whitespace().next().map(String::from)
            })
            .collect()
    }

    pub fn failpoints_build(&self) -> bool {
        Command::new(&self.bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("(failpoints)"))
            .unwrap_or(false)
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn tool_path(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    if let Ok(p) = std::env::var("KOMODO_ROTATE_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("komodo-rotate")))
        .unwrap_or_else(|| PathBuf::from("komodo-rotate"))
}
