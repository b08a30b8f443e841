//! The steps of a run. Like rustup's `ChangedItem`, each step is plain data that knows how to
//! describe itself and its undo; the planes (Mongo, the SOPS file, Docker) do the work. Being plain
//! data, a step can be written to the journal and undone by a different process after a crash.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Save `docker inspect` and the last log lines of every container the run recreates.
    Snapshot,
    /// `updateUser {pwd: new}` in Mongo, proven by a fresh login.
    ChangeDb,
    /// Re-encrypt compose.env with the new value (previous ciphertext kept byte for byte).
    WriteEnv,
    /// Create-before-remove recreate with the patched env, then the health gate.
    Recreate { container: String },
    /// Commit only the env file (ciphertext) on top of HEAD of its git work tree.
    GitCommit,
    /// Push that commit to the configured remote branch (one retry after a fetch).
    GitPush,
    /// Remove the `-prev` containers and the sealed secrets. The point of no return.
    Commit,
}

impl Step {
    /// Stable name, used in progress lines, the journal, failpoints (`before:NAME`, `after:NAME`)
    /// and the audit log.
    pub fn name(&self) -> String {
        match self {
            Step::Snapshot => "snapshot".into(),
            Step::ChangeDb => "change-db".into(),
            Step::WriteEnv => "write-env".into(),
            Step::Recreate { container } => format!("recreate:{container}"),
            Step::GitCommit => "git-commit".into(),
            Step::GitPush => "git-push".into(),
            Step::Commit => "commit".into(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Step::Snapshot => "save inspect + last log lines of the containers to recreate (sealed)".into(),
            Step::ChangeDb => "updateUser {pwd: NEW} on admin (w: majority); prove a fresh login with NEW".into(),
            Step::WriteEnv => "re-encrypt compose.env with NEW (same data key and recipients, new MAC), atomically".into(),
            Step::Recreate { container } => format!(
                "recreate {container} with the env patched (create {container}-next, stop, rename to {container}-prev, start) and wait for health"
            ),
            Step::GitCommit => "commit only the env file (ciphertext) on top of HEAD; the id is kept in the journal dir".into(),
            Step::GitPush => "push HEAD to the remote branch; if it moved without touching the env file, fetch, replay and retry once".into(),
            Step::Commit => "remove the -prev containers, drop the sealed secrets, write the audit record".into(),
        }
    }

    pub fn describe_undo(&self) -> String {
        match self {
            Step::Snapshot => "nothing to undo (the snapshot is deleted with the journal)".into(),
            Step::ChangeDb => "updateUser {pwd: OLD}, logged in with whichever of NEW/OLD works".into(),
            Step::WriteEnv => "put the previous compose.env bytes back atomically".into(),
            Step::Recreate { container } => format!(
                "stop and remove the replacement, rename {container}-prev back to {container}, start it"
            ),
            Step::GitCommit => "drop our commit while HEAD is still it (work tree left to write-env's undo), else a revert commit".into(),
            Step::GitPush => "push a revert commit of ours on top of the remote branch (only if ours reached it)".into(),
            Step::Commit => "none: after commit the new secret is the only one".into(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Everything about a run that is not secret and that the steps need, also after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    pub compose_env: PathBuf,
    /// The compose.env key that holds the secret (e.g. `KOMODO_DATABASE_PASSWORD`).
    pub env_key: String,
    pub mongo_user: String,
    /// Container name → env names that carry the secret in that container.
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
