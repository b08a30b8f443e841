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

use super::run::{FORM_FILE, FORM_URI};
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
            Held::Plain => Some("plain"),
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

/// The keys of `ks` whose value in `c` does not hold `want`, each in its form from `forms`
/// (plain when unnamed); a key `c` does not set is not counted. verify's env rows and the
/// MongoDB rescue's stale holders read this one comparison.
pub fn differing<'k>(
    c: &ContainerInfo,
    ks: &'k [String],
    forms: &BTreeMap<String, String>,
    want: &Secret,
) -> Vec<&'k String> {
    ks.iter()
        .filter(|k| {
            let form = forms.get(*k).map(String::as_str).unwrap_or("plain");
            c.env_value(k).is_some_and(|v| !holds(form, k, v, want))
        })
        .collect()
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
            let run_form = forms.get(k).map(String::as_str).unwrap_or("plain");
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
mod tests {
    use super::test_container as container;
    use super::*;

    const PW: &str = "s3cret-pass-w0rd";

    #[test]
    fn differing_names_the_keys_off_the_value_in_their_form_and_skips_unset_ones() {
        let ks: Vec<String> = ["A", "URL", "UNSET"].map(String::from).to_vec();
        let forms = BTreeMap::from([("URL".to_string(), FORM_URI.to_string())]);
        let want = Secret::new(PW.into());
        let url = format!("mongodb://u:{PW}@mongo:27017");
        let c = container("core", &[("A", PW), ("URL", &url)]);
        assert!(differing(&c, &ks, &forms, &want).is_empty());
        let c = container(
            "core",
            &[("A", "other"), ("URL", "mongodb://u:x@mongo:27017")],
        );
        assert_eq!(differing(&c, &ks, &forms, &want), vec!["A", "URL"]);
        // The URL's form matters: read plainly, the same value is off.
        assert_eq!(
            differing(&c, &ks, &BTreeMap::new(), &want),
            vec!["A", "URL"]
        );
        let c = container("core", &[("A", PW), ("URL", &url)]);
        assert_eq!(differing(&c, &ks, &BTreeMap::new(), &want), vec!["URL"]);
    }

    fn others() -> Vec<ContainerInfo> {
        vec![
            container(
                "komodo-backup-1",
                &[("KOMODO_DATABASE_PASSWORD", PW), ("X", "y")],
            ),
            container(
                "komodo-sidecar-1",
                &[(
                    "MONGO_URL",
                    "mongodb://admin:s3cret%2Dpass-w0rd@mongo:27017/",
                )],
            ),
            container("komodo-other-1", &[("X", "s3cret")]),
        ]
    }

    #[test]
    fn values_are_held_plainly_in_a_uri_or_inside_and_compared_in_their_form() {
        let want = Secret::new(PW.into());
        let s = |v: &str| Secret::new(v.into());
        assert_eq!(how("K", &s(PW), &want), Some(Held::Plain));
        assert_eq!(
            how("U", &s("mongodb://a:s3cret-pass-w0rd@h/?x=1"), &want),
            Some(Held::Uri)
        );
        assert_eq!(
            how("T", &s("--password=s3cret-pass-w0rd"), &want),
            Some(Held::Inside)
        );
        assert_eq!(how("K", &s("other"), &want), None);
        // A short value is only compared whole, never searched for inside others.
        assert_eq!(how("K", &s("xabcx"), &s("abc")), None);
        assert_eq!(how("K", &s(""), &s("")), None);
        let new = s("N3w");
        let k = "KOMODO_DATABASE_URI";
        assert!(holds(FORM_URI, k, &s("mongodb://a:N3w@h/?x=1"), &new));
        assert!(!holds("plain", k, &s("mongodb://a:N3w@h/?x=1"), &new));
        assert!(!holds(FORM_URI, k, &s("mongodb://a:old@h"), &new));
        assert!(!holds(FORM_URI, k, &s("mongodb://h"), &new));
        assert!(holds("plain", "P", &new, &new));
        assert!(holds(FORM_FILE, "P_FILE", &s("/run/x"), &new));
    }

    #[test]
    fn holders_outside_the_roles_are_found_by_value_and_named() {
        let pw = Secret::new(PW.into());
        let others = others();
        let found = foreign(&others, &pw);
        assert_eq!(
            found,
            vec![
                Foreign {
                    name: "komodo-backup-1".into(),
                    keys: vec![("KOMODO_DATABASE_PASSWORD".into(), Held::Plain)]
                },
                Foreign {
                    name: "komodo-sidecar-1".into(),
                    keys: vec![("MONGO_URL".into(), Held::Uri)]
                },
            ]
        );
        let e = refuse_foreign(&others, &pw, "the DB password")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("komodo-backup-1 (KOMODO_DATABASE_PASSWORD), komodo-sidecar-1 (MONGO_URL)"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        refuse_foreign(&others[2..], &pw, "the DB password").unwrap();
    }

    #[test]
    fn plain_and_uri_holders_are_patched_other_forms_refused_by_name() {
        let pw = Secret::new(PW.into());
        let role_keys = vec!["KOMODO_DATABASE_PASSWORD".to_string()];
        let found = patchable(
            &others(),
            &pw,
            "the DB password",
            &role_keys,
            &BTreeMap::new(),
        )
        .unwrap();
        let (mut ck, mut forms) = (BTreeMap::new(), BTreeMap::new());
        add_to_context(&found, &mut ck, &mut forms);
        assert_eq!(
            ck,
            BTreeMap::from([
                (
                    "komodo-backup-1".to_string(),
                    vec!["KOMODO_DATABASE_PASSWORD".to_string()]
                ),
                (
                    "komodo-sidecar-1".to_string(),
                    vec!["MONGO_URL".to_string()]
                ),
            ])
        );
        assert_eq!(
            forms,
            BTreeMap::from([("MONGO_URL".to_string(), FORM_URI.to_string())])
        );
        // Inside a command line: refused by container and key.
        let inside = [container(
            "komodo-dump-1",
            &[("ARGS", "--password=s3cret-pass-w0rd --gzip")],
        )];
        let e = patchable(&inside, &pw, "the DB password", &role_keys, &forms)
            .unwrap_err()
            .to_string();
        assert!(e.contains("komodo-dump-1 carries it inside ARGS"), "{e}");
        assert!(
            e.contains("nothing was changed") && !e.contains("s3cret"),
            "{e}"
        );
        // A key the roles carry in another form: which form a patch gives it is ambiguous.
        let clash = [container(
            "komodo-backup-1",
            &[(
                "KOMODO_DATABASE_PASSWORD",
                "mongodb://u:s3cret-pass-w0rd@mongo/",
            )],
        )];
        let e = patchable(&clash, &pw, "the DB password", &role_keys, &forms)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("komodo-backup-1 carries it under KOMODO_DATABASE_PASSWORD as a uri value"),
            "{e}"
        );
    }

    #[test]
    fn rescue_candidates_are_uri_passwords_and_named_keys_never_shown() {
        let c = candidates(&others(), &["KOMODO_DATABASE_PASSWORD"]);
        let sources: Vec<&str> = c.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            sources,
            [
                "komodo-backup-1 KOMODO_DATABASE_PASSWORD",
                "komodo-sidecar-1 MONGO_URL"
            ]
        );
        assert!(c.iter().all(|(_, v)| v.expose() == PW));
    }
}
