//! The stand-in binaries and the rehearsal images made from them.

use super::image::{busybox_image, core_image, mongo_image, periphery_image, ImageSpec};
use komodo_rotate::docker::Engine;
use std::path::{Path, PathBuf};

/// Where prebuilt stand-ins are, when the caller built them already (`scripts/test` builds the
/// whole workspace once with the test feature set, so a nested `cargo build` with another
/// feature set would compile the shared dependencies a second time).
pub const PREBUILT_ENV: &str = "KOMODO_REHEARSAL_BIN_DIR";

/// The binaries the images are made from.
const STANDINS: [&str; 4] = [
    "mongo-test-server",
    "core-standin",
    "periphery-standin",
    "ferretdb-standin",
];

/// [`build_binaries_with`] without extra features.
pub fn build_binaries() -> Result<PathBuf, String> {
    build_binaries_with(&[])
}

/// The target profile dir holding the workspace's binaries, for tests: `cargo build`s the
/// stand-ins (and mongo-test-server) first so the images hold current code. `features` should
/// repeat the features the calling test was built with (e.g. `komodo-rotate/failpoints`), so
/// the shared library is not compiled a second time with another feature set.
///
/// With [`PREBUILT_ENV`] set, nothing is built: the binaries must already be in that dir.
pub fn build_binaries_with(features: &[&str]) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(PREBUILT_ENV) {
        return prebuilt(PathBuf::from(dir));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "komodo-testcontainers", "--bins"])
        .arg("--manifest-path")
        .arg(&manifest);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cargo build of the stand-ins: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the stand-ins failed: {status}"));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Ok(target.join("debug"))
}

/// `dir` if every stand-in is there, else an error naming the first one missing and the variable.
fn prebuilt(dir: PathBuf) -> Result<PathBuf, String> {
    match STANDINS.iter().find(|b| !dir.join(b).is_file()) {
        None => Ok(dir),
        Some(b) => Err(format!(
            "{PREBUILT_ENV}={}: {b} is missing there (build the workspace's tests first, or unset it)",
            dir.display()
        )),
    }
}

/// The FerretDB variant's images ([`crate::ferret::image`]): the PostgreSQL image (Debian's
/// postgresql-15, built once, reused by a tag derived from its inputs) and the FerretDB-shaped
/// front end's. Returns the PostgreSQL image's tag.
pub async fn ensure_ferret_images(engine: &Engine, bin_dir: &Path) -> Result<String, String> {
    let tag = crate::ferret::image::ensure_postgres_image(engine).await?;
    crate::ferret::image::ensure_ferretdb_image(engine, bin_dir).await?;
    Ok(tag)
}

/// Builds (or reuses) the four rehearsal images from the binaries in `bin_dir`.
pub async fn ensure_images(engine: &Engine, bin_dir: &Path) -> Result<(), String> {
    let bin = |n: &str| {
        let p = bin_dir.join(n);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{} is missing: cargo build -p komodo-testcontainers --bins",
                p.display()
            ))
        }
    };
    let mut mongo = ImageSpec::for_binary(&mongo_image(), &bin("mongo-test-server")?)?;
    mongo.dirs.push("/data/db".into());
    mongo.cmd = ["--bind", "0.0.0.0:27017", "--data-dir", "/data/db"]
        .map(String::from)
        .to_vec();
    let mut core = ImageSpec::for_binary(&core_image(), &bin("core-standin")?)?;
    core.dirs.push("/control".into());
    let periphery = ImageSpec::for_binary(&periphery_image(), &bin("periphery-standin")?)?;
    for spec in [
        mongo,
        core,
        periphery,
        ImageSpec::busybox(&busybox_image())?,
    ] {
        spec.ensure(engine).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prebuilt_dir_must_hold_every_stand_in() {
        let d = tempfile::tempdir().unwrap();
        let e = prebuilt(d.path().to_path_buf()).unwrap_err();
        assert!(
            e.contains(PREBUILT_ENV) && e.contains("mongo-test-server is missing"),
            "{e}"
        );
        for b in STANDINS.iter().take(2) {
            std::fs::write(d.path().join(b), b"").unwrap();
        }
        let e = prebuilt(d.path().to_path_buf()).unwrap_err();
        assert!(e.contains("periphery-standin is missing"), "{e}");
        std::fs::write(d.path().join(STANDINS[2]), b"").unwrap();
        let e = prebuilt(d.path().to_path_buf()).unwrap_err();
        assert!(e.contains("ferretdb-standin is missing"), "{e}");
        std::fs::write(d.path().join(STANDINS[3]), b"").unwrap();
        assert_eq!(prebuilt(d.path().to_path_buf()).unwrap(), d.path());
    }
}
