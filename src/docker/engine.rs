//! The engine connection. bollard 0.21 speaks API 1.53 by default and Debian's engine (20.10)
//! only 1.41, so every connection negotiates the version first; without that every request fails.
//!
//! All engine calls go through the thin wrappers below so that errors are mapped in one place to
//! one-line [`DockerError`]s naming the operation and the container, never echoing a request body.

use super::DockerError;
use crate::text::one_line;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, EndpointSettings,
    ImageInspect, NetworkConnectRequest,
};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;

mod raw;
pub use raw::{platform_of, CreateExtras};

/// A connected engine whose API version has been negotiated.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

impl Engine {
    /// Connects to `DOCKER_HOST`, else the local socket, and negotiates the API version.
    pub async fn connect() -> Result<Engine, DockerError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Self::connect_to(&host).await
    }

    /// Connects to `host` (`unix://…`, `tcp://…` or `http://…`) and negotiates the API version.
    pub async fn connect_to(host: &str) -> Result<Engine, DockerError> {
        let fail = |msg: String| DockerError::Connect {
            host: host.to_string(),
            msg,
        };
        let docker = Docker::connect_with_host(host).map_err(|e| fail(short(&e)))?;
        // Negotiating asks the engine for its version: an answer proves it is reachable, so no
        // separate ping.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| fail(short(&e)))?;
        Ok(Engine {
            docker,
            host: host.to_string(),
        })
    }

    /// The negotiated API version, e.g. "1.41".
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The raw client, for callers (the rehearsal stack) that need calls not wrapped here.
    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    pub async fn inspect(&self, name: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| api("inspect", name, e))
    }

    /// Like [`inspect`](Self::inspect), but a missing container is `Ok(None)`.
    pub async fn try_inspect(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.inspect(name).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All containers (running or not) carrying every `key=value` label given.
    pub async fn list_by_labels(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), filter)])),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| api("list containers", "by label", e))
    }

    pub async fn create(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        self.create_with(name, body, &CreateExtras::default()).await
    }

    /// Every container (running or not) whose network mode joins another container's network
    /// namespace: (its name, the `container:` target as recorded, a name or an ID).
    pub async fn joined_namespaces(&self) -> Result<Vec<(String, String)>, DockerError> {
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| api("list containers", "all", e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let target = c
                    .host_config?
                    .network_mode?
                    .strip_prefix("container:")?
                    .to_string();
                let name = c.names?.first()?.trim_start_matches('/').to_string();
                Some((name, target))
            })
            .collect())
    }

    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: EndpointSettings,
    ) -> Result<(), DockerError> {
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(endpoint),
        };
        self.docker
            .connect_network(network, req)
            .await
            .map_err(|e| api("connect network", &format!("{container} to {network}"), e))
    }

    /// Starts `name`; starting a running container is not an error.
    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        match self
            .docker
            .start_container(name, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api("start", name, e)),
        }
    }

    /// Stops `name` within `timeout_s` seconds (then SIGKILL); stopping a stopped container is
    /// not an error. The request waits out the grace period and a minute more, whatever the
    /// client's default request timeout (a stop it gave up on would still be under way).
    pub async fn stop(&self, name: &str, timeout_s: i32) -> Result<(), DockerError> {
        let opts = StopContainerOptions {
            t: Some(timeout_s),
            ..Default::default()
        };
        let wait = std::time::Duration::from_secs(u64::try_from(timeout_s).unwrap_or(0) + 60);
        let docker = self.docker.clone();
        let docker = if docker.timeout() < wait {
            docker.with_timeout(wait)
        } else {
            docker
        };
        match docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api("stop", name, e)),
        }
    }

    pub async fn rename(&self, name: &str, new_name: &str) -> Result<(), DockerError> {
        let opts = RenameContainerOptions {
            name: new_name.to_string(),
        };
        self.docker
            .rename_container(name, opts)
            .await
            .map_err(|e| api("rename", &format!("{name} to {new_name}"), e))
    }

    /// Force-removes `name` (never its volumes); a missing container is not an error.
    pub async fn remove(&self, name: &str) -> Result<(), DockerError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = api("remove", name, e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The image's ID if `image` (a name or an ID) is present locally.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        Ok(self.inspect_image_opt(image).await?.and_then(|i| i.id))
    }

    /// The engine's inspection of `image` (a name or an ID); `None` when it is not present.
    async fn inspect_image_opt(&self, image: &str) -> Result<Option<ImageInspect>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(i)),
            Err(e) => {
                let e = api("inspect image", image, e);
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Like [`logs_tail`](Self::logs_tail), but `Ok(None)` when the engine cannot read the
    /// container's log (`logging: driver: none`, or a remote driver without dual logging's
    /// cache): callers then judge the container by its state alone. Asks nothing for `n == 0`.
    pub async fn logs_tail_if_readable(
        &self,
        name: &str,
        n: usize,
    ) -> Result<Option<Vec<String>>, DockerError> {
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        match self.logs_tail(name, n).await {
            Ok(lines) => Ok(Some(lines)),
            Err(DockerError::Api { status, msg, .. })
                if status == Some(501) || msg.contains("does not support reading") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The last `n` lines of `name`'s stdout and stderr, interleaved as the engine returns them.
    pub async fn logs_tail(&self, name: &str, n: usize) -> Result<Vec<String>, DockerError> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: n.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(opts));
        let mut text = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| api("logs", name, e))?;
            text.extend_from_slice(&chunk.into_bytes());
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let skip = lines.len().saturating_sub(n);
        Ok(lines.into_iter().skip(skip).collect())
    }
}

/// Maps a bollard error to one line. Server errors keep their status and message (the engine's
/// messages name objects, not env values); decode errors are reduced to their kind, since their
/// text can quote the response body, which may hold env values.
pub(crate) fn api(op: &'static str, target: &str, e: BollardError) -> DockerError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            if status_code == 404 {
                return DockerError::Api {
                    op,
                    target: target.to_string(),
                    status: Some(404),
                    msg: "no such object".to_string(),
                };
            }
            DockerError::Api {
                op,
                target: target.to_string(),
                status: Some(status_code),
                msg: one_line(&message),
            }
        }
        other => DockerError::Api {
            op,
            target: target.to_string(),
            status: None,
            msg: short(&other),
        },
    }
}

fn short(e: &BollardError) -> String {
    match e {
        BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => {
            "malformed reply from the engine".to_string()
        }
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No engine at the socket, or something there that is not an engine (it hangs up at once):
    /// one `Connect` error naming the host, from the version negotiation alone.
    #[tokio::test]
    async fn no_engine_or_not_an_engine_is_a_connect_error_naming_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("unix://{}/none.sock", dir.path().display());
        match Engine::connect_to(&missing).await {
            Err(DockerError::Connect { host, .. }) => assert_eq!(host, missing),
            other => panic!("expected a connect error, got {:?}", other.map(|_| ())),
        }
        let path = dir.path().join("mute.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let mute = format!("unix://{}", path.display());
        match Engine::connect_to(&mute).await {
            Err(DockerError::Connect { host, msg }) => {
                assert_eq!(host, mute);
                assert!(!msg.is_empty());
            }
            other => panic!("expected a connect error, got {:?}", other.map(|_| ())),
        }
    }
}
