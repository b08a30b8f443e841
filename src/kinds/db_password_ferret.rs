//! `db-password` on the FerretDB variant (issue 21). The live credential is the PostgreSQL
//! role's SCRAM verifier in `pg_authid`, which FerretDB checks every client proof against, and
//! FerretDB reads its own `FERRETDB_POSTGRESQL_URL` (the same password) once at start. The plan:
//! the role's verifier (`change-pg`, undone byte for byte), compose.env, ferretdb recreated with
//! its URL's password patched, then core, periphery and the other holders; `resume` asks the
//! role's verifier which value is live. No overlap: one role, one password.
//!
//! postgres's own `POSTGRES_PASSWORD` is read only by initdb on an empty data dir: it is not
//! recreated (a restart of the database for nothing); the next `docker compose up -d` does it.

use super::db_password_shared::{
    foreign_ready, holders_and_carriers_ready, old_and_env_keys, old_logs_in, rotation_context,
    write_env_step,
};
use super::{Ask, Plan};
use crate::docker::generation::{FERRETDB_URL_KEY, POSTGRES_PASSWORD_KEY};
use crate::docker::{ContainerInfo, EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::planes::ferret::{url_safe, ContainerPsql, FerretPlane};
use crate::planes::holders::{stand, Stand};
use crate::planes::run::FORM_URI;
use crate::planes::{steps, PgRole};
use crate::postgres::Role;
use crate::secret::Secret;

/// The refusal of a new value compose cannot put into `FERRETDB_POSTGRESQL_URL` raw.
pub(super) fn refuse_url_unsafe(new: &Secret) -> Result<()> {
    if url_safe(new.expose()) {
        return Ok(());
    }
    Err(Error::Precondition(format!(
        "the new DB password has characters outside A-Za-z0-9-._~: compose interpolates it unencoded into ferretdb's {FERRETDB_URL_KEY}, which would break FerretDB's connection to PostgreSQL; nothing was changed. Use --charset alnum, hex or base64url"
    )))
}

pub async fn plan(ask: Ask<'_>, f: FerretPlane<'_>) -> Result<Plan> {
    let Ask {
        cfg, loaded, new, ..
    } = ask;
    let (old, env_keys) = old_and_env_keys(loaded)?;
    refuse_url_unsafe(&new)?;
    let (env, dk, keys) = (&loaded.env, &loaded.dk, &loaded.keys);
    let (user, holders) = (&loaded.user, &loaded.holders);
    let nothing = |e: String| Error::Precondition(format!("{e}; nothing was changed"));

    // The role's verifier takes compose.env's password (offline: no login needed).
    let admin = f.admin(user);
    let psql = ContainerPsql {
        engine: &dk.engine,
        container: &f.postgres.name,
    };
    let role = Role {
        psql: &psql,
        admin: &admin,
        name: user,
    };
    let (_, verifier) = role.verifier().await.map_err(|e| nothing(e.to_string()))?;
    if !verifier.accepts(&old) {
        return Err(Error::Precondition(format!(
            "{}: role {user}'s verifier in pg_authid does not accept {}'s {} (drift); nothing was changed. Run `komodo-rotate rescue`",
            f.postgres.name,
            env.file.name(),
            keys.compose_password_key
        )));
    }
    // ferretdb's URL carries it (its pool logs in with it).
    match stand(f.ferretdb, FERRETDB_URL_KEY, FORM_URI, &old) {
        Stand::Holds => {}
        Stand::Differs => {
            return Err(Error::Precondition(format!(
                "{}: the URL in {FERRETDB_URL_KEY} does not carry {}'s password (drift); nothing was changed. Run `komodo-rotate rescue`",
                f.ferretdb.name,
                env.file.name()
            )))
        }
        Stand::Unset => {
            return Err(nothing(format!(
                "{} has no {FERRETDB_URL_KEY}",
                f.ferretdb.name
            )))
        }
    }
    // And a client logs in through ferretdb with it now.
    old_logs_in(loaded, &old, "through ferretdb").await?;

    Recreate::prepare(&dk.engine, &f.ferretdb.name, EnvPatch::new(), 0).await?;
    holders_and_carriers_ready(cfg, loaded, &env_keys, &old).await?;
    // Other holders (plain or in a URI): recreated after core and periphery. postgres and
    // ferretdb are FerretDB's own parts, handled above.
    let others: Vec<ContainerInfo> = dk
        .others
        .iter()
        .filter(|c| c.name != f.postgres.name && c.name != f.ferretdb.name)
        .cloned()
        .collect();
    let (foreign, mut container_keys, mut forms) = foreign_ready(loaded, &others, &old).await?;
    container_keys.insert(f.ferretdb.name.clone(), vec![FERRETDB_URL_KEY.to_string()]);
    forms.insert(FERRETDB_URL_KEY.to_string(), FORM_URI.to_string());

    let mut plan = vec![
        steps::snapshot(),
        steps::change_pg(),
        write_env_step(&env_keys),
    ];
    plan.extend(keys.files.iter().map(|c| steps::write_file(&c.host_path)));
    // ferretdb first: its URL is read once, and every client's login runs on its pool.
    plan.push(steps::recreate(&f.ferretdb.name));
    plan.extend(holders.iter().map(|c| steps::recreate(c)));
    plan.extend(foreign.iter().map(|c| steps::recreate(&c.name)));
    plan.push(steps::commit());

    let mut after = Vec::new();
    if f.postgres.env_value(POSTGRES_PASSWORD_KEY).is_some() {
        after.push(format!(
            "{}'s {POSTGRES_PASSWORD_KEY} keeps its value: PostgreSQL reads it only when initialising an empty data dir (the role now holds the new verifier); the next `docker compose up -d` recreates {} with compose.env's value",
            f.postgres.name, f.postgres.name
        ));
    }
    let pg = PgRole {
        postgres: f.postgres.name.clone(),
        ferretdb: f.ferretdb.name.clone(),
        admin,
        role: user.clone(),
    };
    let context = rotation_context(cfg, loaded, container_keys, forms, Some(pg));
    let before = vec![format!(
        "{} and core restart: FerretDB's clients reconnect; logins between the role's change and the recreates are refused",
        f.ferretdb.name
    )];
    Ok(Plan::new(plan, context, old, new).with_notes(before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_unsafe_new_value_is_refused_naming_the_url_and_never_the_value() {
        refuse_url_unsafe(&Secret::new("Abc-def_ghi.jkl~0123".into())).unwrap();
        for bad in ["p@ssword-0123456", "pass/word-012345", "pass:word%41bcd"] {
            let e = refuse_url_unsafe(&Secret::new(bad.into()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(FERRETDB_URL_KEY) && e.contains("nothing was changed"),
                "{e}"
            );
            assert!(!e.contains(bad), "{e}");
        }
    }
}
