//! The real Go `sops`, as an operator runs it (an age key, a temp `HOME` and XDG config dir so
//! no user config of the machine changes what sops does, no version check): read a key, or set
//! one by hand (`sops set --value-stdin`, the value never in argv). On any dotenv file
//! (`get_at`, `set_at`: a git checkout's, a blob written out) or on a rehearsal stack's
//! compose.env with the stack's age key (`sops_get`, `sops_set`). Shared by the e2e and FerretDB
//! referees and the inverse-edit tests.

#![allow(dead_code)]

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::path::Path;
use std::process::{Command, Stdio};

fn sops(file: &Path, age_key: &Path, args: &[&str], home: &Path) -> Command {
    let mut c = Command::new("sops");
    c.args(args)
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", age_key)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home);
    c
}

/// The dotenv `file`'s `key` as written in the file, decrypted by the real sops (`None` when
/// sops fails or the key is absent).
pub fn get_at(file: &Path, age_key: &Path, key: &str) -> Option<String> {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "decrypt",
        "--input-type",
        "dotenv",
        "--output-type",
        "dotenv",
    ];
    let out = sops(file, age_key, &args, home.path()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// A hand edit with the real sops: `sops set` of `key` in the dotenv `file`, the value on stdin;
/// panics naming the key and sops' own error.
pub fn set_at(file: &Path, age_key: &Path, key: &str, value: &str) {
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
    let mut child = sops(file, age_key, &args, home.path())
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
        .write_all(serde_json::to_string(value).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sops set {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// compose.env's `key` as written in the file, decrypted by the real sops (`None` when sops
/// fails or the key is absent).
pub fn sops_get(stack: &Stack, key: &str) -> Option<Secret> {
    get_at(&stack.compose_env(), &stack.age_key(), key).map(Secret::new)
}

/// A hand edit with the real sops: `sops set` of `key` in compose.env, the value on stdin.
pub fn sops_set(stack: &Stack, key: &str, value: &Secret) {
    set_at(&stack.compose_env(), &stack.age_key(), key, value.expose())
}
