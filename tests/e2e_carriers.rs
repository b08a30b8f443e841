//! Issue 11 item 3, carriers, end to end on the rehearsal stack and a real Docker engine: a core
//! that reads the DB password inside `KOMODO_DATABASE_URI`, or from `KOMODO_DATABASE_PASSWORD_FILE`
//! bind-mounted from a host file. First the stand-in itself: it must really read each carrier
//! (and let it win over the plain key, as real core does), or the rotation tests below could
//! not fail. The cases share the engine, so they run one at a time.

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_testcontainers::stack::{self, CoreCarrier, Stack, StackOptions};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Fixture {
    engine: Engine,
    stack: Stack,
    _dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

async fn fixture(test: &str, project: &str, carrier: CoreCarrier) -> Option<Fixture> {
    let engine = engine_or_skip(test).await?;
    if !require_tools(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = images(&engine).await;
    let mut opts = StackOptions::new(project, dir.path(), &bin);
    opts.core_carrier = carrier;
    let stack = stack::up(&engine, &opts).await.expect("rehearsal up");
    Some(Fixture {
        engine,
        stack,
        _dir: dir,
        _cleanup: cleanup,
    })
}

async fn core(engine: &Engine, s: &Stack) -> ContainerInfo {
    ContainerInfo::load(engine, &s.core).await.expect("core")
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
    s.compose().run_ok(&["restart", "core"]).expect("restart core");
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
    assert!(pw.ct_eq(&s.env_password), "compose interpolated the password");
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
