//! The typed view of a journal's context: the non-secret facts the steps of a run need, also in
//! another process after a crash. `txn` stores it as opaque JSON; this is what it means.

use crate::error::{Error, Result};
use crate::txn::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct RunContext {
    pub compose_env: PathBuf,
    /// The compose.env key whose value is the secret (e.g. `KOMODO_DATABASE_PASSWORD`).
    pub env_key: String,
    /// The Mongo user whose password is the secret; empty for a kind with no live copy outside
    /// compose.env and the containers (env-only: the JWT secret, the passkey, ...).
    pub mongo_user: String,
    /// Container name → env names that hold the secret in that container at the end of the run.
    pub container_keys: BTreeMap<String, Vec<String>>,
    /// What the run is: a rotation, or a rescue (compose.env already holds NEW).
    pub run: RunKind,
    /// The form of each container env key of `container_keys` that is not plain: `uri` (the
    /// password part of a connection URI is patched) or `file` (the key names a file; the host
    /// side of its bind mount is rewritten by a `write-file` step, the env value stays).
    pub forms: BTreeMap<String, String>,
    /// The host files the run rewrites (one `write-file` step each, target = the host path).
    pub files: Vec<CarrierFile>,
    /// Where the env file's commit goes, when the git steps are in the plan.
    pub git: Option<GitTarget>,
    /// The FerretDB variant's PostgreSQL role (`change-pg`), which then decides `resume` and the
    /// proofs beside the login through ferretdb; `None` on the Mongo variant.
    pub pg: Option<PgRole>,
}

/// The context as journals store it: `run`, and for builds before it, `env_already_new` (true
/// meant a rescue), still written so an older build resuming the journal reads it right.
#[derive(Serialize, Deserialize)]
struct Stored {
    compose_env: PathBuf,
    env_key: String,
    #[serde(default)]
    mongo_user: String,
    container_keys: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    run: RunKind,
    #[serde(default)]
    env_already_new: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    forms: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<CarrierFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    git: Option<GitTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pg: Option<PgRole>,
}

/// What a run is. A rescue starts from compose.env (already the desired value: write-env is
/// skipped) and from containers that may hold anything: its rollback proves each container
/// back as snapshotted, not on OLD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    #[default]
    Rotation,
    Rescue,
}

impl From<Stored> for RunContext {
    fn from(s: Stored) -> RunContext {
        RunContext {
            compose_env: s.compose_env,
            env_key: s.env_key,
            mongo_user: s.mongo_user,
            container_keys: s.container_keys,
            run: if s.env_already_new {
                RunKind::Rescue
            } else {
                s.run
            },
            forms: s.forms,
            files: s.files,
            git: s.git,
            pg: s.pg,
        }
    }
}

impl From<RunContext> for Stored {
    fn from(c: RunContext) -> Stored {
        Stored {
            compose_env: c.compose_env,
            env_key: c.env_key,
            mongo_user: c.mongo_user,
            container_keys: c.container_keys,
            env_already_new: c.run == RunKind::Rescue,
            run: c.run,
            forms: c.forms,
            files: c.files,
            git: c.git,
            pg: c.pg,
        }
    }
}

/// A host file that carries the secret into containers through a bind mount. Plain data: the
/// path and what the file holds, never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierFile {
    /// The env key that names it in the containers (for messages).
    pub key: String,
    pub host_path: PathBuf,
    /// `password` or `uri`.
    pub content: String,
    /// The containers that read it (restarted by the undo so none keeps the value it read).
    pub readers: Vec<String>,
}

impl CarrierFile {
    pub fn content(&self) -> crate::docker::carrier::FileContent {
        match self.content.as_str() {
            "uri" => crate::docker::carrier::FileContent::Uri,
            _ => crate::docker::carrier::FileContent::Password,
        }
    }
}

/// The PostgreSQL role of a FerretDB deployment a run changes. Plain data: container names and
/// role names, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgRole {
    /// The postgres container (never recreated by the run: its name is stable).
    pub postgres: String,
    /// The ferretdb container (recreated by the run; `resume` also looks for it as `-next`/`-prev`).
    pub ferretdb: String,
    /// The role psql connects as over the local socket (`POSTGRES_USER`).
    pub admin: String,
    /// The role whose verifier FerretDB checks (compose.env's username).
    pub role: String,
}

pub const FORM_PLAIN: &str = "plain";
pub const FORM_URI: &str = "uri";
pub const FORM_FILE: &str = "file";

/// The git work tree holding the env file, and where its commit is pushed. Plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitTarget {
    pub worktree: PathBuf,
    /// The env file's path relative to `worktree`.
    pub path: String,
    /// `Some((remote, branch))` in push mode; `None` commits only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<(String, String)>,
}

impl RunContext {
    /// The context of an env-only kind's rotation of `key` (no store; no git until the caller
    /// adds it).
    pub fn env_only(
        compose_env: &std::path::Path,
        key: &str,
        container_keys: BTreeMap<String, Vec<String>>,
    ) -> RunContext {
        RunContext {
            compose_env: compose_env.to_path_buf(),
            env_key: key.to_string(),
            container_keys,
            ..RunContext::default()
        }
    }

    /// The context of `j`, as its run wrote it.
    pub fn of(j: &Journal) -> Result<RunContext> {
        serde_json::from_value(j.context.clone()).map_err(|e| {
            Error::Precondition(format!(
                "journal of run {}: its context is not in the expected form ({e})",
                j.run_id
            ))
        })
    }

    pub fn to_value(&self) -> serde_json::Value {
        // A struct of strings, paths and maps always serialises.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Whether a store outside compose.env holds a live copy (Mongo's user), which then decides
    /// `resume`'s direction and is part of both proofs.
    pub fn has_store(&self) -> bool {
        !self.mongo_user.is_empty()
    }

    /// The form of `key` (`plain` unless `forms` says otherwise).
    pub fn form(&self, key: &str) -> &str {
        self.forms
            .get(key)
            .map(String::as_str)
            .unwrap_or(FORM_PLAIN)
    }

    /// The carrier file written by the `write-file` step on `target`.
    pub fn file(&self, target: &str) -> Option<&CarrierFile> {
        self.files
            .iter()
            .find(|f| f.host_path.as_os_str() == std::ffi::OsStr::new(target))
    }

    /// A rescue (compose.env already holds NEW), not a rotation.
    pub fn is_rescue(&self) -> bool {
        self.run == RunKind::Rescue
    }

    /// The containers whose env holds the secret under at least one key.
    pub fn holders(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.container_keys.iter().filter(|(_, k)| !k.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_kind_is_explicit_and_older_journals_read_right_both_ways() {
        let rescue = RunContext {
            run: RunKind::Rescue,
            ..Default::default()
        };
        let v = rescue.to_value();
        assert_eq!(v["run"], "rescue");
        assert_eq!(
            v["env_already_new"], true,
            "an older build reads it as a rescue"
        );
        let back: RunContext = serde_json::from_value(v).unwrap();
        assert!(back.is_rescue());
        // A journal of an older build: `env_already_new` only.
        let mut old = RunContext::default().to_value();
        old.as_object_mut().unwrap().remove("run");
        old["env_already_new"] = true.into();
        assert!(serde_json::from_value::<RunContext>(old.clone())
            .unwrap()
            .is_rescue());
        old["env_already_new"] = false.into();
        assert!(!serde_json::from_value::<RunContext>(old)
            .unwrap()
            .is_rescue());
    }
}
