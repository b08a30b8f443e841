//! The referees of the planes, outside the code under test (issue 23, item 1): the `docker` CLI
//! reads containers (`docker inspect`), pymongo logs in to Mongo (tests/py/login.py), the real Go
//! `sops` decrypts compose.env (`sops_get` in mod.rs). None of them shares code with the tool,
//! so a bug in the tool's own inspect, login or SOPS parser cannot certify its own result.

use komodo_rotate::secret::Secret;
use std::process::Command;

/// `docker inspect NAME`'s JSON (the CLI, not the tool's engine client); `None` when there is no
/// such container. Panics when the CLI fails for another reason.
pub fn docker_inspect(name: &str) -> Option<serde_json::Value> {
    let out = Command::new("docker")
        .args(["inspect", "--type", "container", name])
        .output()
        .expect("the docker CLI runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No such"),
            "docker inspect {name} failed: {err}"
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("docker inspect JSON");
    v.as_array().and_then(|a| a.first()).cloned()
}

/// `docker inspect` of several containers in one CLI call: the ones that exist, by name.
pub fn docker_inspect_many(names: &[&str]) -> std::collections::HashMap<String, serde_json::Value> {
    let out = Command::new("docker")
        .args(["inspect", "--type", "container"])
        .args(names)
        .output()
        .expect("the docker CLI runs");
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.contains("No such"), "docker inspect failed: {err}");
    }
    let found: Vec<serde_json::Value> = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        serde_json::from_slice(&out.stdout).expect("docker inspect JSON")
    };
    found
        .into_iter()
        .filter_map(|c| {
            let name = c["Name"].as_str()?.trim_start_matches('/').to_string();
            Some((name, c))
        })
        .collect()
}

/// `key`'s value in the env of an inspected container.
pub fn env_in(c: &serde_json::Value, key: &str) -> Option<Secret> {
    let prefix = format!("{key}=");
    c["Config"]["Env"]
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix(&prefix).map(|v| Secret::new(v.to_string())))
}

/// Whether a container named `name` exists (running or not), by the docker CLI.
pub fn container_exists(name: &str) -> bool {
    docker_inspect(name).is_some()
}

/// `key`'s value in container `name`'s env, by `docker inspect`; `None` when the container or
/// the key is missing.
pub fn docker_env(name: &str, key: &str) -> Option<Secret> {
    env_in(&docker_inspect(name)?, key)
}

/// pymongo's verdict on logging in as `user` with `pw` on 127.0.0.1:`port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyLogin {
    Accepted,
    Rejected,
    /// Anything else (Mongo unreachable, pymongo missing): the exit code of login.py.
    Error(i32),
}

pub fn pymongo_verdict(port: u16, user: &str, pw: &Secret) -> PyLogin {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/login.py");
    let code = Command::new("python3")
        .arg(script)
        .env_remove("PYTHONOPTIMIZE")
        .env("MONGO_PORT", port.to_string())
        .env("MONGO_USER", user)
        .env("MONGO_PW", pw.expose())
        .status()
        .map(|s| s.code().unwrap_or(2))
        .unwrap_or(2);
    match code {
        0 => PyLogin::Accepted,
        1 => PyLogin::Rejected,
        c => PyLogin::Error(c),
    }
}

/// pymongo changes `user`'s password from `from` to `to` (`updateUser`, logged in with `from`),
/// as someone acting behind the tool's back would. Panics when it fails.
pub fn pymongo_set_password(port: u16, user: &str, from: &Secret, to: &Secret) {
    let script = "import os,pymongo\n\
c=pymongo.MongoClient('127.0.0.1',int(os.environ['MONGO_PORT']),username=os.environ['MONGO_USER'],password=os.environ['FROM'],authSource='admin',directConnection=True,serverSelectionTimeoutMS=10000)\n\
c.admin.command('updateUser',os.environ['MONGO_USER'],pwd=os.environ['TO'])\n";
    let st = Command::new("python3")
        .args(["-c", script])
        .env_remove("PYTHONOPTIMIZE")
        .env("MONGO_PORT", port.to_string())
        .env("MONGO_USER", user)
        .env("FROM", from.expose())
        .env("TO", to.expose())
        .status()
        .expect("python3 runs");
    assert!(st.success(), "pymongo updateUser {user}");
}

/// `docker ACTION NAME` (the CLI: `stop`, `start`); panics when it fails.
pub fn docker_cli(action: &str, name: &str) {
    let out = Command::new("docker")
        .args([action, name])
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {action} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether container `name` is running, by `docker inspect` (the CLI).
pub fn docker_running(name: &str) -> bool {
    docker_inspect(name).is_some_and(|c| c["State"]["Running"].as_bool() == Some(true))
}
