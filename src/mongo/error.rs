//! The MongoDB plane's errors, and the one-line driver message they carry (the secret masked).

use crate::secret::Secret;
use mongodb::error::Error as DriverError;

#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("MongoDB URI {0}")]
    InvalidTarget(String),
    #[error(
        "MongoDB at {server} rejected the password of user {user} (code 18 AuthenticationFailed)"
    )]
    Rejected { server: String, user: String },
    #[error("MongoDB at {server} (user {user}) could not be reached: {reason}")]
    Unreachable {
        server: String,
        user: String,
        reason: String,
    },
    #[error("MongoDB at {server}: {command} for user {user} failed: {reason}")]
    Command {
        server: String,
        user: String,
        command: &'static str,
        code: Option<i32>,
        reason: String,
    },
    #[error("MongoDB at {server}: the password of user {user} was changed, but a fresh login with the new password {outcome}")]
    ProofFailed {
        server: String,
        user: String,
        outcome: String,
    },
}

impl MongoError {
    /// A malformed `[mongo] uri` is a configuration error (exit 2), not a failed precondition.
    pub fn is_usage(&self) -> bool {
        matches!(self, MongoError::InvalidTarget(_))
    }

    /// Whether this error came before any command that changes something was sent: the URI,
    /// the login or the server selection failed. A failed or unanswered `updateUser`, or a
    /// failed proof after it, is not.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            MongoError::InvalidTarget(_)
                | MongoError::Rejected { .. }
                | MongoError::Unreachable { .. }
        )
    }
}

/// One line from a driver error, with the secret masked should a server ever echo it (the whole
/// message is checked before anything is cut).
pub(super) fn scrub(e: &DriverError, secret: Option<&Secret>) -> String {
    // The kind alone: the full Display adds label and source dumps that make the line unreadable.
    let mut s = e.kind.to_string().replace(['\n', '\r'], " ");
    if let Some(secret) = secret {
        if !secret.is_empty() && s.contains(secret.expose()) {
            s = s.replace(secret.expose(), "***");
        }
    }
    s
}
