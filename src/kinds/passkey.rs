//! `passkey`: Komodo v1's core-to-periphery passkey (research/komodo.md §1.3, §1.5, §2.3).
//!
//! Core sends one passkey (`KOMODO_PASSKEY`) in every request; a periphery accepts any item of
//! its `PERIPHERY_PASSKEYS` list (split on `,`, never trimmed). There is an overlap, so the
//! plan has three phases, each a write-env and the recreates it needs, each undone on its own:
//!
//! 1. `accept-both`: compose.env `PERIPHERY_PASSKEYS=old,new` (the `${KOMODO_PASSKEY}` link
//!    broken on purpose, literal, no spaces); each local periphery recreated with `old,new`.
//! 2. `send-new`: compose.env `KOMODO_PASSKEY=new`; core recreated with it.
//! 3. `accept-new`: compose.env `PERIPHERY_PASSKEYS` back to its original text (the link, or
//!    `new` if it was a literal); each local periphery recreated with `new` only.
//!
//! At every point core's passkey is one the peripheries accept. Each periphery is recreated
//! twice in one run; the second recreate starts from the container the first one made
//! (`planes::live`). There is no external store: compose.env decides `resume`'s direction.
//!
//! Komodo v2 (2.3.2, research/komodo-v2-secrets.md §1) still honours passkeys core→periphery,
//! but only where the periphery has no `PERIPHERY_CORE_PUBLIC_KEYS`: with it (the default v2
//! compose.env sets it) periphery authenticates core by its public key and ignores passkeys, so
//! the kind is "not used by this deployment" and names Komodo's own key rotation. A v2 periphery
//! still on passkeys rotates with the same three phases. Core sends a Server's own
//! `config.passkey` (Mongo, `Server` collection) before `KOMODO_PASSKEY`: such overrides are
//! refused by server name (the tool cannot change them safely). Peripheries on other hosts
//! (`[[periphery.remote]]`) are out of reach: refused unless `--local-only`, then named in a
//! warning.

use super::{refuse_clear_text, Ask, Plan};
use crate::config::periphery::RemotePeriphery;
use crate::docker::{ContainerInfo, EnvPatch, Generation, Recreate};
use crate::error::{Error, Result};
use crate::mongo::MongoAdmin;
use crate::planes::{steps, Loaded, RunContext};
use crate::secret::Secret;
use crate::txn::Step;
use std::collections::BTreeMap;

pub const CORE_KEY: &str = "KOMODO_PASSKEY";
pub const PERIPHERY_KEY: &str = "PERIPHERY_PASSKEYS";
/// Komodo v1's compose.env links the periphery list to core's passkey with this text.
pub const LINK: &str = "${KOMODO_PASSKEY}";

pub const ACCEPT_BOTH: &str = "accept-both";
pub const SEND_NEW: &str = "send-new";
pub const ACCEPT_NEW: &str = "accept-new";

/// A v2 periphery with either of these set checks core's public key and ignores passkeys.
pub const CORE_PUBLIC_KEYS: [&str; 2] = ["PERIPHERY_CORE_PUBLIC_KEYS", "PERIPHERY_CORE_PUBLIC_KEY"];
/// compose.env's name for Komodo's database (core's default is `komodo`).
pub const DB_NAME_KEY: &str = "KOMODO_DATABASE_DB_NAME";

/// Why a generation has no passkey to rotate (the `rotate --list` line and the refusal).
pub fn support(generation: Generation) -> std::result::Result<(), String> {
    match generation {
        Generation::V1 | Generation::V2 => Ok(()),
        Generation::Legacy => Err(
            "Komodo v1.16 and older name the passkey PASSKEY (KOMODO_PASSKEY=${PASSKEY}); only the v1.17-v1.19 naming (KOMODO_PASSKEY, PERIPHERY_PASSKEYS) and v2 are supported"
                .into(),
        ),
    }
}

/// v2: whether the peripheries take core's public key (then passkeys are ignored). `env_set`:
/// the keys compose.env sets (non-empty); `peripheries`: each local periphery with the keys it
/// holds (non-empty).
fn v2_core_keys(
    env_name: &str,
    env_set: &[&str],
    peripheries: &[(&str, Vec<&str>)],
) -> Option<String> {
    let hit = |keys: &[&str]| CORE_PUBLIC_KEYS.into_iter().find(|k| keys.contains(k));
    if let Some(k) = hit(env_set) {
        return Some(format!("{env_name} sets {k}"));
    }
    peripheries
        .iter()
        .find_map(|(name, keys)| hit(keys).map(|k| format!("{name} has {k}")))
}

fn not_used(why: &str) -> String {
    format!(
        "not used by this deployment: {why}, so Komodo v2's periphery authenticates core by its public key and ignores passkeys. Rotate keys with Komodo's own API: RotateCoreKeys (core), RotateServerKeys / RotateAllServerKeys (peripheries)"
    )
}

pub fn available(loaded: &Loaded) -> std::result::Result<(), String> {
    support(loaded.keys.generation)?;
    if loaded.keys.generation == Generation::V2 {
        let set = |v: Option<&Secret>| v.is_some_and(|v| !v.expose().trim().is_empty());
        let env_set: Vec<&str> = CORE_PUBLIC_KEYS
            .into_iter()
            .filter(|k| set(loaded.env.plain.get(k).as_ref()))
            .collect();
        let peripheries: Vec<(&str, Vec<&str>)> = loaded
            .dk
            .periphery
            .iter()
            .map(|p| {
                let keys = CORE_PUBLIC_KEYS
                    .into_iter()
                    .filter(|k| set(p.env_value(k)))
                    .collect();
                (p.name.as_str(), keys)
            })
            .collect();
        if let Some(why) = v2_core_keys(loaded.env.file.name(), &env_set, &peripheries) {
            return Err(not_used(&why));
        }
    }
    match loaded.env.plain.get(CORE_KEY) {
        Some(v) if !v.expose().is_empty() => Ok(()),
        _ => Err(format!(
            "{} has no {CORE_KEY}: core sends no passkey, so there is none to rotate",
            loaded.env.file.name()
        )),
    }
}

/// The servers with their own passkey in Komodo's database (`Server.config.passkey`), which
/// core sends instead of `KOMODO_PASSKEY`; read with compose.env's DB credentials.
async fn server_overrides(loaded: &Loaded) -> std::result::Result<Vec<String>, String> {
    let db = loaded
        .env
        .plain
        .get(DB_NAME_KEY)
        .map(|v| v.expose().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "komodo".into());
    let password = loaded
        .keys
        .env_password(&loaded.env)
        .map_err(|e| e.to_string())?;
    let admin = MongoAdmin::connect(&loaded.target, &password)
        .await
        .map_err(|e| e.to_string())?;
    let reply = admin
        .run_command(
            &db,
            mongodb::bson::doc! {
                "find": "Server",
                "filter": {"config.passkey": {"$exists": true, "$nin": ["", null]}},
                "projection": {"name": 1i32, "_id": 0i32},
            },
        )
        .await
        .map_err(|e| e.to_string());
    admin.close().await;
    let reply = reply?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|_| format!("{db}.Server: the find reply has no first batch"))?;
    if reply
        .get_document("cursor")
        .and_then(|c| c.get_i64("id"))
        .unwrap_or(0)
        != 0
    {
        return Err(format!(
            "{db}.Server: more servers with a passkey than one batch holds"
        ));
    }
    Ok(batch
        .iter()
        .map(|d| {
            d.as_document()
                .and_then(|d| d.get_str("name").ok())
                .unwrap_or("(unnamed)")
                .to_string()
        })
        .collect())
}

/// What compose.env's `PERIPHERY_PASSKEYS` goes back to in the last phase.
fn final_list_expr(text: &Secret, old: &Secret) -> std::result::Result<String, String> {
    if text.expose() == LINK {
        Ok(format!("text:{LINK}"))
    } else if text.ct_eq(old) {
        Ok("new".into())
    } else {
        Err(format!(
            "{PERIPHERY_KEY} is neither the link {LINK} nor equal to {CORE_KEY} (a list of several passkeys, or a drifted copy); rotate it by hand"
        ))
    }
}

/// Refusals that name what a container carries, never a value.
fn check_container(c: &ContainerInfo, key: &str, old: &Secret) -> std::result::Result<(), String> {
    let file_key = format!("{key}_FILE");
    if c.env_value(&file_key)
        .is_some_and(|v| !v.expose().trim().is_empty())
    {
        return Err(format!(
            "{}: {file_key} is set, so the container reads its passkey from a file komodo-rotate does not rewrite",
            c.name
        ));
    }
    match c.env_value(key) {
        Some(v) if v.ct_eq(old) => Ok(()),
        Some(_) => Err(format!(
            "{}: {key} differs from compose.env's {CORE_KEY} (drift, or a list of several passkeys); recreate it from compose.env first",
            c.name
        )),
        None => Err(format!(
            "{}: has no {key}; it was not created from this compose.env",
            c.name
        )),
    }
}

/// The other key, when the container holds it with the old value (env_file copies both keys
/// into both containers; the copy must end on NEW too, as a `compose up` would make it).
fn copy_if_old(c: &ContainerInfo, key: &str, old: &Secret) -> Option<String> {
    c.env_value(key)
        .is_some_and(|v| v.ct_eq(old))
        .then(|| key.to_string())
}

/// The warning printed before a `--local-only` run, naming each remote periphery.
pub fn remote_warning(remotes: &[RemotePeriphery]) -> String {
    let names: Vec<String> = remotes.iter().map(RemotePeriphery::describe).collect();
    format!(
        "--local-only: the peripheries on other hosts keep accepting only the OLD passkey, so core cannot reach them once it sends the new one: {}. Add the new {CORE_KEY} (from compose.env) to their {PERIPHERY_KEY} as old,new before the run or right after it",
        names.join(", ")
    )
}

pub async fn plan(ask: Ask<'_>) -> Result<Plan> {
    let Ask {
        cfg,
        loaded,
        new,
        local_only,
    } = ask;
    let env = &loaded.env;
    let dk = &loaded.dk;
    let refuse = |msg: String| Error::Precondition(msg);
    let remotes = &cfg.periphery.remote;
    if !remotes.is_empty() && !local_only {
        let names: Vec<String> = remotes.iter().map(RemotePeriphery::describe).collect();
        return Err(refuse(format!(
            "passkey: the config lists peripheries on other hosts ({}), which a local run cannot change; core would send a passkey they refuse. Pass --local-only to rotate anyway (they keep the old passkey), or remove them from [[periphery.remote]]",
            names.join(", ")
        )));
    }
    let old = env
        .plain
        .get(CORE_KEY)
        .ok_or_else(|| refuse(format!("{}: has no {CORE_KEY}", env.file.name())))?;
    let list_text = env.plain.get(PERIPHERY_KEY).ok_or_else(|| {
        refuse(format!(
            "{}: has no {PERIPHERY_KEY}; the peripheries get their passkeys elsewhere, rotate by hand",
            env.file.name()
        ))
    })?;
    let final_list = final_list_expr(&list_text, &old)
        .map_err(|e| refuse(format!("{}: {e}", env.file.name())))?;
    match server_overrides(loaded).await {
        Ok(names) if names.is_empty() => {}
        Ok(names) => {
            return Err(refuse(format!(
                "passkey: servers with their own passkey in Komodo's database (Server config.passkey): {}. Core sends them that passkey, not {CORE_KEY}, and komodo-rotate cannot change it safely; clear it in Komodo first (Server config) or rotate by hand",
                names.join(", ")
            )))
        }
        Err(e) => {
            return Err(refuse(format!(
                "passkey: cannot read Komodo's Server collection to look for per-server passkeys: {e}"
            )))
        }
    }
    if dk.periphery.is_empty() && !local_only {
        return Err(refuse(
            "passkey: no periphery container on this host; pass --local-only to rotate core's passkey alone"
                .into(),
        ));
    }
    check_container(&dk.core, CORE_KEY, &old).map_err(refuse)?;
    for p in &dk.periphery {
        check_container(p, PERIPHERY_KEY, &old).map_err(refuse)?;
    }
    for name in std::iter::once(&dk.core.name).chain(dk.periphery.iter().map(|p| &p.name)) {
        // Leftovers and the image present locally; changes nothing.
        Recreate::prepare(&dk.engine, name, EnvPatch::new(), 0).await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    refuse_clear_text(loaded, CORE_KEY)?;
    // Its phases recreate only core and periphery: a holder outside the roles is refused.
    crate::planes::holders::refuse_foreign(&dk.others, &old, CORE_KEY)?;
    refuse_clear_text(loaded, PERIPHERY_KEY)?;
    // The edit write-env will make, made in memory now: a file it would refuse fails here.
    env.file
        .with_values(&env.ids, &[(CORE_KEY, &old), (PERIPHERY_KEY, &list_text)])?;

    let mut container_keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut core_keys = vec![CORE_KEY.to_string()];
    core_keys.extend(copy_if_old(&dk.core, PERIPHERY_KEY, &old));
    container_keys.insert(dk.core.name.clone(), core_keys.clone());
    for p in &dk.periphery {
        let mut keys = vec![PERIPHERY_KEY.to_string()];
        keys.extend(copy_if_old(p, CORE_KEY, &old));
        container_keys.insert(p.name.clone(), keys);
    }

    let phase = |s: Step, p: &str| s.in_phase(Some(p));
    let mut plan = vec![steps::snapshot()];
    plan.push(phase(steps::write_env(), ACCEPT_BOTH).with(PERIPHERY_KEY, "old,new"));
    for p in &dk.periphery {
        plan.push(phase(steps::recreate(&p.name), ACCEPT_BOTH).with(PERIPHERY_KEY, "old,new"));
    }
    plan.push(phase(steps::write_env(), SEND_NEW).with(CORE_KEY, "new"));
    let mut core_step = phase(steps::recreate(&dk.core.name), SEND_NEW);
    for k in &core_keys {
        core_step = core_step.with(k, "new");
    }
    plan.push(core_step);
    plan.push(phase(steps::write_env(), ACCEPT_NEW).with(PERIPHERY_KEY, &final_list));
    for p in &dk.periphery {
        let mut s = phase(steps::recreate(&p.name), ACCEPT_NEW);
        for k in &container_keys[&p.name] {
            s = s.with(k, "new");
        }
        plan.push(s);
    }
    plan.push(steps::commit());

    let context = RunContext::env_only(&cfg.compose_env, CORE_KEY, container_keys);
    let plan = Plan::new(plan, context, old, new);
    if remotes.is_empty() {
        return Ok(plan);
    }
    Ok(plan.with_notes(vec![remote_warning(remotes)], vec![remote_warning(remotes)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_are_supported_and_legacy_naming_is_refused() {
        assert!(support(Generation::V1).is_ok());
        assert!(support(Generation::V2).is_ok());
        assert!(support(Generation::Legacy).unwrap_err().contains("PASSKEY"));
    }

    #[test]
    fn v2_with_core_public_keys_does_not_use_passkeys() {
        // The default v2 compose.env sets PERIPHERY_CORE_PUBLIC_KEYS: passkeys are ignored.
        let why = v2_core_keys(
            "compose.env",
            &["PERIPHERY_CORE_PUBLIC_KEYS"],
            &[("p", vec![])],
        )
        .unwrap();
        assert_eq!(why, "compose.env sets PERIPHERY_CORE_PUBLIC_KEYS");
        let line = not_used(&why);
        assert!(
            line.starts_with("not used by this deployment: compose.env sets"),
            "{line}"
        );
        assert!(
            line.contains("RotateCoreKeys") && line.contains("RotateServerKeys"),
            "{line}"
        );
        // A periphery given the alias by other means counts too, named.
        let why = v2_core_keys(
            "compose.env",
            &[],
            &[("a", vec![]), ("b", vec!["PERIPHERY_CORE_PUBLIC_KEY"])],
        );
        assert_eq!(why.as_deref(), Some("b has PERIPHERY_CORE_PUBLIC_KEY"));
        // Peripheries still on passkeys: the kind is available.
        assert_eq!(
            v2_core_keys("compose.env", &["PERIPHERY_PASSKEYS"], &[("p", vec![])]),
            None
        );
    }

    #[test]
    fn the_list_goes_back_to_the_link_or_to_new_and_anything_else_is_refused() {
        let old = Secret::new("o1".into());
        assert_eq!(
            final_list_expr(&Secret::new(LINK.into()), &old).unwrap(),
            "text:${KOMODO_PASSKEY}"
        );
        assert_eq!(final_list_expr(&old, &old).unwrap(), "new");
        for other in ["o1,x2", "o1, o1", "x2", "$KOMODO_PASSKEY"] {
            let e = final_list_expr(&Secret::new(other.into()), &old).unwrap_err();
            assert!(
                e.contains(PERIPHERY_KEY) && !e.contains("o1"),
                "{other}: {e}"
            );
        }
    }

    #[test]
    fn the_remote_warning_names_each_host() {
        let r = |n: &str, a: &str| RemotePeriphery {
            name: n.into(),
            address: a.into(),
        };
        let w = remote_warning(&[r("nas", "nas:8120"), r("build", "https://10.0.0.7:8120")]);
        assert!(
            w.contains("nas (nas:8120)") && w.contains("build (https://10.0.0.7:8120)"),
            "{w}"
        );
        assert!(w.contains("OLD"), "{w}");
    }
}
