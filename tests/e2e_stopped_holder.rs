//! Issue 24 item 4 end to end: a periphery stopped with `compose stop` before a rotation stays
//! stopped after it, its env holding the new value; the run commits (exit 0) and every plane
//! agrees. Read back with the `docker` CLI.

mod docker_support;
mod e2e_support;

use e2e_support::*;
use std::process::Command;

fn docker_inspect(name: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, name])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker inspect {name}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_stopped_periphery_stays_stopped_with_the_new_value() {
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("stopped_holder", "krt-e2e-stopped", |_| {})) else {
        return;
    };
    let s = &f.stack;
    // `docker compose stop periphery`: SIGTERM, exited under `restart: unless-stopped`.
    rt.block_on(f.engine.stop(&s.periphery, 10)).unwrap();
    assert_eq!(docker_inspect(&s.periphery, "{{.State.Status}}"), "exited");
    let before = docker_inspect(&s.periphery, "{{.Id}}");

    let r = tool(s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let now = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after rotate");
    assert!(!now.ct_eq(&s.env_password), "the secret did not change");
    assert_ne!(docker_inspect(&s.periphery, "{{.Id}}"), before);
    assert_eq!(
        docker_inspect(&s.periphery, "{{.State.Status}}"),
        "created",
        "a stopped holder must stay stopped"
    );
    assert_eq!(docker_inspect(&s.core, "{{.State.Status}}"), "running");
}
