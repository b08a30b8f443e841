//! Holders a plan does not know: containers of the compose project outside mongo, core and
//! periphery (a `backup` service with `env_file: compose.env`, a sidecar with
//! `MONGO_URL=mongodb://u:OLD@...`) that carry a secret's value. Found by value, as the
//! env-only kinds find theirs: a key whose value is the secret, holds it inside (values of 8
//! characters or more), or is a URI whose decoded password is it. A rotation recreates only
//! core and periphery, so each such holder is refused by name (exit 3, nothing changed) and
//! `verify` shows it as DRIFT. Names only, never a value.

use crate::docker::{uri, ContainerInfo};
use crate::secret::Secret;

/// Below this length a value is not searched for inside other values (too many false hits).
const MIN_SEARCHED_LEN: usize = 8;

/// Each container of `others` carrying `value`, with the keys it carries it under.
pub fn foreign(others: &[ContainerInfo], value: &Secret) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    if value.is_empty() {
        return out;
    }
    for c in others {
        let mut keys: Vec<String> = c
            .env
            .iter()
            .filter(|(k, v)| {
                v.ct_eq(value)
                    || (value.len() >= MIN_SEARCHED_LEN && v.expose().contains(value.expose()))
                    || uri::password(k, v).is_ok_and(|p| p.ct_eq(value))
            })
            .map(|(k, _)| k.clone())
            .collect();
        keys.dedup();
        if !keys.is_empty() {
            out.push((c.name.clone(), keys));
        }
    }
    out
}

/// One line per holder: `container (KEY, KEY)`.
pub fn describe(found: &[(String, Vec<String>)]) -> String {
    found
        .iter()
        .map(|(c, k)| format!("{c} ({})", k.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pre-flight refusal while any container outside mongo/core/periphery holds `value`.
pub fn refuse_foreign(
    others: &[ContainerInfo],
    value: &Secret,
    what: &str,
) -> crate::error::Result<()> {
    let found = foreign(others, value);
    if found.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::Precondition(format!(
        "{what} is also held by {}, which a rotation does not recreate (it would keep the old value); nothing was changed. Remove it from those containers or make them read it from core's env, then run again",
        describe(&found)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, env: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo::from_inspect(&bollard::models::ContainerInspectResponse {
            name: Some(format!("/{name}")),
            config: Some(bollard::models::ContainerConfig {
                env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn holders_outside_the_roles_are_found_by_value_and_named() {
        let pw = Secret::new("s3cret-pass-w0rd".into());
        let others = [
            container(
                "komodo-backup-1",
                &[("KOMODO_DATABASE_PASSWORD", "s3cret-pass-w0rd"), ("X", "y")],
            ),
            container(
                "komodo-sidecar-1",
                &[(
                    "MONGO_URL",
                    "mongodb://admin:s3cret%2Dpass-w0rd@mongo:27017/",
                )],
            ),
            container("komodo-other-1", &[("X", "s3cret")]),
        ];
        let found = foreign(&others, &pw);
        assert_eq!(
            found,
            vec![
                (
                    "komodo-backup-1".to_string(),
                    vec!["KOMODO_DATABASE_PASSWORD".to_string()]
                ),
                (
                    "komodo-sidecar-1".to_string(),
                    vec!["MONGO_URL".to_string()]
                ),
            ]
        );
        let e = refuse_foreign(&others, &pw, "the DB password")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("komodo-backup-1 (KOMODO_DATABASE_PASSWORD), komodo-sidecar-1 (MONGO_URL)"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        refuse_foreign(&others[2..], &pw, "the DB password").unwrap();
    }
}
