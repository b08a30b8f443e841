//! Shared helpers of the Docker tests: an engine or a documented skip (a failure under CI=true),
//! the stand-in images, and cleanup that runs even when a test panics.

#![allow(dead_code)]

// One file, included by each support module a test binary may combine.
#[allow(clippy::duplicate_mod)]
#[path = "../common/ci.rs"]
pub mod ci;

use komodo_rotate::docker::Engine;
use komodo_testcontainers::stack;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The engine, or `None` with a printed reason. Under `CI=true` a missing engine fails the test.
pub async fn engine_or_skip(test: &str) -> Option<Engine> {
    match Engine::connect().await {
        Ok(e) => Some(e),
        Err(e) => {
            if ci::under_ci() {
                panic!("{test}: CI=true and no Docker engine is reachable: {e}");
            }
            eprintln!(
                "SKIP {test}: no Docker engine reachable ({e}); set CI=true to make this fail"
            );
            None
        }
    }
}

/// Builds the workspace's stand-in binaries once per test process and the images from them.
pub async fn images(engine: &Engine) -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = match BIN.get() {
        Some(b) => b.clone(),
        None => {
            let features: &[&str] = if cfg!(feature = "failpoints") {
                &["komodo-rotate/failpoints"]
            } else {
                &[]
            };
            let b = tokio::task::spawn_blocking(move || stack::build_binaries_with(features))
                .await
                .expect("join")
                .expect("build stand-ins");
            BIN.get_or_init(|| b).clone()
        }
    };
    stack::ensure_images(engine, &bin).await.expect("images");
    bin
}

/// Removes everything of `project` when dropped, also after a panic.
pub struct Cleanup {
    pub project: String,
    pub dir: Option<PathBuf>,
}

impl Cleanup {
    pub fn new(project: &str) -> Cleanup {
        Cleanup {
            project: project.to_string(),
            dir: None,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let project = self.project.clone();
        let dir = self.dir.clone();
        // A fresh runtime on its own thread: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(engine) = Engine::connect().await {
                    if let Err(e) = stack::down(&engine, &project, dir.as_deref()).await {
                        eprintln!("cleanup of {project}: {e}");
                    }
                }
            })
        })
        .join();
    }
}
