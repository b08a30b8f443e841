//! `docker::exec` and the way the tool reaches a FerretDB deployment's PostgreSQL
//! (`planes::ferret::ContainerPsql`: `docker exec` into the postgres container, psql over its
//! local socket, SQL on stdin) against a real container: Debian's `postgresql-15` in a real
//! Debian image (`testcontainers/debian-image postgres postgresql-15`, the rehearsal's base),
//! initialised as the official image does (local socket trusted, hosts by scram-sha-256).
//! Referees: the `docker` CLI (docker exec psql reads pg_authid; a scram-sha-256 login over
//! TCP inside the container) and `docker inspect` of the exec (no secret in its argv or env).

mod ferret_support;

use komodo_rotate::docker::{exec, Engine};
use komodo_rotate::planes::ferret::ContainerPsql;
use komodo_rotate::postgres::{Role, Stored, Verifier};
use komodo_rotate::secret::Secret;
use std::process::{Command, Stdio};
use std::time::Duration;

const INIT: &str = r#"set -e
mkdir -p /var/run/postgresql /d && chown postgres:postgres /var/run/postgresql /d
pw=$(mktemp); printf 'first-init-pw\n' >"$pw"; chown postgres "$pw"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -N -D /d/data -U komodo --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
rm -f "$pw"
echo 'host all all 127.0.0.1/32 scram-sha-256' >/d/data/pg_hba.conf
echo 'local all all trust' >>/d/data/pg_hba.conf
exec runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres -D /d/data -k /var/run/postgresql -c listen_addresses=127.0.0.1
"#;

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker")
}

fn image() -> Option<String> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testcontainers/debian-image");
    let out = Command::new(script)
        .arg("postgres") // testcontainers/debian-images.list: Debian's postgresql-15
        .output()
        .expect("debian-image");
    if !out.status.success() {
        let msg = format!(
            "ferret_exec: testcontainers/debian-image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if ferret_support::ci::under_ci() {
            panic!("{msg}");
        }
        eprintln!("SKIP {msg}");
        return None;
    }
    Some(String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// Waits until psql answers on the container's socket.
fn wait_ready(name: &str) {
    for _ in 0..300 {
        let o = docker(&[
            "exec", "-u", "postgres", name, "psql", "-XAtq", "-U", "komodo", "-d", "postgres",
            "-c", "SELECT 1",
        ]);
        if o.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("postgres in {name} never answered");
}

/// A scram-sha-256 login over TCP inside the container (the password in that exec's env only:
/// the test's child, never the tool's).
fn login(name: &str, password: &str) -> bool {
    let env = format!("PGPASSWORD={password}");
    let o = docker(&[
        "exec",
        "-u",
        "postgres",
        "-e",
        &env,
        name,
        "psql",
        "-XAtw",
        "-h",
        "127.0.0.1",
        "-U",
        "komodo",
        "-d",
        "postgres",
        "-c",
        "SELECT 'in'",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        return true;
    }
    assert!(err.contains("password authentication failed"), "{err}");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_sets_and_restores_the_role_verifier_through_docker_exec() {
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            assert!(
                !ferret_support::ci::under_ci(),
                "ferret_exec: no engine: {e}"
            );
            eprintln!("SKIP ferret_exec: no engine: {e}");
            return;
        }
    };
    let Some(image) = image() else { return };
    let name = format!("kr-ferret-exec-{}", std::process::id());
    let c = Container(name.clone());
    let o = docker(&["run", "-d", "--name", &name, &image, "sh", "-c", INIT]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_ready(&name);

    // exec itself: stdin in, stdout/stderr apart, exit codes, the user, the deadline.
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = exec::exec(
        &engine,
        &name,
        None,
        &argv(&["cat"]),
        &big,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!((out.code, out.stdout.len()), (0, big.len()));
    assert!(out.stdout == big);
    let out = exec::exec(
        &engine,
        &name,
        Some("postgres"),
        &argv(&["sh", "-c", "id -un; echo oops >&2; exit 3"]),
        b"",
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, b"postgres\n");
    assert_eq!(out.stderr, b"oops\n");
    let e = exec::exec(
        &engine,
        &name,
        None,
        &argv(&["sleep", "20"]),
        b"",
        Duration::from_secs(1),
    )
    .await
    .err()
    .expect("the deadline");
    assert!(
        e.to_string().contains(&name) && e.to_string().contains("within 1s"),
        "{e}"
    );
    let e = exec::exec(
        &engine,
        "kr-no-such-container",
        None,
        &argv(&["true"]),
        b"",
        Duration::from_secs(5),
    )
    .await
    .err()
    .expect("no container");
    assert!(e.to_string().contains("kr-no-such-container"), "{e}");

    // The plane through the container: read, set a verifier the tool built, undo byte for byte.
    let psql = ContainerPsql {
        engine: &engine,
        container: &name,
    };
    let role = Role {
        psql: &psql,
        admin: "komodo",
        name: "komodo",
    };
    let (before, v0) = role.verifier().await.unwrap();
    assert!(v0.accepts(&Secret::new("first-init-pw".into())));
    assert_eq!(v0.salt_len(), 16, "initdb's own salt");
    let new = Secret::new("Rotated-Value-0123456789".into());
    let v = Verifier::build(&new).unwrap();
    role.set_verifier(&v).await.unwrap();
    let raw = docker(&[
        "exec",
        "-u",
        "postgres",
        &name,
        "psql",
        "-XAt",
        "-U",
        "komodo",
        "-d",
        "postgres",
        "-c",
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'komodo'",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout).trim_end(),
        v.text().expose()
    );
    assert!(login(&name, new.expose()));
    assert!(!login(&name, "first-init-pw"));
    role.set_stored(Some(&before)).await.unwrap();
    assert_eq!(role.stored().await.unwrap(), Stored::Secret(before.clone()));
    assert!(login(&name, "first-init-pw"));
    assert!(!login(&name, new.expose()));

    // The engine kept no secret of ours: every exec's argv and env, as `docker inspect` of the
    // container lists its exec IDs, carries neither the verifier nor the SQL.
    let ids = docker(&["inspect", "-f", "{{json .ExecIDs}}", &name]);
    let ids: Vec<String> = serde_json::from_slice(&ids.stdout).unwrap_or_default();
    for id in ids {
        let body = engine.raw().inspect_exec(&id).await;
        if let Ok(body) = body {
            let text = serde_json::to_string(&body).unwrap();
            assert!(!text.contains("SCRAM-SHA-256$"), "exec {id}: {text}");
            assert!(!text.contains("ALTER ROLE"), "exec {id}: {text}");
            assert!(
                !text.contains(new.expose()) || text.contains("PGPASSWORD"),
                "exec {id}"
            );
        }
    }
    drop(c);
}
