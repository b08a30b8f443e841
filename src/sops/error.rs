//! Errors of the SOPS store. Every message is one line that names the file (or key source) and
//! the problem; none carries a value, a data key or identity material. Key *names* and public
//! recipients are not secret and are shown, because they are what an operator needs to act.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The tool was called wrongly (bad key name, value that cannot be stored, no identity
    /// configured): exit 2.
    #[error("{0}")]
    Usage(String),
    /// An age identity source is unusable (unreadable, not a key file, passphrase-protected): exit 2.
    #[error("age identity {source_name}: {problem}")]
    Identity {
        source_name: String,
        problem: String,
    },
    #[error("{file}: {source}")]
    Io { file: String, source: io::Error },
    /// The file is not a sops dotenv file we can read (grammar, metadata).
    #[error("{file}: {problem}")]
    Format { file: String, problem: String },
    /// A value or the MAC fails authentication: the file was changed outside sops, or the key is
    /// wrong for it.
    #[error("{file}: {problem}")]
    Integrity { file: String, problem: String },
    /// A file sops can read but this tool refuses to touch (key groups, Shamir, ...).
    #[error("{file}: {problem}")]
    Unsupported { file: String, problem: String },
    /// None of our identities opens any of the file's age entries.
    #[error("{file}: Failed to get the data key required to decrypt the SOPS file: no age identity opens it (tried {identities} against recipients {recipients})")]
    NoMatchingIdentity {
        file: String,
        identities: String,
        recipients: String,
    },
    /// Anything else that went wrong while building output (randomness, age encryption).
    #[error("{file}: {problem}")]
    Internal { file: String, problem: String },
}

impl SopsError {
    /// True when the error is about how the tool was called, not about the file (exit 2, not 3).
    pub fn is_usage(&self) -> bool {
        matches!(self, SopsError::Usage(_) | SopsError::Identity { .. })
    }

    /// True when the file failed authentication (tampered or wrong key). Callers treat this as
    /// drift, never as "try again".
    pub fn is_integrity(&self) -> bool {
        matches!(self, SopsError::Integrity { .. })
    }

    pub(crate) fn format(file: &str, problem: impl Into<String>) -> Self {
        SopsError::Format {
            file: file.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn integrity(file: &str, problem: impl Into<String>) -> Self {
        SopsError::Integrity {
            file: file.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn unsupported(file: &str, problem: impl Into<String>) -> Self {
        SopsError::Unsupported {
            file: file.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn internal(file: &str, problem: impl Into<String>) -> Self {
        SopsError::Internal {
            file: file.to_string(),
            problem: problem.into(),
        }
    }
}
