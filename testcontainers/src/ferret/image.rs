//! The FerretDB variant's images, made without a registry:
//!
//! - PostgreSQL: Debian's `postgresql-15` in a real Debian image (`testcontainers/debian-image
//!   postgres`, mmdebstrap + docker import), plus one layer with our entrypoint
//!   (`testcontainers/postgres/docker-entrypoint.sh`, the official image's first-init semantics).
//!   Tagged `ghcr.io/ferretdb/postgres-documentdb:komodo-rehearsal-pg15-<hash>`, the hash over the
//!   base tag (itself a hash of its inputs), the entrypoint and the Dockerfile: built once, then
//!   reused until an input changes. No real image carries such a tag.
//! - FerretDB: the `ferretdb-standin` binary (this crate's FerretDB-shaped front end) FROM
//!   scratch, tagged `ghcr.io/ferretdb/ferretdb:komodo-<standin tag>` like the other stand-ins.

use crate::stack::image::ImageSpec;
use crate::stack::tar::TarBuilder;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;
use komodo_rotate::docker::Engine;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const POSTGRES_REPO: &str = "ghcr.io/ferretdb/postgres-documentdb";
pub const FERRETDB_REPO: &str = "ghcr.io/ferretdb/ferretdb";
const ENTRYPOINT: &str = include_str!("../../postgres/docker-entrypoint.sh");

/// The stand-in's tag (compose.env's `COMPOSE_FERRETDB_IMAGE_TAG`).
pub fn ferretdb_tag() -> String {
    format!("komodo-{}", crate::stack::image::standin_tag())
}

pub fn ferretdb_image() -> String {
    format!("{FERRETDB_REPO}:{}", ferretdb_tag())
}

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n\
         ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data \
         PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         VOLUME /var/lib/postgresql/data\n\
         STOPSIGNAL SIGINT\n\
         EXPOSE 5432\n\
         ENTRYPOINT [\"docker-entrypoint.sh\"]\n\
         CMD [\"postgres\"]\n"
    )
}

/// The tag of the PostgreSQL image for `base` (the Debian image's tag).
pub fn postgres_tag_for(base: &str) -> String {
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    h.update([0]);
    h.update(ENTRYPOINT.as_bytes());
    h.update([0]);
    h.update(dockerfile(base).as_bytes());
    format!("komodo-rehearsal-pg15-{}", &hex::encode(h.finalize())[..12])
}

/// Runs `testcontainers/debian-image postgres` (Debian's postgresql-15, as
/// `testcontainers/debian-images.list` says; reused when built) for the base tag.
fn debian_base() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian-image");
    let out = std::process::Command::new(&script)
        .arg("postgres")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} postgres: {}: {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if tag.is_empty() || tag.contains(char::is_whitespace) {
        return Err(format!("{}: printed no tag", script.display()));
    }
    Ok(tag)
}

/// Builds (or reuses) the PostgreSQL image; returns its tag (the part after `:`).
pub async fn ensure_postgres_image(engine: &Engine) -> Result<String, String> {
    let base = debian_base()?;
    let tag = postgres_tag_for(&base);
    let full = format!("{POSTGRES_REPO}:{tag}");
    if engine.raw().inspect_image(&full).await.is_ok() {
        return Ok(tag);
    }
    let mut t = TarBuilder::new();
    t.file("Dockerfile", 0o644, dockerfile(&base).as_bytes())?;
    t.file("docker-entrypoint.sh", 0o755, ENTRYPOINT.as_bytes())?;
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(full.clone()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut stream =
        engine
            .raw()
            .build_image(opts, None, Some(bollard::body_full(t.finish()?.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| format!("build {full}: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(format!("build {full}: {err}"));
        }
    }
    Ok(tag)
}

/// Builds (or reuses) the FerretDB-shaped front end's image from `bin_dir/ferretdb-standin`.
pub async fn ensure_ferretdb_image(engine: &Engine, bin_dir: &Path) -> Result<(), String> {
    let bin = bin_dir.join("ferretdb-standin");
    if !bin.is_file() {
        return Err(format!(
            "{} is missing: cargo build -p komodo-testcontainers --bins",
            bin.display()
        ));
    }
    let mut spec = ImageSpec::for_binary(&ferretdb_image(), &bin)?;
    spec.dirs.push("/state".into());
    spec.ensure(engine).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_tag_follows_its_inputs() {
        let a = postgres_tag_for("komodo-rotate-debian-postgres:aaaa");
        assert_eq!(a, postgres_tag_for("komodo-rotate-debian-postgres:aaaa"));
        assert_ne!(a, postgres_tag_for("komodo-rotate-debian-postgres:bbbb"));
        assert!(a.starts_with("komodo-rehearsal-pg15-") && a.len() == 22 + 12);
        assert!(dockerfile("x").contains("ENTRYPOINT [\"docker-entrypoint.sh\"]"));
    }
}
