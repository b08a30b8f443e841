//! The value each kind last committed, kept age-sealed to compose.env's recipients in the
//! deployment's state_dir (`last-committed/<kind>.age`): after a hand edit of compose.env and a
//! redeploy (issue 20 item 4), the tool's own last value may be the only copy of the password
//! Mongo still holds, so `rescue` tries it first. Written at commit, read only in memory.
//! The sealed body names the deployment (compose.env's canonical path): a record of another
//! deployment sharing the state_dir is never offered.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::secret::Secret;
use crate::sops::Identities;
use crate::txn::sealed;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub const DIR: &str = "last-committed";

pub fn path(cfg: &Config, kind: &str) -> PathBuf {
    cfg.state_dir.join(DIR).join(format!("{kind}.age"))
}

fn deployment(compose_env: &Path) -> String {
    std::fs::canonicalize(compose_env)
        .unwrap_or_else(|_| compose_env.to_path_buf())
        .display()
        .to_string()
}

/// Seals `value` as `kind`'s last committed value of `cfg`'s deployment, atomically, 0600.
pub fn save(cfg: &Config, kind: &str, value: &Secret, recipients: &[String]) -> Result<()> {
    let body = Zeroizing::new(
        serde_json::to_vec(&serde_json::json!({
            "deployment": deployment(&cfg.compose_env),
            "kind": kind,
            "value": value.expose(),
        }))
        .map_err(|e| Error::Precondition(format!("cannot serialise {kind}'s last value: {e}")))?,
    );
    let armored =
        sealed::seal(&body, recipients).map_err(|e| Error::Precondition(e.to_string()))?;
    let p = path(cfg, kind);
    let dir = p.parent().unwrap_or(&cfg.state_dir);
    crate::txn::lock::ensure_private_dir(dir)?;
    fsutil::write_atomic(&p, armored.as_bytes(), Mode::Exactly(0o600)).map_err(|e| Error::io(&p, e))
}

/// `kind`'s last committed value of `cfg`'s deployment, if one is recorded. A record that does
/// not open with `ids`, or names another deployment or kind, is no value (an error says why).
pub fn load(cfg: &Config, kind: &str, ids: &Identities) -> Result<Option<Secret>> {
    let p = path(cfg, kind);
    let armored = match std::fs::read_to_string(&p) {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    let bytes = sealed::open(&armored, ids)
        .map_err(|e| Error::Precondition(format!("{}: {e}", p.display())))?;
    #[derive(serde::Deserialize)]
    struct Record {
        deployment: String,
        kind: String,
        value: String,
    }
    let r: Record = serde_json::from_slice(bytes.expose_secret()).map_err(|_| {
        Error::Precondition(format!("{}: not a last-committed record", p.display()))
    })?;
    if r.kind != kind || r.deployment != deployment(&cfg.compose_env) {
        return Err(Error::Precondition(format!(
            "{}: recorded for {} ({}), not this deployment's {kind}",
            p.display(),
            r.deployment,
            r.kind
        )));
    }
    Ok(Some(Secret::new(r.value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_in(dir: &Path, compose_env: &Path) -> Config {
        let text = format!(
            "compose_env = {:?}\nstate_dir = {:?}\n",
            compose_env.display().to_string(),
            dir.display().to_string()
        );
        Config::parse(&text, &dir.join("komodo-rotate.toml")).expect("config")
    }

    #[test]
    fn round_trip_sealed_private_and_bound_to_the_deployment() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("compose.env");
        std::fs::write(&env, b"x").unwrap();
        let id = age::x25519::Identity::generate();
        let ids = Identities::from_key_text(id.to_string().expose_secret(), "test").unwrap();
        let cfg = cfg_in(&d.path().join("state"), &env);
        assert!(load(&cfg, "db-password", &ids).unwrap().is_none());
        let v = Secret::new("the-last-one".into());
        save(&cfg, "db-password", &v, &[id.to_public().to_string()]).unwrap();
        let p = path(&cfg, "db-password");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("the-last-one"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            load(&cfg, "db-password", &ids).unwrap().unwrap().expose(),
            "the-last-one"
        );
        // Another deployment sharing the state_dir is never offered this value.
        let other_env = d.path().join("other.env");
        std::fs::write(&other_env, b"y").unwrap();
        let other = cfg_in(&d.path().join("state"), &other_env);
        let e = load(&other, "db-password", &ids).unwrap_err().to_string();
        assert!(e.contains("not this deployment"), "{e}");
        assert!(!e.contains("the-last-one"), "{e}");
    }
}
