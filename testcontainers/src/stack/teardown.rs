//! Taking a stack down by its compose labels, and a one-line-per-container status.

use super::{compose, container_name};
use bollard::query_parameters::{
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use komodo_rotate::docker::crashloop;
use komodo_rotate::docker::discovery::PROJECT_LABEL;
use komodo_rotate::docker::{ContainerInfo, Engine};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Removes every container, network and volume of `project` (by label), and the files the
/// stack wrote into `dir`. Missing things are fine.
pub async fn down(engine: &Engine, project: &str, dir: Option<&Path>) -> Result<(), String> {
    let containers = engine
        .list_by_labels(&[(PROJECT_LABEL, project)])
        .await
        .map_err(|e| e.to_string())?;
    // With their anonymous volumes (unlabelled: the label filter below never sees them).
    let with_anonymous_volumes = Some(RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    });
    for c in containers {
        if let Some(id) = c.id {
            match engine
                .raw()
                .remove_container(&id, with_anonymous_volumes.clone())
                .await
            {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                })
                | Ok(()) => {}
                Err(e) => return Err(format!("remove container {id}: {e}")),
            }
        }
    }
    let filter = HashMap::from([(
        "label".to_string(),
        vec![format!("{PROJECT_LABEL}={project}")],
    )]);
    let nets = engine
        .raw()
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filter.clone()),
        }))
        .await
        .map_err(|e| format!("list networks: {e}"))?;
    for n in nets {
        if let Some(id) = n.id {
            engine
                .raw()
                .remove_network(&id)
                .await
                .map_err(|e| format!("remove network {}: {e}", n.name.unwrap_or_default()))?;
        }
    }
    let vols = engine
        .raw()
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filter),
        }))
        .await
        .map_err(|e| format!("list volumes: {e}"))?;
    for v in vols.volumes.unwrap_or_default() {
        engine
            .raw()
            .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
            .await
            .map_err(|e| format!("remove volume {}: {e}", v.name))?;
    }
    if let Some(dir) = dir {
        for f in [
            "compose.env",
            "age.key",
            "komodo-rotate.toml",
            compose::COMPOSE_FILE,
            compose::SHAPES_FILE,
            compose::FERRETDB_FILE,
        ] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        for d in ["control", "state", compose::SECRETS_DIR] {
            let _ = std::fs::remove_dir_all(dir.join(d));
        }
    }
    Ok(())
}

/// One line per container of `project`, plus core's crash-loop verdict. No env values.
pub async fn status(engine: &Engine, project: &str) -> Result<Vec<String>, String> {
    let list = engine
        .list_by_labels(&[(PROJECT_LABEL, project)])
        .await
        .map_err(|e| e.to_string())?;
    let mut names: Vec<String> = list
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok(vec![format!("project {project}: no containers")]);
    }
    let mut out = Vec::new();
    for n in &names {
        let i = ContainerInfo::load(engine, n)
            .await
            .map_err(|e| e.to_string())?;
        let ports: Vec<String> = i
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container))
            .collect();
        out.push(format!(
            "{:<28} {:<10} restarts={:<3} exit={:<3} health={:<9} {}",
            n,
            i.state.as_str(),
            i.restart_count,
            i.exit_code,
            i.health.as_deref().unwrap_or("-"),
            ports.join(" ")
        ));
    }
    let core = container_name(project, "core");
    if names.contains(&core) {
        let v = crashloop::observe(engine, &core, Duration::from_secs(1), 50)
            .await
            .map_err(|e| e.to_string())?;
        out.push(match (v.looping, v.signature) {
            (true, Some(s)) => format!("{core}: CRASH-LOOPING: {}", s.describe()),
            (true, None) => format!("{core}: CRASH-LOOPING (no known log signature)"),
            (false, _) => format!("{core}: not crash-looping"),
        });
    }
    Ok(out)
}
