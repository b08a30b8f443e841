//! Holding a secret by value: the one test every kind, proof and verify row uses ([`how`],
//! [`holds`]), and the holders a plan does not know by role: containers of the compose project
//! outside mongo, core and periphery (a `backup` service with `env_file: compose.env`, a sidecar
//! with `MONGO_URL=mongodb://u:OLD@...`) that carry a secret's value.
//!
//! A key holds a value plainly (its value is it), inside a URI (the URI's decoded password is
//! it), or inside some other text (values of 8 characters or more). A run patches the first two
//! (`recreate` with the key set, a URI keeping every byte but its password): such a holder
//! becomes a holder of the run, recreated, proven and undone like core. The third cannot be
//! patched faithfully, so the pre-flight refuses it by name (exit 3, nothing changed) and
//! `verify` shows it as DRIFT. Names only, never a value.
//!
//! The DB drift comparison is here too, once: [`compare`] says of each key a holder is known to
//! carry whether it holds a wanted value in its form, differs, or is unset ([`file_stands`] for
//! a carrier file); verify, both rescues and the rotation's pre-flight each apply their own
//! policy to that result.

use super::carriers::file_value;
use super::run::{CarrierFile, FORM_FILE, FORM_PLAIN, FORM_URI};
use crate::docker::{uri, ContainerInfo};
use crate::error::{Error, Result};
use crate::secret::Secret;
use std::collections::BTreeMap;

/// Below this length a value is not searched for inside other values (too many false hits).
pub const MIN_SEARCHED_LEN: usize = 8;

/// How an env value holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The value is the secret.
    Plain,
    /// A connection URI whose (decoded) password is the secret.
    Uri,
    /// The secret appears inside the value in a form no step rewrites.
    Inside,
}

impl Held {
    /// The run-context form of a patchable holding (`plain` or `uri`); `None` for [`Held::Inside`].
    pub fn form(self) -> Option<&'static str> {
        match self {
            Held::Plain => Some(FORM_PLAIN),
            Held::Uri => Some(FORM_URI),
            Held::Inside => None,
        }
    }
}

/// How `value` (the env value of `key`) holds `want`, if it does. The one by-value test.
pub fn how(key: &str, value: &Secret, want: &Secret) -> Option<Held> {
    if want.is_empty() {
        return None;
    }
    if value.ct_eq(want) {
        return Some(Held::Plain);
    }
    if uri::password(key, value).is_ok_and(|p| p.ct_eq(want)) {
        return Some(Held::Uri);
    }
    if want.len() >= MIN_SEARCHED_LEN && value.expose().contains(want.expose()) {
        return Some(Held::Inside);
    }
    None
}

/// Whether `value` (a container's env value of `key`) holds `want` in the key's known form
/// (`plain`, `uri`; a `file`-form key holds a path, its file is checked by
/// `carriers::file_value`).
pub fn holds(form: &str, key: &str, value: &Secret, want: &Secret) -> bool {
    match form {
        FORM_URI => uri::password(key, value).is_ok_and(|p| p.ct_eq(want)),
        FORM_FILE => true,
        _ => value.ct_eq(want),
    }
}

/// The form of `key` in a run's `forms` map: `plain` unless it names another.
pub fn form_of<'f>(forms: &'f BTreeMap<String, String>, key: &str) -> &'f str {
    forms.get(key).map(String::as_str).unwrap_or(FORM_PLAIN)
}

/// How one key of a holder stands against a wanted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stand {
    /// It holds the value in its form (a `file`-form key: it is set; its file is compared by
    /// [`file_stands`]).
    Holds,
    /// It is set to something else.
    Differs,
    /// The holder does not set it.
    Unset,
}

/// One key of a holder, its form, and how it stands against the wanted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStand<'k> {
    pub key: &'k str,
    pub form: &'k str,
    pub stand: Stand,
}

/// The one DB drift comparison: each key of `ks` in the container `c` against `want`, in its
/// form from `forms` (plain when unnamed). Every caller applies its own policy to the result:
/// verify's env rows and the MongoDB rescue count `Differs`, the FerretDB rescue also `Unset`,
/// the rotation's pre-flight refuses a plain `Differs` and a URI that does not hold.
pub fn compare<'k>(
    c: &ContainerInfo,
    ks: &'k [String],
    forms: &'k BTreeMap<String, String>,
    want: &Secret,
) -> Vec<KeyStand<'k>> {
    ks.iter()
        .map(|k| {
            let form = form_of(forms, k);
            KeyStand {
                key: k,
                form,
                stand: stand(c, k, form, want),
            }
        })
        .collect()
}

/// [`compare`] of one key in a given form.
pub fn stand(c: &ContainerInfo, key: &str, form: &str, want: &Secret) -> Stand {
    match c.env_value(key) {
        None => Stand::Unset,
        Some(v) if holds(form, key, v, want) => Stand::Holds,
        Some(_) => Stand::Differs,
    }
}

/// A carrier file against `want`: its password (or its URI's) holds it or differs; an error
/// (unreadable, not in the key's form) names the file, never a value.
pub fn file_stands(f: &CarrierFile, want: &Secret) -> std::result::Result<Stand, String> {
    let now = file_value(f)?;
    Ok(if now.ct_eq(want) {
        Stand::Holds
    } else {
        Stand::Differs
    })
}

/// A container outside the roles carrying a secret, and how each of its keys holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    pub name: String,
    pub keys: Vec<(String, Held)>,
}

impl Foreign {
    /// Every key holds it plainly or in a URI: a recreate can patch it.
    pub fn patchable(&self) -> bool {
        self.keys.iter().all(|(_, h)| h.form().is_some())
    }

    pub fn key_names(&self) -> Vec<String> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// Each container of `others` carrying `value`, with the keys it carries it under.
pub fn foreign(others: &[ContainerInfo], value: &Secret) -> Vec<Foreign> {
    let mut out = Vec::new();
    for c in others {
        let mut keys: Vec<(String, Held)> = Vec::new();
        for (k, v) in &c.env {
            if let Some(h) = how(k, v, value) {
                // The last definition of a key is the one the container sees.
                keys.retain(|(seen, _)| seen != k);
                keys.push((k.clone(), h));
            }
        }
        if !keys.is_empty() {
            out.push(Foreign {
                name: c.name.clone(),
                keys,
            });
        }
    }
    out
}

/// One line per holder: `container (KEY, KEY)`.
pub fn describe(found: &[Foreign]) -> String {
    found
        .iter()
        .map(|f| format!("{} ({})", f.name, f.key_names().join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The holders outside the roles a run adds to its plan: each container of `others` holding
/// `value`, with its keys and their forms. Refused by name (exit 3, nothing changed) when one
/// carries it in a form no step patches, or under a key whose form differs from the form the
/// run already gives that key (`forms`: the run's non-plain keys; `role_keys`: every key the
/// run patches in the role containers).
pub fn patchable(
    others: &[ContainerInfo],
    value: &Secret,
    what: &str,
    role_keys: &[String],
    forms: &BTreeMap<String, String>,
) -> Result<Vec<Foreign>> {
    let found = foreign(others, value);
    let mut refused = Vec::new();
    for f in &found {
        let inside: Vec<&str> = f
            .keys
            .iter()
            .filter(|(_, h)| h.form().is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        if !inside.is_empty() {
            refused.push(format!(
                "{} carries it inside {} in a form a rotation cannot rewrite (only a plain value or a connection URI's password)",
                f.name,
                inside.join(", ")
            ));
            continue;
        }
        for (k, h) in &f.keys {
            let run_form = form_of(forms, k);
            if role_keys.contains(k) && h.form() != Some(run_form) {
                refused.push(format!(
                    "{} carries it under {k} as a {} value, which core or periphery carry as a {run_form} value",
                    f.name,
                    h.form().unwrap_or("?")
                ));
            }
        }
    }
    if !refused.is_empty() {
        return Err(Error::Precondition(format!(
            "{what} is also held by containers a rotation cannot patch: {}; nothing was changed. Give them the value plainly or in a connection URI, or make them read it from core's env, then run again",
            refused.join("; ")
        )));
    }
    Ok(found)
}

/// The pre-flight refusal while any container outside mongo/core/periphery holds `value` in any
/// form (for a kind whose plan cannot include them: the passkey's phases).
pub fn refuse_foreign(others: &[ContainerInfo], value: &Secret, what: &str) -> Result<()> {
    let found = foreign(others, value);
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::Precondition(format!(
        "{what} is also held by {}, which this kind's rotation does not recreate (it would keep the old value); nothing was changed. Remove it from those containers or make them read it from core's env, then run again",
        describe(&found)
    )))
}

/// Adds the holders `found` to a run's context maps: each container's keys, and each URI key's
/// form.
pub fn add_to_context(
    found: &[Foreign],
    container_keys: &mut BTreeMap<String, Vec<String>>,
    forms: &mut BTreeMap<String, String>,
) {
    for f in found {
        container_keys.insert(f.name.clone(), f.key_names());
        for (k, h) in &f.keys {
            if *h == Held::Uri {
                forms.insert(k.clone(), FORM_URI.to_string());
            }
        }
    }
}

/// Values a container outside the roles may hold of the DB password, for `rescue`'s ladder:
/// the password of every connection URI in its env, and the value of every key `names` lists.
/// (source, value) pairs; the source names the container and key, never the value.
pub fn candidates(others: &[ContainerInfo], names: &[&str]) -> Vec<(String, Secret)> {
    let mut out = Vec::new();
    for c in others {
        for (k, v) in &c.env {
            if names.contains(&k.as_str()) {
                out.push((format!("{} {k}", c.name), v.clone()));
            } else if let Ok(p) = uri::password(k, v) {
                out.push((format!("{} {k}", c.name), p));
            }
        }
    }
    out
}

/// A container with `name` and `env` only, for unit tests.
#[cfg(test)]
pub(crate) fn test_container(name: &str, env: &[(&str, &str)]) -> ContainerInfo {
    ContainerInfo::from_inspect(&bollard::models::ContainerInspectResponse {
        name: Some(format!("/{name}")),
        config: Some(bollard::models::ContainerConfig {
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "holders_tests.rs"]
mod tests;
