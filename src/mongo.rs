//! MongoAdmin (being built: see issue 3).

#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("mongo {0}")]
    Unreachable(String),
}
