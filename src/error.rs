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
    /// A step's failure that proves the step changed nothing (its one changing command never
    /// left: the server could not be reached, or refused the login first). The runner keeps such
    /// a step out of the rollback when this attempt was its first ([`Error::untouched`]).
    #[error(transparent)]
    Untouched(Box<Error>),
    /// `source`, raised where something may already have changed ([`Error::with_changed`]):
    /// its exit code follows from `changed`, and its "nothing was changed" claim is dropped.
    #[error("{}{note}", cause_after(*changed, source))]
    Changed {
        changed: Changed,
        source: Box<Error>,
        /// What changed, said after the cause ("; db-password committed before it ...").
        note: String,
    },
}

/// Whether anything changed on the planes before the error (the run's own steps, an earlier
/// `--secret` of the same run, or the interrupted run a `resume` picked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Nothing: the planes are as they were (exit 2, 3 or 6).
    No,
    /// Something changed and the planes were proven to agree after it (exit 4).
    Yes,
    /// Something may have changed and nobody proved the planes agree (exit 5).
    Unknown,
}

/// The one place an exit code is decided: what kind of failure, and what changed.
pub fn code_for(refusal: i32, changed: Changed) -> i32 {
    match changed {
        Changed::No => refusal,
        Changed::Yes if refusal == exit::ROLLBACK_INCOMPLETE => exit::ROLLBACK_INCOMPLETE,
        Changed::Yes => exit::ROLLED_BACK,
        Changed::Unknown => exit::ROLLBACK_INCOMPLETE,
    }
}

fn cause_after(changed: Changed, source: &Error) -> String {
    match changed {
        Changed::No => source.to_string(),
        _ => without_nothing_changed_claim(&source.to_string()),
    }
}

/// A message whose error turned out to follow a change must not say "nothing was changed".
fn without_nothing_changed_claim(msg: &str) -> String {
    let mut out = msg.to_owned();
    for claim in [
        "; nothing was changed",
        "; nothing changed",
        ", nothing was changed",
        ", nothing changed",
        "nothing was changed. ",
        "nothing was changed",
        "nothing changed",
    ] {
        out = out.replace(claim, "");
    }
    out
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        code_for(self.refusal_code(), self.changed())
    }

    /// Whether anything changed before this error.
    pub fn changed(&self) -> Changed {
        match self {
            Error::Changed { changed, .. } => *changed,
            Error::Untouched(e) => e.changed(),
            Error::RolledBack { .. } => Changed::Yes,
            Error::RollbackIncomplete { .. } => Changed::Unknown,
            _ => Changed::No,
        }
    }

    /// This error, raised after `changed` happened (never lowers what it already says: a
    /// rollback stays at least `Yes`, an unproven state stays `Unknown`).
    pub fn with_changed(self, changed: Changed) -> Error {
        self.with_change_note(changed, "")
    }

    /// [`Error::with_changed`] with `note` (what changed) said after the cause.
    pub fn with_change_note(self, changed: Changed, note: &str) -> Error {
        let worst = |a: Changed, b: Changed| match (a, b) {
            (Changed::Unknown, _) | (_, Changed::Unknown) => Changed::Unknown,
            (Changed::Yes, _) | (_, Changed::Yes) => Changed::Yes,
            _ => Changed::No,
        };
        match self {
            Error::Changed {
                changed: was,
                source,
                note: n,
            } => Error::Changed {
                changed: worst(was, changed),
                source,
                note: format!("{n}{note}"),
            },
            e if changed == Changed::No && note.is_empty() => e,
            e => Error::Changed {
                changed: worst(e.changed(), changed),
                source: Box::new(e),
                note: note.into(),
            },
        }
    }

    /// The code of this kind of failure when nothing changed before it.
    fn refusal_code(&self) -> i32 {
        match self {
            Error::Changed { source, .. } | Error::Untouched(source) => source.refusal_code(),
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

    /// `e`, raised by a step that proved it changed nothing (see [`Error::Untouched`]).
    pub fn untouched(e: impl Into<Error>) -> Error {
        Error::Untouched(Box::new(e.into()))
    }

    /// Whether this failure proves its step changed nothing.
    pub fn proves_untouched(&self) -> bool {
        matches!(self, Error::Untouched(_))
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal() -> Error {
        Error::Precondition("core has no KOMODO_JWT_SECRET; nothing was changed".into())
    }

    #[test]
    fn the_code_follows_what_changed_not_where_the_error_was_caught() {
        let cases: Vec<(Error, i32)> = vec![
            (refusal(), exit::PRECONDITION),
            (Error::Usage("x".into()), exit::USAGE),
            (Error::Locked { path: "l".into() }, exit::LOCKED),
            (refusal().with_changed(Changed::Yes), exit::ROLLED_BACK),
            (
                refusal().with_changed(Changed::Unknown),
                exit::ROLLBACK_INCOMPLETE,
            ),
            (
                Error::Usage("x".into()).with_changed(Changed::Yes),
                exit::ROLLED_BACK,
            ),
            (
                Error::io("/j", std::io::Error::other("read-only")).with_changed(Changed::Yes),
                exit::ROLLED_BACK,
            ),
            (
                Error::RolledBack {
                    step: "s".into(),
                    cause: "c".into(),
                }
                .with_changed(Changed::No),
                exit::ROLLED_BACK,
            ),
            (
                Error::RolledBack {
                    step: "s".into(),
                    cause: "c".into(),
                }
                .with_changed(Changed::Unknown),
                exit::ROLLBACK_INCOMPLETE,
            ),
            (
                Error::RollbackIncomplete {
                    step: "s".into(),
                    cause: "c".into(),
                    undo_failure: "u".into(),
                    runbook: "r".into(),
                }
                .with_changed(Changed::Yes),
                exit::ROLLBACK_INCOMPLETE,
            ),
            (
                refusal()
                    .with_changed(Changed::Unknown)
                    .with_changed(Changed::Yes),
                exit::ROLLBACK_INCOMPLETE,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
    }

    #[test]
    fn a_refusal_after_a_change_does_not_claim_nothing_changed() {
        let e = refusal().with_change_note(
            Changed::Yes,
            "; db-password committed before it and keeps its new value",
        );
        let m = e.to_string();
        assert!(!m.contains("nothing"), "{m}");
        assert!(
            m.contains("KOMODO_JWT_SECRET") && m.contains("db-password committed"),
            "{m}"
        );
        // Unchanged, the claim stays (it is true).
        assert!(refusal()
            .with_changed(Changed::No)
            .to_string()
            .contains("nothing was changed"));
    }
}
