//! The typed view of a journal's context: the non-secret facts the steps of a run need, also in
//! another process after a crash. `txn` stores it as opaque JSON; this is what it means.

use crate::error::{Error, Result};
use crate::txn::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    pub compose_env: PathBuf,
    /// The compose.env key whose value is the secret (e.g. `KOMODO_DATABASE_PASSWORD`).
    pub env_key: String,
    /// The Mongo user whose password is the secret; empty for a kind with no live copy outside
    /// compose.env and the containers (env-only: the JWT secret, the passkey, ...).
    #[serde(default)]
    pub mongo_user: String,
    /// Container name → env names that hold the secret in that container at the end of the run.
    pub container_keys: BTreeMap<String, Vec<String>>,
    /// True when compose.env already held NEW before the run (rescue): write-env is skipped.
    #[serde(default)]
    pub env_already_new: bool,
    /// Where the env file's commit goes, when the git steps are in the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitTarget>,
}

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

    /// The containers whose env holds the secret under at least one key.
    pub fn holders(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.container_keys.iter().filter(|(_, k)| !k.is_empty())
    }
}
