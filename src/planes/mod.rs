//! The three planes of one Komodo deployment, loaded from the config: the SOPS compose.env, the
//! Docker containers and the MongoDB they share. Commands compose these; this module is the only
//! place that knows how the planes refer to each other (which env key in which container holds
//! the DB password, where Mongo answers).

pub mod carriers;
mod context;
pub mod execute;
pub mod ferret;
pub mod ferret_read;
mod git_guard;
pub mod git_inverse;
pub mod git_steps;
pub mod holders;
mod inverse;
pub mod last_value;
pub mod layout;
pub mod leftovers;
pub mod live;
pub mod partial;
pub mod password_keys;
pub mod pg_step;
mod proof;
mod proof_ferret;
mod restore;
pub mod run;
pub mod steps;
pub mod value;
mod write_env;

pub use run::{CarrierFile, GitTarget, PgRole, RunContext};
use run::{FORM_FILE, FORM_URI};

use crate::config::Config;
use crate::docker::carrier::{self, Form};
use crate::docker::compose_value;
use crate::docker::generation::Carrier;
use crate::docker::{self, ContainerInfo, DiscoverySpec, Engine, Generation};
use crate::error::{Error, Result};
use crate::mongo::Target;
use crate::secret::Secret;
use crate::sops::{Decrypted, Identities, SopsFile};
use std::collections::BTreeMap;

/// compose.env, decrypted and MAC-verified.
pub struct EnvPlane {
    pub ids: Identities,
    pub file: SopsFile,
    pub plain: Decrypted,
}

impl EnvPlane {
    pub fn load(cfg: &Config) -> Result<EnvPlane> {
        let ids = Identities::discover(cfg.age_key_file.as_deref())?;
        let file = SopsFile::load(&cfg.compose_env)?;
        let plain = file.decrypt(&ids)?;
        Ok(EnvPlane { ids, file, plain })
    }

    pub fn keys(&self) -> Vec<String> {
        self.plain.keys()
    }

    /// The value compose hands a container for `key` (quotes, inline comments, escapes and
    /// `${VAR}` read as compose reads them: `docker::compose_value`), `None` when compose.env
    /// does not set it. A value whose compose reading cannot be determined is refused by name
    /// (exit 3). Every comparison of compose.env with a live value goes through here.
    pub fn value(&self, key: &str) -> Result<Option<Secret>> {
        compose_value::value(&self.plain.entries(), key)
            .map_err(|r| Error::Precondition(format!("{}: {r}", self.file.name())))
    }
}

/// The containers of the deployment, inspected once.
pub struct DockerPlane {
    pub engine: Engine,
    pub mongo: ContainerInfo,
    pub core: ContainerInfo,
    pub periphery: Vec<ContainerInfo>,
    /// `compose run` one-offs of the project: left out (never holders, never recreated).
    pub oneoffs: Vec<String>,
    /// The project's other containers (no Komodo role), inspected: checked for secrets held by
    /// value (`holders::foreign`).
    pub others: Vec<ContainerInfo>,
}

impl DockerPlane {
    pub async fn load(cfg: &Config) -> Result<DockerPlane> {
        let engine = Engine::connect().await?;
        let d = &cfg.discovery;
        let spec = DiscoverySpec {
            project: d.project.clone(),
            mongo_service: d.services.mongo.clone(),
            core_service: d.services.core.clone(),
            periphery_services: d.services.periphery.clone(),
            mongo_name: d.containers.mongo.clone(),
            core_name: d.containers.core.clone(),
            periphery_names: d.containers.periphery.clone(),
        };
        let names = docker::Deployment::discover(&engine, &spec).await?;
        // The inspects go out together; errors are still reported in role order.
        let (mongo, core, periphery, others) = futures_util::join!(
            ContainerInfo::load(&engine, &names.mongo),
            ContainerInfo::load(&engine, &names.core),
            futures_util::future::join_all(
                names
                    .periphery
                    .iter()
                    .map(|p| ContainerInfo::load(&engine, p))
            ),
            futures_util::future::join_all(
                names.others.iter().map(|p| ContainerInfo::load(&engine, p))
            ),
        );
        Ok(DockerPlane {
            mongo: mongo?,
            core: core?,
            periphery: periphery
                .into_iter()
                .collect::<std::result::Result<_, _>>()?,
            oneoffs: names.oneoffs,
            others: others.into_iter().collect::<std::result::Result<_, _>>()?,
            engine,
        })
    }

    /// Only the mongo container, for `resume`: core may be mid-recreate under another name.
    pub async fn mongo_only(cfg: &Config) -> Result<(Engine, ContainerInfo)> {
        let engine = Engine::connect().await?;
        let name = match &cfg.discovery.containers.mongo {
            Some(n) => n.clone(),
            None => {
                docker::discovery::mongo_service(
                    &engine,
                    &cfg.discovery.project,
                    &cfg.discovery.services.mongo,
                )
                .await?
            }
        };
        let info = ContainerInfo::load(&engine, &name).await?;
        Ok((engine, info))
    }

    /// Core first, then each periphery: the order recreates run in.
    pub fn dependants(&self) -> impl Iterator<Item = &ContainerInfo> {
        std::iter::once(&self.core).chain(self.periphery.iter())
    }
}

/// Which keys carry the DB password where, for the detected Komodo generation.
#[derive(Debug, Clone)]
pub struct DbPasswordKeys {
    pub generation: Generation,
    pub compose_user_key: String,
    pub compose_password_key: String,
    /// Container name → keys present in that container's env that carry the password, in any
    /// form (plain, inside a URI, or naming a bind-mounted file).
    pub containers: BTreeMap<String, Vec<String>>,
    /// Env key → `uri` or `file` for the keys of `containers` that are not plain.
    pub forms: BTreeMap<String, String>,
    /// The host files behind the file-form keys (one per host path, with every reader).
    pub files: Vec<CarrierFile>,
    pub mongo_init_key: String,
    pub warnings: Vec<String>,
    /// Where (a container name, or compose.env's file name) the DB credential is carried in a
    /// form the plan does not patch: a rotation would leave it on the old value.
    pub unpatched: Vec<(String, Carrier)>,
}

impl DbPasswordKeys {
    pub fn detect(env: &EnvPlane, dk: &DockerPlane) -> Result<DbPasswordKeys> {
        let env_keys = env.keys();
        let env_refs: Vec<&str> = env_keys.iter().map(String::as_str).collect();
        let core_keys: Vec<&str> = dk.core.env_keys().collect();
        let det = docker::generation::detect(&env_refs, &core_keys)
            .map_err(|e| Error::Precondition(format!("{}: {e}", dk.core.name)))?;
        let g = det.generation;
        let mut containers = BTreeMap::new();
        let present = |c: &ContainerInfo, wanted: &[&str]| -> Vec<String> {
            wanted
                .iter()
                .filter(|k| c.env_value(k).is_some())
                .map(|k| k.to_string())
                .collect()
        };
        let mut forms = BTreeMap::new();
        let mut files: Vec<CarrierFile> = Vec::new();
        let mut unpatched = Vec::new();
        for c in dk.dependants() {
            let wanted = if c.name == dk.core.name {
                g.core_db_password_keys()
            } else {
                g.periphery_db_password_keys()
            };
            let (carried, refused) = carrier::classify(&c.env, &c.mounts, &present(c, wanted));
            let mut keys = Vec::new();
            for k in carried {
                match &k.form {
                    Form::Plain => {}
                    Form::Uri => {
                        forms.insert(k.key.clone(), FORM_URI.to_string());
                    }
                    Form::File {
                        host_path, content, ..
                    } => {
                        forms.insert(k.key.clone(), FORM_FILE.to_string());
                        match files.iter_mut().find(|f| &f.host_path == host_path) {
                            Some(f) => f.readers.push(c.name.clone()),
                            None => files.push(CarrierFile {
                                key: k.key.clone(),
                                host_path: host_path.clone(),
                                content: match content {
                                    carrier::FileContent::Password => "password".into(),
                                    carrier::FileContent::Uri => "uri".into(),
                                },
                                readers: vec![c.name.clone()],
                            }),
                        }
                    }
                }
                keys.push(k.key);
            }
            containers.insert(c.name.clone(), keys);
            unpatched.extend(refused.into_iter().map(|r| {
                (
                    c.name.clone(),
                    Carrier {
                        key: r.key,
                        why: r.why,
                    },
                )
            }));
        }
        // compose.env itself: a URI with the password inside would be handed to containers
        // again by the next `docker compose up`, and write-env patches plain keys only.
        for k in env_keys
            .iter()
            .filter(|k| carrier::URI_KEYS.contains(&k.as_str()))
        {
            let read = env.value(k);
            if let Ok(None) = read {
                continue;
            }
            if let Err(e) = &read {
                unpatched.push((
                    env.file.name().to_string(),
                    Carrier {
                        key: k.clone(),
                        why: format!("cannot be read as compose reads it ({e})"),
                    },
                ));
                continue;
            }
            if let Ok(Some(v)) = read {
                if crate::docker::uri::has_password(k, &v).unwrap_or(true) {
                    unpatched.push((
                        env.file.name().to_string(),
                        Carrier {
                            key: k.clone(),
                            why: "holds the DB password inside a connection URI in compose.env, which write-env does not rewrite; interpolate ${KOMODO_DATABASE_PASSWORD} into the URI in the compose file instead".into(),
                        },
                    ));
                }
            }
        }
        Ok(DbPasswordKeys {
            generation: g,
            compose_user_key: g.compose_db_username_key().into(),
            compose_password_key: g.compose_db_password_key().into(),
            containers,
            forms,
            files,
            mongo_init_key: g.mongo_db_password_key().into(),
            warnings: det.warnings,
            unpatched,
        })
    }

    /// One line per unpatched carrier: where, which key, why (names only).
    pub fn unpatched_lines(&self) -> Vec<String> {
        self.unpatched
            .iter()
            .map(|(at, c)| format!("{at}: {} {}", c.key, c.why))
            .collect()
    }

    /// The pre-flight's refusal (exit 3) while any carrier would keep the old value.
    pub fn refuse_unpatched(&self) -> Result<()> {
        if self.unpatched.is_empty() {
            return Ok(());
        }
        Err(Error::Precondition(format!(
            "the DB credential is also carried where a rotation cannot rewrite it ({}); nothing was changed. Move it to a form the rotation patches (README: Credential carriers)",
            self.unpatched_lines().join("; ")
        )))
    }

    /// compose.env's DB password, as compose hands it to the containers.
    pub fn env_password(&self, env: &EnvPlane) -> Result<Secret> {
        self.env_password_keys(env).map(|(pw, _)| pw)
    }

    /// compose.env's DB password (as compose reads it) and every compose.env key a rotation
    /// rewrites with it: the generation's key, each other generation's password key holding
    /// the same value (a host upgraded from 1.19 keeps both), and any other key compose reads
    /// as the same value (by value, for values of 8 characters or more; `${..}` links follow
    /// by themselves and are left alone). Another generation's key holding a different value
    /// is refused by name: which one the containers get depends on the compose file.
    pub fn env_password_keys(&self, env: &EnvPlane) -> Result<(Secret, Vec<String>)> {
        password_keys::find(
            &env.plain.entries(),
            &self.compose_password_key,
            &self.compose_user_key,
        )
        .map_err(|e| Error::Precondition(format!("{}: {e}", env.file.name())))
    }

    /// The Mongo user: the config's, else compose.env's username (not a secret).
    pub fn user(&self, cfg: &Config, env: &EnvPlane) -> Result<String> {
        if !cfg.mongo.user.is_empty() {
            return Ok(cfg.mongo.user.clone());
        }
        env.value(&self.compose_user_key)?
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Precondition(format!(
                    "{}: has no {} (set [mongo] user in the config)",
                    env.file.name(),
                    self.compose_user_key
                ))
            })
    }

    /// The containers outside the roles holding `value` (`holders::patchable`: plain or in a
    /// URI, else refused by name, exit 3) and the run's container keys and forms with them added.
    #[allow(clippy::type_complexity)]
    pub fn with_foreign(
        &self,
        others: &[ContainerInfo],
        value: &Secret,
    ) -> Result<(
        Vec<holders::Foreign>,
        BTreeMap<String, Vec<String>>,
        BTreeMap<String, String>,
    )> {
        let role_keys: Vec<String> = self.containers.values().flatten().cloned().collect();
        let found = holders::patchable(others, value, "the DB password", &role_keys, &self.forms)?;
        let (mut container_keys, mut forms) = (self.containers.clone(), self.forms.clone());
        holders::add_to_context(&found, &mut container_keys, &mut forms);
        Ok((found, container_keys, forms))
    }

    /// Containers whose env holds the password under at least one key.
    pub fn holders(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.containers.iter().filter(|(_, k)| !k.is_empty())
    }
}

/// Everything a run needs from the three planes, loaded and cross-checked: the pre-flight's
/// first half, shared by `rotate` (every kind) and `rescue`. Unpatched DB carriers are found
/// here and refused by the runs that change the DB password.
pub struct Loaded {
    pub env: EnvPlane,
    pub dk: DockerPlane,
    pub keys: DbPasswordKeys,
    pub user: String,
    pub target: Target,
    /// Core, then each periphery whose env holds the DB password.
    pub holders: Vec<String>,
}

impl Loaded {
    pub async fn load(cfg: &Config) -> Result<Loaded> {
        let env = EnvPlane::load(cfg)?;
        let dk = DockerPlane::load(cfg).await?;
        let keys = DbPasswordKeys::detect(&env, &dk)?;
        for w in &keys.warnings {
            eprintln!("komodo-rotate: warning: {w}");
        }
        if !dk.oneoffs.is_empty() {
            eprintln!(
                "komodo-rotate: note: left out the `compose run` one-off containers {} (never holders, never recreated)",
                dk.oneoffs.join(", ")
            );
        }
        let user = keys.user(cfg, &env)?;
        let target = mongo_target(cfg, &dk.mongo, &user)?;
        let holders = dk
            .dependants()
            .filter(|c| keys.containers.get(&c.name).is_some_and(|k| !k.is_empty()))
            .map(|c| c.name.clone())
            .collect();
        Ok(Loaded {
            env,
            dk,
            keys,
            user,
            target,
            holders,
        })
    }
}

/// Where Mongo answers: the configured URI, else the port the mongo container publishes on the
/// host, else its address on its first network.
pub fn mongo_target(cfg: &Config, mongo: &ContainerInfo, user: &str) -> Result<Target> {
    let uri = if !cfg.mongo.uri.is_empty() {
        cfg.mongo.uri.clone()
    } else if let Some(port) = mongo.loopback_port("27017/tcp") {
        format!("mongodb://127.0.0.1:{port}/?directConnection=true")
    } else if let Some(ip) = mongo.ip_addresses.values().find(|ip| !ip.is_empty()) {
        format!("mongodb://{ip}:27017/?directConnection=true")
    } else {
        return Err(Error::Precondition(format!(
            "container {} publishes no port 27017 and has no network address (is it running?); set [mongo] uri",
            mongo.name
        )));
    };
    Ok(Target::new(&uri, user)?
        .with_auth_source(&cfg.mongo.auth_source)
        .with_timeout(cfg.mongo.connect_timeout))
}
