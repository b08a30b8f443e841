//! Operations on the rehearsal stack and a real Docker engine: the runbooks' `sh` blocks are run
//! as written (each must end with the exit code it declares), the webhook alert reaches a
//! listener on 127.0.0.1 on an injected failure and on drift and holds no secret, an
//! unreachable webhook does not change the exit code, `--prometheus` files parse strictly,
//! `rotate --if-older-than` rotates once then says "not due", and salvage-env rebuilds the core
//! stand-in's env. The cases share the engine (see `SERIAL` on how they are scheduled).

mod docker_support;
mod e2e_support;
mod ops_support;

use docker_support::{engine_or_skip, images};
use e2e_support::*;
use komodo_rotate::mongo::{MongoAdmin, Target};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, Stack};
use ops_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

fn set_alert(s: &Stack, webhook: &str, on_success: bool) {
    let p = s.config();
    let text = std::fs::read_to_string(&p).unwrap();
    let base = text.split("\n[alert]\n").next().unwrap().to_string();
    std::fs::write(
        &p,
        format!("{base}\n[alert]\nwebhook = \"{webhook}\"\non_success = {on_success}\n"),
    )
    .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn recipient(s: &Stack) -> String {
    std::fs::read_to_string(s.age_key())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .expect("public key line")
}

/// The environment the runbooks expect, for this stack.
fn block_env(s: &Stack) -> Vec<(String, String)> {
    let bin_dir = Path::new(BIN)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    vec![
        (
            "PATH".into(),
            format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
        ),
        ("CONFIG".into(), s.config().to_string_lossy().into_owned()),
        ("PROJECT".into(), s.project.clone()),
        ("PW_KEY".into(), PW_KEY.into()),
        ("DB_USER".into(), "admin".into()),
        (
            "SOPS_AGE_KEY_FILE".into(),
            s.age_key().to_string_lossy().into_owned(),
        ),
        (
            "COMPOSE_ENV".into(),
            s.compose_env().to_string_lossy().into_owned(),
        ),
        ("MONGO_CONTAINER".into(), s.mongo.clone()),
        ("CORE_CONTAINER".into(), s.core.clone()),
        (
            "KOMODO_ROTATE_LOCK_DIR".into(),
            host_lock_dir(s).to_string_lossy().into_owned(),
        ),
    ]
}

/// Where the runbooks' `/tmp/...` files of this stack go: a directory of the stack's own, so
/// concurrent test runs on one host never read each other's `.prom` files.
fn tmp_of(s: &Stack) -> PathBuf {
    s.dir.join("tmp")
}

/// Runs every runnable `sh` block of `name` in order, each in `sh -eu`, and checks its exit.
/// `/tmp/` in a block means `tmp_of(s)`, whose `.prom` files are removed first: what a test
/// reads there afterwards was written by this runbook.
fn run_runbook(s: &Stack, name: &str, extra: &[(String, String)]) -> Vec<Run> {
    let tmp = tmp_of(s);
    std::fs::create_dir_all(&tmp).unwrap();
    for e in std::fs::read_dir(&tmp).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "prom") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let mut runs = Vec::new();
    for b in runbook(name)
        .into_iter()
        .filter(|b| b.is_sh() && !b.no_test())
    {
        let want = b.expected_exit().unwrap_or(0);
        let text = b.text.replace("/tmp/", &format!("{}/", tmp.display()));
        let mut c = Command::new("sh");
        c.arg("-euc")
            .arg(&text)
            .env_remove("FAILPOINTS")
            .stdin(std::process::Stdio::null());
        for (k, v) in block_env(s).into_iter().chain(extra.iter().cloned()) {
            c.env(k, v);
        }
        let r = finish(c.output().expect("sh"));
        assert_eq!(
            r.code,
            Some(want),
            "{name}:{}: block ended with {:?}, expected {want}\n{}",
            b.line,
            r.code,
            r.text()
        );
        runs.push(r);
    }
    runs
}

fn prom(path: &Path) -> Vec<Sample> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_prometheus(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

fn record_bodies(l: &Listener) {
    for (h, b) in l.got.lock().unwrap().iter() {
        CAPTURED.lock().unwrap().extend_from_slice(h.as_bytes());
        CAPTURED.lock().unwrap().extend_from_slice(b);
    }
}

async fn fixture(test: &str, project: &str, drift: bool) -> Option<Fixture> {
    fixture_with(test, project, |o| o.drift = drift).await
}

#[test]
fn runbooks_alerts_metrics_and_salvage_on_a_healthy_stack() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("ops-healthy", "krt-ops-healthy", false)) else {
        return;
    };
    let s = &f.stack;
    // The tests share one target dir: a concurrent build without the feature replaces the binary.
    let bin = std::fs::read(BIN).unwrap();
    assert!(
        bin.windows(10).any(|w| w == b"FAILPOINTS"),
        "{BIN} was built without --features failpoints (a concurrent cargo build replaced it)"
    );
    let mut seen: Vec<Secret> = vec![s.env_password.clone(), s.passkey.clone()];
    let hook = Listener::start(200);
    set_alert(
        s,
        &format!("http://127.0.0.1:{}/hook/T0KEN-in-path", hook.port),
        true,
    );

    // Pre-rotation check, as written.
    run_runbook(s, "pre-rotation-check.md", &[]);
    let v = prom(&tmp_of(s).join("komodo-verify.prom"));
    assert_eq!(value(&v, "komodo_rotate_drift", None), Some(0.0));
    assert_eq!(
        value(
            &v,
            "komodo_rotate_last_exit_code",
            Some(("command", "verify"))
        ),
        Some(0.0)
    );

    // Scheduled rotation: the first run rotates (no audit record), the second is not due.
    let runs = run_runbook(s, "scheduled-rotation.md", &[]);
    assert!(
        runs[0].stdout.contains("rotated db-password"),
        "{}",
        runs[0].text()
    );
    assert!(
        runs[1].stdout.contains("not due: db-password"),
        "{}",
        runs[1].text()
    );
    let now = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after the scheduled rotate");
    assert!(!now.ct_eq(&s.env_password), "rotated");
    seen.push(now.clone());
    let m = prom(&tmp_of(s).join("komodo-rotate.prom"));
    let rot = Some(("command", "rotate"));
    assert_eq!(value(&m, "komodo_rotate_last_exit_code", rot), Some(0.0));
    assert_eq!(value(&m, "komodo_rotate_last_run_success", rot), Some(1.0));
    let rotated_at = value(
        &m,
        "komodo_rotate_last_rotation_timestamp_seconds",
        Some(("secret", "db-password")),
    )
    .expect("last rotation timestamp");
    let age = komodo_rotate::metrics::now_unix() as f64 - rotated_at;
    assert!((0.0..300.0).contains(&age), "{age}");
    assert!(m
        .iter()
        .any(|x| x.name == "komodo_rotate_step_duration_seconds"
            && x.labels.get("step").is_some_and(|s| s == "change-db")));
    let success_ts = value(&m, "komodo_rotate_last_success_timestamp_seconds", rot).unwrap();

    // on_success: the committed rotate was announced, the not-due run was not.
    let bodies = hook.wait_for(1);
    let rotates: Vec<_> = bodies.iter().filter(|b| b["command"] == "rotate").collect();
    assert_eq!(rotates.len(), 1, "{bodies:?}");
    assert_eq!(rotates[0]["exit_code"], 0);

    // An injected failure: exit 4, an alert naming the failed step, metrics keep the last success.
    set_alert(
        s,
        &format!("http://127.0.0.1:{}/hook/T0KEN-in-path", hook.port),
        false,
    );
    let before = hook.got.lock().unwrap().len();
    let p = f.dir.path().join("rotate.prom");
    std::fs::write(
        &p,
        std::fs::read(tmp_of(s).join("komodo-rotate.prom")).unwrap(),
    )
    .unwrap();
    let r = tool(
        s,
        &["rotate", "--prometheus", p.to_str().unwrap()],
        &[("FAILPOINTS", "after:change-db=return")],
    );
    assert_eq!(r.code, Some(4), "{}", r.text());
    e2e_support::fired::assert_own_failpoint(s, &r, "alert row", "after:change-db");
    let bodies = hook.wait_for(before + 1);
    let alert = bodies.last().unwrap();
    assert_eq!(alert["command"], "rotate");
    assert_eq!(alert["exit_code"], 4);
    assert_eq!(alert["text"], alert["content"]);
    assert!(alert["steps"].to_string().contains("change-db"), "{alert}");
    assert!(alert["host"].as_str().is_some_and(|h| !h.is_empty()));
    let m = prom(&p);
    assert_eq!(value(&m, "komodo_rotate_last_exit_code", rot), Some(4.0));
    assert_eq!(value(&m, "komodo_rotate_last_run_success", rot), Some(0.0));
    assert!(value(&m, "komodo_rotate_last_success_timestamp_seconds", rot).unwrap() >= success_ts);
    assert!(
        rt.block_on(agreed(&f.engine, s)).unwrap().ct_eq(&now),
        "rolled back to the same value"
    );

    // An unreachable webhook changes nothing about the exit code, and names no token.
    set_alert(
        s,
        &format!("http://127.0.0.1:{}/hook/T0KEN-in-path", free_port()),
        false,
    );
    let r = tool(s, &["rotate"], &[("FAILPOINTS", "after:write-env=return")]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    e2e_support::fired::assert_own_failpoint(s, &r, "unreachable webhook row", "after:write-env");
    assert!(r.stderr.contains("alert not sent"), "{}", r.text());
    assert!(!r.stderr.contains("T0KEN"), "{}", r.text());

    // Interrupted run: SIGKILL after change-db, then the runbook as written.
    set_alert(
        s,
        &format!("http://127.0.0.1:{}/hook/T0KEN-in-path", hook.port),
        false,
    );
    let k = tool(
        s,
        &["rotate"],
        &[("FAILPOINTS", "after:change-db=return(crash)")],
    );
    assert_eq!(k.signal, Some(9), "{}", k.text());
    assert_eq!(
        e2e_support::fired::last_done(&k).as_deref(),
        Some("change-db"),
        "killed elsewhere: {}",
        k.text()
    );
    let runs = run_runbook(s, "interrupted-run.md", &[]);
    assert!(
        runs[0].stdout.contains("interrupted rotate run"),
        "{}",
        runs[0].text()
    );
    assert!(runs[1].stdout.contains("resumed"), "{}", runs[1].text());
    assert!(
        runs[2].stdout.contains("nothing to resume"),
        "{}",
        runs[2].text()
    );
    let m = prom(&tmp_of(s).join("komodo-resume.prom"));
    assert_eq!(
        value(
            &m,
            "komodo_rotate_last_exit_code",
            Some(("command", "resume"))
        ),
        Some(0.0)
    );
    let after = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after resume");
    seen.push(after.clone());

    // Lost env: salvage the core stand-in's env, plaintext and SOPS-encrypted.
    let out = f.dir.path().join("recovered.env");
    let template = f.dir.path().join("template.env");
    std::fs::write(
        &template,
        format!("# keys to keep\n{PW_KEY}=\nNOT_IN_CORE=\n"),
    )
    .unwrap();
    let extra = [
        ("CONTAINER".to_string(), s.core.clone()),
        ("OUT".to_string(), out.to_string_lossy().into_owned()),
        (
            "TEMPLATE".to_string(),
            template.to_string_lossy().into_owned(),
        ),
        ("AGE_RECIPIENT".to_string(), recipient(s)),
    ];
    let runs = run_runbook(s, "lost-env.md", &extra);
    assert!(
        runs.iter().any(|r| r.stderr.contains("NOT_IN_CORE")),
        "missing keys are named"
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = Secret::new(std::fs::read_to_string(&out).unwrap());
    let line = format!("{PW_KEY}={}\n", after.expose());
    assert!(
        text.expose().lines().any(|l| format!("{l}\n") == line),
        "the current password came back"
    );
    assert!(
        !text.expose().lines().any(|l| l.starts_with("PATH=")),
        "the image's own PATH is left out"
    );
    let sops = out.with_extension("env.sops");
    let ids = komodo_rotate::sops::Identities::from_key_file(&s.age_key()).unwrap();
    let dec = komodo_rotate::sops::SopsFile::load(&sops)
        .unwrap()
        .decrypt(&ids)
        .unwrap();
    assert!(dec.get(PW_KEY).unwrap().ct_eq(&after));
    assert_eq!(
        std::fs::metadata(&sops).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = Command::new(BIN)
        .args(["salvage-env", "--container", &s.core, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let again = finish(again);
    assert_eq!(again.code, Some(3), "{}", again.text());
    assert!(again.stderr.contains("already exists"), "{}", again.text());
    // The plaintext env the runbook asked salvage-env for holds the password by design (checked
    // 0600 above); the hygiene scan below covers everything else the runs wrote.
    std::fs::remove_file(&out).expect("the recovered plaintext env");

    record_bodies(&hook);
    let refs: Vec<&Secret> = seen.iter().collect();
    e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
}

#[test]
fn drift_alert_crash_loop_rescue_and_the_last_resort() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("ops-drift", "krt-ops-drift", true)) else {
        return;
    };
    let s = &f.stack;
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops");
    let hook = Listener::start(200);
    set_alert(
        s,
        &format!("http://127.0.0.1:{}/hook/T0KEN", hook.port),
        false,
    );

    let runs = run_runbook(s, "crash-loop-rescue.md", &[]);
    assert!(
        runs[0].stdout.contains("crash-looping"),
        "{}",
        runs[0].text()
    );
    let bodies = hook.wait_for(1);
    let drift: Vec<_> = bodies.iter().filter(|b| b["command"] == "verify").collect();
    assert_eq!(
        drift.len(),
        1,
        "one drift alert, none for the clean verify: {bodies:?}"
    );
    assert_eq!(drift[0]["exit_code"], 1);
    assert!(
        drift[0]["steps"].to_string().contains("db-login"),
        "{}",
        drift[0]
    );
    let v = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after rescue");
    assert!(v.ct_eq(&s.env_password));

    // Now lose every copy: Mongo gets a password nobody has.
    let lost = Secret::generate().unwrap();
    rt.block_on(async {
        let t = Target::new(&format!("mongodb://127.0.0.1:{}", s.mongo_port), "admin").unwrap();
        let admin = MongoAdmin::connect(&t, &s.env_password).await.unwrap();
        admin.change_password("admin", &lost).await.unwrap();
        admin.close().await;
    });
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("no-password-survives.md"), "{}", r.text());
    e2e_support::fired::assert_own_fault(s, &r, "no password survives", &[], &[]);

    // `docker start` publishes mongo on a new host port: use the default discovery (the port from
    // docker inspect, as on a real install) instead of the rehearsal's pinned URI.
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let pinned = format!("uri = \"mongodb://127.0.0.1:{}\"", s.mongo_port);
    assert!(cfg.contains(&pinned), "{cfg}");
    std::fs::write(s.config(), cfg.replace(&pinned, "uri = \"\"")).unwrap();
    let recovery = format!("{}-reset-auth", s.mongo);
    let _rm = RemoveOnDrop(recovery.clone());
    let runs = run_runbook(s, "no-password-survives.md", &[]);
    assert!(runs[0].stdout.contains("rescued"), "{}", runs[0].text());
    let port = rt
        .block_on(komodo_rotate::docker::ContainerInfo::load(
            &f.engine, &s.mongo,
        ))
        .unwrap()
        .loopback_port("27017/tcp")
        .expect("mongo published again");
    let mut f = f;
    f.stack.mongo_port = port;
    let s = &f.stack;
    let v = rt
        .block_on(agreed(&f.engine, s))
        .expect("planes agree after the last resort");
    assert!(
        v.ct_eq(&s.env_password),
        "Mongo has compose.env's value again"
    );
    assert_eq!(pymongo_login(s, &s.env_password), 0);
    assert_eq!(pymongo_login(s, &lost), 1);
    let gone = Command::new("docker")
        .args(["inspect", &recovery])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the recovery container is removed");

    record_bodies(&hook);
    e2e_support::leak::assert_no_leak_anywhere(
        s,
        &[&s.env_password, &s.mongo_password, &lost],
        &[],
    );
}

struct RemoveOnDrop(String);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn salvage_env_leaves_out_the_images_own_env() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(engine) = rt.block_on(engine_or_skip("salvage-env")) else {
        return;
    };
    rt.block_on(images(&engine));
    let tag = "krt-ops-envimage:dev";
    let dockerfile = format!(
        "FROM {}\nENV IMAGE_ONLY=from-image MODE=prod SHARED=same\nLABEL krt-ops=1\n",
        stack::busybox_image()
    );
    let mut b = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    b.stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    assert!(
        b.wait_with_output().unwrap().status.success(),
        "docker build"
    );
    let name = "krt-ops-salvage-1";
    let _rm = RemoveOnDrop(name.into());
    let _ = Command::new("docker").args(["rm", "-f", name]).output();
    let secret = Secret::generate().unwrap();
    let mut run = Command::new("docker");
    run.args([
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "MODE=dev",
        "-e",
        "SHARED=same",
        "-e",
        "APP_PASSWORD",
    ])
    .env("APP_PASSWORD", secret.expose())
    .args([tag, "sleep", "600"]);
    assert!(run.output().unwrap().status.success(), "docker run");

    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("app.env");
    let r = finish(
        Command::new(BIN)
            .args(["salvage-env", "--container", name, "--out"])
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, Some(0), "{}", r.text());
    let text = std::fs::read_to_string(&out).unwrap();
    let keys: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        ["APP_PASSWORD", "MODE"],
        "only the container's own keys"
    );
    assert!(text.contains("MODE=dev\n"));
    assert!(text.lines().any(|l| l
        .strip_prefix("APP_PASSWORD=")
        .is_some_and(|v| v == secret.expose())));
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // An existing target is refused and left as it was.
    let r = finish(
        Command::new(BIN)
            .args(["salvage-env", "--container", name, "--out"])
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    // A missing container is a one-line error.
    let r = finish(
        Command::new(BIN)
            .args(["salvage-env", "--container", "krt-ops-nope", "--out"])
            .arg(d.path().join("x.env"))
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.text());
    assert!(!d.path().join("x.env").exists());
    e2e_support::leak::assert_not_printed(&[&secret]);
}
