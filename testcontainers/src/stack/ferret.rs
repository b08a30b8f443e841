//! The FerretDB variant of the rehearsal stack (issue 21): `postgres` (Debian's postgresql-15,
//! the official image's first-init semantics), `ferretdb` (the FerretDB-shaped front end,
//! `crate::ferret`), core and periphery, made by docker-compose 1.29 from
//! `compose/ferretdb/ferretdb.compose.yaml` (shaped like Komodo's `ferretdb.compose.yaml`) with
//! the SOPS-encrypted compose.env in v2 naming.
//!
//! Healthy: postgres is started first and waited for (a real login over its published port),
//! then the whole file. Drift (the incident on FerretDB, Komodo #859/#516): postgres is
//! initialised with password A; compose.env is then changed to B and the whole file is
//! redeployed (`up -d`), as a user does. postgres is recreated with `POSTGRES_PASSWORD=B` but
//! skips initialisation (the role keeps A), ferretdb's URL carries B, so PostgreSQL refuses the
//! front end's new connections and core crash-loops on `SCRAM failure: password authentication
//! failed for user "admin"` (code 1 InternalError).

use super::files::{env_line, new_age_key, write_compose_env, write_config, StackSecrets};
use super::image::standin_tag;
use super::real::{self, RealImages};
use super::{
    compose, compose_project_name, core_start_limit, free_loopback_port, wait_crash_loop,
    wait_healthy, wait_tcp, CoreCarrier, Generation, Stack, StackOptions, Variant, DB_USERNAME,
    REHEARSAL_TOKEN_KEY,
};
use crate::ferret::image as ferret_image;
use komodo_rotate::docker::Engine;
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_rotate::secret::Secret;
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) async fn up(
    engine: &Engine,
    opts: &StackOptions,
    images: &RealImages,
    dir: &Path,
) -> Result<Stack, String> {
    if opts.generation != Generation::V2 {
        return Err("--variant ferretdb: Komodo's ferretdb.compose.yaml has only the v2 naming (KOMODO_DATABASE_*)".into());
    }
    if opts.core_carrier != CoreCarrier::Plain {
        return Err("--variant ferretdb: only the plain KOMODO_DATABASE_PASSWORD carrier".into());
    }
    let pg_tag = super::ensure_ferret_images(engine, &opts.bin_dir).await?;
    let project = opts.project.as_str();

    let StackSecrets {
        init_password: role_password,
        env_password,
        passkey,
        jwt,
        webhook,
        api_token,
        user,
    } = StackSecrets::generate(opts.drift)?;
    let pg_port = free_loopback_port()?;
    let ferret_port = free_loopback_port()?;
    let core_port = free_loopback_port()?;

    let backups = dir.join("backups");
    let periphery_root = dir.join("periphery-root");
    for d in [&backups, &periphery_root] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let compose_env = |pw: &Secret| -> Vec<String> {
        vec![
            format!("COMPOSE_KOMODO_BACKUPS_PATH={}", backups.display()),
            format!("PERIPHERY_ROOT_DIRECTORY={}", periphery_root.display()),
            format!("COMPOSE_KOMODO_IMAGE_TAG={}", standin_tag()),
            format!("COMPOSE_POSTGRES_IMAGE_TAG={pg_tag}"),
            format!(
                "COMPOSE_FERRETDB_IMAGE_TAG={}",
                ferret_image::ferretdb_tag()
            ),
            format!("COMPOSE_REHEARSAL_POSTGRES_PORT={pg_port}"),
            format!("COMPOSE_REHEARSAL_FERRETDB_PORT={ferret_port}"),
            format!("COMPOSE_REHEARSAL_CORE_PORT={core_port}"),
            env_line("KOMODO_DATABASE_USERNAME", &user),
            env_line("KOMODO_DATABASE_PASSWORD", pw),
            env_line("KOMODO_PASSKEY", &passkey),
            env_line("PERIPHERY_PASSKEYS", &passkey),
            env_line("KOMODO_JWT_SECRET", &jwt),
            env_line("KOMODO_WEBHOOK_SECRET", &webhook),
            env_line(REHEARSAL_TOKEN_KEY, &api_token),
            "KOMODO_TITLE=Komodo rehearsal (FerretDB)".into(),
        ]
    };

    let recipient = new_age_key(dir)?;
    write_atomic(
        &dir.join(compose::FERRETDB_FILE),
        real::apply(compose::ferretdb_file_text(), images)?.as_bytes(),
        Mode::Exactly(0o644),
    )
    .map_err(|e| format!("{}/{}: {e}", dir.display(), compose::FERRETDB_FILE))?;
    write_config(dir, project, Variant::FerretDb, ferret_port)?;
    write_compose_env(dir, &compose_env(&role_password), &recipient)?;

    let cp = compose::Project::new(project, dir);
    cp.run_ok(&["up", "-d", "postgres"])?;
    wait_postgres(pg_port, &role_password, Duration::from_secs(90)).await?;
    if opts.drift {
        write_compose_env(dir, &compose_env(&env_password), &recipient)?;
    }
    // The whole file, as users deploy; with drift this recreates postgres with the new
    // POSTGRES_PASSWORD (ignored: the data dir is initialised) and ferretdb with the new URL.
    cp.run_ok(&["up", "-d"])?;
    if opts.drift {
        wait_postgres(pg_port, &role_password, Duration::from_secs(90)).await?;
    }

    let find = |service: &'static str| {
        let engine = engine.clone();
        async move {
            komodo_rotate::docker::discovery::one_service(&engine, project, service)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let stack = Stack {
        project: project.to_string(),
        variant: Variant::FerretDb,
        mongo: find("ferretdb").await?,
        postgres: Some(find("postgres").await?),
        core: find("core").await?,
        periphery: find("periphery").await?,
        network: format!("{}_default", compose_project_name(project)),
        dir: dir.to_path_buf(),
        mongo_port: ferret_port,
        postgres_port: Some(pg_port),
        core_port,
        mongo_password: role_password,
        env_password,
        passkey,
    };
    wait_tcp(ferret_port, Duration::from_secs(30)).await?;
    if opts.drift {
        wait_crash_loop(engine, &stack.core, Duration::from_secs(90)).await?;
    } else {
        wait_healthy(engine, &stack.core, core_start_limit(images, 90)).await?;
    }
    Ok(stack)
}

/// Waits until PostgreSQL accepts `admin` with `password` over its published port: a real
/// SCRAM login, so an entrypoint still initialising (its temporary server listens on no TCP
/// address) or a proxy accepting for a container not yet listening do not count.
pub async fn wait_postgres(port: u16, password: &Secret, timeout: Duration) -> Result<(), String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(DB_USERNAME)
        .password(password.expose())
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(3));
    let start = Instant::now();
    loop {
        let last = match cfg.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let task = tokio::spawn(conn);
                let r = client.simple_query("SELECT 1").await;
                drop(client);
                let _ = task.await;
                match r {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        if start.elapsed() > timeout {
            return Err(format!(
                "postgres on 127.0.0.1:{port} did not accept the role's password in {timeout:?}: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
