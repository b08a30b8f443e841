//! The official mongo image's first-init variables (research/komodo.md §3):
//! `MONGO_INITDB_ROOT_USERNAME` / `MONGO_INITDB_ROOT_PASSWORD`, each also as `<VAR>_FILE`.
//! Setting both X and X_FILE is an error, and so is giving only one of user and password. Empty
//! counts as unset, as in the entrypoint's shell tests.

use super::RootUser;
use komodo_rotate::secret::Secret;
use std::path::PathBuf;

pub const USER_VAR: &str = "MONGO_INITDB_ROOT_USERNAME";
pub const PASSWORD_VAR: &str = "MONGO_INITDB_ROOT_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("both {0} and {0}_FILE are set (but are exclusive)")]
    Both(&'static str),
    #[error("{set} is set but {missing} is not: give both or neither")]
    OnlyOne {
        set: &'static str,
        missing: &'static str,
    },
    #[error("{var}_FILE {path}: {source}")]
    File {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the root user from `get` (normally `std::env::var`); `None` when neither is set.
pub fn root_from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<RootUser>, InitError> {
    let user = file_env(&get, USER_VAR)?;
    let password = file_env(&get, PASSWORD_VAR)?;
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some(RootUser {
            user: user.expose().to_owned(),
            password,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(InitError::OnlyOne {
            set: USER_VAR,
            missing: PASSWORD_VAR,
        }),
        (None, Some(_)) => Err(InitError::OnlyOne {
            set: PASSWORD_VAR,
            missing: USER_VAR,
        }),
    }
}

fn file_env(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<Secret>, InitError> {
    let direct = get(var).filter(|v| !v.is_empty());
    let file = get(&format!("{var}_FILE")).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(InitError::Both(var)),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            let bytes = std::fs::read(&path).map_err(|source| InitError::File {
                var,
                path: path.clone(),
                source,
            })?;
            let mut s = Secret::from_utf8(bytes).map_err(|_| InitError::File {
                var,
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
            })?;
            // `$(< file)` in the entrypoint drops every trailing newline.
            let trimmed = s.expose().trim_end_matches('\n');
            if trimmed.len() != s.len() {
                s = Secret::new(trimmed.to_owned());
            }
            Ok(Some(s).filter(|s| !s.is_empty()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn plain_variables() {
        let r = root_from_env(env(&[(USER_VAR, "root"), (PASSWORD_VAR, "pw")]))
            .unwrap()
            .unwrap();
        assert_eq!(r.user, "root");
        assert_eq!(r.password.expose(), "pw");
        assert!(root_from_env(env(&[])).unwrap().is_none());
        assert!(root_from_env(env(&[(USER_VAR, ""), (PASSWORD_VAR, "")]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn file_variants_strip_trailing_newlines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\n\n").unwrap();
        let r = root_from_env(env(&[
            (USER_VAR, "root"),
            ("MONGO_INITDB_ROOT_PASSWORD_FILE", p.to_str().unwrap()),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.password.expose(), "s3cret");
    }

    #[test]
    fn conflicts_and_half_configurations_are_errors_without_values() {
        let e = root_from_env(env(&[
            (USER_VAR, "root"),
            (PASSWORD_VAR, "topsecret"),
            ("MONGO_INITDB_ROOT_PASSWORD_FILE", "/x"),
        ]))
        .unwrap_err();
        assert!(matches!(e, InitError::Both(PASSWORD_VAR)));
        assert!(!e.to_string().contains("topsecret"));
        let e = root_from_env(env(&[(PASSWORD_VAR, "topsecret")])).unwrap_err();
        assert!(matches!(e, InitError::OnlyOne { .. }), "{e}");
        assert!(!e.to_string().contains("topsecret"));
        let e = root_from_env(env(&[(USER_VAR, "root")])).unwrap_err();
        assert!(matches!(e, InitError::OnlyOne { .. }));
        let e = root_from_env(env(&[
            (USER_VAR, "root"),
            ("MONGO_INITDB_ROOT_PASSWORD_FILE", "/nonexistent/pw"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    }
}
