//! Issue 11 item 3, carriers, end to end on the rehearsal stack and a real Docker engine: a core
//! that reads the DB password inside `KOMODO_DATABASE_URI`, or from `KOMODO_DATABASE_PASSWORD_FILE`
//! bind-mounted from a host file. First the stand-in itself: it must really read each carrier
//! (and let it win over the plain key, as real core does), or the rotation tests below could
//! not fail. The cases share the engine (see `SERIAL` on how they are scheduled).

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, CoreCarrier, Stack};
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

async fn core(engine: &Engine, s: &Stack) -> ContainerInfo {
    ContainerInfo::load(engine, &s.core).await.expect("core")
}

async fn fixture(test: &str, project: &str, carrier: CoreCarrier) -> Option<Fixture> {
    fixture_with(test, project, |o| o.core_carrier = carrier).await
}

#[test]
fn the_stand_in_reads_a_password_file_through_its_bind_mount_and_it_wins() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture(
        "stand-in password file",
        "krt-car-standin-file",
        CoreCarrier::PasswordFile,
    )) else {
        return;
    };
    let s = &f.stack;
    let c = rt.block_on(core(&f.engine, s));
    assert_eq!(
        c.env_value("KOMODO_DATABASE_PASSWORD_FILE")
            .map(|v| v.expose()),
        Some("/run/secrets/db_password")
    );
    let host = komodo_rotate::docker::carrier::host_path(
        &c.mounts,
        "KOMODO_DATABASE_PASSWORD_FILE",
        "/run/secrets/db_password",
    )
    .expect("a bind mount");
    assert_eq!(host, s.password_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&host).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // A wrong password in the file, the plain key still right: core must fail (the file wins).
    write_atomic(&host, b"not-the-password\n", Mode::KeepOr0600).unwrap();
    s.compose()
        .run_ok(&["restart", "core"])
        .expect("restart core");
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on a wrong password file");
}

#[test]
fn the_stand_in_reads_the_database_uri_and_it_wins() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture(
        "stand-in uri",
        "krt-car-standin-uri",
        CoreCarrier::Uri,
    )) else {
        return;
    };
    let s = &f.stack;
    let c = rt.block_on(core(&f.engine, s));
    let uri = c.env_value("KOMODO_DATABASE_URI").expect("core has a URI");
    let pw = komodo_rotate::docker::uri::password("KOMODO_DATABASE_URI", uri).unwrap();
    assert!(
        pw.ct_eq(&s.env_password),
        "compose interpolated the password"
    );
    // A wrong password in the URI only (the plain key still right): core must fail.
    let file = s.dir.join(stack::compose::COMPOSE_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    let wrong = text.replace(
        "mongodb://${KOMODO_DATABASE_USERNAME}:${KOMODO_DATABASE_PASSWORD}@",
        "mongodb://${KOMODO_DATABASE_USERNAME}:wrong-password@",
    );
    assert_ne!(text, wrong);
    std::fs::write(&file, wrong).unwrap();
    s.compose()
        .run_ok(&["up", "-d", "--no-deps", "core"])
        .expect("up core");
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on a wrong URI password");
}

const URI_KEY: &str = "KOMODO_DATABASE_URI";

/// Core's URI, and the password inside it.
async fn core_uri(engine: &Engine, s: &Stack) -> (Secret, Secret) {
    let c = core(engine, s).await;
    let uri = c.env_value(URI_KEY).expect("core has the URI").clone();
    let pw = komodo_rotate::docker::uri::password(URI_KEY, &uri).expect("a password");
    (uri, pw)
}

/// All three planes and the carrier agree on `want`; the real sops is the referee of
/// compose.env; core is healthy and no journal is left.
async fn all_on(engine: &Engine, s: &Stack, want: &Secret, carrier: &str) {
    let agreed = agreed(engine, s).await.expect("the planes agree");
    assert!(
        agreed.ct_eq(want),
        "{carrier}: the planes agree on the other value"
    );
    assert!(
        sops_value(s).is_some_and(|v| v.ct_eq(want)),
        "{carrier}: the real sops reads another value from compose.env"
    );
    assert_eq!(pymongo_login(s, want), 0, "{carrier}: pymongo refuses it");
    stack::wait_healthy(engine, &s.core, Duration::from_secs(60))
        .await
        .expect("core healthy");
    assert!(!s.dir.join("state/journal/current.json").exists());
}

fn rotate(s: &Stack, failpoints: Option<&str>) -> Run {
    match failpoints {
        Some(fp) => tool(s, &["rotate"], &[("FAILPOINTS", fp)]),
        None => tool(s, &["rotate"], &[]),
    }
}

#[test]
fn a_core_reading_the_database_uri_rotates_and_rolls_back() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("uri rotate", "krt-car-uri", CoreCarrier::Uri)) else {
        return;
    };
    let s = &f.stack;
    let old = s.env_password.clone();
    let (uri_before, _) = rt.block_on(core_uri(&f.engine, s));

    // The plan names the URI; a dry run changes nothing.
    let dry = tool(s, &["rotate", "--dry-run"], &[]);
    assert_eq!(dry.code, Some(0), "{}", dry.text());

    // Rolled back after every step ran (the proof before commit included): all old.
    let r = rotate(s, Some("before:commit=return"));
    assert_eq!(r.code, Some(4), "{}", r.text());
    fired::assert_own_failpoint(s, &r, "uri rollback", "before:commit");
    rt.block_on(all_on(&f.engine, s, &old, "uri rollback"));
    let (uri_now, pw_now) = rt.block_on(core_uri(&f.engine, s));
    assert!(pw_now.ct_eq(&old), "the URI is back on OLD");
    assert!(uri_now.ct_eq(&uri_before), "the URI is back byte for byte");

    // Rotated: the URI carries NEW, every other byte as it was.
    let r = rotate(s, None);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let new = sops_value(s).expect("sops reads compose.env");
    assert!(!new.ct_eq(&old));
    rt.block_on(all_on(&f.engine, s, &new, "uri rotate"));
    let (uri_now, pw_now) = rt.block_on(core_uri(&f.engine, s));
    assert!(pw_now.ct_eq(&new), "the URI carries NEW");
    let back = uri_now.expose().replacen(new.expose(), old.expose(), 1);
    assert_eq!(back, uri_before.expose(), "only the password changed");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    e2e_support::leak::assert_no_leak_anywhere(s, &[&old, &new, &s.passkey], &[]);
}

#[test]
fn a_core_reading_a_password_file_rotates_and_rolls_back() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture(
        "file rotate",
        "krt-car-file",
        CoreCarrier::PasswordFile,
    )) else {
        return;
    };
    let s = &f.stack;
    let old = s.env_password.clone();
    let file = s.password_file();
    use std::os::unix::fs::MetadataExt;
    let md_before = std::fs::metadata(&file).unwrap();
    let body = |pw: &Secret| format!("{}\n", pw.expose()).into_bytes();

    // Rolled back after the file was written and core recreated on it: the file holds OLD
    // again, with its mode, and core (restarted on it) is healthy on OLD.
    let r = rotate(s, Some("before:commit=return"));
    assert_eq!(r.code, Some(4), "{}", r.text());
    fired::assert_own_failpoint(s, &r, "file rollback", "before:commit");
    assert!(r.stderr.contains("write-file"), "{}", r.text());
    rt.block_on(all_on(&f.engine, s, &old, "file rollback"));
    assert_eq!(std::fs::read(&file).unwrap(), body(&old));
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (md.mode(), md.uid(), md.gid()),
        (md_before.mode(), md_before.uid(), md_before.gid())
    );

    // Rotated: the host file holds NEW (same mode and owner); core reads it.
    let r = rotate(s, None);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let new = sops_value(s).expect("sops reads compose.env");
    assert!(!new.ct_eq(&old));
    rt.block_on(all_on(&f.engine, s, &new, "file rotate"));
    assert_eq!(std::fs::read(&file).unwrap(), body(&new));
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (md.mode(), md.uid(), md.gid()),
        (md_before.mode(), md_before.uid(), md_before.gid())
    );
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert!(
        v.stdout.contains(&format!("file {}", file.display())),
        "{}",
        v.text()
    );
    e2e_support::leak::assert_no_leak_anywhere(s, &[&old, &new, &s.passkey], &[]);
}
