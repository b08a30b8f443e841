//! The stand-ins' image names, and images without a registry: FROM scratch, holding our own binaries plus exactly the shared
//! libraries `ldd` lists (and the loader), or Debian's static busybox. Built through the engine's
//! build API from a tar context made here, so no network and no BuildKit are needed. A label
//! carries the hash of everything in the context, and an image whose label matches is reused.

use super::tar::TarBuilder;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;
use komodo_rotate::docker::Engine;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HASH_LABEL: &str = "komodo-rehearsal.content-hash";

/// The stand-ins carry the names the compose files expect: Komodo's own image names with the
/// tag compose.env sets (`COMPOSE_KOMODO_IMAGE_TAG`), and `mongo` with a tag of its own, so
/// no real image's tag is ever overwritten.
///
/// The tag is `rehearsal` unless `KOMODO_REHEARSAL_TAG` names another (letters, digits, `.`,
/// `_`, `-`): checkouts built side by side on one engine each keep images of their own instead
/// of rebuilding one shared tag from their own binaries under each other's running tests.
pub fn standin_tag() -> String {
    match std::env::var("KOMODO_REHEARSAL_TAG") {
        Ok(t)
            if !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            t
        }
        _ => "rehearsal".to_string(),
    }
}
pub fn mongo_standin_tag() -> String {
    format!("komodo-{}", standin_tag())
}
pub fn mongo_image() -> String {
    format!("mongo:{}", mongo_standin_tag())
}
pub fn core_image() -> String {
    format!("ghcr.io/moghtech/komodo-core:{}", standin_tag())
}
pub fn periphery_image() -> String {
    format!("ghcr.io/moghtech/komodo-periphery:{}", standin_tag())
}
pub fn busybox_image() -> String {
    format!("komodo-rehearsal/busybox:{}", standin_tag())
}

/// What goes into one image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub tag: String,
    /// (host path, path in the image)
    pub files: Vec<(PathBuf, String)>,
    /// Empty directories to create (e.g. mount points, /tmp).
    pub dirs: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageSpec {
    /// An image running `binary` as `/usr/local/bin/<name>`, with its shared libraries.
    pub fn for_binary(tag: &str, binary: &Path) -> Result<ImageSpec, String> {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a file name", binary.display()))?;
        let inside = format!("/usr/local/bin/{name}");
        let mut files = vec![(binary.to_path_buf(), inside.clone())];
        for lib in shared_libraries(binary)? {
            let s = lib.to_string_lossy().into_owned();
            files.push((lib, s));
        }
        Ok(ImageSpec {
            tag: tag.to_string(),
            files,
            dirs: vec!["/tmp".into()],
            entrypoint: vec![inside],
            cmd: Vec::new(),
        })
    }

    /// An image with only Debian's static busybox as `/bin/busybox` (and `/bin/sh`).
    pub fn busybox(tag: &str) -> Result<ImageSpec, String> {
        let bb = PathBuf::from("/bin/busybox");
        if !bb.exists() {
            return Err("/bin/busybox is missing: install busybox-static".into());
        }
        if !shared_libraries(&bb)?.is_empty() {
            return Err("/bin/busybox is dynamically linked: install busybox-static".into());
        }
        Ok(ImageSpec {
            tag: tag.to_string(),
            files: vec![(bb.clone(), "/bin/busybox".into()), (bb, "/bin/sh".into())],
            dirs: vec!["/tmp".into()],
            entrypoint: vec!["/bin/busybox".into()],
            cmd: vec!["sh".into()],
        })
    }

    /// Also copy `host` into the image at `inside` (with its shared libraries if dynamic).
    pub fn with_file(mut self, host: &Path, inside: &str) -> Result<ImageSpec, String> {
        self.files.push((host.to_path_buf(), inside.to_string()));
        for lib in shared_libraries(host)? {
            let s = lib.to_string_lossy().into_owned();
            if !self.files.iter().any(|(_, i)| *i == s) {
                self.files.push((lib, s));
            }
        }
        Ok(self)
    }

    fn dockerfile(&self, hash: &str) -> String {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut d = format!("FROM scratch\nCOPY rootfs/ /\nLABEL {HASH_LABEL}=\"{hash}\"\n");
        if !self.entrypoint.is_empty() {
            d.push_str(&format!("ENTRYPOINT {}\n", json(&self.entrypoint)));
        }
        if !self.cmd.is_empty() {
            d.push_str(&format!("CMD {}\n", json(&self.cmd)));
        }
        d
    }

    /// The build context and the content hash it carries.
    fn context(&self) -> Result<(Vec<u8>, String), String> {
        let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
        for (host, inside) in &self.files {
            let data = std::fs::read(host).map_err(|e| format!("{}: {e}", host.display()))?;
            files.push((format!("rootfs{inside}"), data, 0o755));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = Sha256::new();
        for (p, d, _) in &files {
            h.update(p.as_bytes());
            h.update((d.len() as u64).to_le_bytes());
            h.update(d);
        }
        for d in &self.dirs {
            h.update(d.as_bytes());
        }
        h.update(self.dockerfile("").as_bytes());
        let hash = hex::encode(h.finalize());
        let mut t = TarBuilder::new();
        t.file("Dockerfile", 0o644, self.dockerfile(&hash).as_bytes())?;
        for d in &self.dirs {
            t.dir(&format!("rootfs{d}"))?;
        }
        for (p, d, mode) in &files {
            t.file(p, *mode, d)?;
        }
        Ok((t.finish()?, hash))
    }

    /// Builds the image unless one with the same tag and content hash exists. Returns whether
    /// it built.
    pub async fn ensure(&self, engine: &Engine) -> Result<bool, String> {
        let (tar, hash) = self.context()?;
        if let Ok(img) = engine.raw().inspect_image(&self.tag).await {
            let current = img
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(HASH_LABEL).cloned());
            if current.as_deref() == Some(hash.as_str()) {
                return Ok(false);
            }
        }
        let opts = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(self.tag.clone()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream = engine
            .raw()
            .build_image(opts, None, Some(bollard::body_full(tar.into())));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| format!("build {}: {e}", self.tag))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(format!("build {}: {err}", self.tag));
            }
        }
        Ok(true)
    }
}

/// The shared libraries `binary` needs, loader included, as `ldd` resolves them; empty for a
/// static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits 1 for "not a dynamic executable" (static binaries).
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!("ldd {}: {}", binary.display(), all.trim()));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            return Ok(Vec::new());
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        } else if line.contains("not found") {
            return Err(format!("ldd {}: {line}", binary.display()));
        }
    }
    Ok(libs)
}
