//! A throw-away container made like another one: the same image (by ID), the same volumes and
//! bind mounts at the same places, its entrypoint and command (minus the arguments the caller
//! names), and none of its environment, labels or networks. One port is published on 127.0.0.1
//! only, on a port the engine picks. The caller names it and labels it; nothing here knows
//! what runs inside.
//!
//! Used by `rescue --reset-auth` for a database server started on the real data volume without
//! access control (its image adds access control only when its init variables are set).

use super::engine::Engine;
use super::inspect::ContainerInfo;
use super::DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use std::collections::HashMap;

/// What to make.
pub struct Spec<'a> {
    /// The container to copy image, mounts, entrypoint and command from.
    pub like: &'a str,
    /// The throw-away's name.
    pub name: &'a str,
    /// The container port to publish on 127.0.0.1, e.g. `27017/tcp`.
    pub port: &'a str,
    /// Arguments of `like`'s command left out (each exact word).
    pub drop_args: &'a [&'a str],
    /// Labels set on the throw-away (none is copied from `like`).
    pub labels: &'a [(&'a str, &'a str)],
}

/// The created and started throw-away: its name and the loopback port it answers on.
#[derive(Debug, Clone)]
pub struct Started {
    pub name: String,
    pub host_port: u16,
}

fn recreate_err(name: &str, msg: String) -> DockerError {
    DockerError::Recreate {
        name: name.to_string(),
        msg,
    }
}

/// The create request for `spec`, read from `like`'s inspect: same image ID, the same named
/// volumes and bind mounts (read-only kept), entrypoint, user, init, the command without
/// `drop_args`; no env (the image's own applies), port published on 127.0.0.1 only.
pub fn body(
    spec: &Spec<'_>,
    like: &bollard::models::ContainerInspectResponse,
) -> Result<ContainerCreateBody, DockerError> {
    let image = like
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| recreate_err(spec.name, format!("{} has no image ID", spec.like)))?;
    let mut binds = Vec::new();
    for m in like.mounts.iter().flatten() {
        let dest = m.destination.clone().unwrap_or_default();
        let src = match m.typ.as_deref() {
            Some("volume") => m.name.clone(),
            Some("bind") => m.source.clone(),
            // tmpfs and the like hold nothing that outlives the container: left out.
            _ => None,
        };
        let Some(src) = src.filter(|s| !s.is_empty()) else {
            continue;
        };
        let ro = if m.rw == Some(false) { ":ro" } else { "" };
        binds.push(format!("{src}:{dest}{ro}"));
    }
    let config = like.config.clone().unwrap_or_default();
    let cmd: Option<Vec<String>> = config.cmd.map(|c| {
        c.into_iter()
            .filter(|a| !spec.drop_args.contains(&a.as_str()))
            .collect()
    });
    let init = like.host_config.as_ref().and_then(|h| h.init);
    let mut ports = HashMap::new();
    ports.insert(
        spec.port.to_string(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(String::new()),
        }]),
    );
    Ok(ContainerCreateBody {
        image: Some(image),
        entrypoint: config.entrypoint,
        cmd,
        user: config.user,
        exposed_ports: Some(vec![spec.port.to_string()]),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        host_config: Some(HostConfig {
            binds: Some(binds),
            port_bindings: Some(ports),
            init,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Creates and starts the throw-away of `spec`, and reads the loopback port it got. A failure
/// after the create removes it again (the caller's undo covers only a started one).
pub async fn start(engine: &Engine, spec: &Spec<'_>) -> Result<Started, DockerError> {
    let like = engine.inspect(spec.like).await?;
    let body = body(spec, &like)?;
    engine.create(spec.name, body).await?;
    let started = async {
        engine.start(spec.name).await?;
        let info = ContainerInfo::load(engine, spec.name).await?;
        info.loopback_port(spec.port).ok_or_else(|| {
            recreate_err(
                spec.name,
                format!("{} is not published on 127.0.0.1", spec.port),
            )
        })
    }
    .await;
    match started {
        Ok(host_port) => Ok(Started {
            name: spec.name.to_string(),
            host_port,
        }),
        Err(e) => {
            let _ = engine.remove(spec.name).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse, MountPoint};

    fn like() -> ContainerInspectResponse {
        let mount = |typ: &str, name: Option<&str>, src: &str, dest: &str, rw: bool| MountPoint {
            typ: Some(typ.into()),
            name: name.map(String::from),
            source: Some(src.into()),
            destination: Some(dest.into()),
            rw: Some(rw),
            ..Default::default()
        };
        ContainerInspectResponse {
            image: Some("sha256:abc".into()),
            config: Some(ContainerConfig {
                image: Some("mongo:latest".into()),
                env: Some(vec!["SECRET_INIT=do-not-copy".into()]),
                cmd: Some(vec![
                    "--quiet".into(),
                    "--auth".into(),
                    "--wiredTigerCacheSizeGB".into(),
                    "0.25".into(),
                ]),
                labels: Some(HashMap::from([(
                    "com.docker.compose.project".to_string(),
                    "komodo".to_string(),
                )])),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                init: Some(true),
                ..Default::default()
            }),
            mounts: Some(vec![
                mount(
                    "volume",
                    Some("komodo_mongo-data"),
                    "/var/lib/docker/volumes/komodo_mongo-data/_data",
                    "/data/db",
                    true,
                ),
                mount("bind", None, "/srv/backups", "/backups", false),
                mount("tmpfs", None, "", "/tmp", true),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn the_throwaway_copies_image_mounts_and_command_but_no_env_labels_or_wide_ports() {
        let spec = Spec {
            like: "komodo-mongo-1",
            name: "komodo-mongo-1-reset-auth",
            port: "27017/tcp",
            drop_args: &["--auth"],
            labels: &[("throwaway-of", "komodo-mongo-1")],
        };
        let b = body(&spec, &like()).unwrap();
        assert_eq!(
            b.image.as_deref(),
            Some("sha256:abc"),
            "the same image, by ID"
        );
        assert_eq!(
            b.cmd.unwrap(),
            ["--quiet", "--wiredTigerCacheSizeGB", "0.25"],
            "the command without the dropped argument"
        );
        assert!(b.env.is_none(), "no env copied");
        assert_eq!(
            b.labels.unwrap(),
            HashMap::from([("throwaway-of".to_string(), "komodo-mongo-1".to_string())])
        );
        let h = b.host_config.unwrap();
        assert_eq!(
            h.binds.unwrap(),
            ["komodo_mongo-data:/data/db", "/srv/backups:/backups:ro"]
        );
        assert_eq!(h.init, Some(true));
        let ports = h.port_bindings.unwrap();
        assert_eq!(ports.len(), 1);
        let p = ports["27017/tcp"].as_ref().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"), "loopback only");
        assert!(h.network_mode.is_none(), "no network copied");
    }

    #[test]
    fn a_container_without_an_image_id_is_refused_by_name() {
        let mut l = like();
        l.image = None;
        let spec = Spec {
            like: "m",
            name: "m-x",
            port: "1/tcp",
            drop_args: &[],
            labels: &[],
        };
        let e = body(&spec, &l).unwrap_err().to_string();
        assert!(e.contains("m has no image ID"), "{e}");
    }
}
