//! What both variants' `db-password` plans share (`db_password` for MongoDB,
//! `db_password_ferret` for FerretDB): the read-only checks once the live credential accepts
//! OLD (and the checks before: OLD itself, a login with it), the holders outside the roles, the
//! write-env step and the run's context. Both plan
//! modules import this one and neither imports the other's helpers, so the two stay one-way.

use super::refuse_clear_text;
use crate::config::Config;
use crate::docker::{ContainerInfo, EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::holders::{compare, file_stands, Foreign, KeyStand, Stand};
use crate::planes::run::{FORM_PLAIN, FORM_URI};
use crate::planes::{steps, DbPasswordKeys, Loaded, PgRole, RunContext};
use crate::secret::Secret;
use crate::txn::Step;
use std::collections::BTreeMap;

/// compose's reading of the DB password (OLD) and every compose.env key holding it, once no
/// carrier is one the plan cannot patch (a split between naming generations is refused here, by
/// name).
pub(super) fn old_and_env_keys(loaded: &Loaded) -> Result<(Secret, Vec<String>)> {
    loaded.keys.refuse_unpatched()?;
    loaded.keys.env_password_keys(&loaded.env)
}

/// A client logs in with OLD now (`through`: "to MongoDB", "through ferretdb"); a refusal means
/// the planes have drifted (exit 3, `rescue` named).
pub(super) async fn old_logs_in(loaded: &Loaded, old: &Secret, through: &str) -> Result<()> {
    match login_works(&loaded.target, old).await {
        LoginOutcome::Accepted => Ok(()),
        LoginOutcome::Rejected => Err(Error::Precondition(format!(
            "{}'s {} does not log in {through} at {} as {}: the planes have drifted; nothing was changed. Run `komodo-rotate rescue`",
            loaded.env.file.name(),
            loaded.keys.compose_password_key,
            loaded.target.server(),
            loaded.user
        ))),
        LoginOutcome::Unreachable(r) => Err(Error::Precondition(format!(
            "the login {through} at {} as {} got no answer: {r}; nothing was changed",
            loaded.target.server(),
            loaded.user
        ))),
    }
}

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
    env_copies_hold_old(loaded.dk.dependants(), keys, old)?;
    for f in &keys.files {
        if file_stands(f, old).map_err(Error::Precondition)? != Stand::Holds {
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

/// Each holder's keys against OLD ([`compare`]), refused by container and key. A plain copy set
/// to another value (drift, the incident's own shape) first: a rollback would have to prove OLD
/// where it never was (a permanent exit 5, and every `resume` again); `rescue` brings it back
/// to compose.env's value. Then a URI key that does not carry OLD, unset included. An unset
/// plain key is no copy.
fn env_copies_hold_old<'a>(
    holders: impl Iterator<Item = &'a ContainerInfo>,
    keys: &'a DbPasswordKeys,
    old: &Secret,
) -> Result<()> {
    let checked: Vec<(&ContainerInfo, KeyStand)> = holders
        .flat_map(|c| {
            let ks = keys.containers.get(&c.name).map_or(&[][..], Vec::as_slice);
            compare(c, ks, &keys.forms, old)
                .into_iter()
                .map(move |k| (c, k))
        })
        .collect();
    let plain = |k: &KeyStand| k.form == FORM_PLAIN && k.stand == Stand::Differs;
    if let Some((c, k)) = checked.iter().find(|(_, k)| plain(k)) {
        return Err(Error::Precondition(format!(
            "{}: {} holds another DB password than compose.env (drift); nothing was changed. Run `komodo-rotate rescue` to bring it back to compose.env's value, then rotate",
            c.name, k.key
        )));
    }
    let uri = |k: &KeyStand| k.form == FORM_URI && k.stand != Stand::Holds;
    if let Some((c, k)) = checked.iter().find(|(_, k)| uri(k)) {
        return Err(Error::Precondition(format!(
            "{}: the URI in {} does not carry compose.env's password (drift); nothing was changed. Run `komodo-rotate verify`",
            c.name, k.key
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Generation;

    use crate::planes::holders::test_container as container;

    /// v2's keys with core carrying `core_key` and periphery `periphery_key`, in `forms`.
    fn keys(core_key: &str, periphery_key: &str, forms: &[(&str, &str)]) -> DbPasswordKeys {
        DbPasswordKeys {
            generation: Generation::V2,
            compose_user_key: "KOMODO_DATABASE_USERNAME".into(),
            compose_password_key: "KOMODO_DATABASE_PASSWORD".into(),
            containers: [
                ("core".to_string(), vec![core_key.to_string()]),
                ("periphery".to_string(), vec![periphery_key.to_string()]),
            ]
            .into(),
            forms: forms
                .iter()
                .map(|(k, f)| (k.to_string(), f.to_string()))
                .collect(),
            files: Vec::new(),
            mongo_init_key: "MONGO_INITDB_ROOT_PASSWORD".into(),
            warnings: Vec::new(),
            unpatched: Vec::new(),
        }
    }

    #[test]
    fn a_drifted_plain_copy_is_refused_naming_the_container_and_rescue() {
        let k = "KOMODO_DATABASE_PASSWORD";
        let keys = keys(k, k, &[]);
        let old = Secret::new("old-password-0123".into());
        let core = container("core", &[(k, "old-password-0123")]);
        let drifted = container("periphery", &[(k, "drifted-value-456")]);
        env_copies_hold_old([&core].into_iter(), &keys, &old).unwrap();
        let e = env_copies_hold_old([&core, &drifted].into_iter(), &keys, &old)
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
        // A plain key a holder does not set is no copy.
        env_copies_hold_old([&container("periphery", &[])].into_iter(), &keys, &old).unwrap();
    }

    #[test]
    fn a_uri_not_carrying_old_is_refused_unset_included_after_plain_drift() {
        let (k, url) = ("KOMODO_DATABASE_PASSWORD", "KOMODO_DATABASE_URI");
        let mut keys = keys(url, k, &[(url, FORM_URI)]);
        let old = Secret::new("old-password-0123".into());
        let holds = container("core", &[(url, "mongodb://u:old-password-0123@mongo/")]);
        let differs = container("core", &[(url, "mongodb://u:drifted-value-456@mongo/")]);
        let unset = container("core", &[]);
        let drifted = container("periphery", &[(k, "drifted-value-456")]);
        env_copies_hold_old([&holds].into_iter(), &keys, &old).unwrap();
        for c in [&differs, &unset] {
            let e = env_copies_hold_old([c].into_iter(), &keys, &old)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("core: the URI in KOMODO_DATABASE_URI does not carry"),
                "{e}"
            );
            assert!(
                !e.contains("drifted-value") && !e.contains("old-password"),
                "{e}"
            );
        }
        // The plain copy's refusal (pointing at rescue) comes first, whatever the order.
        let e = env_copies_hold_old([&differs, &drifted].into_iter(), &keys, &old)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("periphery: KOMODO_DATABASE_PASSWORD"), "{e}");
        keys.forms.clear();
        // Read plainly, the same URI is a plain copy on another value.
        let e = env_copies_hold_old([&holds].into_iter(), &keys, &old)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("core: KOMODO_DATABASE_URI holds another"),
            "{e}"
        );
    }
}
