//! The referee: reads the truth with other tools than the tool's own code. The real `sops`
//! binary decrypts compose.env, pymongo says which password Mongo accepts, the docker CLI shows
//! each container's env, state and restarts, the git CLI the work tree and the remote. It
//! imports nothing of komodo_rotate (no sops/mongo/docker module), so a bug there cannot hide
//! itself. Values are held in memory only; views print fingerprints, never values.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use crate::keys::{db_key, env_key_of, fp, kind_keys, SECRET_KEYS};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctr {
    pub name: String,
    pub service: String,
    pub id: String,
    pub status: String,
    pub health: String,
    pub restarts: i64,
    /// The secret keys it carries.
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GitView {
    pub head: String,
    pub head_tree: String,
    pub status: String,
    pub origin: String,
    pub origin_tree: String,
    /// compose.env differs from HEAD's.
    pub env_uncommitted: bool,
    /// Commits on HEAD not on origin touching compose.env.
    pub unpushed_env: usize,
    pub behind: usize,
    /// Untracked files in the way of the pull, or local changes to incoming files.
    pub pull_blocked: Vec<String>,
    /// A revert, merge, cherry-pick or rebase stopped half way (`.git/REVERT_HEAD`, ...).
    pub in_progress: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MongoView {
    Unreachable,
    /// The candidate Mongo accepts (None: none of the known values).
    Accepts(Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub env_sha: String,
    /// compose.env decrypted by the real sops (Err: what sops said).
    pub env: Result<BTreeMap<String, String>, String>,
    pub mongo: MongoView,
    pub containers: Vec<Ctr>,
    pub git: GitView,
    pub journal: bool,
    /// The pending journal's secret kind (its `secret` field), to know which keys a `resume`
    /// answers for.
    pub journal_kind: Option<String>,
    pub core_serving: bool,
}

pub struct Referee {
    pub dir: PathBuf,
    pub project: String,
    pub mongo_port: u16,
    pub core_port: u16,
    pub origin: PathBuf,
    pub script: PathBuf,
    /// Every DB password value ever seen (Mongo's candidates).
    pub db_history: Vec<String>,
    /// Every secret value ever seen (the leak scan's needles).
    pub secrets: BTreeSet<String>,
}

pub fn sh(dir: &Path, prog: &str, args: &[&str]) -> (i32, String, String) {
    match Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ),
        Err(e) => (-1, String::new(), format!("{prog}: {e}")),
    }
}

/// `sops decrypt` of a dotenv file with the real binary.
pub fn sops_decrypt(file: &Path, age_key: &Path) -> Result<BTreeMap<String, String>, String> {
    let home = std::env::temp_dir();
    let out = Command::new("sops")
        .args([
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", age_key)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sops: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sops decrypt failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// compose.env as committed at `rev` (`git show`, ciphertext to a temp file in `dir`), read by
/// the real sops: what a commit holds, apart from what is on disk now.
pub fn sops_decrypt_rev(
    dir: &Path,
    rev: &str,
    age_key: &Path,
) -> Result<BTreeMap<String, String>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["show", &format!("{rev}:compose.env")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("git show: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git show {rev}:compose.env: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let tmp = dir.join(format!(".referee-{rev}-compose.env").replace('/', "-"));
    std::fs::write(&tmp, &out.stdout).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let r = sops_decrypt(&tmp, age_key);
    let _ = std::fs::remove_file(&tmp);
    r
}

const MONGO_PY: &str = r#"
import os, sys, pymongo
from pymongo.errors import OperationFailure
port = int(os.environ["MONGO_PORT"])
for i, line in enumerate(sys.stdin.read().split("\n")):
    if not line:
        continue
    try:
        c = pymongo.MongoClient("127.0.0.1", port, username="admin", password=line,
            authSource="admin", authMechanism="SCRAM-SHA-256", directConnection=True,
            serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        c.admin.command("ping")
        print(i); sys.exit(0)
    except OperationFailure as e:
        if e.code != 18:
            print("unreachable"); sys.exit(0)
    except Exception:
        print("unreachable"); sys.exit(0)
print("none")
"#;

impl Referee {
    pub fn new(dir: &Path, project: &str, mongo_port: u16, core_port: u16, origin: &Path) -> Self {
        let script = dir.join("campaign-referee-mongo.py");
        std::fs::write(&script, MONGO_PY).expect("write the referee's pymongo script");
        Referee {
            dir: dir.to_path_buf(),
            project: project.to_string(),
            mongo_port,
            core_port,
            origin: origin.to_path_buf(),
            script,
            db_history: Vec::new(),
            secrets: BTreeSet::new(),
        }
    }

    pub fn compose_env(&self) -> PathBuf {
        self.dir.join("compose.env")
    }
    pub fn age_key(&self) -> PathBuf {
        self.dir.join("age.key")
    }

    pub fn learn(&mut self, key: &str, v: &str) {
        // `${KEY}` (v1's PERIPHERY_PASSKEYS) is a reference compose interpolates, not a value.
        if v.len() >= 8 && !(v.starts_with("${") && v.ends_with('}')) {
            self.secrets.insert(v.to_string());
        }
        if env_key_of(key) == db_key() && !self.db_history.iter().any(|x| x == v) {
            self.db_history.push(v.to_string());
        }
    }

    /// Which known DB password Mongo accepts, `first` tried first.
    fn mongo(&self, first: Option<&str>) -> MongoView {
        let mut cands: Vec<&str> = first.into_iter().collect();
        cands.extend(
            self.db_history
                .iter()
                .map(|s| s.as_str())
                .filter(|s| Some(*s) != first),
        );
        let mut child = match Command::new("python3")
            .arg(&self.script)
            .env("MONGO_PORT", self.mongo_port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return MongoView::Unreachable,
        };
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(cands.join("\n").as_bytes());
        let out = child
            .wait_with_output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let s = String::from_utf8_lossy(&out).trim().to_string();
        match s.parse::<usize>() {
            Ok(i) => MongoView::Accepts(cands.get(i).map(|s| s.to_string())),
            Err(_) if s == "none" => MongoView::Accepts(None),
            Err(_) => MongoView::Unreachable,
        }
    }

    fn containers(&self) -> Vec<Ctr> {
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
            ],
        );
        // -next/-prev containers may lack compose's labels: list them by name as well.
        let (_, all, _) = sh(&self.dir, "docker", &["ps", "-a", "--format", "{{.Names}}"]);
        let mut want: BTreeSet<String> = names.lines().map(String::from).collect();
        for n in all.lines() {
            if n.starts_with(&format!("{}_", self.project))
                && (n.ends_with("-next") || n.ends_with("-prev"))
            {
                want.insert(n.to_string());
            }
        }
        let mut out = Vec::new();
        for name in want {
            let (code, json, _) = sh(&self.dir, "docker", &["inspect", &name]);
            if code != 0 {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            let c = &v[0];
            let env: BTreeMap<String, String> = c["Config"]["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.split_once('='))
                .filter(|(k, _)| SECRET_KEYS.contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            out.push(Ctr {
                name: name.clone(),
                service: c["Config"]["Labels"]["com.docker.compose.service"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                id: c["Id"].as_str().unwrap_or("").to_string(),
                status: c["State"]["Status"].as_str().unwrap_or("").to_string(),
                health: c["State"]["Health"]["Status"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                restarts: c["RestartCount"].as_i64().unwrap_or(0),
                env,
            });
        }
        out
    }

    fn git(&self) -> GitView {
        let g = |args: &[&str]| sh(&self.dir, "git", args).1;
        let _ = sh(&self.dir, "git", &["fetch", "-q", "origin"]);
        let head = g(&["rev-parse", "HEAD"]);
        let origin = g(&["rev-parse", "origin/main"]);
        let incoming: BTreeSet<String> = g(&["diff", "--name-only", "HEAD", "origin/main"])
            .lines()
            .map(String::from)
            .collect();
        let status = g(&["status", "--porcelain"]);
        let behind_list = g(&["rev-list", "HEAD..origin/main"]);
        let mut pull_blocked = Vec::new();
        if !behind_list.is_empty() {
            for l in status.lines() {
                let path = l.get(3..).unwrap_or("").to_string();
                if incoming.contains(&path) || incoming.iter().any(|i| i.starts_with(path.as_str()))
                {
                    pull_blocked.push(l.to_string());
                }
            }
        }
        GitView {
            head_tree: g(&["rev-parse", "HEAD^{tree}"]),
            origin_tree: sh(&self.origin, "git", &["rev-parse", "main^{tree}"]).1,
            env_uncommitted: sh(
                &self.dir,
                "git",
                &["diff", "--quiet", "HEAD", "--", "compose.env"],
            )
            .0 != 0,
            unpushed_env: g(&["rev-list", "origin/main..HEAD", "--", "compose.env"])
                .lines()
                .count(),
            behind: behind_list.lines().count(),
            in_progress: [
                "REVERT_HEAD",
                "MERGE_HEAD",
                "CHERRY_PICK_HEAD",
                "rebase-merge",
                "rebase-apply",
            ]
            .iter()
            .filter(|f| self.dir.join(".git").join(f).exists())
            .map(|f| f.to_string())
            .collect(),
            head,
            origin,
            status,
            pull_blocked,
        }
    }

    fn core_serving(&self) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.core_port).into(),
            std::time::Duration::from_secs(2),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
        if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let line = String::from_utf8_lossy(&buf[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| c < 500)
    }

    /// The truth now.
    pub fn look(&mut self) -> View {
        let env_sha = std::fs::read(self.compose_env())
            .map(|b| hex::encode(Sha256::digest(&b)))
            .unwrap_or_default();
        let env = sops_decrypt(&self.compose_env(), &self.age_key());
        let containers = self.containers();
        if let Ok(e) = &env {
            for (k, v) in e {
                if SECRET_KEYS.contains(&k.as_str()) {
                    self.learn(k, v);
                }
            }
        }
        for c in &containers {
            for (k, v) in &c.env {
                self.learn(k, v);
            }
        }
        let first = env.as_ref().ok().and_then(|e| e.get(db_key()).cloned());
        let journal_file = self.dir.join("state/journal/current.json");
        let journal_json = std::fs::read(&journal_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        // Every step done: a run that committed and was killed before it cleared its journal.
        // Nothing of it is pending: verify does not count it and the next run or `resume`
        // clears it (README "Exit codes", 0), so its going is no change (seed 1096938132, op
        // 49: a rotate refused with 3 after clearing one, called a change of "journal presence").
        let committed = journal_json.as_ref().is_some_and(|j| {
            j["steps"].as_array().is_some_and(|s| {
                !s.is_empty() && s.iter().all(|r| r["status"].as_str() == Some("done"))
            })
        });
        View {
            env_sha,
            mongo: self.mongo(first.as_deref()),
            env,
            containers,
            git: self.git(),
            journal: journal_file.exists() && !committed,
            journal_kind: journal_json
                .filter(|_| !committed)
                .and_then(|j| j["secret"].as_str().map(String::from)),
            core_serving: self.core_serving(),
        }
    }
}
