//! Discovery leaves `compose run` one-offs out (issue 24 item 4): a project whose core service
//! also has an exited one-off (`com.docker.compose.oneoff=True`, as compose labels them) is
//! still one core, and the one-off is named so callers can say it was left out. Before, the
//! one-off made discovery fail with "2 containers" (and a holder one-off would be recreated and
//! started, re-running its command).
//!
//! Containers are only created (never started) from an empty image, with compose's labels set
//! by hand: no stack needed.

mod docker_support;

use docker_support::engine_or_skip;
use komodo_rotate::docker::{Deployment, DiscoverySpec};
use std::io::Write;
use std::process::{Command, Stdio};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn empty_image() -> String {
    let tag = "krt-compose-values-empty:1".to_string();
    let mut child = Command::new("docker")
        .args(["import", "-", &tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&[0u8; 1024]).unwrap();
    assert!(child.wait().unwrap().success(), "docker import");
    tag
}

struct Gone(Vec<String>);

impl Drop for Gone {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", n]).output();
        }
    }
}

#[test]
fn one_offs_are_left_out_of_discovery_and_named() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(engine) = rt.block_on(engine_or_skip("docker_oneoff")) else {
        return;
    };
    let image = empty_image();
    let project = format!("krt-oneoff-{}", std::process::id());
    let mut made = Vec::new();
    let mut create = |name: &str, service: &str, oneoff: &str| {
        docker(&[
            "create",
            "--name",
            name,
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service={service}"),
            "--label",
            &format!("com.docker.compose.oneoff={oneoff}"),
            &image,
            "/none",
        ]);
        made.push(name.to_string());
    };
    let p = project.clone();
    create(&format!("{p}_mongo_1"), "mongo", "False");
    create(&format!("{p}_core_1"), "core", "False");
    create(&format!("{p}_periphery_1"), "periphery", "False");
    create(&format!("{p}_core_run_1a2b3c"), "core", "True");
    create(&format!("{p}_periphery_run_4d5e6f"), "periphery", "True");
    let _gone = Gone(made);

    let spec = DiscoverySpec {
        project: project.clone(),
        ..DiscoverySpec::default()
    };
    let d = rt
        .block_on(Deployment::discover(&engine, &spec))
        .expect("one core, one periphery: the one-offs are left out");
    assert_eq!(d.core, format!("{p}_core_1"));
    assert_eq!(d.mongo, format!("{p}_mongo_1"));
    assert_eq!(d.periphery, vec![format!("{p}_periphery_1")]);
    assert_eq!(
        d.oneoffs,
        vec![
            format!("{p}_core_run_1a2b3c"),
            format!("{p}_periphery_run_4d5e6f")
        ]
    );
}
