//! `init`: write a komodo-rotate.toml for the Komodo deployment running on this host. The
//! deployment is found by compose's labels (docker::project), compose.env by the compose files'
//! `env_file` entries (or `--compose-env`); the age identity that opens it and the Komodo
//! generation are checked before anything is written. Never overwrites; `--print` writes
//! nothing at all.

use crate::cli::InitArgs;
use crate::docker::generation::{detect, detect_variant, ServiceKeys, Variant};
use crate::docker::project::{ComposeProject, Roles};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::sops::{Identities, SopsFile};
use std::path::{Path, PathBuf};

/// What init found; rendered as the config.
#[derive(Debug)]
pub struct Found {
    pub project: String,
    pub roles: Roles,
    pub compose_files: Vec<PathBuf>,
    pub compose_env: PathBuf,
    /// `None`: sops' own lookup (SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, …) opened it.
    pub age_key_file: Option<PathBuf>,
    pub generation: &'static str,
    pub mongo_port: Option<u16>,
    /// MongoDB, or FerretDB on PostgreSQL (then the mongo role is the ferretdb service).
    pub variant: Variant,
}

pub fn run(args: InitArgs) -> Result<i32> {
    if !args.print && args.output.exists() {
        return Err(Error::Usage(format!(
            "{} exists; init never overwrites a config (use --print, or --output another path)",
            args.output.display()
        )));
    }
    let found = super::runtime()?.block_on(find(&args))?;
    let text = render(&found);
    if args.print {
        print!("{text}");
        return Ok(crate::error::exit::OK);
    }
    crate::fsutil::write_new(&args.output, text.as_bytes(), 0o600).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} exists; init never overwrites a config",
                args.output.display()
            ))
        } else {
            Error::io(&args.output, e)
        }
    })?;
    if !super::quiet() {
        eprintln!(
            "init: wrote {} for compose project {:?} ({}, {}); next: komodo-rotate verify",
            args.output.display(),
            found.project,
            found.generation,
            found.variant.as_str()
        );
    }
    Ok(crate::error::exit::OK)
}

pub async fn find(args: &InitArgs) -> Result<Found> {
    let engine = Engine::connect().await?;
    let projects = ComposeProject::list(&engine).await?;
    let komodo: Vec<(ComposeProject, Roles)> = projects
        .into_iter()
        .filter(|p| args.project.as_deref().is_none_or(|n| n == p.name))
        .filter_map(|p| p.roles().map(|r| (p, r)))
        .collect();
    let (project, roles) = match komodo.len() {
        1 => komodo.into_iter().next().expect("one"),
        0 => {
            return Err(Error::Precondition(match &args.project {
                Some(n) => format!("compose project {n:?} has no Komodo core and mongo containers (labels com.docker.compose.project/service)"),
                None => "no compose project with Komodo core and mongo containers on this engine (labels com.docker.compose.project/service)".into(),
            }))
        }
        _ => {
            let names: Vec<&str> = komodo.iter().map(|(p, _)| p.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "{} compose projects look like Komodo ({}): pick one with --project",
                names.len(),
                names.join(", ")
            )));
        }
    };
    let compose_env = match &args.compose_env {
        Some(p) => p.clone(),
        None => compose_env_from_files(&project, &roles.core)?,
    };
    let compose_env = std::path::absolute(&compose_env).map_err(|e| Error::io(&compose_env, e))?;
    let file = SopsFile::load(&compose_env)?;
    let (age_key_file, ids) = identity(&file, &compose_env, args.age_key_file.as_deref())?;
    let plain = file.decrypt(&ids)?;
    let env_keys = plain.keys();
    let env_keys: Vec<&str> = env_keys.iter().map(String::as_str).collect();
    let core = project.first(&roles.core).expect("a role has a container");
    let core_keys: Vec<&str> = core.env_keys.iter().map(String::as_str).collect();
    let generation = detect(&env_keys, &core_keys)
        .map_err(|e| Error::Precondition(format!("{}: {e}", compose_env.display())))?
        .generation
        .as_str();
    let variant = variant_of(&project, &roles)
        .map_err(|e| Error::Precondition(format!("compose project {:?}: {e}", project.name)))?;
    Ok(Found {
        variant,
        mongo_port: project.first(&roles.mongo).and_then(|m| m.mongo_port),
        compose_files: project.config_file_paths(),
        project: project.name.clone(),
        roles,
        compose_env,
        age_key_file,
        generation,
    })
}

/// The deployment's database variant from its services' env keys (core and periphery are
/// clients, never candidates). The mongo role is the service core talks to: for FerretDB it is
/// the service carrying `FERRETDB_POSTGRESQL_URL` (`docker::project`), so it stands for core's
/// `KOMODO_DATABASE_ADDRESS` here; every run checks the address itself (`planes::ferret`).
fn variant_of(project: &ComposeProject, roles: &Roles) -> std::result::Result<Variant, String> {
    let services: Vec<ServiceKeys<'_>> = project
        .services
        .iter()
        .filter(|(svc, _)| **svc != roles.core && !roles.periphery.contains(svc))
        .filter_map(|(svc, cs)| {
            cs.first().map(|c| ServiceKeys {
                service: svc,
                container: &c.name,
                env_keys: c.env_keys.iter().map(String::as_str).collect(),
            })
        })
        .collect();
    detect_variant(&services, Some(&roles.mongo))
}

/// The SOPS-encrypted env_file of core (Komodo's compose.env). Plain env files (a user's extra
/// settings) are passed over: komodo-rotate only edits SOPS files.
fn compose_env_from_files(project: &ComposeProject, core: &str) -> Result<PathBuf> {
    if project.config_files.is_empty() {
        return Err(Error::Precondition(format!(
            "compose project {:?} does not record its compose files (label com.docker.compose.project.config_files): pass --compose-env PATH",
            project.name
        )));
    }
    // As compose interpolates: the shell's environment, then the project's `.env`.
    let dotenv = project
        .working_dir
        .as_deref()
        .map(crate::docker::project::project_dotenv)
        .unwrap_or_default();
    let lookup = |n: &str| std::env::var(n).ok().or_else(|| dotenv.get(n).cloned());
    let files = project
        .env_files_of(core, &lookup)
        .map_err(|e| Error::Precondition(format!("{e}: pass --compose-env PATH")))?;
    let sops: Vec<&PathBuf> = files.iter().filter(|f| SopsFile::load(f).is_ok()).collect();
    match sops.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Precondition(format!(
            "service {core:?}'s env_file entries ({}) hold no SOPS-encrypted file: pass --compose-env PATH",
            if files.is_empty() {
                "none".to_string()
            } else {
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            }
        ))),
        many => Err(Error::Usage(format!(
            "service {core:?} has several SOPS-encrypted env files ({}): pick one with --compose-env",
            many.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The identity that opens `file`: `--age-key-file`, else an `age.key` or `keys.txt` beside
/// compose.env, else sops' own lookup. Returns the file to record (None for sops' lookup).
fn identity(
    file: &SopsFile,
    compose_env: &Path,
    explicit: Option<&Path>,
) -> Result<(Option<PathBuf>, Identities)> {
    if let Some(p) = explicit {
        let ids = Identities::from_key_file(p)?;
        file.decrypt(&ids)?;
        return Ok((Some(p.to_path_buf()), ids));
    }
    let dir = compose_env.parent().unwrap_or(Path::new("."));
    for name in ["age.key", "keys.txt"] {
        let p = dir.join(name);
        if let Ok(ids) = Identities::from_key_file(&p) {
            if file.decrypt(&ids).is_ok() {
                return Ok((Some(p), ids));
            }
        }
    }
    let ids = Identities::discover(None)?;
    file.decrypt(&ids)?;
    Ok((None, ids))
}

/// A compose project name as one path component (compose allows `[a-z0-9_-]`; anything else,
/// or a name that would climb out, becomes `_`).
fn dir_name(project: &str) -> String {
    let s: String = project
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    match s.trim_matches('.') {
        "" => "_".into(),
        _ => s,
    }
}

fn quote(p: &Path) -> String {
    toml_string(&p.display().to_string())
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The config text, commented so a reader sees where each value came from.
pub fn render(f: &Found) -> String {
    let mut t = String::new();
    t.push_str("# komodo-rotate config, written by `komodo-rotate init`.\n");
    t.push_str(&format!(
        "# Found compose project {:?} from its containers' compose labels; compose files:\n",
        f.project
    ));
    for c in &f.compose_files {
        t.push_str(&format!("#   {}\n", c.display()));
    }
    t.push_str(&format!(
        "# Komodo generation: {} (from compose.env's keys and core's env).\n",
        f.generation
    ));
    match &f.variant {
        Variant::FerretDb { postgres, ferretdb } => t.push_str(&format!(
            "# Database: FerretDB on PostgreSQL (Komodo's ferretdb.compose.yaml): the mongo role below is\n\
             # the {ferretdb:?} service, which core talks to; the live password is the role's SCRAM verifier\n\
             # in the {postgres:?} service's PostgreSQL, reached through `docker exec` over its local socket.\n\n"
        )),
        Variant::Mongo => t.push_str("# Database: MongoDB.\n\n"),
    }
    t.push_str("# The SOPS-encrypted compose.env (core's env_file).\n");
    t.push_str(&format!("compose_env = {}\n", quote(&f.compose_env)));
    match &f.age_key_file {
        Some(p) => {
            t.push_str("# The age identity that opened it.\n");
            t.push_str(&format!("age_key_file = {}\n", quote(p)));
        }
        None => t.push_str(
            "# The age identity comes from sops' own lookup (SOPS_AGE_KEY_FILE, SOPS_AGE_KEY,\n\
             # ~/.config/sops/age/keys.txt), which opened it when init ran.\n\
             # age_key_file = \"/path/to/keys.txt\"\n",
        ),
    }
    t.push_str(
        "# Journal, lock, backups and audit log: this deployment's own, so several deployments\n\
         # on one host never share a journal, a backup or an audit record.\n",
    );
    t.push_str(&format!(
        "state_dir = {}\n\n",
        toml_string(&format!("/var/lib/komodo-rotate/{}", dir_name(&f.project)))
    ));
    let periphery: Vec<String> = f.roles.periphery.iter().map(|p| toml_string(p)).collect();
    t.push_str("[discovery]\n# Containers are found by these compose labels at every run.\n");
    t.push_str(&format!("project = {}\n", toml_string(&f.project)));
    t.push_str(&format!(
        "services = {{ mongo = {}, core = {}, periphery = [{}] }}\n\n",
        toml_string(&f.roles.mongo),
        toml_string(&f.roles.core),
        periphery.join(", ")
    ));
    t.push_str("[mongo]\n");
    let db = match f.variant {
        Variant::FerretDb { .. } => "ferretdb",
        Variant::Mongo => "mongo",
    };
    match f.mongo_port {
        Some(port) => t.push_str(&format!(
            "# {db} publishes 27017 on the host. directConnection: talk to this member only (a\n\
             # replica set would otherwise send the driver to member names the host may not resolve).\n\
             uri = \"mongodb://127.0.0.1:{port}/?directConnection=true\"\n"
        )),
        None => t.push_str(&format!(
            "# Empty: the {db} container's address from `docker inspect`, port 27017.\n# uri = \"mongodb://127.0.0.1:27017/?directConnection=true\"\n",
        )),
    }
    t.push_str("auth_source = \"admin\"\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(project: &str, port: Option<u16>) -> Found {
        Found {
            project: project.into(),
            roles: Roles {
                mongo: "mongo".into(),
                core: "core".into(),
                periphery: vec!["periphery".into()],
            },
            compose_files: vec![],
            compose_env: "/opt/komodo/compose.env".into(),
            age_key_file: None,
            generation: "v2",
            mongo_port: port,
            variant: Variant::Mongo,
        }
    }

    fn load(text: &str) -> crate::config::Config {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("komodo-rotate.toml");
        let env = d.path().join("compose.env");
        std::fs::write(&env, "X=1\n").unwrap();
        let text = text.replace("/opt/komodo/compose.env", env.to_str().unwrap());
        std::fs::write(&p, text).unwrap();
        crate::config::Config::load(Some(&p)).unwrap()
    }

    #[test]
    fn two_deployments_get_state_dirs_of_their_own() {
        let a = load(&render(&found("komodo", Some(27017))));
        let b = load(&render(&found("komodo-staging", None)));
        assert_eq!(a.state_dir, PathBuf::from("/var/lib/komodo-rotate/komodo"));
        assert_eq!(
            b.state_dir,
            PathBuf::from("/var/lib/komodo-rotate/komodo-staging")
        );
        for odd in ["..", "a/../../etc", ""] {
            let c = load(&render(&found(odd, None)));
            assert_eq!(
                c.state_dir.parent(),
                Some(Path::new("/var/lib/komodo-rotate")),
                "{odd}"
            );
        }
    }

    /// Issue 21: a FerretDB project's config names ferretdb as the mongo role (core's
    /// database), says where the live password is, and loads.
    #[test]
    fn a_ferretdb_config_names_the_variant_and_ferretdb_as_the_mongo_role() {
        let mut f = found("komodo", Some(27017));
        f.roles.mongo = "ferretdb".into();
        f.variant = Variant::FerretDb {
            postgres: "postgres".into(),
            ferretdb: "ferretdb".into(),
        };
        let text = render(&f);
        assert!(text.contains("Database: FerretDB on PostgreSQL"), "{text}");
        assert!(text.contains("# ferretdb publishes 27017"), "{text}");
        assert!(!text.contains("mongo publishes"), "{text}");
        let cfg = load(&text);
        assert_eq!(cfg.discovery.services.mongo, "ferretdb");
        let mongo = render(&found("komodo", Some(27017)));
        assert!(mongo.contains("Database: MongoDB.") && mongo.contains("# mongo publishes"));
    }

    #[test]
    fn the_mongo_uri_connects_directly() {
        let a = load(&render(&found("komodo", Some(27018))));
        assert_eq!(
            a.mongo.uri,
            "mongodb://127.0.0.1:27018/?directConnection=true"
        );
    }

    /// Issue 20 item 7: Komodo's official file publishes core as `9120:9120` (every address,
    /// both families, as the engine reports it). init leaves `[health] core_url` unset, and the
    /// proof then probes core's published 9120 on loopback: port 9120 here.
    #[test]
    fn the_official_9120_shape_leaves_core_url_to_the_published_port() {
        use bollard::models::{ContainerInspectResponse, NetworkSettings, PortBinding};
        let cfg = load(&render(&found("komodo", Some(27017))));
        assert_eq!(cfg.health.core_url, "", "init writes no core_url");
        let bind = |ip: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some("9120".into()),
        };
        let core = crate::docker::ContainerInfo::from_inspect(&ContainerInspectResponse {
            name: Some("/komodo-core-1".into()),
            network_settings: Some(NetworkSettings {
                ports: Some(std::collections::HashMap::from([(
                    "9120/tcp".to_string(),
                    Some(vec![bind("0.0.0.0"), bind("::")]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(core.loopback_port("9120/tcp"), Some(9120));
    }
}
