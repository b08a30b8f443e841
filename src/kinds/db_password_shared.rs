//! What both variants' `db-password` plans share (`db_password` for MongoDB,
//! `db_password_ferret` for FerretDB): the read-only checks once the live credential accepts
//! OLD, the holders outside the roles, the write-env step and the run's context. Both plan
//! modules import this one and neither imports the other's helpers, so the two stay one-way.

use super::refuse_clear_text;
use crate::config::Config;
use crate::docker::{ContainerInfo, EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::planes::carriers::file_value;
use crate::planes::holders::{holds, Foreign};
use crate::planes::{steps, DbPasswordKeys, Loaded, PgRole, RunContext};
use crate::secret::Secret;
use crate::txn::Step;
use std::collections::BTreeMap;

/// The read-only checks both variants make once the live credential accepts OLD: every role
/// holder can be recreated (leftovers, image present locally), compose.env can be rewritten (the
/// edit write-env will make, made in memory now: a file it would refuse fails here, before the
/// database is touched), no password key is kept in clear text, and every carrier holds OLD.
pub(super) async fn holders_and_carriers_ready(
    cfg: &Config,
    loaded: &Loaded,
    env_keys: &[String],
    old: &Secret,
) -> Result<()> {
    for name in &loaded.holders {
        Recreate::prepare(&loaded.dk.engine, name, EnvPatch::new(), 0).await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    let edit: Vec<(&str, &Secret)> = env_keys.iter().map(|k| (k.as_str(), old)).collect();
    loaded.env.file.with_values(&loaded.env.ids, &edit)?;
    for k in env_keys {
        refuse_clear_text(loaded, k)?;
    }
    carriers_hold_old(loaded, old)
}

/// What [`DbPasswordKeys::with_foreign`] finds: the holders outside the roles, and the run's
/// container keys and forms with theirs added.
type WithForeign = (
    Vec<Foreign>,
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, String>,
);

/// The holders among `others` outside the roles holding OLD (plain or in a URI, else refused
/// by name), each checked recreatable (leftovers, image present); changes nothing.
pub(super) async fn foreign_ready(
    loaded: &Loaded,
    others: &[ContainerInfo],
    old: &Secret,
) -> Result<WithForeign> {
    let found = loaded.keys.with_foreign(others, old)?;
    for f in &found.0 {
        Recreate::prepare(&loaded.dk.engine, &f.name, EnvPatch::new(), 0).await?;
    }
    Ok(found)
}

/// The context of a db-password rotation on either variant (`pg`: FerretDB's role, `None` on
/// MongoDB).
pub(super) fn rotation_context(
    cfg: &Config,
    loaded: &Loaded,
    container_keys: BTreeMap<String, Vec<String>>,
    forms: BTreeMap<String, String>,
    pg: Option<PgRole>,
) -> RunContext {
    RunContext {
        compose_env: cfg.compose_env.clone(),
        env_key: loaded.keys.compose_password_key.clone(),
        mongo_user: loaded.user.clone(),
        container_keys,
        forms,
        files: loaded.keys.files.clone(),
        run: crate::planes::run::RunKind::Rotation,
        git: None,
        pg,
    }
}

/// The write-env step for the compose.env keys holding the password. One key: the plain step
/// (the run's env_key); several: each named, rewritten in one edit.
pub(super) fn write_env_step(env_keys: &[String]) -> Step {
    match env_keys {
        [_] => steps::write_env(),
        all => all.iter().fold(steps::write_env(), |s, k| s.with(k, "new")),
    }
}

/// Every plain, URI and file carrier holds OLD now (so the rollback can prove "all old" again) and
/// every carrier file can be replaced keeping its owner and mode. Read-only; a refusal names the
/// container or file and the key, never a value.
fn carriers_hold_old(loaded: &Loaded, old: &Secret) -> Result<()> {
    let keys = &loaded.keys;
    plain_copies_hold_old(loaded.dk.dependants(), keys, old)?;
    for c in loaded.dk.dependants() {
        for k in keys.containers.get(&c.name).into_iter().flatten() {
            let form = keys.forms.get(k).map(String::as_str).unwrap_or("plain");
            if form == "uri" && !c.env_value(k).is_some_and(|v| holds(form, k, v, old)) {
                return Err(Error::Precondition(format!(
                    "{}: the URI in {k} does not carry compose.env's password (drift); nothing was changed. Run `komodo-rotate verify`",
                    c.name
                )));
            }
        }
    }
    for f in &keys.files {
        let now = file_value(f).map_err(Error::Precondition)?;
        if !now.ct_eq(old) {
            return Err(Error::Precondition(format!(
                "{} ({}, read by {}) does not hold compose.env's password (drift); nothing was changed. Run `komodo-rotate verify`",
                f.host_path.display(),
                f.key,
                f.readers.join(", ")
            )));
        }
        crate::fsutil::check_dir_writable(&f.host_path)?;
    }
    Ok(())
}

/// A plain copy of the DB password that is not OLD (drift, the incident's own shape) is refused
/// by container: a rollback would have to prove OLD where it never was (a permanent exit 5, and
/// every `resume` again); `rescue` brings it back to compose.env's value.
fn plain_copies_hold_old<'a>(
    holders: impl Iterator<Item = &'a ContainerInfo>,
    keys: &DbPasswordKeys,
    old: &Secret,
) -> Result<()> {
    for c in holders {
        for k in keys.containers.get(&c.name).into_iter().flatten() {
            let plain = !keys.forms.contains_key(k);
            if plain && c.env_value(k).is_some_and(|v| !v.ct_eq(old)) {
                return Err(Error::Precondition(format!(
                    "{}: {k} holds another DB password than compose.env (drift); nothing was changed. Run `komodo-rotate rescue` to bring it back to compose.env's value, then rotate",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Generation;

    use crate::planes::holders::test_container as container;

    #[test]
    fn a_drifted_plain_copy_is_refused_naming_the_container_and_rescue() {
        let k = "KOMODO_DATABASE_PASSWORD";
        let keys = DbPasswordKeys {
            generation: Generation::V2,
            compose_user_key: "KOMODO_DATABASE_USERNAME".into(),
            compose_password_key: k.into(),
            containers: [
                ("core".to_string(), vec![k.to_string()]),
                ("periphery".to_string(), vec![k.to_string()]),
            ]
            .into(),
            forms: Default::default(),
            files: Vec::new(),
            mongo_init_key: "MONGO_INITDB_ROOT_PASSWORD".into(),
            warnings: Vec::new(),
            unpatched: Vec::new(),
        };
        let old = Secret::new("old-password-0123".into());
        let core = container("core", &[(k, "old-password-0123")]);
        let drifted = container("periphery", &[(k, "drifted-value-456")]);
        plain_copies_hold_old([&core].into_iter(), &keys, &old).unwrap();
        let e = plain_copies_hold_old([&core, &drifted].into_iter(), &keys, &old)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("periphery: KOMODO_DATABASE_PASSWORD holds another"),
            "{e}"
        );
        assert!(e.contains("komodo-rotate rescue"), "{e}");
        assert!(
            !e.contains("drifted-value") && !e.contains("old-password"),
            "{e}"
        );
    }
}
