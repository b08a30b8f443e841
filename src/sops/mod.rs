//! The SOPS dotenv store (being built: see issue 2).

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error("{0}")]
    Usage(String),
}

impl SopsError {
    /// True when the error is about how the tool was called, not about the file (exit 2, not 3).
    pub fn is_usage(&self) -> bool {
        matches!(self, SopsError::Usage(_))
    }
}
