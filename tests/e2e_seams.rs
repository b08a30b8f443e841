//! Issue 18's seams end to end on the rehearsal stack, read back from outside the tool (the
//! `docker` CLI, the real `sops`, pymongo):
//! - item 3: holders no role knows. A `backup` service with `env_file: compose.env` and a
//!   sidecar with `MONGO_URL=mongodb://u:PW@mongo/` are recreated by the rotation with the new
//!   value (and put back by its rollback); a service carrying the password inside a command
//!   line is refused by name (exit 3, nothing changed).

mod docker_support;
mod e2e_support;

use e2e_support::referee::docker_env;
use e2e_support::*;
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Stack};

/// Services added to the stack's compose file (before its `volumes:`), then started.
fn add_services(s: &Stack, yaml: &str, names: &[&str]) {
    let p = s.compose().compose_file();
    let text = std::fs::read_to_string(&p).unwrap();
    let at = text
        .find("\nvolumes:\n")
        .expect("the compose file's volumes");
    let mut out = text.clone();
    out.insert_str(at, &format!("\n{yaml}"));
    std::fs::write(&p, out).unwrap();
    let mut args = vec!["up", "-d", "--no-deps"];
    args.extend_from_slice(names);
    s.compose()
        .run_ok(&args)
        .expect("compose up the added services");
}

/// A service of the busybox image that sleeps, with `extra` lines (indented 4) added.
fn service(name: &str, extra: &str) -> String {
    format!(
        "  {name}: # test: a holder no role knows\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    init: true\n    stop_grace_period: 2s\n{extra}",
        stack::busybox_image()
    )
}

fn uri_password(uri: &Secret) -> String {
    let text = uri.expose();
    let after = &text[text.find("://").unwrap() + 3..text.rfind('@').unwrap()];
    after.split_once(':').unwrap().1.to_string()
}

#[test]
fn holders_outside_the_roles_are_patched_and_undone_other_forms_refused_by_name() {
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with(
        "seams_holders",
        "krt-e2e-seams-holders",
        |_| {},
    )) else {
        return;
    };
    let s = &f.stack;
    let old = s.env_password.clone();
    let backup = stack::container_name(&s.project, "backup");
    let sidecar = stack::container_name(&s.project, "sidecar");
    let dump = stack::container_name(&s.project, "dump");
    add_services(
        s,
        &format!(
            "{}{}{}",
            service("backup", "    env_file: ${KOMODO_ENV_FILE:-./compose.env}\n"),
            service(
                "sidecar",
                "    environment:\n      MONGO_URL: mongodb://${KOMODO_DATABASE_USERNAME}:${KOMODO_DATABASE_PASSWORD}@mongo:27017/?authSource=admin\n"
            ),
            service(
                "dump",
                "    environment:\n      DUMP_ARGS: --gzip --password=${KOMODO_DATABASE_PASSWORD} --archive\n"
            ),
        ),
        &["backup", "sidecar", "dump"],
    );
    assert!(docker_env(&backup, PW_KEY).unwrap().ct_eq(&old));

    // Inside a command line: no step rewrites it. Refused by container and key, nothing changed.
    let r = tool(s, &["rotate"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr
            .contains(&format!("{dump} carries it inside DUMP_ARGS")),
        "{}",
        r.text()
    );
    assert!(rt.block_on(agreed(&f.engine, s)).unwrap().ct_eq(&old));
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    assert!(v.stdout.contains(&format!("holder {dump}")), "{}", v.text());
    s.compose()
        .run_ok(&["rm", "-s", "-f", "dump"])
        .expect("compose rm dump");

    // The plain and the URI holder are part of the run: verify names them, fine.
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert!(
        v.stdout.contains(&format!("holder {backup}")),
        "{}",
        v.text()
    );
    assert!(
        v.stdout.contains(&format!("holder {sidecar}")),
        "{}",
        v.text()
    );

    // A run that fails at its last step puts them back too.
    let (b_id, s_id) = (
        referee::docker_inspect(&backup).unwrap()["Id"].clone(),
        referee::docker_inspect(&sidecar).unwrap()["Id"].clone(),
    );
    let r = tool(s, &["rotate"], &[("FAILPOINTS", "before:commit=return")]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(
        r.stderr.contains(&format!("recreate:{backup}")),
        "{}",
        r.text()
    );
    assert!(docker_env(&backup, PW_KEY).unwrap().ct_eq(&old));
    assert_eq!(
        uri_password(&docker_env(&sidecar, "MONGO_URL").unwrap()),
        old.expose()
    );
    assert_eq!(referee::docker_inspect(&backup).unwrap()["Id"], b_id);
    assert_eq!(referee::docker_inspect(&sidecar).unwrap()["Id"], s_id);
    assert!(rt.block_on(agreed(&f.engine, s)).unwrap().ct_eq(&old));

    // The rotation: both recreated with the new value (the URI keeps every other byte).
    let r = tool(s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let new = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(!new.ct_eq(&old));
    assert!(docker_env(&backup, PW_KEY).unwrap().ct_eq(&new));
    let url = docker_env(&sidecar, "MONGO_URL").unwrap();
    assert_eq!(uri_password(&url), new.expose());
    assert!(url.expose().starts_with("mongodb://admin:"));
    assert!(url.expose().ends_with("@mongo:27017/?authSource=admin"));
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    leak::assert_no_leak_anywhere(s, &[&old, &new], &[]);
}

/// Starts `komodo-rotate ARGS --config <stack config>` with `env` as `tool` does, without
/// waiting for it.
fn spawn_tool(s: &Stack, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut c = std::process::Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(s.config())
        .env_remove("FAILPOINTS")
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(s))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("run komodo-rotate")
}

/// Waits (at most 120 s) until `p` exists.
fn wait_for(p: &std::path::Path) {
    let t0 = std::time::Instant::now();
    while !p.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Issue 18 item 13: a real `sops set` of another key lands between write-env's read of
/// compose.env and its rename. write-env compares the bytes right before the rename: the edit is
/// kept, nothing of the run reaches the file, the run rolls back (exit 4, all old).
#[test]
fn an_edit_made_in_write_envs_window_is_kept_and_the_run_rolls_back() {
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("seams_cas", "krt-e2e-seams-cas", |_| {})) else {
        return;
    };
    let s = &f.stack;
    let old = s.env_password.clone();
    let written = s.dir.join("state/journal/compose.env.written");
    let child = spawn_tool(
        s,
        &["rotate"],
        &[("FAILPOINTS", "write-env:before-rename=sleep(4000)")],
    );
    // write-env records its hash, then writes the temp file and waits in the window.
    wait_for(&written);
    let colleague = Secret::new("set-by-a-colleague-meanwhile".into());
    {
        let _stopped = pause(child.id());
        by_hand::sops_set_by_hand(s, "KOMODO_TITLE", &colleague);
    }
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(
        r.stderr.contains("changed since write-env read it"),
        "{}",
        r.text()
    );
    assert!(sops_get(s, "KOMODO_TITLE").unwrap().ct_eq(&colleague));
    assert!(rt.block_on(agreed(&f.engine, s)).unwrap().ct_eq(&old));
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
}

/// Issue 18 item 13: a SIGKILL inside write-file (the temp file written, before its rename)
/// leaves the new password in plaintext beside the carrier file. verify names the temp file;
/// the next run (resume) removes it and finishes.
#[test]
fn a_killed_write_files_temp_is_named_by_verify_and_removed_by_the_next_run() {
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("seams_temp", "krt-e2e-seams-temp", |o| {
        o.core_carrier = stack::CoreCarrier::PasswordFile;
    })) else {
        return;
    };
    let s = &f.stack;
    let r = tool(
        s,
        &["rotate"],
        &[("FAILPOINTS", "write-file:before-rename=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let temps: Vec<std::path::PathBuf> = std::fs::read_dir(s.password_file().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    let row = v
        .stdout
        .lines()
        .find(|l| l.starts_with("temp-files"))
        .unwrap_or_else(|| panic!("no temp-files row:\n{}", v.stdout));
    assert!(row.contains(&temps[0].display().to_string()), "{row}");
    let r = tool(s, &["resume"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(!temps[0].exists(), "the next run removes the temp file");
    let new = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(!new.ct_eq(&s.env_password));
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
}
