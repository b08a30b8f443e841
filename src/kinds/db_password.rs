//! `db-password`: the password of Komodo's DB user. Its live copy is in MongoDB (the user
//! document), so the plan changes Mongo first (updateUser, proven by a fresh login), then
//! compose.env, then recreates every container that holds it; `resume` asks Mongo which value is
//! live. There is no overlap: Mongo keeps one password per user.

use super::{refuse_clear_text, Ask, Plan};
use crate::docker::{EnvPatch, Recreate};
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::carriers::{file_value, holds};
use crate::planes::{steps, Loaded, RunContext};
use crate::secret::Secret;

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
    for name in holders {
        // Checks leftovers and that the image is present locally; changes nothing.
        Recreate::prepare(&dk.engine, name, EnvPatch::new(), 0).await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    // The edit write-env will make, made in memory now: a file it would refuse (a duplicated
    // key, a rule it cannot honour) fails here, before Mongo is touched.
    let edit: Vec<(&str, &Secret)> = env_keys.iter().map(|k| (k.as_str(), &old)).collect();
    env.file.with_values(&env.ids, &edit)?;
    for k in &env_keys {
        refuse_clear_text(loaded, k)?;
    }
    carriers_hold_old(loaded, &old)?;
    crate::planes::holders::refuse_foreign(&dk.others, &old, "the DB password")?;

    // One key: the plain step (the run's env_key); several: each named, rewritten in one edit.
    let write_env = match env_keys.as_slice() {
        [_] => steps::write_env(),
        all => all.iter().fold(steps::write_env(), |s, k| s.with(k, "new")),
    };
    let mut plan = vec![steps::snapshot(), steps::change_db(), write_env];
    // Files before the recreates, so each new container reads NEW at its start.
    plan.extend(keys.files.iter().map(|f| steps::write_file(&f.host_path)));
    plan.extend(holders.iter().map(|c| steps::recreate(c)));
    plan.push(steps::commit());
    Ok(Plan {
        steps: plan,
        context: RunContext {
            compose_env: cfg.compose_env.clone(),
            env_key: keys.compose_password_key.clone(),
            mongo_user: user.clone(),
            container_keys: keys.containers.clone(),
            forms: keys.forms.clone(),
            files: keys.files.clone(),
            env_already_new: false,
            git: None,
        },
        old,
        new,
        before: Vec::new(),
        after: Vec::new(),
    })
}

/// Every plain, URI and file carrier holds OLD now (so the rollback can prove "all old" again) and
/// every carrier file can be replaced keeping its owner and mode. Read-only; a refusal names the
/// container or file and the key, never a value.
fn carriers_hold_old(loaded: &Loaded, old: &Secret) -> Result<()> {
    let keys = &loaded.keys;
    for c in loaded.dk.dependants() {
        for k in keys.containers.get(&c.name).into_iter().flatten() {
            let form = keys.forms.get(k).map(String::as_str).unwrap_or("plain");
            // A drifted plain copy: a rollback would have to prove OLD where it never was
            // (a permanent exit 5); rescue brings it back to compose.env's value.
            if form == "plain" && c.env_value(k).is_some_and(|v| !v.ct_eq(old)) {
                return Err(Error::Precondition(format!(
                    "{}: {k} holds another DB password than compose.env (drift); nothing was changed. Run `komodo-rotate rescue` to bring it back to compose.env's value, then rotate",
                    c.name
                )));
            }
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
