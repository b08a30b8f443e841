//! Images that play real Komodo images in image mode's own tests (no real image can be pulled
//! on the build machines): the stand-in binaries under the real images' binary names
//! (`/usr/local/bin/core`, `/usr/local/bin/periphery`), core with `bash` as in Komodo's
//! Debian-slim images, no `/control` mount point, tagged `komodo-rotate-test/imitation-…`
//! (never the stand-ins' names). A compose file that still used a stand-in-only control (the
//! stand-ins' healthcheck commands, the control mount) fails with them.

use super::image::{standin_tag, ImageSpec};
use super::real::RealImages;
use komodo_rotate::docker::Engine;
use std::path::Path;

pub fn core_imitation() -> String {
    format!("komodo-rotate-test/imitation-core:{}", standin_tag())
}

pub fn periphery_imitation() -> String {
    format!("komodo-rotate-test/imitation-periphery:{}", standin_tag())
}

/// Builds (or reuses) both imitations from the stand-ins in `bin_dir`; returns them as the
/// images of image mode.
pub async fn ensure_imitations(engine: &Engine, bin_dir: &Path) -> Result<RealImages, String> {
    let bare = |tag: String, inside: &str| ImageSpec {
        tag,
        files: Vec::new(),
        dirs: vec!["/tmp".into()],
        entrypoint: vec![inside.to_string()],
        cmd: Vec::new(),
    };
    let core = bare(core_imitation(), "/usr/local/bin/core")
        .with_file(&bin_dir.join("core-standin"), "/usr/local/bin/core")?
        .with_file(Path::new("/bin/bash"), "/bin/bash")?;
    let periphery = bare(periphery_imitation(), "/usr/local/bin/periphery").with_file(
        &bin_dir.join("periphery-standin"),
        "/usr/local/bin/periphery",
    )?;
    core.ensure(engine).await?;
    periphery.ensure(engine).await?;
    Ok(RealImages {
        core: Some(core_imitation()),
        periphery: Some(periphery_imitation()),
    })
}
