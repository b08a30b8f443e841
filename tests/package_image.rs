//! Issue 22: the OCI image from `scripts/package`, run as the README's `docker run` line says,
//! against the rehearsal stack: `verify` exits 0. The image holds the binary, the libraries it
//! links and empty directories, nothing else, and carries the version and commit as labels.

mod docker_support;
mod e2e_support;
mod package_support;

use package_support::{built, text};
use std::process::Command;

fn inspect(image: &str, format: &str) -> String {
    let o = Command::new("docker")
        .args(["image", "inspect", "-f", format, image])
        .output()
        .expect("docker image inspect");
    assert!(
        o.status.success(),
        "docker image inspect {image}: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Every regular file in the image (from `docker export` of a container never started).
fn files_in(image: &str) -> Vec<String> {
    let o = Command::new("docker")
        .args(["create", image])
        .output()
        .expect("docker create");
    assert!(o.status.success(), "docker create {image}: {}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let sh = format!("docker export {id} | tar -tvf - | awk '$1 ~ /^-/ {{print $NF}}'");
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn image_verifies_the_rehearsal_stack() {
    let test = "image_verifies_the_rehearsal_stack";
    let Some(b) = built(test, &["IMAGE", "VERSION", "COMMIT"]) else {
        return;
    };
    let image = b.get("IMAGE").to_string();
    let commit = b.get("COMMIT").to_string();

    // Labels and what the image holds: no shell, no package manager, the binary and its libraries.
    assert_eq!(
        inspect(
            &image,
            "{{index .Config.Labels \"org.opencontainers.image.version\"}}"
        ),
        b.get("VERSION")
    );
    let rev = inspect(
        &image,
        "{{index .Config.Labels \"org.opencontainers.image.revision\"}}",
    );
    assert!(
        rev.starts_with(commit.trim_end_matches("-dirty")),
        "revision label {rev:?} is not commit {commit}"
    );
    let files = files_in(&image);
    // What the engine puts into every container it creates.
    const ENGINE: [&str; 5] = [
        ".dockerenv",
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
    ];
    for f in &files {
        let f = f.trim_start_matches("./");
        if ENGINE.contains(&f) {
            continue;
        }
        let lib = f.starts_with("lib") || f.starts_with("usr/lib");
        assert!(
            f == "usr/bin/komodo-rotate" || (lib && f.contains(".so")),
            "the image holds {f}, neither the binary nor a library it links: {files:?}"
        );
    }
    assert!(files.iter().any(|f| f.ends_with("libc.so.6")), "{files:?}");

    let rt = e2e_support::rt();
    let Some(f) = rt.block_on(e2e_support::fixture_with(test, "krt-pkg-image", |_| {})) else {
        return;
    };
    let s = &f.stack;
    let dir = s.dir.display().to_string();
    let locks = e2e_support::host_lock_dir(s).display().to_string();
    std::fs::create_dir_all(&locks).unwrap();

    let version = Command::new("docker")
        .args(["run", "--rm", &image, "--version"])
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.status.success() && v.contains(&format!("(commit {commit})")),
        "{}",
        text(&version)
    );

    // The README's line: the Docker socket, compose.env's directory at the same path (here the
    // stack dir, which also holds the config, the state dir and the age key), the host-wide
    // lock dir, host networking (Mongo is published on loopback).
    let o = Command::new("docker")
        .args(["run", "--rm", "--network", "host"])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .args(["-v", &format!("{dir}:{dir}")])
        .args(["-e", &format!("KOMODO_ROTATE_LOCK_DIR={locks}")])
        .args([&image, "verify", "--config"])
        .arg(s.config())
        .output()
        .unwrap();
    let out = e2e_support::finish(o);
    assert_eq!(out.code, Some(0), "verify in the image: {}", out.text());
    assert!(out.stdout.contains("verdict: consistent"), "{}", out.text());
}
