//! The real Go sops, as an operator runs it, for tests that check the tool's outcomes from
//! outside: `sops set` (the value on stdin, never in argv) and `sops decrypt`. HOME and the XDG
//! config dir are a fresh temp dir, so no user config of the machine changes what sops does.
//! On any dotenv file (a git checkout's, a blob written out): tests/common/stack_sops.rs (on
//! main) is the same for a rehearsal stack's compose.env and could call these.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn sops(age_key: &Path, home: &Path) -> Command {
    let mut c = Command::new("sops");
    c.env("SOPS_AGE_KEY_FILE", age_key)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home);
    c
}

/// `sops set` of `key` to `value` in the dotenv `file`; panics naming sops' own error.
pub fn set_at(file: &Path, age_key: &Path, key: &str, value: &str) {
    let home = tempfile::tempdir().unwrap();
    let mut child = sops(age_key, home.path())
        .args([
            "set",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "--value-stdin",
        ])
        .arg(file)
        .arg(format!("[{}]", serde_json::to_string(key).unwrap()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sops");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(value).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sops set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sops decrypt` of the dotenv `file`: its value of `key` as written; None when sops fails or
/// the key is absent.
pub fn get_at(file: &Path, age_key: &Path, key: &str) -> Option<String> {
    let home = tempfile::tempdir().unwrap();
    let out = sops(age_key, home.path())
        .args([
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}
