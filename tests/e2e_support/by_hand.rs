//! Hand operations the e2e tests play as an operator would: a `sops set` with the real Go sops,
//! a shorter health timeout in the stack's config.

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::process::{Command, Stdio};

/// A hand edit with the real Go sops: `sops set` of `key` in compose.env (value on stdin).
pub fn sops_set_by_hand(s: &Stack, key: &str, value: &Secret) {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("sops")
        .args([
            "set",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "--value-stdin",
        ])
        .arg(s.compose_env())
        .arg(format!("[{}]", serde_json::to_string(key).unwrap()))
        .env("SOPS_AGE_KEY_FILE", s.age_key())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sops");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(value.expose()).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sops set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stack's config with a shorter health timeout: a crash-looping core is waited out once
/// per look, and these cases look at one on purpose.
pub fn shorten_health_timeout(s: &Stack) {
    let p = s.config();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("timeout = \"60s\""), "{text}");
    std::fs::write(&p, text.replace("timeout = \"60s\"", "timeout = \"20s\"")).unwrap();
}
