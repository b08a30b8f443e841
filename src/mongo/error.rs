//! The MongoDB plane's errors, and the one-line driver message they carry (the secret masked).

use crate::secret::Secret;
use mongodb::error::{Error as DriverError, ErrorKind};

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
    let mut s = match e.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => selection_failure(message),
        kind => kind.to_string(),
    }
    .replace(['\n', '\r'], " ");
    if let Some(secret) = secret {
        if !secret.is_empty() && s.contains(secret.expose()) {
            s = s.replace(secret.expose(), "***");
        }
    }
    s
}

/// A server selection failure in one line: the driver's verdict and the first server's own
/// error, without the topology dump ("Server selection timeout: No available servers (I/O error:
/// Connection refused (os error 111))"). A message of another shape is kept whole.
fn selection_failure(message: &str) -> String {
    let Some((head, topology)) = message.split_once(". Topology:") else {
        return message.to_owned();
    };
    let cause = topology.split_once("Error: ").and_then(|(_, rest)| {
        let rest = rest.strip_prefix("Kind: ").unwrap_or(rest);
        rest.split_once(", labels:")
            .or_else(|| rest.split_once(", source:"))
            .map(|(cause, _)| cause.trim())
    });
    match cause {
        Some(c) if !c.is_empty() => format!("{head} ({c})"),
        _ => head.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::selection_failure;

    #[test]
    fn a_server_selection_failure_is_one_short_line_naming_the_cause() {
        // As the driver (3.x) printed it when the rehearsal's mongo was stopped.
        let seen = r#"Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:33777, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {"SystemOverloadedError", "RetryableError"}, source: None, server response: None } ] }"#;
        assert_eq!(
            selection_failure(seen),
            "Server selection timeout: No available servers (I/O error: Connection refused (os error 111))"
        );
        // No server error recorded: the verdict alone.
        assert_eq!(
            selection_failure("Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ ] }"),
            "Server selection timeout: No available servers"
        );
        // Another shape: kept whole, never cut blind.
        assert_eq!(selection_failure("no servers"), "no servers");
    }
}
