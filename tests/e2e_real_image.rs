//! Image mode (issue 20 item 3) end to end. No real Komodo image can be pulled here, so the test
//! plays one: `stack::imitation` builds the stand-in binaries under the real images' binary
//! names, core with `bash` (as Komodo's Debian-slim image), no `/control` mount point, tagged
//! `komodo-rotate-test/imitation-*` (not the stand-ins' tags). The variables are set as an
//! operator sets them; the stack must run exactly those images with none of the stand-ins'
//! controls (a compose file still calling `core-standin --healthcheck` would leave core
//! unhealthy here), and the tool must rotate and verify on it. A test that names a stand-in-only
//! control fails by name in that mode instead of passing.

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_testcontainers::stack::real::{self, StandinControl};
use komodo_testcontainers::stack::{compose, imitation};
use std::process::Command;

/// `docker inspect` (the CLI) of `name`: image, healthcheck command, mount destinations.
fn inspect(name: &str) -> (String, String, String) {
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.Config.Image}}\n{{json .Config.Healthcheck}}\n{{range .Mounts}}{{.Destination}} {{end}}",
            name,
        ])
        .output()
        .expect("docker inspect");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut l = text.lines().map(String::from);
    (
        l.next().unwrap_or_default(),
        l.next().unwrap_or_default(),
        l.next().unwrap_or_default(),
    )
}

/// The container's ID, by the `docker` CLI.
fn container_id(name: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", name])
        .output()
        .expect("docker inspect");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn image_mode_runs_the_named_images_without_any_stand_in_control() {
    let t0 = std::time::Instant::now();
    require_failpoints();
    let rt = rt();
    let Some(engine) = rt.block_on(docker_support::engine_or_skip("image_mode")) else {
        return;
    };
    let bin = rt.block_on(docker_support::images(&engine));
    let imitations = rt
        .block_on(imitation::ensure_imitations(&engine, &bin))
        .expect("the imitation images");
    let (core_image, periphery_image) = (
        imitations.core.clone().unwrap(),
        imitations.periphery.clone().unwrap(),
    );
    // As an operator sets them (under nextest this test is a process of its own).
    std::env::set_var(real::CORE_IMAGE_ENV, &core_image);
    std::env::set_var(real::PERIPHERY_IMAGE_ENV, &periphery_image);

    // A test needing a stand-in-only control fails by name, never passes without its check.
    // (A name of no real test: through a const, so the profile's list check does not count it.)
    const STANDIN_TEST: &str = "a_standin_test";
    for control in [StandinControl::FailNextStart, StandinControl::PasskeyProbe] {
        let why = std::panic::catch_unwind(|| real::require_standin(STANDIN_TEST, control))
            .expect_err("require_standin must refuse in image mode");
        let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            why.starts_with(&format!("a_standin_test needs {}", control.name()))
                && why.contains("--profile real-images"),
            "{why}"
        );
    }

    let Some(f) = rt.block_on(fixture_with("image_mode", "krt-realimage", |_| {})) else {
        return;
    };
    let s = &f.stack;
    // Healthy (the fixture waited for core's healthcheck: GET /version with the image's bash).
    let (image, health, mounts) = inspect(&s.core);
    assert_eq!(image, core_image);
    assert!(health.contains("/version"), "{health}");
    assert!(!health.contains("core-standin"), "{health}");
    assert!(!mounts.split(' ').any(|m| m == "/control"), "{mounts}");
    let (image, health, _) = inspect(&s.periphery);
    assert_eq!(image, periphery_image);
    assert_eq!(
        health, "null",
        "periphery: no healthcheck, as the official file"
    );
    let file = std::fs::read_to_string(s.dir.join(compose::COMPOSE_FILE)).unwrap();
    for gone in ["core-standin", "periphery-standin", "./control:/control"] {
        assert!(!file.contains(gone), "{gone} in the compose file:\n{file}");
    }

    // The tool on it: verify, a rotation with its health gates, verify again.
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    let r = tool(s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let now = rt
        .block_on(agreed(&f.engine, s))
        .expect("one value everywhere");
    assert!(!now.ct_eq(&s.env_password), "rotated");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert_eq!(
        inspect(&s.core).0,
        core_image,
        "the recreated core keeps the image"
    );
    assert_eq!(inspect(&s.periphery).0, periphery_image);

    // An image the engine lacks stops `up` by the variable's name before anything is touched:
    // the running stack of the same project is still there, same containers.
    let core_id = container_id(&s.core);
    std::env::set_var(real::CORE_IMAGE_ENV, "komodo-rotate-test/not-loaded:1");
    let opts = komodo_testcontainers::stack::StackOptions::new(&s.project, &s.dir, &bin);
    let e = rt
        .block_on(komodo_testcontainers::stack::up(&f.engine, &opts))
        .expect_err("a missing image");
    assert!(
        e.starts_with(
            "KOMODO_ROTATE_TEST_CORE_IMAGE=komodo-rotate-test/not-loaded:1: no such image"
        ),
        "{e}"
    );
    assert_eq!(container_id(&s.core), core_id, "the stack was left alone");
    eprintln!("image_mode: all checks in {:?}", t0.elapsed());
}
