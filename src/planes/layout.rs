//! The planes' files in a run's journal directory, named in one place. The journal's own file
//! (`current.json`) is txn's (`txn/layout.rs`: txn knows no Komodo names); everything a step
//! keeps beside it is named here, so write-env, write-file, the recreates, git's steps, the
//! undos and the proofs agree on it without importing each other:
//!
//! - `compose.env.prev[.<phase>]`: the bytes write-env replaced (one per phase);
//! - `compose.env.written[.<phase>]`: the SHA-256 (hex) of what write-env wrote;
//! - `snapshot-<key>.age`: a container's sealed snapshot (`<key>`: its name, or
//!   `<name>@<phase>` / `<name>@undo`);
//! - `file-<hash>.prev.age` / `file-<hash>.written`: write-file's sealed old bytes of a carrier
//!   file and the SHA-256 of what it wrote (`<hash>`: of the file's path);
//! - `git-commit.id`, `git-revert.id`: our commit, and the revert git-push's undo pushed.

use crate::txn::Step;
use std::path::{Path, PathBuf};

pub const PREV_ENV_FILE: &str = "compose.env.prev";
/// SHA-256 (hex) of the bytes write-env wrote: its undo restores only over exactly those bytes.
pub const WRITTEN_ENV_FILE: &str = "compose.env.written";
pub const COMMIT_ID_FILE: &str = "git-commit.id";
pub const REVERT_ID_FILE: &str = "git-revert.id";

/// Where write-env `step` keeps the bytes it replaced: one file per phase, so each phase's undo
/// returns to the state before that phase.
pub fn prev_file(step: &Step) -> String {
    match &step.phase {
        Some(p) => format!("{PREV_ENV_FILE}.{p}"),
        None => PREV_ENV_FILE.into(),
    }
}

/// Where write-env `step` records the SHA-256 of what it wrote.
pub fn written_file(step: &Step) -> String {
    match &step.phase {
        Some(p) => format!("{WRITTEN_ENV_FILE}.{p}"),
        None => WRITTEN_ENV_FILE.into(),
    }
}

/// A container's sealed snapshot under `key`.
pub fn snapshot_file(key: &str) -> String {
    format!("snapshot-{key}.age")
}

fn stem(target: &str) -> String {
    format!("file-{}", &sha256_hex(target.as_bytes())[..16])
}

/// write-file's sealed old bytes of the carrier file at `target`.
pub fn carrier_prev(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{}.prev.age", stem(target)))
}

/// write-file's record of what it wrote into the carrier file at `target`.
pub fn carrier_written(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{}.written", stem(target)))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
