//! Issue 24's "Done when": the rehearsal stack with the shapes override (periphery in a
//! sidecar's network namespace, `network_mode: service:sidecar`; an anonymous volume on core,
//! `- /var/lib/komodo-anon`). A rotation keeps both as they were, and the next
//! `docker-compose up -d` keeps them too (core is recreated by compose, the volume carried over
//! again). The `docker` CLI is the referee.

mod docker_support;
mod e2e_support;

use e2e_support::*;
use std::process::Command;

const ANON: &str = "/var/lib/komodo-anon";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name])
}

/// The anonymous volume mounted at [`ANON`] in `name`.
fn anon_volume(name: &str) -> String {
    let f = format!("{{{{range .Mounts}}}}{{{{if eq .Destination \"{ANON}\"}}}}{{{{.Name}}}}{{{{end}}}}{{{{end}}}}");
    inspect(name, &f)
}

/// Removes the anonymous volumes named when dropped: declared before the fixture, it drops
/// after the stack's containers are gone.
#[derive(Default)]
struct VolumesGone(Vec<String>);

impl Drop for VolumesGone {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}

#[test]
fn a_rotation_keeps_the_sidecar_namespace_and_the_anonymous_volume() {
    let rt = rt();
    require_failpoints();
    let mut volumes = VolumesGone::default();
    let Some(f) = rt.block_on(fixture_with("shapes", "krt-e2e-shapes", |o| {
        o.shapes = true
    })) else {
        return;
    };
    let s = &f.stack;
    let sidecar = rt
        .block_on(komodo_rotate::docker::discovery::one_service(
            &f.engine, &s.project, "sidecar",
        ))
        .expect("the sidecar service");
    let sidecar_id = inspect(&sidecar, "{{.Id}}");
    let joined = format!("container:{sidecar_id}");
    assert_eq!(inspect(&s.periphery, "{{.HostConfig.NetworkMode}}"), joined);
    let vol = anon_volume(&s.core);
    assert!(!vol.is_empty(), "core has an anonymous volume at {ANON}");
    volumes.0.push(vol.clone());
    // A marker in the volume, written from the host side.
    let mountpoint = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &vol]);
    std::fs::write(format!("{mountpoint}/marker"), "kept").expect("marker");
    let (core_before, periphery_before) = (
        inspect(&s.core, "{{.Id}}"),
        inspect(&s.periphery, "{{.Id}}"),
    );

    let r = tool(s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let now = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after rotate");
    assert!(!now.ct_eq(&s.env_password), "the secret did not change");
    // Both holders were recreated, each keeping its shape.
    assert_ne!(inspect(&s.core, "{{.Id}}"), core_before);
    assert_ne!(inspect(&s.periphery, "{{.Id}}"), periphery_before);
    assert_eq!(
        inspect(&sidecar, "{{.Id}}"),
        sidecar_id,
        "the sidecar holds no secret"
    );
    assert_eq!(inspect(&s.periphery, "{{.HostConfig.NetworkMode}}"), joined);
    assert_eq!(inspect(&s.periphery, "{{.State.Status}}"), "running");
    assert_eq!(anon_volume(&s.core), vol, "the same anonymous volume");
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/marker")).unwrap(),
        "kept"
    );
    assert_eq!(inspect(&s.core, "{{.State.Health.Status}}"), "healthy");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());

    // The deploy after the rotation: compose recreates core (its config hash was dropped) and
    // carries the volume over itself; the planes still agree.
    s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    assert_eq!(anon_volume(&s.core), vol);
    assert_eq!(inspect(&s.periphery, "{{.HostConfig.NetworkMode}}"), joined);
    let after = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after compose up -d");
    assert!(after.ct_eq(&now));
}
