//! Finding Komodo's containers. Compose sets no container names in Komodo's official files, and
//! many users add their own, so the labels compose puts on every container
//! (`com.docker.compose.project`, `com.docker.compose.service`) are the reliable key; an explicit
//! container name overrides the label lookup for a role.

use super::engine::Engine;
use super::recreate::{NEXT_SUFFIX, PREV_SUFFIX};
use super::DockerError;
use bollard::models::ContainerSummary;

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Set (`True`) by `compose run` on its one-off containers: never a holder, never a role.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// How to find the containers (DESIGN.md "Configuration" `[discovery]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySpec {
    pub project: String,
    pub mongo_service: String,
    pub core_service: String,
    pub periphery_services: Vec<String>,
    /// Container names that replace the label lookup for a role.
    pub mongo_name: Option<String>,
    pub core_name: Option<String>,
    pub periphery_names: Vec<String>,
}

impl Default for DiscoverySpec {
    fn default() -> Self {
        DiscoverySpec {
            project: "komodo".into(),
            mongo_service: "mongo".into(),
            core_service: "core".into(),
            periphery_services: vec!["periphery".into()],
            mongo_name: None,
            core_name: None,
            periphery_names: Vec::new(),
        }
    }
}

/// Container names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub mongo: String,
    pub core: String,
    pub periphery: Vec<String>,
    /// `compose run` one-offs of the project, left out of every role (named so callers can say
    /// so).
    pub oneoffs: Vec<String>,
    /// The project's other containers (a `backup` service, a sidecar): no role, but they may
    /// hold a secret by value. Leftovers and one-offs excluded.
    pub others: Vec<String>,
}

impl Deployment {
    pub async fn discover(
        engine: &Engine,
        spec: &DiscoverySpec,
    ) -> Result<Deployment, DockerError> {
        // The three lookups go out together; errors are still reported in role order.
        let mongo = async {
            match &spec.mongo_name {
                Some(n) => named(engine, n, "mongo").await,
                None => mongo_service(engine, &spec.project, &spec.mongo_service).await,
            }
        };
        let core = async {
            match &spec.core_name {
                Some(n) => named(engine, n, "core").await,
                None => one_service(engine, &spec.project, &spec.core_service).await,
            }
        };
        let (mongo, core, periphery, rest) = futures_util::join!(
            mongo,
            core,
            peripheries(engine, spec),
            project_rest(engine, &spec.project)
        );
        let (mongo, core, periphery, (oneoffs, rest)) = (mongo?, core?, periphery?, rest?);
        let others = rest
            .into_iter()
            .filter(|n| *n != mongo && *n != core && !periphery.contains(n))
            .collect();
        Ok(Deployment {
            mongo,
            core,
            periphery,
            oneoffs,
            others,
        })
    }
}

/// Every periphery container: by name when names are set, else each periphery service's.
async fn peripheries(engine: &Engine, spec: &DiscoverySpec) -> Result<Vec<String>, DockerError> {
    let mut periphery = Vec::new();
    if spec.periphery_names.is_empty() {
        for svc in &spec.periphery_services {
            let found = service_containers(engine, &spec.project, svc).await?;
            if found.is_empty() {
                return Err(not_found(&spec.project, svc, &[]));
            }
            periphery.extend(found);
        }
    } else {
        for n in &spec.periphery_names {
            periphery.push(named(engine, n, "periphery").await?);
        }
    }
    Ok(periphery)
}

async fn named(engine: &Engine, name: &str, role: &str) -> Result<String, DockerError> {
    match engine.try_inspect(name).await? {
        Some(_) => Ok(name.to_string()),
        None => Err(DockerError::Discovery(format!(
            "{role} container {name:?} (set by name) does not exist"
        ))),
    }
}

/// The one canonical container of `service` in `project` (leftovers of an interrupted recreate
/// excluded); an error naming the service when there is none or more than one.
/// The default `[discovery] services.mongo`.
pub const DEFAULT_MONGO_SERVICE: &str = "mongo";
/// The service playing the mongo role in Komodo's `ferretdb.compose.yaml`.
pub const FERRETDB_SERVICE: &str = "ferretdb";

/// The container of the mongo role: `service`'s one container. Komodo's `ferretdb.compose.yaml`
/// has no `mongo` service, so with the default name and no container of it, the `ferretdb`
/// service's container plays the part (FerretDB is the database core talks to); the error
/// otherwise is the `mongo` service's.
pub async fn mongo_service(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<String, DockerError> {
    match one_service(engine, project, service).await {
        Err(e) if service == DEFAULT_MONGO_SERVICE => {
            match service_containers(engine, project, FERRETDB_SERVICE).await {
                Ok(f) if !f.is_empty() => one_service(engine, project, FERRETDB_SERVICE).await,
                _ => Err(e),
            }
        }
        r => r,
    }
}

pub async fn one_service(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<String, DockerError> {
    let found = service_containers(engine, project, service).await?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let leftovers = leftovers(engine, project, service).await?;
            Err(not_found(project, service, &leftovers))
        }
        many => Err(DockerError::Discovery(format!(
            "service {service:?} of compose project {project:?} has {} containers ({}); name the one to use in [discovery]",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// Canonical containers of a service, sorted by name; the `-next`/`-prev` containers of an
/// interrupted recreate carry the same labels and are left out.
async fn service_containers(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<String>, DockerError> {
    let mut names: Vec<String> = all_names(engine, project, service)
        .await?
        .into_iter()
        .filter(|n| !is_leftover(n))
        .collect();
    names.sort();
    Ok(names)
}

async fn leftovers(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<String>, DockerError> {
    Ok(all_names(engine, project, service)
        .await?
        .into_iter()
        .filter(|n| is_leftover(n))
        .collect())
}

/// Every container of `service` but the `compose run` one-offs.
async fn all_names(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<String>, DockerError> {
    let list = engine
        .list_by_labels(&[(PROJECT_LABEL, project), (SERVICE_LABEL, service)])
        .await?;
    Ok(list
        .into_iter()
        .filter(|c| !is_oneoff(c))
        .filter_map(name_of)
        .collect())
}

/// The containers of `project`, sorted: its `compose run` one-offs, and the rest (leftovers of
/// an interrupted recreate excluded).
async fn project_rest(
    engine: &Engine,
    project: &str,
) -> Result<(Vec<String>, Vec<String>), DockerError> {
    let list = engine.list_by_labels(&[(PROJECT_LABEL, project)]).await?;
    let (mut oneoffs, mut rest) = (Vec::new(), Vec::new());
    for c in list {
        let oneoff = is_oneoff(&c);
        match name_of(c) {
            Some(n) if oneoff => oneoffs.push(n),
            Some(n) if !is_leftover(&n) => rest.push(n),
            _ => {}
        }
    }
    oneoffs.sort();
    rest.sort();
    Ok((oneoffs, rest))
}

fn name_of(c: ContainerSummary) -> Option<String> {
    c.names
        .and_then(|n| n.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_string())
}

fn is_oneoff(c: &ContainerSummary) -> bool {
    c.labels
        .as_ref()
        .and_then(|l| l.get(ONEOFF_LABEL))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn is_leftover(name: &str) -> bool {
    name.ends_with(NEXT_SUFFIX) || name.ends_with(PREV_SUFFIX)
}

fn not_found(project: &str, service: &str, leftovers: &[String]) -> DockerError {
    if leftovers.is_empty() {
        DockerError::Discovery(format!(
            "no container of service {service:?} in compose project {project:?} (labels {PROJECT_LABEL}, {SERVICE_LABEL})"
        ))
    } else {
        DockerError::Discovery(format!(
            "service {service:?} of compose project {project:?} has only the leftovers of an interrupted recreate ({}); run `komodo-rotate resume`",
            leftovers.join(", ")
        ))
    }
}
