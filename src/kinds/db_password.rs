//! `db-password`: the password of Komodo's DB user. Its live copy is in MongoDB (the user
//! document), so the plan changes Mongo first (updateUser, proven by a fresh login), then
//! compose.env, then recreates every container that holds it; `resume` asks Mongo which value is
//! live. There is no overlap: Mongo keeps one password per user.

use super::{refuse_clear_text, Ask, Plan};
use crate::docker::{EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::{steps, Loaded, RunContext};

pub fn available(_loaded: &Loaded) -> std::result::Result<(), String> {
    // Every Komodo generation this tool detects keeps its DB password in compose.env.
    Ok(())
}

pub async fn plan(ask: Ask<'_>) -> Result<Plan> {
    let Ask {
        cfg, loaded, new, ..
    } = ask;
    let Loaded {
        env,
        dk,
        keys,
        user,
        target,
        holders,
    } = loaded;
    keys.refuse_unpatched()?;
    let old = keys.env_password(env)?;
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
    for name in holders {
        // Checks leftovers and that the image is present locally; changes nothing.
        Recreate::prepare(&dk.engine, name, EnvPatch::new(), 0).await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    // The edit write-env will make, made in memory now: a file it would refuse (a duplicated
    // key, a rule it cannot honour) fails here, before Mongo is touched.
    env.file
        .with_values(&env.ids, &[(keys.compose_password_key.as_str(), &old)])?;
    refuse_clear_text(loaded, &keys.compose_password_key)?;

    let mut plan = vec![steps::snapshot(), steps::change_db(), steps::write_env()];
    plan.extend(holders.iter().map(|c| steps::recreate(c)));
    plan.push(steps::commit());
    Ok(Plan {
        steps: plan,
        context: RunContext {
            compose_env: cfg.compose_env.clone(),
            env_key: keys.compose_password_key.clone(),
            mongo_user: user.clone(),
            container_keys: keys.containers.clone(),
            env_already_new: false,
            git: None,
        },
        old,
        new,
        before: Vec::new(),
        after: Vec::new(),
    })
}
