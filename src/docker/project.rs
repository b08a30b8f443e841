//! Compose projects as the engine shows them, for `init`: every container compose made carries
//! `com.docker.compose.project`, `…service`, `…project.working_dir` and
//! `…project.config_files` (compose 1.x and v2 alike), so the deployment, its services and the
//! compose files it was started from can be read back from the labels alone. The compose files'
//! `env_file` entries then name compose.env. Nothing here writes anything.

use super::compose_yaml::env_files_in_file;
pub use super::compose_yaml::{env_files, interpolate, project_dotenv};
use super::discovery::{PROJECT_LABEL, SERVICE_LABEL};
use super::engine::Engine;
use super::inspect::ContainerInfo;
use super::recreate::{NEXT_SUFFIX, PREV_SUFFIX};
use super::DockerError;
use bollard::query_parameters::ListContainersOptions;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// One container of a compose service: what `init` needs to tell the roles apart. Env keys
/// only, never values.
#[derive(Debug, Clone)]
pub struct ServiceContainer {
    pub name: String,
    pub image: String,
    pub env_keys: Vec<String>,
    /// Host port published on loopback (or all addresses) for 27017/tcp.
    pub mongo_port: Option<u16>,
}

/// A compose project found on the engine.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub name: String,
    pub working_dir: Option<PathBuf>,
    /// As compose recorded them (absolute, or relative to `working_dir`).
    pub config_files: Vec<PathBuf>,
    /// Service name → its canonical containers (leftovers of a recreate left out).
    pub services: BTreeMap<String, Vec<ServiceContainer>>,
}

/// The services that play Komodo's three roles in a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub mongo: String,
    pub core: String,
    pub periphery: Vec<String>,
}

/// An inspect that found no container: `None` (it was removed since it was listed).
fn gone_is_none(
    r: Result<ContainerInfo, DockerError>,
) -> Result<Option<ContainerInfo>, DockerError> {
    match r {
        Ok(i) => Ok(Some(i)),
        Err(DockerError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl ComposeProject {
    /// Every compose project with at least one container (running or not), sorted by name.
    pub async fn list(engine: &Engine) -> Result<Vec<ComposeProject>, DockerError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![PROJECT_LABEL.to_string()],
            )])),
            ..Default::default()
        };
        let list = engine
            .raw()
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::Api {
                op: "list containers",
                target: "of compose projects".into(),
                status: None,
                msg: e.to_string().lines().next().unwrap_or("").to_string(),
            })?;
        let mut projects: BTreeMap<String, ComposeProject> = BTreeMap::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let (Some(project), Some(service)) =
                (labels.get(PROJECT_LABEL), labels.get(SERVICE_LABEL))
            else {
                continue;
            };
            let Some(name) = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
            else {
                continue;
            };
            if name.ends_with(NEXT_SUFFIX) || name.ends_with(PREV_SUFFIX) {
                continue;
            }
            // A container of another project can vanish between the list and its inspect (compose
            // renames and removes the old one while it recreates): it is in no project any more.
            let Some(info) = gone_is_none(ContainerInfo::load(engine, &name).await)? else {
                continue;
            };
            let p = projects
                .entry(project.clone())
                .or_insert_with(|| ComposeProject {
                    name: project.clone(),
                    working_dir: None,
                    config_files: Vec::new(),
                    services: BTreeMap::new(),
                });
            if p.working_dir.is_none() {
                p.working_dir = labels.get(WORKING_DIR_LABEL).map(PathBuf::from);
            }
            if p.config_files.is_empty() {
                if let Some(files) = labels.get(CONFIG_FILES_LABEL) {
                    p.config_files = files
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(PathBuf::from)
                        .collect();
                }
            }
            let entry = ServiceContainer {
                mongo_port: info.loopback_port("27017/tcp"),
                env_keys: info.env_keys().map(str::to_string).collect(),
                image: info.image.clone(),
                name,
            };
            p.services.entry(service.clone()).or_default().push(entry);
        }
        for p in projects.values_mut() {
            for cs in p.services.values_mut() {
                cs.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        Ok(projects.into_values().collect())
    }

    /// The compose files as absolute paths (relative ones against `working_dir`).
    pub fn config_file_paths(&self) -> Vec<PathBuf> {
        self.config_files
            .iter()
            .map(|f| match (&self.working_dir, f.is_absolute()) {
                (Some(d), false) => d.join(f),
                _ => f.clone(),
            })
            .collect()
    }

    /// Which services are Komodo's mongo, core and periphery, from their images and env keys
    /// (service names are the user's to choose). `None` unless there is exactly one core and
    /// one mongo.
    pub fn roles(&self) -> Option<Roles> {
        let mut mongo = Vec::new();
        let mut core = Vec::new();
        let mut periphery = Vec::new();
        for (service, containers) in &self.services {
            let Some(c) = containers.first() else {
                continue;
            };
            match role_of(c) {
                Some(Role::Core) => core.push(service.clone()),
                Some(Role::Mongo) => mongo.push(service.clone()),
                Some(Role::Periphery) => periphery.push(service.clone()),
                None => {}
            }
        }
        match (mongo.as_slice(), core.as_slice()) {
            ([m], [c]) => Some(Roles {
                mongo: m.clone(),
                core: c.clone(),
                periphery,
            }),
            _ => None,
        }
    }

    /// The `env_file` entries of `service` across the project's compose files (see
    /// [`env_files`]), in file order, without repeats.
    pub fn env_files_of(
        &self,
        service: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<PathBuf>, String> {
        let base = self.working_dir.clone().unwrap_or_default();
        let mut out: Vec<PathBuf> = Vec::new();
        for f in self.config_file_paths() {
            for p in env_files_in_file(&f, service, &base, lookup)? {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// The first container of `service` (for its published Mongo port and env keys).
    pub fn first(&self, service: &str) -> Option<&ServiceContainer> {
        self.services.get(service).and_then(|c| c.first())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Mongo,
    Core,
    Periphery,
}

fn role_of(c: &ServiceContainer) -> Option<Role> {
    let has = |k: &str| c.env_keys.iter().any(|e| e == k);
    let image = c.image.rsplit('/').next().unwrap_or(&c.image);
    let image = image.split([':', '@']).next().unwrap_or(image);
    // The image first: a shared compose.env gives periphery (and any other service reading it)
    // core's KOMODO_DATABASE_* keys, so env keys only decide for images we do not know.
    if image == "komodo-core" || image == "komodo" {
        return Some(Role::Core);
    }
    if image == "mongo" || image.starts_with("mongodb-") {
        return Some(Role::Mongo);
    }
    // The FerretDB variant: ferretdb is the database core talks to (the mongo role; its
    // PostgreSQL is found by `planes::ferret`), by its image or its PostgreSQL URL.
    if image == "ferretdb" || has("FERRETDB_POSTGRESQL_URL") {
        return Some(Role::Mongo);
    }
    if image.contains("periphery") {
        return Some(Role::Periphery);
    }
    // Core first: through env_file it also holds PERIPHERY_* keys.
    if has("KOMODO_DATABASE_ADDRESS") || has("KOMODO_DATABASE_URI") || has("KOMODO_MONGO_ADDRESS") {
        Some(Role::Core)
    } else if has("MONGO_INITDB_ROOT_USERNAME") {
        Some(Role::Mongo)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_container_gone_since_the_list_is_skipped_other_errors_are_not() {
        let gone = gone_is_none(Err(DockerError::NotFound("x_mongo_1".into())));
        assert!(matches!(gone, Ok(None)));
        let api = gone_is_none(Err(DockerError::Api {
            op: "inspect",
            target: "x".into(),
            status: Some(500),
            msg: "boom".into(),
        }));
        assert!(matches!(api, Err(DockerError::Api { .. })));
    }

    #[test]
    fn env_file_forms_and_interpolation() {
        let yaml = "services:\n  core:\n    env_file: ./compose.env\n  periphery:\n    env_file:\n      - a.env\n      - path: /abs/b.env\n        required: false\n  x:\n    env_file: ${KOMODO_ENV_FILE:-./compose.env}\n  y:\n    env_file: ${NOPE}/c.env\n";
        let base = Path::new("/srv/komodo");
        let f = |s| env_files(yaml, "f.yaml", s, base, &none);
        assert_eq!(f("core").unwrap(), vec![base.join("./compose.env")]);
        assert_eq!(
            f("periphery").unwrap(),
            vec![base.join("a.env"), PathBuf::from("/abs/b.env")]
        );
        assert_eq!(f("x").unwrap(), vec![base.join("./compose.env")]);
        assert!(f("missing").unwrap().is_empty());
        let e = f("y").unwrap_err();
        assert!(e.contains("$NOPE"), "{e}");
        let set = |n: &str| (n == "KOMODO_ENV_FILE").then(|| "/run/k.env".to_string());
        assert_eq!(
            env_files(yaml, "f.yaml", "x", base, &set).unwrap(),
            vec![PathBuf::from("/run/k.env")]
        );
        let bad = env_files("services: [", "f.yaml", "core", base, &none).unwrap_err();
        assert!(bad.starts_with("f.yaml: "), "{bad}");
    }

    #[test]
    fn roles_from_images_and_env_keys() {
        let c = |name: &str, image: &str, keys: &[&str]| ServiceContainer {
            name: name.into(),
            image: image.into(),
            env_keys: keys.iter().map(|k| k.to_string()).collect(),
            mongo_port: None,
        };
        let mut p = ComposeProject {
            name: "komodo".into(),
            working_dir: None,
            config_files: vec![],
            services: BTreeMap::new(),
        };
        p.services.insert(
            "db".into(),
            vec![c("komodo_db_1", "mongo:7", &["MONGO_INITDB_ROOT_USERNAME"])],
        );
        p.services.insert(
            "komodo".into(),
            vec![c(
                "komodo-core",
                "ghcr.io/moghtech/komodo-core:1.19.5",
                &["PERIPHERY_PASSKEYS"],
            )],
        );
        // A periphery given compose.env (and with it core's DB keys) is still a periphery.
        p.services.insert(
            "agent".into(),
            vec![c(
                "a",
                "ghcr.io/moghtech/komodo-periphery:2",
                &["KOMODO_DATABASE_ADDRESS", "KOMODO_DATABASE_PASSWORD"],
            )],
        );
        p.services
            .insert("other".into(), vec![c("o", "nginx:latest", &[])]);
        assert_eq!(
            p.roles(),
            Some(Roles {
                mongo: "db".into(),
                core: "komodo".into(),
                periphery: vec!["agent".into()],
            })
        );
        p.services.remove("db");
        assert_eq!(p.roles(), None);
        // The FerretDB variant (Komodo's ferretdb.compose.yaml): ferretdb plays the database
        // core talks to, by image or by its PostgreSQL URL; postgres plays no role here.
        p.services.insert(
            "postgres".into(),
            vec![c(
                "komodo-postgres-1",
                "ghcr.io/ferretdb/postgres-documentdb:17",
                &["POSTGRES_USER", "POSTGRES_PASSWORD"],
            )],
        );
        for (image, keys) in [
            ("ghcr.io/ferretdb/ferretdb:2", &[][..]),
            ("ferretdb-shaped:x", &["FERRETDB_POSTGRESQL_URL"][..]),
        ] {
            p.services
                .insert("ferretdb".into(), vec![c("komodo-ferretdb-1", image, keys)]);
            assert_eq!(
                p.roles(),
                Some(Roles {
                    mongo: "ferretdb".into(),
                    core: "komodo".into(),
                    periphery: vec!["agent".into()],
                }),
                "{image}"
            );
        }
    }
}
