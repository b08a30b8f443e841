//! verify's rows for the FerretDB variant (issue 21), composed by `verify`. The live credential is
//! the role's SCRAM verifier in PostgreSQL (`pg_authid`), read through `docker exec` into the
//! postgres container (local socket, no password) and checked against compose.env's password
//! offline, no login needed. FerretDB's own `FERRETDB_POSTGRESQL_URL` (read once at its start)
//! must carry the same password, or its pool cannot open new PostgreSQL connections: clients then
//! get `code 1 InternalError ... password authentication failed`, which is told apart from a
//! wrong client password (`code 18`). `POSTGRES_PASSWORD` is first-init only: informational.

use crate::docker::crashloop::Signature;
use crate::docker::generation::{FERRETDB_URL_KEY, POSTGRES_PASSWORD_KEY};
use crate::planes::ferret::{ContainerPsql, FerretPlane};
use crate::planes::DockerPlane;
use crate::postgres::{Role, Verifier};
use crate::report::{Matrix, Status};
use crate::secret::Secret;

/// The kind the rows name.
const DB: &str = "db-password";

/// What verify knows of the deployment's DB password, for these rows.
pub struct Ask<'a> {
    pub dk: &'a DockerPlane,
    pub ferret: &'a FerretPlane<'a>,
    /// compose.env's key and its value as compose hands it out.
    pub key: &'a str,
    pub desired: &'a Secret,
    /// The role FerretDB checks clients against (compose.env's username).
    pub user: &'a str,
}

/// The variant's rows: the role's verifier, ferretdb's URL, postgres's first-init password.
pub async fn rows(ask: Ask<'_>, m: &mut Matrix) {
    let Ask {
        dk,
        ferret,
        key,
        desired,
        user,
    } = ask;
    m.push("variant", Status::Info, ferret.describe());
    let pg = ferret.postgres;
    // psql connects as the bootstrap superuser (POSTGRES_USER, kept from first init), which in
    // Komodo's file is the same role; the local socket trusts it.
    let admin = ferret.admin(user);
    let psql = ContainerPsql {
        engine: &dk.engine,
        container: &pg.name,
    };
    let role = Role {
        psql: &psql,
        admin: &admin,
        name: user,
    };
    let url_pw = crate::planes::ferret_read::url_password(ferret.ferretdb);
    let verifier = match role.verifier().await {
        Ok((_, v)) => Some(v),
        Err(e) => {
            m.push_kind(DB, "pg-role", Status::Unknown, e.to_string());
            None
        }
    };
    if let Some(v) = &verifier {
        m.push_kind(
            DB,
            "pg-role",
            role_status(v, desired),
            role_line(
                v,
                key,
                user,
                &pg.name,
                desired,
                &url_pw,
                pg.env_value(POSTGRES_PASSWORD_KEY),
            ),
        );
        if let Some(c) = v.client_caveat() {
            m.push_kind(
                DB,
                "pg-verifier",
                Status::Info,
                format!("role {user}'s verifier has {c}; a rotation writes 4096 iterations and a 28-byte salt"),
            );
        }
    }
    m.push_kind(
        DB,
        "ferretdb-url",
        url_status(&url_pw, desired, verifier.as_ref()),
        url_line(&url_pw, &ferret.ferretdb.name, desired, verifier.as_ref()),
    );
    match pg.env_value(POSTGRES_PASSWORD_KEY) {
        Some(p) if p.ct_eq(desired) => m.push_kind(
            DB,
            "postgres-init-env",
            Status::Ok,
            format!("{POSTGRES_PASSWORD_KEY} matches compose.env"),
        ),
        Some(_) => m.push_kind(
            DB,
            "postgres-init-env",
            Status::Info,
            format!("stale-init-env: {POSTGRES_PASSWORD_KEY} of {} differs (used only by initdb on an empty data dir)", pg.name),
        ),
        None => m.push_kind(
            DB,
            "postgres-init-env",
            Status::Info,
            format!("{POSTGRES_PASSWORD_KEY} not set in {}", pg.name),
        ),
    }
}

fn role_status(v: &Verifier, desired: &Secret) -> Status {
    if v.accepts(desired) {
        Status::Ok
    } else {
        Status::Drift
    }
}

/// The pg-role row's text: accepted, or which other candidate the role takes (names only).
fn role_line(
    v: &Verifier,
    key: &str,
    user: &str,
    pg: &str,
    desired: &Secret,
    url_pw: &Result<Secret, String>,
    init_pw: Option<&Secret>,
) -> String {
    if v.accepts(desired) {
        return format!("role {user}'s SCRAM verifier in {pg} accepts compose.env's {key}");
    }
    let mut takes = Vec::new();
    if url_pw.as_ref().is_ok_and(|p| v.accepts(p)) {
        takes.push(format!("ferretdb's {FERRETDB_URL_KEY} password"));
    }
    if init_pw.is_some_and(|p| v.accepts(p)) {
        takes.push(format!("{POSTGRES_PASSWORD_KEY} (first init)"));
    }
    let which = if takes.is_empty() {
        "none of compose.env, ferretdb's URL or POSTGRES_PASSWORD".to_string()
    } else {
        takes.join(" and ")
    };
    format!(
        "role {user}'s SCRAM verifier in {pg} does not accept compose.env's {key} (it accepts {which}): the planes have drifted; run `komodo-rotate rescue` (it tests every known password offline; with none it sets the verifier after asking, or with --yes)"
    )
}

fn url_status(url_pw: &Result<Secret, String>, desired: &Secret, v: Option<&Verifier>) -> Status {
    match url_pw {
        Ok(p) if p.ct_eq(desired) && v.is_none_or(|v| v.accepts(p)) => Status::Ok,
        Ok(_) => Status::Drift,
        Err(_) => Status::Drift,
    }
}

fn url_line(
    url_pw: &Result<Secret, String>,
    ferretdb: &str,
    desired: &Secret,
    v: Option<&Verifier>,
) -> String {
    let p = match url_pw {
        Ok(p) => p,
        Err(e) => return e.clone(),
    };
    let env = if p.ct_eq(desired) {
        "carries compose.env's password"
    } else {
        "differs from compose.env's password (recreate ferretdb)"
    };
    match v {
        Some(v) if !v.accepts(p) => format!(
            "{ferretdb}'s {FERRETDB_URL_KEY} {env}, and PostgreSQL's verifier refuses it: FerretDB's pool cannot open new connections (clients get code 1 InternalError: password authentication failed)"
        ),
        _ => format!("{ferretdb}'s {FERRETDB_URL_KEY} {env}"),
    }
}

/// A login through FerretDB that did not give code 18 but failed with PostgreSQL's "password
/// authentication failed": FerretDB's own URL is stale (code 1), not the client's password.
/// `Some` row text for verify's db-login row, `None` for any other failure.
pub fn login_failure(reason: &str, ferretdb: &str) -> Option<String> {
    reason.contains("password authentication failed").then(|| {
        format!(
            "{ferretdb} answered code 1 InternalError (password authentication failed): PostgreSQL refuses the password in FerretDB's own {FERRETDB_URL_KEY} (the URL or the role's verifier is stale), not the client's password (that would be code 18); see pg-role and ferretdb-url, `komodo-rotate rescue` repairs both"
        )
    })
}

/// The cause row for a core crash-looping on FerretDB: FerretDB's URL stale (code 1) or core's
/// own password wrong (code 18).
pub fn core_cause(sig: Signature) -> Option<(Status, &'static str)> {
    match sig {
        Signature::FerretAuthFailed => Some((
            Status::Drift,
            "core fails with code 1 InternalError (password authentication failed): PostgreSQL refuses FerretDB's own FERRETDB_POSTGRESQL_URL (the URL or the role's verifier is stale), not core's password; see ferretdb-url and pg-role",
        )),
        Signature::AuthFailed => Some((
            Status::Drift,
            "core fails with code 18 (Authentication failed): core's password does not match the role's verifier in PostgreSQL; see pg-role",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Secret {
        Secret::new(v.into())
    }

    #[test]
    fn the_role_row_says_which_candidate_the_verifier_takes() {
        let v = Verifier::build(&s("first-init")).unwrap();
        let desired = s("compose-env-value");
        assert_eq!(role_status(&v, &desired), Status::Drift);
        let line = role_line(
            &v,
            "KOMODO_DATABASE_PASSWORD",
            "komodo",
            "pg",
            &desired,
            &Ok(s("first-init")),
            Some(&s("first-init")),
        );
        assert!(
            line.contains(
                "ferretdb's FERRETDB_POSTGRESQL_URL password and POSTGRES_PASSWORD (first init)"
            ),
            "{line}"
        );
        assert!(line.contains("rescue"), "{line}");
        assert!(
            !line.contains("first-init\"") && !line.contains("compose-env-value"),
            "{line}"
        );
        let ok = role_line(
            &v,
            "K",
            "komodo",
            "pg",
            &s("first-init"),
            &Err("x".into()),
            None,
        );
        assert!(ok.contains("accepts compose.env's K"), "{ok}");
        assert_eq!(role_status(&v, &s("first-init")), Status::Ok);
        let none = role_line(
            &v,
            "K",
            "komodo",
            "pg",
            &desired,
            &Ok(desired.clone()),
            None,
        );
        assert!(none.contains("accepts none of"), "{none}");
    }

    #[test]
    fn a_stale_ferretdb_url_is_drift_and_names_code_1() {
        let desired = s("new-value");
        let v = Verifier::build(&desired).unwrap();
        let stale: Result<Secret, String> = Ok(s("old-value"));
        assert_eq!(url_status(&stale, &desired, Some(&v)), Status::Drift);
        let line = url_line(&stale, "ferretdb", &desired, Some(&v));
        assert!(
            line.contains("differs") && line.contains("code 1 InternalError"),
            "{line}"
        );
        let fresh: Result<Secret, String> = Ok(desired.clone());
        assert_eq!(url_status(&fresh, &desired, Some(&v)), Status::Ok);
        // URL on compose.env's value while PostgreSQL still has the old one: drift too.
        let old_v = Verifier::build(&s("old-value")).unwrap();
        assert_eq!(url_status(&fresh, &desired, Some(&old_v)), Status::Drift);
        assert_eq!(
            url_status(&Err("unreadable".into()), &desired, None),
            Status::Drift
        );
    }

    #[test]
    fn code_1_is_told_apart_from_code_18() {
        let r = "Command failed: code 1 (InternalError): password authentication failed for user \"komodo\"";
        let line = login_failure(r, "ferretdb").unwrap();
        assert!(line.contains("stale") && line.contains("code 18"), "{line}");
        // Which side is stale is pg-role's and ferretdb-url's to say: no advice that is wrong
        // when the URL already carries compose.env's password (the first-init drift).
        assert!(!line.contains("recreate ferretdb"), "{line}");
        let cause = core_cause(Signature::FerretAuthFailed).unwrap().1;
        assert!(cause.contains("not core's password"), "{cause}");
        assert!(login_failure("server selection timeout", "ferretdb").is_none());
        assert!(core_cause(Signature::FerretAuthFailed)
            .unwrap()
            .1
            .contains("code 1"));
        assert!(core_cause(Signature::AuthFailed)
            .unwrap()
            .1
            .contains("code 18"));
        assert!(core_cause(Signature::Unreachable).is_none());
    }
}
