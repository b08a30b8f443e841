//! Engine requests bollard's models cannot express: a create request with the image's
//! platform and a container-wide MAC address (`Config.MacAddress`, gone from bollard's models
//! with API 1.44 while Debian's engine speaks 1.41), and a raw GET for fields the models drop.
//! Both go over the same connection, through a request modifier on a clone of the client.

use super::{api, Engine};
use crate::docker::DockerError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;

/// What a create request carries beside bollard's body (see [`Engine::create_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateExtras {
    /// `os/arch[/variant]` of the image, checked by the engine against the image.
    pub platform: Option<String>,
    /// A container-wide MAC address to keep.
    pub mac_address: Option<String>,
}

/// `os/arch[/variant]` from an image's fields; `None` without both OS and architecture.
pub fn platform_of(os: Option<&str>, arch: Option<&str>, variant: Option<&str>) -> Option<String> {
    let os = os.filter(|s| !s.is_empty())?;
    let arch = arch.filter(|s| !s.is_empty())?;
    Some(match variant.filter(|s| !s.is_empty()) {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

impl Engine {
    /// [`create`](Self::create) with what bollard's request model cannot say: the platform of
    /// the image (the `platform` query, API 1.41+) and a container-wide MAC address
    /// (`Config.MacAddress`, dropped from bollard's models with API 1.44; engines before 25
    /// read it only there, later ones move it to the primary network's endpoint). With a MAC
    /// the body is sent as JSON with that one field added, through a request modifier on a
    /// clone of the connection.
    pub async fn create_with(
        &self,
        name: &str,
        body: ContainerCreateBody,
        extras: &CreateExtras,
    ) -> Result<String, DockerError> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            platform: extras.platform.clone().unwrap_or_default(),
        };
        let (docker, body) = match &extras.mac_address {
            None => (self.docker.clone(), body),
            Some(mac) => {
                let mut json = serde_json::to_value(&body).map_err(|_| DockerError::Api {
                    op: "create",
                    target: name.to_string(),
                    status: None,
                    msg: "the create request could not be encoded".into(),
                })?;
                json["MacAddress"] = serde_json::Value::String(mac.clone());
                let bytes = json.to_string().into_bytes();
                drop(json);
                let docker = self.docker.clone().with_request_modifier(move |mut req| {
                    *req.body_mut() = bollard::body_full(bytes.clone().into());
                    req
                });
                (docker, ContainerCreateBody::default())
            }
        };
        let r = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| api("create", name, e))?;
        Ok(r.id)
    }

    /// The JSON text of a GET of `path` (e.g. `/containers/x/json`), for fields bollard's
    /// models lack. Sent over the same connection: a clone whose request modifier points its
    /// ping at `path`, under the negotiated API version. The text may hold env values: callers
    /// take the field they need and drop it.
    async fn raw_get(
        &self,
        op: &'static str,
        target: &str,
        path: &str,
    ) -> Result<String, DockerError> {
        let fail = |msg: &str| DockerError::Api {
            op,
            target: target.to_string(),
            status: None,
            msg: msg.to_string(),
        };
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
        {
            return Err(fail("not a plain object name"));
        }
        let path = format!("/v{}{path}", self.api_version());
        let docker = self.docker.clone().with_request_modifier(move |mut req| {
            let uri = req.uri().to_string();
            if let Some(base) = uri.strip_suffix("/_ping") {
                if let Ok(u) = format!("{base}{path}").parse() {
                    *req.uri_mut() = u;
                }
            }
            req
        });
        docker.ping().await.map_err(|e| api(op, target, e))
    }

    /// The container-wide MAC address `name` was created with (`docker run --mac-address`,
    /// compose's `mac_address:`), as the engine reports it in `Config.MacAddress`; `None` when
    /// none was configured (the engine then generates one) or the engine no longer reports it.
    pub async fn configured_mac_address(&self, name: &str) -> Result<Option<String>, DockerError> {
        let text = self
            .raw_get("inspect", name, &format!("/containers/{name}/json"))
            .await?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| DockerError::Api {
                op: "inspect",
                target: name.to_string(),
                status: None,
                msg: "malformed reply from the engine".into(),
            })?;
        drop(text);
        Ok(json["Config"]["MacAddress"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_string))
    }

    /// The platform of a local image, `os/arch[/variant]` as the create request's `platform`
    /// takes it; `None` when the image is not present or the engine does not say.
    pub async fn image_platform(&self, image: &str) -> Result<Option<String>, DockerError> {
        Ok(self.inspect_image_opt(image).await?.and_then(|i| {
            platform_of(
                i.os.as_deref(),
                i.architecture.as_deref(),
                i.variant.as_deref(),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_is_os_arch_and_the_variant_when_there_is_one() {
        assert_eq!(
            platform_of(Some("linux"), Some("arm64"), Some("v8")).as_deref(),
            Some("linux/arm64/v8")
        );
        assert_eq!(
            platform_of(Some("linux"), Some("amd64"), Some("")).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(platform_of(Some("linux"), None, None), None);
        assert_eq!(platform_of(None, Some("amd64"), None), None);
    }
}
