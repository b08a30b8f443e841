//! The rescue ladder's candidates from the deployment itself: what mongo was created with
//! (its env, or its `_FILE` through the bind mount), what core and the peripheries hold, other
//! containers holding it by value, compose.env backups (newest first), the operator's.

use super::Candidate;
use crate::config::Config;
use crate::docker::{carrier, ContainerInfo};
use crate::fsutil;
use crate::planes::{DbPasswordKeys, DockerPlane, EnvPlane};
use crate::secret::Secret;
use crate::sops::SopsFile;

/// Every prior value we can find, in the order most likely to be right: what mongo was created
/// with, what core and the peripheries hold, compose.env backups (newest first), the operator's.
pub(super) fn candidates(
    cfg: &Config,
    env: &EnvPlane,
    dk: &DockerPlane,
    keys: &DbPasswordKeys,
    prior: Option<Secret>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(v) = dk.mongo.env_value(&keys.mongo_init_key) {
        out.push(Candidate {
            source: format!("{} {}", dk.mongo.name, keys.mongo_init_key),
            value: v.clone(),
        });
    }
    out.extend(mongo_init_file(&dk.mongo, &keys.mongo_init_key));
    for c in dk.dependants() {
        for k in keys.containers.get(&c.name).into_iter().flatten() {
            if let Some(v) = c.env_value(k) {
                out.push(Candidate {
                    source: format!("{} {k}", c.name),
                    value: v.clone(),
                });
            }
        }
    }
    let names = keys.generation.core_db_password_keys();
    for (source, value) in crate::planes::holders::candidates(&dk.others, names) {
        out.push(Candidate { source, value });
    }
    for p in crate::planes::live::backups(cfg).into_iter().rev() {
        let value = SopsFile::load(&p)
            .and_then(|f| f.decrypt(&env.ids))
            .ok()
            .and_then(|d| {
                // As compose read it while that backup was live.
                crate::docker::compose_value::value(&d.entries(), &keys.compose_password_key)
                    .ok()
                    .flatten()
            });
        if let Some(v) = value {
            out.push(Candidate {
                source: format!("backup {}", p.display()),
                value: v,
            });
        }
    }
    if let Some(v) = prior {
        out.push(Candidate {
            source: "--prior-password-from".into(),
            value: v,
        });
    }
    out
}

/// mongo's `MONGO_INITDB_ROOT_PASSWORD_FILE`, read from the host side of its bind mount and
/// with trailing newlines stripped as the image's entrypoint does (`$(< file)`). A file we
/// cannot reach is a warning naming the key, not a failure: it is one rung of the ladder.
fn mongo_init_file(mongo: &ContainerInfo, init_key: &str) -> Option<Candidate> {
    let key = format!("{init_key}_FILE");
    let path = mongo.env_value(&key)?.expose().trim().to_string();
    if path.is_empty() {
        return None;
    }
    let read = carrier::host_path(&mongo.mounts, &key, &path).and_then(|host| {
        let bytes =
            fsutil::read_small(&host).map_err(|e| format!("{key}: {}: {e}", host.display()))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("{key}: {}: not UTF-8 text", host.display()))?;
        Ok((
            host.clone(),
            Secret::new(text.trim_end_matches('\n').to_string()),
        ))
    });
    match read {
        Ok((host, value)) => Some(Candidate {
            source: format!("{} {key} ({})", mongo.name, host.display()),
            value,
        }),
        Err(e) => {
            eprintln!("komodo-rotate: warning: {}: {e}", mongo.name);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse, MountPoint};

    fn mongo(env: &[&str], mounts: &[(&str, &str, &str)]) -> ContainerInfo {
        ContainerInfo::from_inspect(&ContainerInspectResponse {
            name: Some("/komodo-mongo-1".into()),
            config: Some(ContainerConfig {
                env: Some(env.iter().map(|e| e.to_string()).collect()),
                ..Default::default()
            }),
            mounts: Some(
                mounts
                    .iter()
                    .map(|(t, s, d)| MountPoint {
                        typ: Some(t.to_string()),
                        source: Some(s.to_string()),
                        destination: Some(d.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }

    #[test]
    fn the_mongo_init_password_file_is_read_through_its_bind_mount() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("root_pw"), b"from-the-file\n\n").unwrap();
        let src = d.path().to_str().unwrap();
        let key = "MONGO_INITDB_ROOT_PASSWORD";
        let c = mongo(
            &["MONGO_INITDB_ROOT_PASSWORD_FILE=/run/secrets/root_pw"],
            &[("bind", src, "/run/secrets")],
        );
        let got = mongo_init_file(&c, key).expect("a candidate");
        assert_eq!(got.value.expose(), "from-the-file");
        assert!(got.source.contains("MONGO_INITDB_ROOT_PASSWORD_FILE"));
        assert!(got.source.contains(src), "{}", got.source);
        assert!(!got.source.contains("from-the-file"));
        // Not a bind mount, a missing file, or no key at all: no candidate (a warning only).
        let vol = mongo(
            &["MONGO_INITDB_ROOT_PASSWORD_FILE=/run/secrets/root_pw"],
            &[("volume", src, "/run/secrets")],
        );
        assert!(mongo_init_file(&vol, key).is_none());
        let missing = mongo(
            &["MONGO_INITDB_ROOT_PASSWORD_FILE=/run/secrets/nope"],
            &[("bind", src, "/run/secrets")],
        );
        assert!(mongo_init_file(&missing, key).is_none());
        assert!(mongo_init_file(&mongo(&["MONGO_INITDB_ROOT_PASSWORD=x"], &[]), key).is_none());
    }
}
