//! verify's rows for the DB password: the naming generation, compose.env against Mongo, each
//! holder (the roles and the project's other containers), and the carriers.

use crate::config::Config;
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::holders::{self, file_stands, Stand};
use crate::planes::{mongo_target, DbPasswordKeys, DockerPlane, EnvPlane};
use crate::report::{Matrix, Status};

/// The kind the DB password's rows name.
pub(super) const DB: &str = "db-password";

pub(super) async fn compare(
    cfg: &Config,
    env: &EnvPlane,
    dk: &DockerPlane,
    keys: &DbPasswordKeys,
    m: &mut Matrix,
) {
    m.push(
        "generation",
        if keys.warnings.is_empty() {
            Status::Info
        } else {
            Status::Drift
        },
        if keys.warnings.is_empty() {
            format!(
                "Komodo {} env names ({})",
                keys.generation.as_str(),
                keys.compose_password_key
            )
        } else {
            keys.warnings.join("; ")
        },
    );
    for (at, c) in &keys.unpatched {
        m.push_kind(
            DB,
            format!("carrier {at}"),
            Status::Drift,
            format!("{} {}: rotate and rescue refuse it", c.key, c.why),
        );
    }
    let ferret = match crate::planes::ferret::FerretPlane::find(dk) {
        Ok(f) => {
            m.gauges.push(crate::metrics::variant_gauge(f.is_some()));
            f
        }
        Err(e) => {
            m.push("variant", Status::Drift, e);
            None
        }
    };
    let desired = match keys.env_password(env) {
        Ok(p) => p,
        Err(e) => {
            // A value compose's reading of which cannot be determined is unknown (exit 3); a
            // missing key or two generations' keys on different values is drift.
            let status = if env.value(&keys.compose_password_key).is_err() {
                Status::Unknown
            } else {
                Status::Drift
            };
            m.push_kind(DB, "db-login", status, e.to_string());
            return;
        }
    };
    match keys.user(cfg, env).and_then(|u| mongo_target(cfg, &dk.mongo, &u)) {
        Ok(target) => match login_works(&target, &desired).await {
            LoginOutcome::Accepted => m.push_kind(
                DB,
                "db-login",
                Status::Ok,
                format!("compose.env's {} logs in as {}", keys.compose_password_key, target.user),
            ),
            LoginOutcome::Rejected => m.push_kind(
                DB,
                "db-login",
                Status::Drift,
                format!(
                    "compose.env's {} is rejected by MongoDB at {} as {}: run `komodo-rotate rescue`",
                    keys.compose_password_key,
                    target.server(),
                    target.user
                ),
            ),
            LoginOutcome::Unreachable(r) => {
                match ferret.as_ref().and_then(|f| {
                    super::verify_ferret::login_failure(&r, &f.ferretdb.name)
                }) {
                    Some(line) => m.push_kind(DB, "db-login", Status::Drift, line),
                    None => m.push_kind(DB, "db-login", Status::Unknown, r),
                }
            }
        },
        Err(e) => m.push_kind(DB, "db-login", Status::Unknown, e.to_string()),
    }
    for c in dk.dependants() {
        let ks = keys.containers.get(&c.name).cloned().unwrap_or_default();
        if ks.is_empty() {
            m.push_kind(
                DB,
                format!("env {}", c.name),
                Status::Info,
                "holds no DB password",
            );
            continue;
        }
        // Drift is a key set to another value; a key the container does not set is not.
        let differing: Vec<&str> = holders::compare(c, &ks, &keys.forms, &desired)
            .into_iter()
            .filter(|k| k.stand == Stand::Differs)
            .map(|k| k.key)
            .collect();
        if differing.is_empty() {
            m.push_kind(
                DB,
                format!("env {}", c.name),
                Status::Ok,
                format!("{} match compose.env", ks.join(", ")),
            );
        } else {
            m.push_kind(
                DB,
                format!("env {}", c.name),
                Status::Drift,
                format!(
                    "{} differ from compose.env (recreate needed)",
                    differing.join(", ")
                ),
            );
        }
    }
    // Containers of the project outside mongo/core/periphery holding it: a rotation patches
    // them when they hold it plainly or in a URI, and refuses the other forms.
    // FerretDB's postgres holds the password as POSTGRES_PASSWORD: its own row below.
    let others: Vec<_> = dk
        .others
        .iter()
        .filter(|c| ferret.as_ref().is_none_or(|f| f.postgres.name != c.name))
        .cloned()
        .collect();
    for f in holders::foreign(&others, &desired) {
        let (status, what) = if f.patchable() {
            (
                Status::Ok,
                "rotate and rescue recreate it with the new value",
            )
        } else {
            (
                Status::Drift,
                "in a form a rotation cannot rewrite: rotate refuses it",
            )
        };
        m.push_kind(
            DB,
            format!("holder {}", f.name),
            status,
            format!(
                "{} hold compose.env's DB password; {what}",
                f.key_names().join(", ")
            ),
        );
    }
    for f in &keys.files {
        let at = format!("file {}", f.host_path.display());
        let read_by = format!("{} (read by {})", f.key, f.readers.join(", "));
        match file_stands(f, &desired) {
            Ok(Stand::Holds) => m.push(at, Status::Ok, format!("{read_by} matches compose.env")),
            Ok(_) => m.push(
                at,
                Status::Drift,
                format!("{read_by} differs from compose.env"),
            ),
            Err(e) => m.push(at, Status::Drift, e),
        }
    }
    if let Some(f) = &ferret {
        match keys.user(cfg, env) {
            Ok(user) => {
                let ask = super::verify_ferret::Ask {
                    dk,
                    ferret: f,
                    key: &keys.compose_password_key,
                    desired: &desired,
                    user: &user,
                };
                super::verify_ferret::rows(ask, m).await;
            }
            Err(e) => m.push_kind(DB, "pg-role", Status::Unknown, e.to_string()),
        }
        return;
    }
    match dk.mongo.env_value(&keys.mongo_init_key) {
        Some(v) if v.ct_eq(&desired) => {
            m.push_kind(DB, "mongo-init-env", Status::Ok, "matches compose.env")
        }
        Some(_) => m.push_kind(
            DB,
            "mongo-init-env",
            Status::Info,
            format!(
                "stale-init-env: {} differs (used only at first volume init)",
                keys.mongo_init_key
            ),
        ),
        None => m.push_kind(
            DB,
            "mongo-init-env",
            Status::Info,
            format!("{} not set", keys.mongo_init_key),
        ),
    }
}
