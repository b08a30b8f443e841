//! The Docker plane: one engine client (API version negotiated), discovery of Komodo's containers
//! by compose labels, inspection (env values held as secrets), crash-loop and generation
//! detection, and the undoable create-before-remove recreate.

pub mod carrier;
pub mod compose_value;
pub mod compose_yaml;
pub mod crashloop;
pub mod discovery;
pub mod engine;
pub mod exec;
pub mod generation;
pub mod image;
pub mod inspect;
pub mod project;
pub mod recreate;
pub mod throwaway;
pub mod uri;
mod variant;

pub use crashloop::{CrashLoop, Signature};
pub use discovery::{Deployment, DiscoverySpec};
pub use engine::Engine;
pub use generation::Generation;
pub use inspect::{ContainerInfo, MountInfo, RunState};
pub use recreate::{
    settle, EnvPatch, HealthGate, Recreate, RecreateState, RecreateStep, Snapshot, NEXT_SUFFIX,
    PREV_SUFFIX,
};

/// Errors of the Docker plane. Every message is one line naming the engine or container, and
/// never carries an env value: engine replies are reduced to their status and message.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("docker engine {host}: cannot connect: {msg}")]
    Connect { host: String, msg: String },
    #[error("docker engine: {op} {target}: {msg}")]
    Api {
        op: &'static str,
        target: String,
        status: Option<u16>,
        msg: String,
    },
    #[error("container {0} not found")]
    NotFound(String),
    #[error("discovery: {0}")]
    Discovery(String),
    #[error("recreate {name}: {msg}")]
    Recreate { name: String, msg: String },
    #[error("health gate {name}: {msg}")]
    Unhealthy { name: String, msg: String },
}

impl DockerError {
    /// True when the engine said the object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerError::NotFound(_)
                | DockerError::Api {
                    status: Some(404),
                    ..
                }
        )
    }
}
