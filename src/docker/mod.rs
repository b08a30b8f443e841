//! The Docker plane (being built: see issue 4).

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("docker engine: {0}")]
    Engine(String),
}
