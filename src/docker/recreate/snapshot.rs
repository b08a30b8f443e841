//! The snapshot of a container taken before anything changes, and the create request of its
//! replacement built from it.

use super::super::engine::Engine;
use super::super::inspect::{ContainerInfo, RunState};
use super::super::DockerError;
use super::EnvPatch;
use crate::secret::Secret;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkingConfig,
    RestartPolicyNameEnum,
};
use std::collections::HashMap;
use std::fmt;

/// Everything needed to rebuild or restore a container: its full inspect and its last log
/// lines, taken before anything changes (after a recreate the old logs and env are gone). It
/// holds the container's env, so callers must encrypt it at rest; Debug shows no env.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub original_id: String,
    /// Whether the original is meant to run (see [`should_run`]): the replacement is started
    /// and gated only then, and an undo starts the original again only then.
    pub should_run: bool,
    pub inspect: ContainerInspectResponse,
    pub logs: Vec<String>,
    /// The container-wide MAC address it was created with (`mac_address:`), which bollard's
    /// inspect model does not carry: read from the raw inspect, sent again at create. Absent in
    /// journals written before it was kept (their originals are treated as having none).
    #[serde(default)]
    pub mac_address: Option<String>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.name)
            .field("original_id", &self.original_id)
            .field("should_run", &self.should_run)
            .field("log_lines", &self.logs.len())
            .finish_non_exhaustive()
    }
}

/// Whether the container is meant to run. Running, restarting or paused: yes. Exited: only
/// when the engine gave up on it under `on-failure:N` (a crash it was meant to survive); under
/// `always`/`unless-stopped` the engine would have restarted an exit it did not cause, so an
/// exited container there was stopped on purpose (`compose stop`, `docker stop`), whatever its
/// exit code (SIGTERM gives 143), and its replacement stays stopped too. Created: no.
fn should_run(inspect: &ContainerInspectResponse, info: &ContainerInfo) -> bool {
    match info.state {
        RunState::Running | RunState::Restarting | RunState::Paused => true,
        RunState::Exited => {
            let policy = inspect
                .host_config
                .as_ref()
                .and_then(|h| h.restart_policy.as_ref());
            let on_failure_limit = policy
                .filter(|p| p.name == Some(RestartPolicyNameEnum::ON_FAILURE))
                .and_then(|p| p.maximum_retry_count)
                .unwrap_or(0);
            on_failure_limit > 0 && info.exit_code != 0 && info.restart_count >= on_failure_limit
        }
        _ => false,
    }
}

impl Snapshot {
    /// Inspects `name` and reads its last `log_lines` log lines.
    pub async fn take(
        engine: &Engine,
        name: &str,
        log_lines: usize,
    ) -> Result<Snapshot, DockerError> {
        let inspect = engine
            .try_inspect(name)
            .await?
            .ok_or_else(|| DockerError::NotFound(name.to_string()))?;
        let info = ContainerInfo::from_inspect(&inspect);
        if info.name != name {
            return Err(DockerError::Recreate {
                name: name.to_string(),
                msg: format!("resolves to container {:?}; use its name", info.name),
            });
        }
        // A container whose log cannot be read (`logging: driver: none`) is snapshotted
        // without: the log only explains a failure, the inspect is what restores.
        let logs = engine
            .logs_tail_if_readable(name, log_lines)
            .await?
            .unwrap_or_default();
        let should_run = should_run(&inspect, &info);
        let mac_address = engine.configured_mac_address(&info.id).await?;
        Ok(Snapshot {
            name: name.to_string(),
            original_id: info.id,
            should_run,
            inspect,
            logs,
            mac_address,
        })
    }

    /// The value `key` had in the original's env (the last occurrence, as in the engine).
    pub fn env_value(&self, key: &str) -> Option<Secret> {
        let env = self.inspect.config.as_ref()?.env.as_ref()?;
        env.iter().rev().find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| Secret::new(v.to_string()))
        })
    }

    fn short_id(&self) -> &str {
        &self.original_id[..self.original_id.len().min(12)]
    }

    pub(super) fn stop_timeout(&self) -> i32 {
        self.inspect
            .config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .map(|t| t.clamp(1, super::MAX_STOP_GRACE_S) as i32)
            .unwrap_or(10)
    }

    /// The networks the original was attached to, the one named by its network mode first
    /// (API < 1.44 accepts a single endpoint at create; the others are connected afterwards).
    pub(super) fn networks(&self) -> Vec<(String, EndpointSettings)> {
        let mode = self
            .inspect
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Vec::new();
        }
        let mut nets: Vec<(String, EndpointSettings)> = self
            .inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, ep)| {
                let ep = self.clean_endpoint(&name, ep);
                (name, ep)
            })
            .collect();
        nets.sort_by(|a, b| (a.0 != mode, &a.0).cmp(&(b.0 != mode, &b.0)));
        nets
    }

    /// Keeps what the user configured on an endpoint (aliases, static IPAM, links, driver
    /// options) and drops what the engine assigned: IP, gateway, endpoint/network IDs, the MAC
    /// (Docker 25+ reports the generated MAC as if configured, moby #47228), and the alias equal
    /// to the old short ID, which the engine adds itself and which would pile up.
    fn clean_endpoint(&self, network: &str, ep: EndpointSettings) -> EndpointSettings {
        let default_bridge = network == "bridge";
        let aliases = ep.aliases.map(|a| {
            a.into_iter()
                .filter(|x| x != self.short_id() && *x != self.original_id)
                .collect::<Vec<_>>()
        });
        EndpointSettings {
            ipam_config: ep.ipam_config,
            links: ep.links,
            aliases: if default_bridge { None } else { aliases },
            driver_opts: ep.driver_opts,
            gw_priority: ep.gw_priority.filter(|p| *p != 0),
            ..Default::default()
        }
    }

    /// The network mode joins another container's namespace (`network_mode: container:X` or
    /// compose's `service:X`, recorded as `container:<id>`): the joined container's name or ID.
    pub fn joined_container(&self) -> Option<&str> {
        self.inspect
            .host_config
            .as_ref()?
            .network_mode
            .as_deref()?
            .strip_prefix("container:")
    }

    /// The create request of the replacement: the original's config with `patch` applied to
    /// the env, the hostname dropped when it is the engine-assigned short ID, `image` as
    /// resolved by [`Recreate::prepare`], and only the first network (see [`Self::networks`]).
    ///
    /// In a joined network namespace (`container:X`), the engine filled the hostname from the
    /// joined container and the exposed ports from the image; sent back they conflict ("conflicting
    /// options: hostname and the network mode"), so neither is sent, as compose sends neither.
    ///
    /// Anonymous volumes (an image `VOLUME`, compose's `- /data`) are carried over as compose
    /// does on `up` without `-V`: the replacement mounts the original's volume, by name, at the
    /// same place (see [`Self::carry_anonymous_volumes`]).
    ///
    /// When the patch changes the env, compose's `config-hash` label is dropped: the hash
    /// describes the config compose made the original from, which the replacement no longer
    /// has. Without it the next `compose up` recreates the container from the compose file and
    /// compose.env (as both compose 1.x and v2 do for a missing hash) instead of keeping it as
    /// "up to date" even when compose.env has gone back to the old values.
    pub fn create_body(&self, patch: &EnvPatch, image: &str) -> ContainerCreateBody {
        let c = self.inspect.config.clone().unwrap_or_default();
        let mut labels = c.labels;
        if !patch.is_empty() {
            if let Some(l) = labels.as_mut() {
                l.remove(super::COMPOSE_CONFIG_HASH_LABEL);
            }
        }
        let joined = self.joined_container().is_some();
        let hostname = c.hostname.filter(|h| h != self.short_id() && !joined);
        let exposed_ports = c.exposed_ports.filter(|_| !joined);
        let env = c.env.as_deref().map(|e| patch.apply(e));
        let networking_config =
            self.networks()
                .into_iter()
                .next()
                .map(|(name, ep)| NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(name, ep)])),
                });
        ContainerCreateBody {
            hostname,
            domainname: c.domainname,
            user: c.user,
            attach_stdin: c.attach_stdin,
            attach_stdout: c.attach_stdout,
            attach_stderr: c.attach_stderr,
            exposed_ports,
            tty: c.tty,
            open_stdin: c.open_stdin,
            stdin_once: c.stdin_once,
            env,
            cmd: c.cmd,
            healthcheck: c.healthcheck,
            args_escaped: c.args_escaped,
            image: Some(image.to_string()),
            volumes: c.volumes,
            working_dir: c.working_dir,
            entrypoint: c.entrypoint,
            network_disabled: c.network_disabled,
            on_build: c.on_build,
            labels,
            stop_signal: c.stop_signal,
            stop_timeout: c.stop_timeout,
            shell: c.shell,
            host_config: self
                .inspect
                .host_config
                .clone()
                .map(|h| self.carry_anonymous_volumes(h)),
            networking_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EnvPatch, COMPOSE_CONFIG_HASH_LABEL};
    use super::*;
    use bollard::models::ContainerConfig;

    #[test]
    fn snapshot_debug_hides_env_and_create_body_drops_engine_assigned_identity() {
        let id = "0123456789abcdef0123456789abcdef";
        let snap = Snapshot {
            name: "komodo-core-1".into(),
            original_id: id.into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                id: Some(id.into()),
                config: Some(ContainerConfig {
                    hostname: Some("0123456789ab".into()),
                    env: Some(vec!["SECRET=hunter2hunter2".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
            mac_address: None,
        };
        let shown = format!("{snap:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let body = snap.create_body(&EnvPatch::new(), "img");
        assert_eq!(body.hostname, None);
        assert_eq!(body.image.as_deref(), Some("img"));
        assert_eq!(body.env, Some(vec!["SECRET=hunter2hunter2".to_string()]));
    }

    #[test]
    fn create_body_drops_compose_config_hash_only_when_the_env_changes() {
        let labels = HashMap::from([
            (COMPOSE_CONFIG_HASH_LABEL.to_string(), "abc".to_string()),
            ("com.docker.compose.service".to_string(), "core".to_string()),
        ]);
        let snap = Snapshot {
            name: "komodo_core_1".into(),
            original_id: "0123456789abcdef".into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                config: Some(ContainerConfig {
                    env: Some(vec!["K=old".into()]),
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
            mac_address: None,
        };
        let same = snap.create_body(&EnvPatch::new(), "img");
        assert_eq!(same.labels.as_ref(), Some(&labels));
        let patched = snap.create_body(&EnvPatch::new().set("K", Secret::new("new".into())), "img");
        let l = patched.labels.unwrap();
        assert!(!l.contains_key(COMPOSE_CONFIG_HASH_LABEL), "{l:?}");
        assert_eq!(
            l.get("com.docker.compose.service").map(String::as_str),
            Some("core")
        );
    }

    #[test]
    fn endpoints_keep_gw_priority_and_drop_engine_assigned_addresses() {
        let ep = EndpointSettings {
            gw_priority: Some(5),
            ip_address: Some("172.18.0.4".into()),
            mac_address: Some("02:42:ac:12:00:04".into()),
            aliases: Some(vec!["app".into()]),
            ..Default::default()
        };
        let snap = Snapshot {
            name: "app".into(),
            original_id: "0123456789abcdef".into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                network_settings: Some(bollard::models::NetworkSettings {
                    networks: Some(HashMap::from([("proj_net".to_string(), ep)])),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
            mac_address: None,
        };
        let nets = snap.networks();
        assert_eq!(nets.len(), 1);
        let (name, ep) = &nets[0];
        assert_eq!(name, "proj_net");
        assert_eq!(ep.gw_priority, Some(5));
        assert_eq!(ep.ip_address, None);
        assert_eq!(ep.mac_address, None);
        assert_eq!(ep.aliases, Some(vec!["app".to_string()]));
    }
}
