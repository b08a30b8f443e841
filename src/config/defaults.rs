//! The defaults of the config's optional keys (serde's `default = "..."` functions).

use std::path::PathBuf;
use std::time::Duration;

pub(super) fn default_commit_message() -> String {
    "komodo-rotate: rotate {secret} (run {run_id})".into()
}
pub(super) fn default_git_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/komodo-rotate")
}
pub(super) fn default_project() -> String {
    "komodo".into()
}
pub(super) fn default_mongo_service() -> String {
    "mongo".into()
}
pub(super) fn default_core_service() -> String {
    "core".into()
}
pub(super) fn default_periphery_services() -> Vec<String> {
    vec!["periphery".into()]
}
pub(super) fn default_auth_source() -> String {
    "admin".into()
}
pub(super) fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_health_timeout() -> Duration {
    Duration::from_secs(90)
}
pub(super) fn default_stable_for() -> Duration {
    Duration::from_secs(10)
}
