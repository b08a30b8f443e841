//! The one error type of the CLI. Every variant knows its exit code (DESIGN.md "Exit codes"), and
//! every message is one line that names the thing at fault and never carries a secret value.

use std::path::PathBuf;

/// Exit codes, stable and documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const DRIFT: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PRECONDITION: i32 = 3;
    pub const ROLLED_BACK: i32 = 4;
    pub const ROLLBACK_INCOMPLETE: i32 = 5;
    pub const LOCKED: i32 = 6;
    /// The run's own secret ended agreed (committed, or rolled back), but the deployment is
    /// unhealthy for a reason outside the run's kind (README "Exit codes").
    pub const UNHEALTHY_ELSEWHERE: i32 = 7;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("config {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error(transparent)]
    Sops(#[from] crate::sops::SopsError),
    #[error(transparent)]
    Mongo(#[from] crate::mongo::MongoError),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("{0}")]
    Precondition(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("step {step} failed: {cause}; every completed step was rolled back")]
    RolledBack { step: String, cause: String },
    #[error("step {step} failed: {cause}; rollback incomplete: {undo_failure}. The journal is kept; follow {runbook}")]
    RollbackIncomplete {
        step: String,
        cause: String,
        undo_failure: String,
        runbook: String,
    },
    #[error("another run holds the lock {}", path.display())]
    Locked { path: PathBuf },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config { .. } => exit::USAGE,
            Error::Sops(e) if e.is_usage() => exit::USAGE,
            Error::Mongo(e) if e.is_usage() => exit::USAGE,
            Error::Sops(_)
            | Error::Mongo(_)
            | Error::Docker(_)
            | Error::Git(_)
            | Error::Precondition(_)
            | Error::Io { .. } => exit::PRECONDITION,
            Error::RolledBack { .. } => exit::ROLLED_BACK,
            Error::RollbackIncomplete { .. } => exit::ROLLBACK_INCOMPLETE,
            Error::Locked { .. } => exit::LOCKED,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
