//! Read-only helpers on a FerretDB deployment's two containers, shared by verify and rescue
//! (kept out of `planes/ferret.rs`, which the rotation's plan grows): the user and password
//! inside ferretdb's URL, and the role's stored secret read through the postgres container's
//! local socket. (The role psql connects as: `FerretPlane::admin`.)

use super::ferret::{ContainerPsql, FerretPlane};
use crate::docker::generation::FERRETDB_URL_KEY;
use crate::docker::{uri, ContainerInfo, Engine};
use crate::postgres::{PgError, Role, Stored, Verifier};
use crate::secret::Secret;

/// The password inside ferretdb's `FERRETDB_POSTGRESQL_URL`, or why it cannot be read (key and
/// container names only).
pub fn url_password(ferretdb: &ContainerInfo) -> Result<Secret, String> {
    match ferretdb.env_value(FERRETDB_URL_KEY) {
        None => Err(format!("{} has no {FERRETDB_URL_KEY}", ferretdb.name)),
        Some(u) => uri::password(FERRETDB_URL_KEY, u).map_err(|e| {
            format!(
                "{}: {e} (compose interpolates the password into the URL unencoded: a password with URL-unsafe characters breaks it)",
                ferretdb.name
            )
        }),
    }
}

/// The user inside ferretdb's URL, if it has one.
pub fn url_user(ferretdb: &ContainerInfo) -> Option<String> {
    let u = ferretdb.env_value(FERRETDB_URL_KEY)?;
    let rest = u.expose().split_once("://")?.1;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    Some(user.to_string()).filter(|s| !s.is_empty())
}

/// psql in `f`'s postgres container.
pub fn psql<'a>(engine: &'a Engine, f: &'a FerretPlane<'_>) -> ContainerPsql<'a> {
    ContainerPsql {
        engine,
        container: &f.postgres.name,
    }
}

/// What `pg_authid` holds for `user` now, and its verifier parsed when it is one.
pub async fn role_state(
    psql: &ContainerPsql<'_>,
    admin: &str,
    user: &str,
) -> Result<(Stored, Option<Verifier>), PgError> {
    let role = Role {
        psql,
        admin,
        name: user,
    };
    let stored = role.stored().await?;
    let v = match &stored {
        Stored::Secret(s) => Some(
            Verifier::parse(s.expose())
                .map_err(|e| PgError::Verifier(format!("role {user}: {e}")))?,
        ),
        _ => None,
    };
    Ok((stored, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse};

    fn c(env: &[&str]) -> ContainerInfo {
        ContainerInfo::from_inspect(&ContainerInspectResponse {
            name: Some("/p-ferretdb-1".into()),
            config: Some(ContainerConfig {
                env: Some(env.iter().map(|e| e.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn url_user_and_password() {
        let f = c(&["FERRETDB_POSTGRESQL_URL=postgres://admin:s3cret@postgres:5432/postgres"]);
        assert_eq!(url_user(&f).as_deref(), Some("admin"));
        assert_eq!(url_password(&f).unwrap().expose(), "s3cret");
        let none = c(&[]);
        let e = url_password(&none).unwrap_err();
        assert!(e.contains("no FERRETDB_POSTGRESQL_URL"), "{e}");
        assert_eq!(url_user(&none), None);
    }
}
