//! The real Go `sops` on a rehearsal stack's compose.env, as an operator runs it (the stack's
//! age key, a temp `HOME`, no version check): read a key, or set one by hand
//! (`sops set --value-stdin`, the value never in argv). Shared by the e2e and FerretDB referees.

#![allow(dead_code)]

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::process::{Command, Stdio};

fn sops(stack: &Stack, args: &[&str], home: &std::path::Path) -> Command {
    let mut c = Command::new("sops");
    c.args(args)
        .arg(stack.compose_env())
        .env("SOPS_AGE_KEY_FILE", stack.age_key())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home);
    c
}

/// compose.env's `key` as written in the file, decrypted by the real sops (`None` when sops
/// fails or the key is absent).
pub fn sops_get(stack: &Stack, key: &str) -> Option<Secret> {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "decrypt",
        "--input-type",
        "dotenv",
        "--output-type",
        "dotenv",
    ];
    let out = sops(stack, &args, home.path()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| Secret::new(v.to_string()))
    })
}

/// A hand edit with the real sops: `sops set` of `key` in compose.env, the value on stdin.
pub fn sops_set(stack: &Stack, key: &str, value: &Secret) {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let args = [
        "set",
        "--input-type",
        "dotenv",
        "--output-type",
        "dotenv",
        "--value-stdin",
    ];
    let mut child = sops(stack, &args, home.path())
        .arg(format!("[{}]", serde_json::to_string(key).unwrap()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sops set");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(value.expose()).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sops set {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
