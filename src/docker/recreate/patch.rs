//! The env patch a recreate applies: which keys change, to what. Values are secrets.

use super::super::inspect::ContainerInfo;
use crate::secret::Secret;
use std::fmt;

/// The env keys to change and their new values. Debug shows key names only.
#[derive(Clone, Default)]
pub struct EnvPatch(Vec<(String, Secret)>);

impl fmt::Debug for EnvPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl EnvPatch {
    pub fn new() -> Self {
        EnvPatch::default()
    }

    /// Sets `key` to `value` (replacing an earlier `set` of the same key).
    pub fn set(mut self, key: impl Into<String>, value: Secret) -> Self {
        let key = key.into();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value));
        self
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `info`'s env holds every patched key with its patched value.
    pub fn is_applied_to(&self, info: &ContainerInfo) -> bool {
        self.0
            .iter()
            .all(|(k, v)| info.env_value(k).is_some_and(|x| x.ct_eq(v)))
    }

    /// `env` with every patched key's value replaced in place (all occurrences), and keys the
    /// container did not have appended in patch order. Nothing else changes, not even order.
    pub fn apply(&self, env: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(env.len() + self.0.len());
        let mut seen = vec![false; self.0.len()];
        for kv in env {
            let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
            match self.0.iter().position(|(k, _)| k == key) {
                Some(i) => {
                    seen[i] = true;
                    out.push(format!("{key}={}", self.0[i].1.expose()));
                }
                None => out.push(kv.clone()),
            }
        }
        for (i, (k, v)) in self.0.iter().enumerate() {
            if !seen[i] {
                out.push(format!("{k}={}", v.expose()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_changes_exactly_the_keys_asked_in_place() {
        let env = vec![
            "PATH=/bin".to_string(),
            "KOMODO_DATABASE_PASSWORD=old".to_string(),
            "OTHER=x=y".to_string(),
            "KOMODO_DATABASE_PASSWORD=old2".to_string(),
        ];
        let p = EnvPatch::new()
            .set("KOMODO_DATABASE_PASSWORD", Secret::new("new".into()))
            .set("ADDED", Secret::new("a".into()));
        assert_eq!(
            p.apply(&env),
            vec![
                "PATH=/bin",
                "KOMODO_DATABASE_PASSWORD=new",
                "OTHER=x=y",
                "KOMODO_DATABASE_PASSWORD=new",
                "ADDED=a"
            ]
        );
        assert_eq!(format!("{p:?}"), r#"["KOMODO_DATABASE_PASSWORD", "ADDED"]"#);
    }
}
