//! `db-password`: the password of Komodo's DB user. Its live copy is in MongoDB (the user
//! document), so the plan changes Mongo first (updateUser, proven by a fresh login), then
//! compose.env, then recreates every container that holds it; `resume` asks Mongo which value is
//! live. There is no overlap: Mongo keeps one password per user.

use super::db_password_shared::{
    foreign_ready, holders_and_carriers_ready, old_and_env_keys, old_logs_in, rotation_context,
    write_env_step,
};
use super::{Ask, Plan};
use crate::error::{Error, Result};
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
    let (old, env_keys) = old_and_env_keys(loaded)?;
    old_logs_in(loaded, &old, "to MongoDB").await?;
    holders_and_carriers_ready(cfg, loaded, &env_keys, &old).await?;
    // Holders outside the roles (a `backup` service reading compose.env, a sidecar's
    // `MONGO_URL`): recreated with the roles when plain or in a URI, else refused by name.
    let (foreign, container_keys, forms) = foreign_ready(loaded, &loaded.dk.others, &old).await?;

    let mut plan = vec![
        steps::snapshot(),
        steps::change_db(),
        write_env_step(&env_keys),
    ];
    // Files before the recreates, so each new container reads NEW at its start.
    plan.extend(
        loaded
            .keys
            .files
            .iter()
            .map(|f| steps::write_file(&f.host_path)),
    );
    plan.extend(loaded.holders.iter().map(|c| steps::recreate(c)));
    plan.extend(foreign.iter().map(|f| steps::recreate(&f.name)));
    plan.push(steps::commit());
    let context = rotation_context(cfg, loaded, container_keys, forms, None);
    Ok(Plan::new(plan, context, old, new))
}
