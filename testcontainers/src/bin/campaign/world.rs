//! The world around the tool: the host checkout and its remote, the deploy pipeline, hand
//! edits, reboots and holders going away for a while. Everything here uses the CLIs a host
//! has (git, sops, docker, docker-compose), never the tool's code.

use crate::gen::{Holder, Rng, Transient};
use crate::referee::sh;
use komodo_testcontainers::stack::Stack;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct World {
    pub dir: PathBuf,
    pub origin: PathBuf,
    pub clone: PathBuf,
    pub project: String,
    pub mongo: String,
    pub core: String,
    pub periphery: String,
    pub lock_dir: PathBuf,
    pub compose: komodo_testcontainers::stack::compose::Project,
    pub rng: Rng,
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<String, String> {
    let (c, o, e) = sh(dir, "git", args);
    if c == 0 {
        Ok(o)
    } else {
        Err(format!("git {args:?} in {}: {e}", dir.display()))
    }
}

/// Files of the stack dir that are the host's own, not the repo's.
const HOST_ONLY: &str =
    "/age.key\n/komodo-rotate.toml\n/state/\n/control/\n/host-locks/\n/tmp/\n/secrets/\n";

impl World {
    /// Puts the stack dir under git (compose.env and the compose file tracked) with a bare
    /// origin and a second clone in `work`.
    pub fn new(stack: &Stack, work: &Path, seed: u64) -> Result<World, String> {
        let origin = work.join("origin.git");
        let clone = work.join("pipeline");
        let dir = stack.dir.clone();
        git_ok(
            work,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                origin.to_str().unwrap(),
            ],
        )?;
        git_ok(&dir, &["init", "-q", "-b", "main"])?;
        std::fs::write(dir.join(".git/info/exclude"), HOST_ONLY).map_err(|e| e.to_string())?;
        git_ok(&dir, &["config", "user.name", "campaign host"])?;
        git_ok(&dir, &["config", "user.email", "host@example.invalid"])?;
        git_ok(&dir, &["add", "compose.env", "mongo.compose.yaml"])?;
        git_ok(&dir, &["commit", "-q", "-m", "deploy"])?;
        git_ok(&dir, &["remote", "add", "origin", origin.to_str().unwrap()])?;
        git_ok(&dir, &["push", "-q", "-u", "origin", "main"])?;
        git_ok(
            work,
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        )?;
        git_ok(&clone, &["config", "user.name", "campaign colleague"])?;
        git_ok(
            &clone,
            &["config", "user.email", "colleague@example.invalid"],
        )?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
        Ok(World {
            lock_dir: dir.join("host-locks"),
            compose: stack.compose(),
            dir,
            origin,
            clone,
            project: stack.project.clone(),
            mongo: stack.mongo.clone(),
            core: stack.core.clone(),
            periphery: stack.periphery.clone(),
            rng: Rng::new(seed ^ 0x5eed),
        })
    }

    fn age_key(&self) -> PathBuf {
        self.dir.join("age.key")
    }

    pub fn sops_set(&self, file: &Path, key: &str, value: &str) -> Result<(), String> {
        sops_set_at(file, &self.age_key(), key, value)
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}{:016x}{:016x}", self.rng.next(), self.rng.next())
    }

    /// The operator commits compose.env's edit and pushes it. When upstream moved, rebases on
    /// it; when that conflicts (two SOPS edits always do), merges by hand as one does with
    /// SOPS files: takes upstream's file and sets on it every value that differs locally.
    /// Never while a journal is pending (the runbook says resume first): then it stays local.
    pub fn operator_commit(&self, msg: &str) -> String {
        if sh(
            &self.dir,
            "git",
            &["diff", "--quiet", "HEAD", "--", "compose.env"],
        )
        .0 == 0
        {
            return "nothing to commit".into();
        }
        let _ = sh(&self.dir, "git", &["add", "compose.env"]);
        let _ = sh(&self.dir, "git", &["commit", "-q", "-m", msg]);
        if sh(&self.dir, "git", &["push", "-q"]).0 == 0 {
            return "committed and pushed".into();
        }
        if self.dir.join("state/journal/current.json").exists() {
            return "committed; push rejected, left local (a journal is pending)".into();
        }
        format!("committed; {}", self.sync_by_hand())
    }

    /// Brings a diverged checkout onto upstream: rebase, else SOPS-merge by hand. Then push.
    pub fn sync_by_hand(&self) -> String {
        let _ = sh(&self.dir, "git", &["fetch", "-q"]);
        let mut did = String::new();
        if sh(&self.dir, "git", &["rebase", "-q", "origin/main"]).0 != 0 {
            let _ = sh(&self.dir, "git", &["rebase", "--abort"]);
            let local = match crate::referee::sops_decrypt(
                &self.dir.join("compose.env"),
                &self.age_key(),
            ) {
                Ok(l) => l,
                Err(e) => return format!("merge by hand impossible: {e}"),
            };
            let _ = sh(&self.dir, "git", &["reset", "-q", "--hard", "origin/main"]);
            let theirs =
                crate::referee::sops_decrypt(&self.dir.join("compose.env"), &self.age_key())
                    .unwrap_or_default();
            for (k, v) in &local {
                if theirs.get(k) != Some(v) {
                    if let Err(e) = self.sops_set(&self.dir.join("compose.env"), k, v) {
                        return format!("merge by hand: {e}");
                    }
                }
            }
            let _ = sh(&self.dir, "git", &["add", "compose.env"]);
            let _ = sh(&self.dir, "git", &["commit", "-q", "-m", "merge by hand"]);
            did.push_str("merged by hand");
        } else {
            did.push_str("rebased");
        }
        let c = sh(&self.dir, "git", &["push", "-q"]).0;
        format!("{did}, push exit {c}")
    }

    /// The hand steps runbooks/blocked-pull.md gives for what `repo unblock` refuses: untracked
    /// files differing from the incoming ones moved aside, a diverged HEAD rebased by hand and
    /// pushed, a compose.env edit committed and pushed.
    pub fn runbook_git_hand_steps(&self, aside: &Path) -> String {
        let mut did = Vec::new();
        let _ = sh(&self.dir, "git", &["fetch", "-q"]);
        let incoming = sh(
            &self.dir,
            "git",
            &["diff", "--name-only", "HEAD", "origin/main"],
        )
        .1;
        for f in incoming.lines() {
            let p = self.dir.join(f);
            let tracked = sh(&self.dir, "git", &["ls-files", "--error-unmatch", f]).0 == 0;
            if p.exists() && !tracked {
                let theirs = sh(&self.dir, "git", &["show", &format!("origin/main:{f}")]).1;
                let mine = std::fs::read_to_string(&p).unwrap_or_default();
                if theirs.trim() != mine.trim() {
                    let dst = aside.join(f.replace('/', "_"));
                    let _ = std::fs::create_dir_all(aside);
                    let _ = std::fs::rename(&p, &dst);
                    did.push(format!("moved {f} aside"));
                }
            }
        }
        if sh(
            &self.dir,
            "git",
            &["diff", "--quiet", "HEAD", "--", "compose.env"],
        )
        .0 != 0
        {
            did.push(self.operator_commit("commit compose.env (runbook)"));
        }
        let ahead = sh(
            &self.dir,
            "git",
            &["rev-list", "--count", "origin/main..HEAD"],
        )
        .1;
        if ahead != "0" {
            did.push(self.sync_by_hand());
        }
        did.join("; ")
    }

    pub fn foreign_set(&mut self) -> String {
        let v = format!("Komodo {}", self.token(""));
        match self.sops_set(&self.dir.join("compose.env"), "KOMODO_TITLE", &v) {
            Ok(()) => "set".into(),
            Err(e) => e,
        }
    }

    pub fn hand_edit_db_password(&mut self) -> String {
        let v = self.token("hand");
        match self.sops_set(&self.dir.join("compose.env"), crate::referee::db_key(), &v) {
            Ok(()) => format!(
                "set; {}",
                self.operator_commit("hand edit of the DB password")
            ),
            Err(e) => e,
        }
    }

    pub fn compose_up(&self, no_deps: bool) -> String {
        let mut args = vec!["up", "-d"];
        if no_deps {
            args.extend(["--no-deps", "core", "periphery"]);
        }
        match self.compose.run(&args) {
            Ok(o) => format!("exit {:?}", o.status.code()),
            Err(e) => e,
        }
    }

    pub fn upstream_commit(&mut self, touch_env: bool) -> String {
        let c = self.clone.clone();
        if let Err(e) = git_ok(&c, &["pull", "-q", "--ff-only"]) {
            // The colleague's clone follows origin whatever happened.
            let _ = sh(&c, "git", &["fetch", "-q"]);
            let _ = sh(&c, "git", &["reset", "-q", "--hard", "origin/main"]);
            let _ = e;
        }
        if touch_env {
            let v = format!("Colleague {}", self.token(""));
            if let Err(e) = self.sops_set(&c.join("compose.env"), "KOMODO_TITLE", &v) {
                return e;
            }
        } else {
            let name = format!("notes/{}.md", self.token("n"));
            let _ = std::fs::create_dir_all(c.join("notes"));
            let _ = std::fs::write(c.join(&name), "a note\n");
        }
        let _ = sh(&c, "git", &["add", "-A"]);
        let _ = sh(&c, "git", &["commit", "-q", "-m", "colleague's change"]);
        match git_ok(&c, &["push", "-q"]) {
            Ok(_) => "pushed".into(),
            Err(e) => e,
        }
    }

    /// Upstream adds `deploy/<x>.yaml`; the host already has an untracked copy.
    pub fn untracked_block(&mut self, identical: bool) -> String {
        let name = format!("deploy/{}.yaml", self.token("f"));
        let body = "service: extra\n";
        let c = self.clone.clone();
        let _ = sh(&c, "git", &["fetch", "-q"]);
        let _ = sh(&c, "git", &["reset", "-q", "--hard", "origin/main"]);
        let _ = std::fs::create_dir_all(c.join("deploy"));
        let _ = std::fs::write(c.join(&name), body);
        let _ = sh(&c, "git", &["add", "-A"]);
        let _ = sh(&c, "git", &["commit", "-q", "-m", "add a deploy file"]);
        if let Err(e) = git_ok(&c, &["push", "-q"]) {
            return e;
        }
        let _ = std::fs::create_dir_all(self.dir.join("deploy"));
        let host_body = if identical {
            body.to_string()
        } else {
            "service: mine\n".into()
        };
        let _ = std::fs::write(self.dir.join(&name), host_body);
        "pushed; untracked copy on the host".into()
    }

    pub fn reboot(&self) -> String {
        if let Ok(rd) = std::fs::read_dir(&self.lock_dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let (c, _, e) = sh(
            &self.dir,
            "docker",
            &[
                "restart",
                "-t",
                "5",
                &self.mongo,
                &self.core,
                &self.periphery,
            ],
        );
        // Give the services their start-up time, as a host's boot does.
        std::thread::sleep(std::time::Duration::from_secs(3));
        if c == 0 {
            "lock dir emptied, containers restarted".into()
        } else {
            format!("docker restart: {e}")
        }
    }

    fn holder(&self, h: Holder) -> String {
        // Current container of the service (a recreate gives it another ID, same name).
        let svc = match h {
            Holder::Core => "core",
            Holder::Periphery => "periphery",
        };
        let (_, names, _) = sh(
            &self.dir,
            "docker",
            &[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.project),
                "--filter",
                &format!("label=com.docker.compose.service={svc}"),
            ],
        );
        names
            .lines()
            .find(|n| !n.ends_with("-next") && !n.ends_with("-prev"))
            .unwrap_or(match h {
                Holder::Core => &self.core,
                Holder::Periphery => &self.periphery,
            })
            .to_string()
    }

    pub fn start_fault(&self, f: &Transient) -> (String, String) {
        match f {
            Transient::Pause(h) => {
                let n = self.holder(*h);
                sh(&self.dir, "docker", &["pause", &n]);
                (n, "paused".into())
            }
            Transient::Stop(h) => {
                let n = self.holder(*h);
                sh(&self.dir, "docker", &["stop", "-t", "2", &n]);
                (n, "stopped".into())
            }
            Transient::MongoStopped => {
                sh(&self.dir, "docker", &["stop", "-t", "2", &self.mongo]);
                (self.mongo.clone(), "stopped".into())
            }
        }
    }

    /// Undoes a transient fault: unpause, or start (whatever container has the name now).
    pub fn end_fault(&self, f: &Transient, name: &str) {
        match f {
            Transient::Pause(_) => {
                sh(&self.dir, "docker", &["unpause", name]);
            }
            _ => {
                let (c, s, _) = sh(
                    &self.dir,
                    "docker",
                    &["inspect", "-f", "{{.State.Status}}", name],
                );
                if c == 0 && s != "running" {
                    sh(&self.dir, "docker", &["start", name]);
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// `sops set` by another process on `file` (a colleague's edit during a run).
pub fn sops_set_at(file: &Path, age_key: &Path, key: &str, value: &str) -> Result<(), String> {
    let mut child = Command::new("sops")
        .args([
            "set",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "--value-stdin",
        ])
        .arg(file)
        .arg(format!("[\"{key}\"]"))
        .env("SOPS_AGE_KEY_FILE", age_key)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sops: {e}"))?;
    let json = serde_json::to_string(value).unwrap();
    let _ = child.stdin.take().unwrap().write_all(json.as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "sops set {key}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
