//! What a recreate cannot do faithfully, refused before anything changes, and the proof that the
//! create request will be accepted: the engine's create-time conflict rules (moby
//! `runconfig.validateNetContainerMode` / `validateNetMode`, the same in 20.10 and 27) checked
//! against the exact request the create-next step will send.

use super::super::inspect::{ContainerInfo, RunState};
use super::super::DockerError;
use super::{Recreate, Snapshot};
use bollard::models::ContainerCreateBody;

/// The longest stop grace period a recreate waits out (compose's `stop_grace_period`). The stop
/// request's own deadline is set from it (the client's default of 120 s would otherwise give up
/// on a stop the engine is still waiting out).
pub const MAX_STOP_GRACE_S: i64 = 300;

/// The conflicts the engine refuses at create, for the request `body`; `None` when it passes.
pub fn create_conflict(body: &ContainerCreateBody) -> Option<String> {
    let h = body.host_config.as_ref()?;
    let mode = h.network_mode.as_deref().unwrap_or("");
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if let Some(joined) = mode.strip_prefix("container:") {
        let what = if body.hostname.as_deref().is_some_and(|x| !x.is_empty()) {
            "a hostname"
        } else if some(&h.links) {
            "links"
        } else if some(&h.dns) {
            "DNS servers"
        } else if some(&h.extra_hosts) {
            "extra hosts"
        } else if h.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || h.publish_all_ports == Some(true)
        {
            "published ports"
        } else if body.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
            "exposed ports"
        } else if body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .is_some_and(|e| !e.is_empty())
        {
            "networks"
        } else {
            return None;
        };
        return Some(format!(
            "the create request sets {what}, which the engine refuses in the network namespace of container {joined}"
        ));
    }
    if mode == "host" && some(&h.links) {
        return Some(
            "the create request sets links, which the engine refuses with the host network".into(),
        );
    }
    None
}

impl Snapshot {
    /// What the recreate of this container cannot carry over faithfully.
    pub fn unfaithful(&self) -> Option<String> {
        let h = self.inspect.host_config.as_ref();
        if h.and_then(|h| h.auto_remove) == Some(true) {
            return Some(
                "it was created with auto-remove (`--rm`): the engine deletes it when it stops, so the original could not be kept for an undo; recreate it without --rm first".into(),
            );
        }
        let grace = self.inspect.config.as_ref().and_then(|c| c.stop_timeout);
        if let Some(g) = grace.filter(|g| *g > MAX_STOP_GRACE_S) {
            return Some(format!(
                "its stop grace period ({g} s) is longer than the {MAX_STOP_GRACE_S} s a recreate waits for a stop"
            ));
        }
        None
    }
}

impl Recreate {
    /// The pre-flight of a fresh recreate: refuses what it cannot do faithfully, proves the
    /// create request passes the engine's conflict rules, and that a joined network namespace
    /// is there to join (and running, when the replacement will be started). Changes nothing.
    pub(super) async fn check_faithful(&self) -> Result<(), DockerError> {
        if let Some(why) = self.snapshot.unfaithful() {
            return Err(self.err(format!("cannot recreate faithfully: {why}")));
        }
        let body = self.snapshot.create_body(&self.patch, &self.image);
        if let Some(why) = create_conflict(&body) {
            return Err(self.err(why));
        }
        let dependents = self.namespace_dependents().await?;
        if !dependents.is_empty() {
            let list = dependents.join(", ");
            return Err(self.err(format!(
                "container {list} joins its network namespace (network_mode service:/container:) and would lose its network when it is recreated; remove {list} first (`docker rm -f`), rotate, then `docker compose up -d` creates it again"
            )));
        }
        if let Some(joined) = self.snapshot.joined_container() {
            let short = &joined[..joined.len().min(12)];
            match self.engine.try_inspect(joined).await? {
                None => {
                    return Err(self.err(format!(
                        "it joins the network namespace of container {short}, which no longer exists; run `docker compose up -d` for it first"
                    )))
                }
                Some(raw) => {
                    let j = ContainerInfo::from_inspect(&raw);
                    if self.snapshot.should_run && j.state != RunState::Running {
                        return Err(self.err(format!(
                            "it joins the network namespace of container {} ({short}), which is {}; start it first",
                            j.name,
                            j.state.as_str()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a `container:` target (a name, a full ID or an ID prefix, as the engine resolves
/// it) names the container `name` with ID `id`.
fn targets(target: &str, name: &str, id: &str) -> bool {
    let target = target.trim_start_matches('/');
    target == name
        || (!target.is_empty()
            && target.bytes().all(|b| b.is_ascii_hexdigit())
            && id.starts_with(target))
}

impl Recreate {
    /// The other containers (running or not) that join this one's network namespace
    /// (`network_mode: service:X` is recorded as `container:<id>`, `docker run --network
    /// container:X` as given), sorted by name. Compose recreates them after their holder; a
    /// recreate here does not, so the pre-flight refuses.
    async fn namespace_dependents(&self) -> Result<Vec<String>, DockerError> {
        let (name, id) = (self.name(), &self.snapshot.original_id);
        let mut deps: Vec<String> = self
            .engine
            .joined_namespaces()
            .await?
            .into_iter()
            .filter(|(n, t)| n != name && targets(t, name, id))
            .map(|(n, _)| n)
            .collect();
        deps.sort();
        Ok(deps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse, HostConfig};

    fn joined(hostname: &str, exposed: &[&str]) -> Snapshot {
        Snapshot {
            name: "app".into(),
            original_id: "0123456789abcdef".into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                config: Some(ContainerConfig {
                    // What the engine reports: the joined container's hostname, the image's
                    // exposed ports.
                    hostname: Some(hostname.into()),
                    exposed_ports: Some(exposed.iter().map(|p| p.to_string()).collect()),
                    ..Default::default()
                }),
                host_config: Some(HostConfig {
                    network_mode: Some("container:feedfacefeedface".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            logs: vec![],
            mac_address: None,
        }
    }

    #[test]
    fn a_joined_namespace_gets_no_hostname_or_exposed_ports_back() {
        let s = joined("sidecar-host", &["9120/tcp"]);
        assert_eq!(s.joined_container(), Some("feedfacefeedface"));
        let body = s.create_body(&super::super::EnvPatch::new(), "img");
        assert_eq!(body.hostname, None);
        assert_eq!(body.exposed_ports, None);
        assert_eq!(create_conflict(&body), None);
        // The rules themselves: what the engine would refuse, named.
        let mut bad = body.clone();
        bad.hostname = Some("sidecar-host".into());
        assert!(create_conflict(&bad).unwrap().contains("a hostname"));
        let mut bad = body;
        bad.exposed_ports = Some(vec!["9120/tcp".into()]);
        let msg = create_conflict(&bad).unwrap();
        assert!(
            msg.contains("exposed ports") && msg.contains("feedfacefeedface"),
            "{msg}"
        );
    }

    #[test]
    fn a_container_target_is_a_name_an_id_or_an_id_prefix() {
        let id = "0123456789abcdef0123";
        assert!(targets("core", "core", id));
        assert!(targets(id, "core", id));
        assert!(targets("0123456789ab", "core", id));
        assert!(!targets("core-2", "core", id));
        assert!(!targets("fedcba", "core", id));
        assert!(!targets("", "core", id));
    }

    #[test]
    fn auto_remove_and_a_long_grace_are_refused_by_name() {
        let mut s = joined("h", &[]);
        assert_eq!(s.unfaithful(), None);
        s.inspect.host_config.as_mut().unwrap().auto_remove = Some(true);
        assert!(s.unfaithful().unwrap().contains("auto-remove"));
        s.inspect.host_config.as_mut().unwrap().auto_remove = Some(false);
        s.inspect.config.as_mut().unwrap().stop_timeout = Some(MAX_STOP_GRACE_S);
        assert_eq!(s.unfaithful(), None);
        s.inspect.config.as_mut().unwrap().stop_timeout = Some(MAX_STOP_GRACE_S + 1);
        assert!(s
            .unfaithful()
            .unwrap()
            .contains("stop grace period (301 s)"));
    }
}
