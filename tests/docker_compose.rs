//! The rehearsal stack as users run it: made by `docker-compose` 1.29 from Komodo-shaped compose
//! files, compose.env SOPS-encrypted and decrypted into a 0600 temp file per compose call.
//!
//! - After `rotate` (v2) and after `rescue` (v1, the incident), the next `compose up -d` from
//!   the rotated compose.env converges: core healthy with the value compose.env holds, Mongo
//!   accepts it, exactly the three compose containers (no `-prev`/`-next`, no orphan), `verify`
//!   exits 0, `compose ps` and `compose down` work on what the tool recreated.
//! - The mirror that proves the check can fail: after another rotate, compose.env put back to
//!   the value before it makes `compose up -d` recreate core with it (the tool's replacement
//!   carries no stale `config-hash`), core crash-loops and `verify` exits 1.
//! - `init` finds each deployment by its compose labels and writes a config `verify` accepts.

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::{finish, rt, tool, Run, BIN};
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::mongo::{login_works, LoginOutcome, Target};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Generation, Stack, StackOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

fn env_value(s: &Stack, key: &str) -> Secret {
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(key)
        .unwrap()
}

/// compose.env's `key` set to `value` with the tool's own `sops set` (value on stdin).
fn set_env(s: &Stack, key: &str, value: &Secret) {
    let mut child = Command::new(BIN)
        .args(["sops", "set"])
        .arg(s.compose_env())
        .arg(key)
        .arg("--age-key-file")
        .arg(s.age_key())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.expose().as_bytes())
        .unwrap();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, Some(0), "sops set: {}", r.text());
}

/// Names of every container of the project (compose's label), sorted.
async fn project_containers(engine: &Engine, project: &str) -> Vec<String> {
    let mut names: Vec<String> = engine
        .list_by_labels(&[("com.docker.compose.project", project)])
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    names.sort();
    names
}

/// After `compose up -d`: core healthy holding `value` under `core_keys`, periphery under
/// `periphery_key` (its copy through env_file), Mongo
/// accepts it, and the project is exactly compose's three containers.
async fn converged(
    engine: &Engine,
    s: &Stack,
    core_keys: &[&str],
    periphery_key: &str,
    value: &Secret,
) {
    stack::wait_healthy(engine, &s.core, Duration::from_secs(60))
        .await
        .expect("core healthy after compose up");
    let core = ContainerInfo::load(engine, &s.core).await.unwrap();
    let periphery = ContainerInfo::load(engine, &s.periphery).await.unwrap();
    for k in core_keys {
        assert!(
            core.env_value(k).is_some_and(|v| v.ct_eq(value)),
            "core's {k} is not compose.env's value"
        );
    }
    assert!(
        periphery
            .env_value(periphery_key)
            .is_some_and(|v| v.ct_eq(value)),
        "periphery's {periphery_key} is not compose.env's value"
    );
    let target = Target::new(&format!("mongodb://127.0.0.1:{}", s.mongo_port), "admin").unwrap();
    assert_eq!(login_works(&target, value).await, LoginOutcome::Accepted);
    let mut expected = vec![
        stack::container_name(&s.project, "core"),
        stack::container_name(&s.project, "mongo"),
        stack::container_name(&s.project, "periphery"),
    ];
    expected.sort();
    assert_eq!(project_containers(engine, &s.project).await, expected);
}

/// `compose ps` lists the three services; `compose down` removes every container.
async fn compose_ps_and_down(engine: &Engine, s: &Stack) {
    let ps = s.compose().run_ok(&["ps"]).expect("compose ps");
    for svc in ["mongo", "core", "periphery"] {
        let name = stack::container_name(&s.project, svc);
        assert!(ps.contains(&name), "compose ps misses {name}: {ps}");
    }
    s.compose().run_ok(&["down"]).expect("compose down");
    assert!(project_containers(engine, &s.project).await.is_empty());
}

/// `komodo-rotate init --project P` run in the stack dir, KOMODO_ENV_FILE unset (so the compose
/// file's env_file default, ./compose.env, is what init resolves).
fn init(s: &Stack, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("init")
        .args(["--project", &s.project])
        .args(args)
        .current_dir(&s.dir)
        .env_remove("KOMODO_ENV_FILE")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    finish(out)
}

/// init writes a config (0600, never over an existing file) that `verify` accepts, and that
/// names what the stack is made of.
fn init_then_verify(s: &Stack, generation: &str) {
    let printed = init(s, &["--print"]);
    assert_eq!(printed.code, Some(0), "{}", printed.text());
    assert!(
        !s.dir.join("komodo-rotate.toml.init").exists(),
        "--print writes nothing"
    );
    let cfg = s.dir.join("komodo-rotate.toml.init");
    let written = init(s, &["--output", cfg.to_str().unwrap()]);
    assert_eq!(written.code, Some(0), "{}", written.text());
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(text, printed.stdout, "--print shows what init writes");
    for want in [
        format!("compose_env = \"{}\"", s.compose_env().display()),
        format!("age_key_file = \"{}\"", s.age_key().display()),
        format!("project = \"{}\"", s.project),
        format!(
            "uri = \"mongodb://127.0.0.1:{}/?directConnection=true\"",
            s.mongo_port
        ),
        format!("state_dir = \"/var/lib/komodo-rotate/{}\"", s.project),
        format!("Komodo generation: {generation}"),
        "services = { mongo = \"mongo\", core = \"core\", periphery = [\"periphery\"] }".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cfg).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = init(s, &["--output", cfg.to_str().unwrap()]);
    assert_eq!(again.code, Some(2), "{}", again.text());
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.text()
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        text,
        "file untouched"
    );

    let v = Command::new(BIN)
        .args(["verify", "--config"])
        .arg(&cfg)
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v = finish(v);
    assert_eq!(v.code, Some(0), "verify with init's config: {}", v.text());
}

#[test]
fn rotate_then_compose_up_converges_and_old_env_crash_loops_core() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(engine) = rt.block_on(engine_or_skip("compose_rotate")) else {
        return;
    };
    let project = "krt-compose-rotate";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = rt.block_on(images(&engine));
    let s = rt
        .block_on(stack::up(
            &engine,
            &StackOptions::new(project, dir.path(), &bin),
        ))
        .expect("compose up");
    assert_eq!(s.core, stack::container_name(project, "core"));
    assert_eq!(s.core, "krt-compose-rotate_core_1", "compose 1.x naming");
    let labels = rt
        .block_on(ContainerInfo::load(&engine, &s.core))
        .unwrap()
        .labels;
    assert!(
        labels.contains_key("com.docker.compose.config-hash"),
        "made by compose: {labels:?}"
    );
    assert!(
        std::fs::read_dir(&s.dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("plain")),
        "the decrypted compose.env is removed after each compose call"
    );

    init_then_verify(&s, "v2");

    let key = "KOMODO_DATABASE_PASSWORD";
    let old = env_value(&s, key);
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let new = env_value(&s, key);
    assert!(!new.ct_eq(&old), "rotate changed compose.env");

    s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    rt.block_on(converged(&engine, &s, &[key], key, &new));
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());

    // Mirror: rotate again (NEW -> NEW2), then put compose.env back to the value before it.
    // The next compose up must recreate core from that stale compose.env (the tool's recreate
    // left no config-hash claiming core still matches compose's config), so core crash-loops
    // on the password Mongo no longer has, and verify says so.
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let core_labels = rt
        .block_on(ContainerInfo::load(&engine, &s.core))
        .unwrap()
        .labels;
    assert!(
        !core_labels.contains_key("com.docker.compose.config-hash"),
        "the tool's replacement must not carry compose's old config-hash"
    );
    set_env(&s, key, &new);
    let up = s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    assert!(
        up.contains(&format!("Recreating {}", s.core)),
        "compose must recreate core from the stale compose.env: {up}"
    );
    rt.block_on(stack::wait_crash_loop(
        &engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on the old password");
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());

    rt.block_on(compose_ps_and_down(&engine, &s));
}

#[test]
fn rescue_then_compose_up_converges_v1() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(engine) = rt.block_on(engine_or_skip("compose_rescue")) else {
        return;
    };
    let project = "krt-compose-rescue";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = rt.block_on(images(&engine));
    let mut opts = StackOptions::new(project, dir.path(), &bin);
    opts.drift = true;
    opts.generation = Generation::V1;
    let s = rt.block_on(stack::up(&engine, &opts)).expect("compose up");
    // The incident as compose made it: mongo's init env A, compose.env and core B.
    let mongo = rt.block_on(ContainerInfo::load(&engine, &s.mongo)).unwrap();
    assert!(mongo
        .env_value("MONGO_INITDB_ROOT_PASSWORD")
        .unwrap()
        .ct_eq(&s.mongo_password));
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());

    let r = tool(&s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let value = env_value(&s, "KOMODO_DB_PASSWORD");
    assert!(
        value.ct_eq(&s.env_password),
        "rescue keeps compose.env's value"
    );

    s.compose().run_ok(&["up", "-d"]).expect("compose up -d");
    rt.block_on(converged(
        &engine,
        &s,
        &["KOMODO_DB_PASSWORD", "KOMODO_DATABASE_PASSWORD"],
        "KOMODO_DB_PASSWORD",
        &value,
    ));
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());

    init_then_verify(&s, "v1");
    rt.block_on(compose_ps_and_down(&engine, &s));
}

#[test]
fn init_refuses_clearly_and_changes_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(_engine) = rt.block_on(engine_or_skip("init_refuses")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        finish(
            Command::new(BIN)
                .arg("init")
                .args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    };
    let r = run(&["--project", "krt-no-such-project"]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("krt-no-such-project"), "{}", r.text());
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.text());
    assert!(!dir.path().join("komodo-rotate.toml").exists());

    std::fs::write(dir.path().join("komodo-rotate.toml"), "keep").unwrap();
    let r = run(&[]);
    assert_eq!(r.code, Some(2), "{}", r.text());
    assert!(r.stderr.contains("never overwrites"), "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("komodo-rotate.toml")).unwrap(),
        "keep"
    );
}
