//! What the env-only kinds share (`jwt-secret`, `webhook-secret`, `env:KEY`): a secret with no
//! live copy outside compose.env and the containers' env. The plan is snapshot, write-env
//! {KEY: new}, recreate each holder with {KEY: new}, commit; `resume` lets compose.env decide.
//!
//! Holders are the containers that carry KEY with compose.env's current value. The pre-flight
//! refuses (exit 3, nothing changed, names only) whatever a rotation would leave on the old
//! value or cannot prove: a container with another value of KEY (drift), one that reads
//! `KEY_FILE` (the file wins), one that carries the value under another name (compose
//! interpolation, a URI), the mongo container carrying it, and no holder at all.

use super::{refuse_clear_text, Ask, Plan};
use crate::docker::{ContainerInfo, EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::planes::holders::{self as by_value, how};
use crate::planes::{steps, Loaded, RunContext};
use crate::secret::Secret;
use std::collections::BTreeMap;

/// How a container's env key holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The key's value is the secret.
    Plain,
    /// A comma list (no trimming, as Komodo splits it) that must hold the secret; its exact value
    /// is compose.env's value of the same key, with `${KEY}`/`$KEY` items resolved.
    List,
}

/// One env-only kind as verify sees it.
#[derive(Debug, Clone, Copy)]
pub struct EnvOnly {
    pub kind: &'static str,
    /// compose.env's key whose value is the secret.
    pub key: &'static str,
    /// Container env keys that carry it, with their form (`key` itself first).
    pub carriers: &'static [(&'static str, Form)],
}

/// The kind's key must be in compose.env (`rotate --list`, and the first pre-flight check).
pub fn available(loaded: &Loaded, key: &str) -> std::result::Result<(), String> {
    match loaded.env.value(key) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("{} has no {key}", loaded.env.file.name())),
        Err(e) => Err(e.to_string()),
    }
}

/// How `c` holds compose.env's `old` value of `key`: `Ok(true)` holds it under `key` (a
/// holder), `Ok(false)` carries nothing of it, `Err` a reason to refuse (names only).
fn classify(c: &ContainerInfo, key: &str, old: &Secret) -> std::result::Result<bool, String> {
    let file_key = format!("{key}_FILE");
    if c.env_value(&file_key).is_some() {
        return Err(format!(
            "{} reads {file_key}, which wins over {key}: a rotation of compose.env would not reach it",
            c.name
        ));
    }
    let copies: Vec<&str> = c
        .env
        .iter()
        .filter(|(k, v)| k != key && how(k, v, old).is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    if !copies.is_empty() {
        return Err(format!(
            "{} carries {key}'s value also under {}, which a rotation would leave on the old value",
            c.name,
            copies.join(", ")
        ));
    }
    match c.env_value(key) {
        Some(v) if v.ct_eq(old) => Ok(true),
        Some(_) => Err(format!(
            "{} holds a {key} that differs from compose.env (drift: recreate it from compose.env first; `komodo-rotate verify` shows it)",
            c.name
        )),
        None => Ok(false),
    }
}

/// The pre-flight (read-only) and the plan for the env-only secret `key`.
pub async fn plan(
    ask: Ask<'_>,
    key: &str,
    before: Vec<String>,
    after: Vec<String>,
) -> Result<Plan> {
    let Ask {
        cfg, loaded, new, ..
    } = ask;
    let env = &loaded.env;
    let dk = &loaded.dk;
    // As compose hands it to the containers (quotes, comments, `${VAR}` read as compose does).
    let old = env.value(key)?.ok_or_else(|| {
        Error::Precondition(format!(
            "{} has no {key}: nothing to rotate; nothing was changed",
            env.file.name()
        ))
    })?;
    let mut refusals = Vec::new();
    match classify(&dk.mongo, key, &old) {
        Ok(false) => {}
        Ok(true) => refusals.push(format!(
            "the mongo container {} carries {key}, and this kind recreates only core and periphery",
            dk.mongo.name
        )),
        Err(why) => refusals.push(why),
    }
    let mut holders = Vec::new();
    let mut container_keys = BTreeMap::new();
    for c in dk.dependants() {
        match classify(c, key, &old) {
            Ok(true) => {
                holders.push(c.name.clone());
                container_keys.insert(c.name.clone(), vec![key.to_string()]);
            }
            Ok(false) => {
                container_keys.insert(c.name.clone(), Vec::new());
            }
            Err(why) => refusals.push(why),
        }
    }
    if !refusals.is_empty() {
        return Err(Error::Precondition(format!(
            "{}; nothing was changed",
            refusals.join("; ")
        )));
    }
    if holders.is_empty() {
        return Err(Error::Precondition(format!(
            "no container of the deployment carries {key}: nothing reads it from {} as {key}, so a rotation could not be proven; nothing was changed",
            env.file.name()
        )));
    }
    // Holders outside the roles (a `backup` service reading compose.env, a URI in a sidecar):
    // patched with the roles when plain or in a URI, else refused by name.
    let foreign = by_value::patchable(&dk.others, &old, key, &[key.to_string()], &BTreeMap::new())?;
    holders.extend(foreign.iter().map(|f| f.name.clone()));
    for name in &holders {
        // Checks leftovers and that the image is present locally; changes nothing.
        Recreate::prepare(&dk.engine, name, EnvPatch::new(), 0).await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    // The edit write-env will make, made in memory now (a file it would refuse fails here).
    env.file.with_values(&env.ids, &[(key, &old)])?;
    refuse_clear_text(loaded, key)?;

    let mut plan = vec![steps::snapshot(), steps::write_env().with(key, "new")];
    plan.extend(holders.iter().map(|c| {
        let keys = foreign
            .iter()
            .find(|f| &f.name == c)
            .map_or_else(|| vec![key.to_string()], |f| f.key_names());
        keys.iter()
            .fold(steps::recreate(c), |s, k| s.with(k, "new"))
    }));
    plan.push(steps::commit());
    let mut forms = BTreeMap::new();
    by_value::add_to_context(&foreign, &mut container_keys, &mut forms);
    let context = RunContext {
        forms,
        ..RunContext::env_only(&cfg.compose_env, key, container_keys)
    };
    Ok(Plan::new(plan, context, old, new).with_notes(before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::planes::holders::test_container as container;

    const OLD: &str = "old-jwt-secret-value";

    fn old() -> Secret {
        Secret::new(OLD.into())
    }

    #[test]
    fn holders_carry_the_key_with_compose_envs_value() {
        let c = container("core", &[("KOMODO_JWT_SECRET", OLD), ("OTHER", "x")]);
        assert_eq!(classify(&c, "KOMODO_JWT_SECRET", &old()), Ok(true));
        let c = container("periphery", &[("OTHER", "x")]);
        assert_eq!(classify(&c, "KOMODO_JWT_SECRET", &old()), Ok(false));
    }

    #[test]
    fn drift_file_variants_and_copies_are_refused_by_name_only() {
        let cases = [
            (
                container("core", &[("KOMODO_JWT_SECRET", "something-else-entirely")]),
                "core holds a KOMODO_JWT_SECRET that differs from compose.env",
            ),
            (
                container(
                    "core",
                    &[
                        ("KOMODO_JWT_SECRET", OLD),
                        ("KOMODO_JWT_SECRET_FILE", "/run/secrets/jwt"),
                    ],
                ),
                "core reads KOMODO_JWT_SECRET_FILE",
            ),
            (
                container(
                    "core",
                    &[
                        ("KOMODO_JWT_SECRET", OLD),
                        ("APP_URL", &format!("https://u:{OLD}@host/")),
                    ],
                ),
                "core carries KOMODO_JWT_SECRET's value also under APP_URL",
            ),
        ];
        for (c, want) in cases {
            let e = classify(&c, "KOMODO_JWT_SECRET", &old()).unwrap_err();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains(OLD) && !e.contains("something-else"), "{e}");
        }
        // A short value is only compared whole, never searched for inside other values.
        let c = container("core", &[("K", "abc"), ("OTHER", "xabcx")]);
        assert_eq!(classify(&c, "K", &Secret::new("abc".into())), Ok(true));
    }
}
