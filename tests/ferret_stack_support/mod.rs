//! Referees for the FerretDB rehearsal stack (issue 21), sharing no code with the tool: Debian's
//! real `psql` (over the published port, so PostgreSQL checks the password; and through the
//! postgres container's local socket, trust, for `pg_authid`), pymongo through the
//! FerretDB-shaped front end (`tests/py/ferret_auth.py`), `docker inspect`. Passwords reach the
//! referees through their environment only, never argv.

#![allow(dead_code)]

#[allow(clippy::duplicate_mod)]
#[path = "../common/stack_sops.rs"]
mod stack_sops;

use base64::Engine as _;
use komodo_rotate::secret::Secret;
// Not every test binary including this module uses both (e2e_ferret_rotate uses neither).
#[allow(unused_imports)]
pub use stack_sops::{sops_get, sops_set};
use std::process::{Command, Stdio};

/// Debian's psql (postgresql-client-15): `$KRT_PSQL` or `psql` on PATH. `None` with a printed
/// reason when missing; under CI a missing psql fails (scripts/setup-test-env installs it).
pub fn psql_or_skip(test: &str) -> Option<String> {
    let psql = std::env::var("KRT_PSQL").unwrap_or_else(|_| "psql".into());
    let found = Command::new(&psql)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(psql);
    }
    let ci = std::env::var("CI").is_ok_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !(v.is_empty() || v == "false" || v == "0" || v == "no" || v == "off")
    });
    if ci {
        panic!(
            "{test}: CI=true and no psql (install postgresql-client-15: scripts/setup-test-env)"
        );
    }
    eprintln!("SKIP {test}: no psql; set CI=true to make this fail");
    None
}

/// psql's verdict on `password` for `admin` over 127.0.0.1:`port` (scram-sha-256 in pg_hba):
/// `Ok(())` logged in and ran a query, `Err(stderr)` refused or failed.
pub fn psql_login(psql: &str, port: u16, password: &Secret) -> Result<(), String> {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(psql)
        .args(["-XAtq", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "admin", "-d", "postgres", "-c", "SELECT 42"])
        .env("PGPASSWORD", password.expose())
        .env("PGCONNECT_TIMEOUT", "5")
        .env("HOME", home.path())
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "42" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `rolpassword` of `admin`, read through the postgres container's local socket (trust: no
/// password), the SQL on stdin.
pub fn role_secret(postgres: &str) -> String {
    let mut child = Command::new("docker")
        .args([
            "exec", "-i", postgres, "psql", "-XAtq", "-U", "admin", "-d", "postgres",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec psql");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT rolpassword FROM pg_authid WHERE rolname = 'admin';\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql in {postgres}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// (iterations, salt length) of a `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>` secret,
/// parsed here (not with the front end's parser).
pub fn secret_shape(secret: &str) -> (u32, usize) {
    let rest = secret.strip_prefix("SCRAM-SHA-256$").unwrap_or_else(|| {
        panic!(
            "not a SCRAM-SHA-256 secret: {}",
            &secret[..secret.len().min(14)]
        )
    });
    let (head, _keys) = rest.split_once('$').expect("two $ parts");
    let (i, salt) = head.split_once(':').expect("i:salt");
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .expect("base64 salt");
    (i.parse().expect("iterations"), salt.len())
}

/// What pymongo saw through the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyAnswer {
    pub ok: bool,
    pub code: Option<i64>,
    pub errmsg: Option<String>,
}

/// `tests/py/ferret_auth.py` with `action` (`login`, `ping`, `update`).
pub fn pymongo(port: u16, action: &str, pw: &Secret, new_pw: Option<&Secret>) -> PyAnswer {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ferret_auth.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env_remove("PYTHONOPTIMIZE")
        .env("MONGO_PORT", port.to_string())
        .env("MONGO_USER", "admin")
        .env("MONGO_PW", pw.expose())
        .env("ACTION", action);
    if let Some(n) = new_pw {
        cmd.env("NEW_PW", n.expose());
    }
    let out = cmd.output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "ferret_auth.py said {text:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    PyAnswer {
        ok: v["ok"].as_bool().unwrap_or(false),
        code: v["code"].as_i64(),
        errmsg: v["errmsg"].as_str().map(str::to_string),
    }
}

/// `KEY`'s value in a container's env (`docker inspect`).
pub fn container_env(name: &str, key: &str) -> Option<Secret> {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", name])
        .output()
        .ok()?;
    let env: Vec<String> = serde_json::from_slice(&out.stdout).ok()?;
    env.iter().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| Secret::new(v.to_string()))
    })
}
