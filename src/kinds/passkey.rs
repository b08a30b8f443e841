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
//! v2 deprecates passkeys (core and periphery authenticate with key pairs); this kind refuses
//! there and names Komodo's own key rotation. Peripheries on other hosts (`[[periphery.remote]]`)
//! are out of reach: refused unless `--local-only`, then named in a warning.

use super::{refuse_clear_text, Ask, Plan};
use crate::config::periphery::RemotePeriphery;
use crate::docker::{ContainerInfo, EnvPatch, Generation, Recreate};
use crate::error::{Error, Result};
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

/// Why a generation has no passkey to rotate (the `rotate --list` line and the refusal).
pub fn support(generation: Generation) -> std::result::Result<(), String> {
    match generation {
        Generation::V1 => Ok(()),
        Generation::V2 => Err(
            "Komodo v2 deprecates passkeys: core and periphery authenticate with key pairs. Rotate those with Komodo's own API, RotateCoreKeys (core) and RotateServerKeys / RotateAllServerKeys (peripheries), not with komodo-rotate"
                .into(),
        ),
        Generation::Legacy => Err(
            "Komodo v1.16 and older name the passkey PASSKEY (KOMODO_PASSKEY=${PASSKEY}); only the v1.17-v1.19 naming (KOMODO_PASSKEY, PERIPHERY_PASSKEYS) is supported"
                .into(),
        ),
    }
}

pub fn available(loaded: &Loaded) -> std::result::Result<(), String> {
    support(loaded.keys.generation)?;
    match loaded.env.plain.get(CORE_KEY) {
        Some(v) if !v.expose().is_empty() => Ok(()),
        _ => Err(format!(
            "{} has no {CORE_KEY}: core sends no passkey, so there is none to rotate",
            loaded.env.file.name()
        )),
    }
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

    let mut before = vec![
        "Servers with their own passkey override in Komodo's database (Server config \"passkey\") are not changed; core keeps sending them that override".to_string(),
    ];
    let mut after = Vec::new();
    if !remotes.is_empty() {
        before.push(remote_warning(remotes));
        after.push(remote_warning(remotes));
    }
    Ok(Plan {
        steps: plan,
        context: RunContext {
            compose_env: cfg.compose_env.clone(),
            env_key: CORE_KEY.into(),
            mongo_user: String::new(),
            container_keys,
            env_already_new: false,
            git: None,
            ..RunContext::default()
        },
        old,
        new,
        before,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_is_supported_and_v2_names_komodos_own_key_rotation() {
        assert!(support(Generation::V1).is_ok());
        let v2 = support(Generation::V2).unwrap_err();
        assert!(v2.contains("deprecates passkeys"), "{v2}");
        assert!(
            v2.contains("RotateCoreKeys") && v2.contains("RotateServerKeys"),
            "{v2}"
        );
        assert!(support(Generation::Legacy).unwrap_err().contains("PASSKEY"));
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
