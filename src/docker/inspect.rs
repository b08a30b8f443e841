//! What the tool needs to know about one container, read from `docker inspect`. Env values are
//! held as [`Secret`]s from the moment they leave the engine's reply, so a Debug print of a
//! [`ContainerInfo`] shows key names only.

use super::engine::Engine;
use super::DockerError;
use crate::secret::Secret;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use std::collections::BTreeMap;

/// The lifecycle state of a container, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl RunState {
    fn from_engine(s: Option<ContainerStateStatusEnum>) -> RunState {
        match s {
            Some(ContainerStateStatusEnum::CREATED) => RunState::Created,
            Some(ContainerStateStatusEnum::RUNNING) => RunState::Running,
            Some(ContainerStateStatusEnum::PAUSED) => RunState::Paused,
            Some(ContainerStateStatusEnum::RESTARTING) => RunState::Restarting,
            Some(ContainerStateStatusEnum::REMOVING) => RunState::Removing,
            Some(ContainerStateStatusEnum::EXITED) => RunState::Exited,
            Some(ContainerStateStatusEnum::DEAD) => RunState::Dead,
            _ => RunState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Removing => "removing",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
            RunState::Unknown => "unknown",
        }
    }
}

/// A published port: `container` is e.g. "27017/tcp".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPublish {
    pub container: String,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading slash the engine puts there.
    pub name: String,
    /// The image as the container was created with it (tag or ID).
    pub image: String,
    /// The image ID (`sha256:…`) the container actually runs.
    pub image_id: String,
    pub state: RunState,
    pub restart_count: i64,
    pub exit_code: i64,
    /// `None` when the container has no healthcheck; else "starting", "healthy" or "unhealthy".
    pub health: Option<String>,
    pub started_at: String,
    /// `Config.Env` in order; values are secrets.
    pub env: Vec<(String, Secret)>,
    pub labels: BTreeMap<String, String>,
    /// Network name → IPv4 address (empty while the container is not running).
    pub ip_addresses: BTreeMap<String, String>,
    pub ports: Vec<PortPublish>,
    /// The container's mounts (`Mounts` of inspect), in the engine's order.
    pub mounts: Vec<MountInfo>,
}

/// One mount of a container: `kind` is the engine's type (`bind`, `volume`, `tmpfs`, ...),
/// `source` the host side (a path for a bind, the volume's storage dir for a volume, empty for
/// tmpfs), `destination` the path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub kind: String,
    pub source: String,
    pub destination: String,
}

impl ContainerInfo {
    pub async fn load(engine: &Engine, name: &str) -> Result<ContainerInfo, DockerError> {
        let raw = engine.try_inspect(name).await?;
        let raw = raw.ok_or_else(|| DockerError::NotFound(name.to_string()))?;
        Ok(ContainerInfo::from_inspect(&raw))
    }

    pub fn from_inspect(raw: &ContainerInspectResponse) -> ContainerInfo {
        let config = raw.config.as_ref();
        let state = raw.state.as_ref();
        let env = config
            .and_then(|c| c.env.as_ref())
            .map(|v| v.iter().map(|kv| split_env(kv)).collect())
            .unwrap_or_default();
        let health = state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .and_then(|s| match s {
                HealthStatusEnum::STARTING => Some("starting"),
                HealthStatusEnum::HEALTHY => Some("healthy"),
                HealthStatusEnum::UNHEALTHY => Some("unhealthy"),
                _ => None,
            })
            .map(str::to_string);
        let net = raw.network_settings.as_ref();
        let ip_addresses = net
            .and_then(|n| n.networks.as_ref())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.ip_address.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let mut ports = Vec::new();
        if let Some(map) = net.and_then(|n| n.ports.as_ref()) {
            for (cport, binds) in map {
                for b in binds.iter().flatten() {
                    let host_port = b.host_port.as_deref().and_then(|p| p.parse().ok());
                    if let Some(host_port) = host_port {
                        ports.push(PortPublish {
                            container: cport.clone(),
                            host_ip: b.host_ip.clone().unwrap_or_default(),
                            host_port,
                        });
                    }
                }
            }
        }
        ports.sort_by(|a, b| (&a.container, &a.host_ip).cmp(&(&b.container, &b.host_ip)));
        let mounts = raw
            .mounts
            .iter()
            .flatten()
            .map(|m| MountInfo {
                kind: m.typ.clone().unwrap_or_default(),
                source: m.source.clone().unwrap_or_default(),
                destination: m.destination.clone().unwrap_or_default(),
            })
            .collect();
        ContainerInfo {
            id: raw.id.clone().unwrap_or_default(),
            name: raw
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: raw.image.clone().unwrap_or_default(),
            state: RunState::from_engine(state.and_then(|s| s.status)),
            restart_count: raw.restart_count.unwrap_or(0),
            exit_code: state.and_then(|s| s.exit_code).unwrap_or(0),
            health,
            started_at: state.and_then(|s| s.started_at.clone()).unwrap_or_default(),
            env,
            labels: config
                .and_then(|c| c.labels.as_ref())
                .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            ip_addresses,
            ports,
            mounts,
        }
    }

    /// The value of env `key`; the last occurrence wins, as in the engine.
    pub fn env_value(&self, key: &str) -> Option<&Secret> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn env_keys(&self) -> impl Iterator<Item = &str> {
        self.env.iter().map(|(k, _)| k.as_str())
    }

    /// The host port published on 127.0.0.1 (or on all addresses) for `container_port`
    /// (e.g. "27017/tcp").
    pub fn loopback_port(&self, container_port: &str) -> Option<u16> {
        self.ports
            .iter()
            .filter(|p| p.container == container_port)
            .find(|p| p.host_ip == "127.0.0.1" || p.host_ip == "0.0.0.0" || p.host_ip.is_empty())
            .map(|p| p.host_port)
    }

    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }
}

/// Splits `KEY=value` without ever copying the value into a non-secret string.
fn split_env(kv: &str) -> (String, Secret) {
    match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Secret::new(v.to_string())),
        None => (kv.to_string(), Secret::new(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState};

    #[test]
    fn env_values_are_secrets_and_debug_hides_them() {
        let raw = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/komodo-core-1".into()),
            config: Some(ContainerConfig {
                env: Some(vec![
                    "KOMODO_DATABASE_PASSWORD=s3cr3t-value".into(),
                    "EMPTY=".into(),
                    "A=b=c".into(),
                ]),
                ..Default::default()
            }),
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::RESTARTING),
                exit_code: Some(1),
                ..Default::default()
            }),
            restart_count: Some(3),
            ..Default::default()
        };
        let info = ContainerInfo::from_inspect(&raw);
        assert_eq!(info.name, "komodo-core-1");
        assert_eq!(info.state, RunState::Restarting);
        assert_eq!(info.restart_count, 3);
        assert_eq!(
            info.env_value("KOMODO_DATABASE_PASSWORD")
                .map(|s| s.expose()),
            Some("s3cr3t-value")
        );
        assert_eq!(info.env_value("A").map(|s| s.expose()), Some("b=c"));
        assert_eq!(info.env_value("EMPTY").map(|s| s.expose()), Some(""));
        let shown = format!("{info:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("KOMODO_DATABASE_PASSWORD"));
    }
}
