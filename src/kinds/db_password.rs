//! `db-password`: the password of Komodo's DB user. Its live copy is in MongoDB (the user
//! document), so the plan changes Mongo first (updateUser, proven by a fresh login), then
//! compose.env, then recreates every container that holds it; `resume` asks Mongo which value is
//! live. There is no overlap: Mongo keeps one password per user.

use super::db_password_shared::{
    foreign_ready, holders_and_carriers_ready, rotation_context, write_env_step,
};
use super::{Ask, Plan};
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::ferret::FerretPlane;
use crate::planes::{steps, Loaded};

pub fn available(loaded: &Loaded) -> std::result::Result<(), String> {
    // Every Komodo generation this tool detects keeps its DB password in compose.env; the
    // FerretDB variant keeps its live copy in PostgreSQL (`db_password_ferret`). A deployment
    // whose variant cannot be told is refused by name.
    FerretPlane::find(&loaded.dk)
        .map(|_| ())
        .map_err(|e| format!("cannot tell the database variant: {e}"))
}

pub async fn plan(ask: Ask<'_>) -> Result<Plan> {
    match FerretPlane::find(&ask.loaded.dk) {
        Ok(Some(f)) => return super::db_password_ferret::plan(ask, f).await,
        Ok(None) => {}
        Err(e) => {
            return Err(Error::Precondition(format!(
                "cannot tell the database variant: {e}; nothing was changed"
            )))
        }
    }
    let Ask {
        cfg, loaded, new, ..
    } = ask;
    let (env, dk, keys) = (&loaded.env, &loaded.dk, &loaded.keys);
    let (user, target, holders) = (&loaded.user, &loaded.target, &loaded.holders);
    keys.refuse_unpatched()?;
    // compose's reading of the password, and every compose.env key holding it (a split
    // between naming generations is refused here, by name).
    let (old, env_keys) = keys.env_password_keys(env)?;
    match login_works(target, &old).await {
        LoginOutcome::Accepted => {}
        LoginOutcome::Rejected => {
            return Err(Error::Precondition(format!(
                "{}'s {} does not log in to MongoDB at {} as {user}: the planes have drifted; run `komodo-rotate rescue`",
                env.file.name(),
                keys.compose_password_key,
                target.server()
            )))
        }
        LoginOutcome::Unreachable(r) => return Err(Error::Precondition(r)),
    }
    holders_and_carriers_ready(cfg, loaded, &env_keys, &old).await?;
    // Holders outside the roles (a `backup` service reading compose.env, a sidecar's
    // `MONGO_URL`): recreated with the roles when plain or in a URI, else refused by name.
    let (foreign, container_keys, forms) = foreign_ready(loaded, &dk.others, &old).await?;

    let mut plan = vec![
        steps::snapshot(),
        steps::change_db(),
        write_env_step(&env_keys),
    ];
    // Files before the recreates, so each new container reads NEW at its start.
    plan.extend(keys.files.iter().map(|f| steps::write_file(&f.host_path)));
    plan.extend(holders.iter().map(|c| steps::recreate(c)));
    plan.extend(foreign.iter().map(|f| steps::recreate(&f.name)));
    plan.push(steps::commit());
    Ok(Plan {
        steps: plan,
        context: rotation_context(cfg, loaded, container_keys, forms, None),
        old,
        new,
        before: Vec::new(),
        after: Vec::new(),
    })
}
