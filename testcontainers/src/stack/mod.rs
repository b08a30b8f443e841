//! The rehearsal stack: a Komodo compose project on the local engine, made by Debian's
//! `docker-compose` 1.29 from a compose file shaped like Komodo's official `mongo.compose.yaml`
//! (one per generation, `testcontainers/compose/`), with stand-in images built here without a
//! registry and tagged as the file expects. compose.env stays SOPS-encrypted; compose gets it
//! decrypted in a 0600 temp file for each call ([`compose::Project::run`]).
//!
//! `up` replaces any earlier stack of the same project, so it is idempotent. With `drift` it
//! reproduces the incident: mongo initialised with password A, compose.env (and so core) holding
//! B, core crash-looping. `down` removes by compose's labels, so it needs neither compose nor
//! the (maybe deleted) compose.env.

mod bins;
pub mod compose;
pub mod ferret;
mod files;
pub mod http;
pub mod image;
pub mod imitation;
pub mod passkeys;
mod ports;
pub mod real;
pub mod tar;
mod teardown;
mod wait;

pub use bins::{
    build_binaries, build_binaries_with, ensure_ferret_images, ensure_images, PREBUILT_ENV,
};
use files::{
    env_line, new_age_key, write_compose_env, write_config, write_password_file, StackSecrets,
};
pub use image::{
    busybox_image, core_image, mongo_image, mongo_standin_tag, periphery_image, standin_tag,
};
pub(crate) use ports::free_loopback_port;
pub use teardown::{down, status};
use wait::wait_tcp;
pub use wait::{wait_crash_loop, wait_healthy};

use komodo_rotate::docker::Engine;
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_rotate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DB_USERNAME: &str = "admin";
/// An env-only key in the stack's compose.env that no Komodo kind knows (`env:KEY`'s test).
pub const REHEARSAL_TOKEN_KEY: &str = "REHEARSAL_API_TOKEN";
/// The text of `PERIPHERY_PASSKEYS` in a v1 compose.env, as in Komodo's template.
pub const PASSKEY_LINK: &str = "${KOMODO_PASSKEY}";

/// compose.env naming, as in Komodo's own templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V1,
    V2,
}

impl std::str::FromStr for Generation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1" => Ok(Generation::V1),
            "v2" => Ok(Generation::V2),
            other => Err(format!("--generation {other:?}: expected v1 or v2")),
        }
    }
}

/// Which of Komodo's compose files the stack is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// `mongo.compose.yaml` (the MongoDB wire test server as `mongo`).
    #[default]
    Mongo,
    /// `ferretdb.compose.yaml`: a real PostgreSQL and a FerretDB-shaped front end ([`ferret`]).
    FerretDb,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mongo" => Ok(Variant::Mongo),
            "ferretdb" => Ok(Variant::FerretDb),
            other => Err(format!("--variant {other:?}: expected mongo or ferretdb")),
        }
    }
}

/// How the stack's core is given the DB password (issue 11 item 3: carriers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoreCarrier {
    /// `KOMODO_DATABASE_PASSWORD` (the official templates).
    #[default]
    Plain,
    /// Also `KOMODO_DATABASE_URI=mongodb://USER:${PASSWORD}@mongo:27017/?authSource=admin`,
    /// interpolated by compose from compose.env; it wins over the plain keys, as in real core.
    Uri,
    /// Also `KOMODO_DATABASE_PASSWORD_FILE=/run/secrets/db_password`, bind-mounted read-only
    /// from the stack dir's `secrets/` (the host file [`Stack::password_file`], mode 0640); it
    /// wins over the plain key.
    PasswordFile,
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub project: String,
    /// Where compose.env, age.key, komodo-rotate.toml and the core control dir go.
    pub dir: PathBuf,
    pub generation: Generation,
    pub drift: bool,
    /// With `drift`: the pipeline's shape instead of the seed's. compose.env changed by hand,
    /// then `compose up -d` of the whole file, so mongo is recreated too (its init env now says
    /// B, its data still A): no container holds A any more.
    pub pipeline: bool,
    /// Where the stand-in binaries are (a cargo target profile dir).
    pub bin_dir: PathBuf,
    /// How core carries the DB password (default: the plain key only).
    pub core_carrier: CoreCarrier,
    /// v2 only: deploy with `compose/v2/shapes.override.yaml` too (periphery in a sidecar's
    /// network namespace, an anonymous volume on core). Off by default.
    pub shapes: bool,
    pub variant: Variant,
    /// Image mode ([`real`]): the images replacing the stand-ins. `None`: from
    /// `KOMODO_ROTATE_TEST_CORE_IMAGE`/`KOMODO_ROTATE_TEST_PERIPHERY_IMAGE` (unset: the stand-ins).
    pub images: Option<real::RealImages>,
}

impl StackOptions {
    /// The images of this stack: [`Self::images`], else the variables'.
    pub fn resolved_images(&self) -> Result<real::RealImages, String> {
        match &self.images {
            Some(i) => Ok(i.clone()),
            None => real::RealImages::from_env(),
        }
    }

    pub fn new(project: &str, dir: &Path, bin_dir: &Path) -> StackOptions {
        StackOptions {
            project: project.to_string(),
            dir: dir.to_path_buf(),
            generation: Generation::V2,
            drift: false,
            pipeline: false,
            bin_dir: bin_dir.to_path_buf(),
            core_carrier: CoreCarrier::Plain,
            shapes: false,
            variant: Variant::Mongo,
            images: None,
        }
    }
}

/// A running stack: names and ports, and the secrets it was made with (held in memory only,
/// for tests; nothing here is printed).
#[derive(Debug)]
pub struct Stack {
    pub project: String,
    pub dir: PathBuf,
    pub variant: Variant,
    /// The container serving the MongoDB wire protocol: `mongo`, or `ferretdb` (FerretDB variant).
    pub mongo: String,
    /// FerretDB variant: the PostgreSQL container.
    pub postgres: Option<String>,
    pub core: String,
    pub periphery: String,
    pub network: String,
    /// 127.0.0.1's port of `mongo` (of `ferretdb` in the FerretDB variant).
    pub mongo_port: u16,
    /// FerretDB variant: 127.0.0.1's port of PostgreSQL (5432 inside).
    pub postgres_port: Option<u16>,
    pub core_port: u16,
    /// The password mongo (FerretDB variant: the PostgreSQL role) was initialised with (A).
    pub mongo_password: Secret,
    /// The password compose.env and core hold (B; equal to A unless drifted).
    pub env_password: Secret,
    pub passkey: Secret,
}

impl Stack {
    pub fn compose_env(&self) -> PathBuf {
        self.dir.join("compose.env")
    }
    pub fn age_key(&self) -> PathBuf {
        self.dir.join("age.key")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("komodo-rotate.toml")
    }
    /// The compose project of this stack, to run `docker-compose` on it (`ps`, `up -d`, `down`)
    /// with compose.env decrypted for the call.
    pub fn compose(&self) -> compose::Project {
        compose::Project::new(&self.project, &self.dir)
    }
    /// Mounted at /control in core: `fail-next-start` here makes core's next start fail.
    pub fn control_dir(&self) -> PathBuf {
        self.dir.join("control")
    }
    /// The host side of core's `KOMODO_DATABASE_PASSWORD_FILE` ([`CoreCarrier::PasswordFile`]).
    pub fn password_file(&self) -> PathBuf {
        self.dir
            .join(compose::SECRETS_DIR)
            .join(compose::PASSWORD_FILE)
    }
}

/// How long core may take to become healthy: `stand_in` seconds for the stand-in, three times
/// that for a real core (its startup creates indexes and first resources before it listens).
pub(crate) fn core_start_limit(images: &real::RealImages, stand_in: u64) -> Duration {
    let factor = if images.core.is_some() { 3 } else { 1 };
    Duration::from_secs(stand_in * factor)
}

/// The name compose 1.29 gives the first container of `service` (`komodo_core_1`).
pub fn container_name(project: &str, service: &str) -> String {
    format!("{}_{service}_1", compose_project_name(project))
}

/// Brings the stack up with `docker-compose` (replacing any earlier one of the same project)
/// and waits until core is healthy, or, with `drift`, until it is crash-looping.
///
/// Drift is made as it happens to users: mongo is first deployed (and initialised) from a
/// compose.env holding A; then compose.env is changed to B and only core and periphery are
/// redeployed (`up -d --no-deps core periphery`), so mongo's init env still says A.
/// With `pipeline`, the redeploy is `up -d` of the whole file (a deploy pipeline's), which
/// recreates mongo as well: its init env says B too, and A survives nowhere.
///
/// A host port taken by another container between its pick and `up` (see [`ports`]) makes
/// `up` start over with new ports, twice at most.
pub async fn up(engine: &Engine, opts: &StackOptions) -> Result<Stack, String> {
    let mut attempt = 1;
    loop {
        match up_once(engine, opts).await {
            Err(e) if attempt < 3 && ports::is_port_taken(&e) => attempt += 1,
            r => return r,
        }
    }
}

async fn up_once(engine: &Engine, opts: &StackOptions) -> Result<Stack, String> {
    // A bad image variable stops `up` before anything (an earlier stack included) is touched.
    let images = opts.resolved_images()?;
    images.check_present(engine).await?;
    down(engine, &opts.project, Some(&opts.dir)).await?;
    ensure_images(engine, &opts.bin_dir).await?;
    std::fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let dir = opts
        .dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let control = dir.join("control");
    std::fs::create_dir_all(&control).map_err(|e| format!("{}: {e}", control.display()))?;
    if opts.variant == Variant::FerretDb {
        return ferret::up(engine, opts, &images, &dir).await;
    }
    let project = opts.project.as_str();

    let StackSecrets {
        init_password: mongo_password,
        env_password,
        passkey,
        jwt,
        webhook,
        api_token,
        user,
    } = StackSecrets::generate(opts.drift)?;
    let mongo_port = free_loopback_port()?;
    let core_port = free_loopback_port()?;

    // compose.env, in the generation's naming (research/komodo.md §1.3), plus the COMPOSE_*
    // settings only compose reads (image tags, the rehearsal's host ports).
    let (user_key, pw_key) = match opts.generation {
        Generation::V2 => ("KOMODO_DATABASE_USERNAME", "KOMODO_DATABASE_PASSWORD"),
        Generation::V1 => ("KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD"),
    };
    // v2's official file bind-mounts core's backups and periphery's root directory: folders of
    // the stack dir here, so stacks side by side share nothing on the host.
    let backups = dir.join("backups");
    let periphery_root = dir.join("periphery-root");
    if opts.generation == Generation::V2 {
        for d in [&backups, &periphery_root] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    let compose_env = |pw: &Secret| -> Vec<String> {
        let mut paths = Vec::new();
        if opts.generation == Generation::V2 {
            paths.push(format!("COMPOSE_KOMODO_BACKUPS_PATH={}", backups.display()));
            paths.push(format!(
                "PERIPHERY_ROOT_DIRECTORY={}",
                periphery_root.display()
            ));
        }
        paths
            .into_iter()
            .chain([
                format!("COMPOSE_KOMODO_IMAGE_TAG={}", standin_tag()),
                format!("COMPOSE_MONGO_IMAGE_TAG={}", mongo_standin_tag()),
                format!("COMPOSE_REHEARSAL_MONGO_PORT={mongo_port}"),
                format!("COMPOSE_REHEARSAL_CORE_PORT={core_port}"),
                env_line(user_key, &user),
                env_line(pw_key, pw),
                env_line("KOMODO_PASSKEY", &passkey),
                match opts.generation {
                    // Komodo v1's compose.env links the list to core's passkey; compose (1.29 as
                    // v2) interpolates `${...}` inside an env_file from the file's own keys.
                    Generation::V1 => format!("PERIPHERY_PASSKEYS={PASSKEY_LINK}"),
                    Generation::V2 => env_line("PERIPHERY_PASSKEYS", &passkey),
                },
                env_line("KOMODO_JWT_SECRET", &jwt),
                env_line("KOMODO_WEBHOOK_SECRET", &webhook),
                // An env-only secret of no Komodo kind, for `rotate --secret env:KEY`.
                env_line(REHEARSAL_TOKEN_KEY, &api_token),
                "KOMODO_TITLE=Komodo rehearsal".into(),
            ])
            .collect()
    };

    // Files: age identity, the compose file, compose.env encrypted to the identity with our
    // own SOPS store, the config.
    let recipient = new_age_key(&dir)?;
    write_atomic(
        &dir.join(compose::COMPOSE_FILE),
        real::apply(
            &compose::compose_file_with(opts.generation, opts.core_carrier),
            &images,
        )?
        .as_bytes(),
        Mode::Exactly(0o644),
    )
    .map_err(|e| format!("{}/{}: {e}", dir.display(), compose::COMPOSE_FILE))?;
    write_config(&dir, project, Variant::Mongo, mongo_port)?;
    if opts.shapes {
        if opts.generation != Generation::V2 {
            return Err("the shapes override is for the v2 compose file".into());
        }
        let path = dir.join(compose::SHAPES_FILE);
        write_atomic(&path, compose::SHAPES_TEXT.as_bytes(), Mode::Exactly(0o644))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let cp = compose::Project::new(project, &dir);
    write_password_file(&dir, opts.core_carrier, &env_password)?;
    write_compose_env(&dir, &compose_env(&mongo_password), &recipient)?;
    if opts.drift {
        cp.run_ok(&["up", "-d", "mongo"])?;
        wait_tcp(mongo_port, Duration::from_secs(30)).await?;
        write_compose_env(&dir, &compose_env(&env_password), &recipient)?;
        if opts.pipeline {
            cp.run_ok(&["up", "-d"])?;
        } else {
            cp.run_ok(&["up", "-d", "--no-deps", "core", "periphery"])?;
        }
    } else {
        cp.run_ok(&["up", "-d"])?;
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
        variant: Variant::Mongo,
        mongo: find("mongo").await?,
        postgres: None,
        core: find("core").await?,
        periphery: find("periphery").await?,
        network: format!("{}_default", compose_project_name(project)),
        dir,
        mongo_port,
        postgres_port: None,
        core_port,
        mongo_password,
        env_password,
        passkey,
    };
    wait_tcp(mongo_port, Duration::from_secs(30)).await?;
    if opts.drift {
        wait_crash_loop(engine, &stack.core, Duration::from_secs(60)).await?;
    } else {
        wait_healthy(engine, &stack.core, core_start_limit(&images, 60)).await?;
    }
    Ok(stack)
}

/// The project name as compose 1.x normalises it (lower case; `-`, `_`, letters, digits).
pub fn compose_project_name(project: &str) -> String {
    project
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
