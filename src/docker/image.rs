//! A container's environment against its image's: which keys are the container's own (what a
//! lost `.env` held) and which only the image's defaults.

use super::engine::api;
use super::{ContainerInfo, DockerError, Engine};
use crate::secret::Secret;

/// The `ENV` lines of the image `info` was created from, values held as secrets.
pub async fn image_env(
    engine: &Engine,
    info: &ContainerInfo,
) -> Result<Vec<(String, Secret)>, DockerError> {
    let image = if info.image_id.is_empty() {
        &info.image
    } else {
        &info.image_id
    };
    let inspect = engine.raw().inspect_image(image).await.map_err(|e| {
        api(
            "inspect image",
            &format!("{} of container {}", info.image, info.name),
            e,
        )
    })?;
    Ok(inspect
        .config
        .and_then(|c| c.env)
        .unwrap_or_default()
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), Secret::new(v.to_string())),
            None => (kv, Secret::new(String::new())),
        })
        .collect())
}

/// The container's keys that are its own: absent from the image's env, or with another value.
pub fn own_env<'a>(
    container: &'a [(String, Secret)],
    image: &[(String, Secret)],
) -> Vec<(&'a str, &'a Secret)> {
    container
        .iter()
        .filter(|(k, v)| {
            !image
                .iter()
                .rev()
                .find(|(ik, _)| ik == k)
                .is_some_and(|(_, iv)| iv.ct_eq(v))
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, Secret)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
            .collect()
    }

    #[test]
    fn image_defaults_are_left_out_unless_overridden() {
        let image = env(&[("PATH", "/bin"), ("MODE", "prod"), ("TZ", "UTC")]);
        let c = env(&[
            ("PATH", "/bin"),
            ("MODE", "dev"),
            ("DB_PW", "x"),
            ("TZ", "UTC"),
        ]);
        let keys: Vec<&str> = own_env(&c, &image).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["MODE", "DB_PW"]);
    }
}
