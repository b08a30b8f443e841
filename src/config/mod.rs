//! `komodo-rotate.toml`. Every field has a default that matches Komodo's official compose, so
//! most installs set only `compose_env`. Unknown keys are refused: a typo in a safety setting
//! (say `stable-for`) must not silently fall back to a default.

pub mod duration;
pub mod periphery;

use crate::error::{Error, Result};
use crate::text::one_line;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATHS: [&str; 2] = ["./komodo-rotate.toml", "/etc/komodo-rotate/config.toml"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub compose_env: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// age identity file for compose.env; else sops' own lookup (SOPS_AGE_KEY_FILE, ...).
    #[serde(default)]
    pub age_key_file: Option<PathBuf>,
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default)]
    pub mongo: Mongo,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub alert: Alert,
    #[serde(default)]
    pub git: Git,
    #[serde(default)]
    pub backups: Backups,
    /// `[[periphery.remote]]`: peripheries on other hosts (config/periphery.rs).
    #[serde(default)]
    pub periphery: periphery::Periphery,
    /// Where the config came from; relative paths inside it are resolved against its directory.
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    #[serde(default = "default_project")]
    pub project: String,
    #[serde(default)]
    pub services: Services,
    /// Container names that win over label discovery (users who set `container_name`).
    #[serde(default)]
    pub containers: ContainerNames,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    #[serde(default = "default_mongo_service")]
    pub mongo: String,
    #[serde(default = "default_core_service")]
    pub core: String,
    #[serde(default = "default_periphery_services")]
    pub periphery: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerNames {
    pub mongo: Option<String>,
    pub core: Option<String>,
    #[serde(default)]
    pub periphery: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mongo {
    /// Empty: the mongo container's address from `docker inspect`, port 27017.
    #[serde(default)]
    pub uri: String,
    #[serde(default = "default_auth_source")]
    pub auth_source: String,
    /// Empty: the username from compose.env.
    #[serde(default)]
    pub user: String,
    #[serde(default = "default_connect_timeout", with = "duration::serde_str")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "default_health_timeout", with = "duration::serde_str")]
    pub timeout: Duration,
    #[serde(default = "default_stable_for", with = "duration::serde_str")]
    pub stable_for: Duration,
    /// Core's HTTP address for the serving probe (`GET` answering below 500). Empty: core's
    /// published port 9120 on loopback, else its address on the compose network, port 9120.
    #[serde(default)]
    pub core_url: String,
}

/// `state_dir/backups/`: the compose.env each write-env replaced, for the rescue ladder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backups {
    /// How many to keep (the newest); older ones are deleted after each write-env. At least 1.
    #[serde(default = "default_backups_keep")]
    pub keep: usize,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            keep: default_backups_keep(),
        }
    }
}

fn default_backups_keep() -> usize {
    5
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    #[serde(default)]
    pub webhook: String,
    #[serde(default)]
    pub on_success: bool,
    /// Body shape: "json" (Slack + Discord fields), "slack", "discord" or "ntfy" (plain text).
    #[serde(default)]
    pub format: Format,
}

/// The alert body shape; `[alert] format` in the config. It lives here, with the config that
/// names it, so `alert` imports `config` and never the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON with both `text` (Slack, Mattermost) and `content` (Discord), plus the fields.
    #[default]
    Json,
    /// `{"text": …}` only.
    Slack,
    /// `{"content": …}` only.
    Discord,
    /// A plain-text body with ntfy's `Title`, `Priority` and `Tags` headers.
    Ntfy,
}

/// `[git]`: the repository compose.env is tracked in (see src/git/).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Git {
    #[serde(default)]
    pub mode: GitMode,
    /// Empty: the remote of the checked-out branch's upstream.
    #[serde(default)]
    pub remote: String,
    /// Empty: the upstream branch of the checked-out branch.
    #[serde(default)]
    pub branch: String,
    /// `{secret}` and `{run_id}` are replaced; nothing else is (never a value).
    #[serde(default = "default_commit_message")]
    pub commit_message: String,
    /// Deadline of every network call (fetch, push, ls-remote).
    #[serde(default = "default_git_timeout", with = "duration::serde_str")]
    pub network_timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitMode {
    /// push when the branch has an upstream, else commit; nothing when compose.env is untracked.
    #[default]
    Auto,
    Off,
    Commit,
    Push,
}

impl GitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GitMode::Auto => "auto",
            GitMode::Off => "off",
            GitMode::Commit => "commit",
            GitMode::Push => "push",
        }
    }
}

impl Default for Git {
    fn default() -> Self {
        Git {
            mode: GitMode::Auto,
            remote: String::new(),
            branch: String::new(),
            commit_message: default_commit_message(),
            network_timeout: default_git_timeout(),
        }
    }
}

impl Git {
    /// The commit message for a run; the template was checked at load.
    pub fn message(&self, secret: &str, run_id: &str) -> String {
        self.commit_message
            .replace("{secret}", secret)
            .replace("{run_id}", run_id)
    }

    fn check_template(&self) -> std::result::Result<(), String> {
        let stripped = self
            .commit_message
            .replace("{secret}", "")
            .replace("{run_id}", "");
        if stripped.contains('{') || stripped.contains('}') {
            return Err(
                "git.commit_message: only {secret} and {run_id} may be used (never a value)".into(),
            );
        }
        if self.commit_message.trim().is_empty() {
            return Err("git.commit_message is empty".into());
        }
        Ok(())
    }
}

fn default_commit_message() -> String {
    "komodo-rotate: rotate {secret} (run {run_id})".into()
}
fn default_git_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/komodo-rotate")
}
fn default_project() -> String {
    "komodo".into()
}
fn default_mongo_service() -> String {
    "mongo".into()
}
fn default_core_service() -> String {
    "core".into()
}
fn default_periphery_services() -> Vec<String> {
    vec!["periphery".into()]
}
fn default_auth_source() -> String {
    "admin".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_stable_for() -> Duration {
    Duration::from_secs(10)
}

impl Default for Services {
    fn default() -> Self {
        Services {
            mongo: default_mongo_service(),
            core: default_core_service(),
            periphery: default_periphery_services(),
        }
    }
}
impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            project: default_project(),
            services: Services::default(),
            containers: ContainerNames::default(),
        }
    }
}
impl Default for Mongo {
    fn default() -> Self {
        Mongo {
            uri: String::new(),
            auth_source: default_auth_source(),
            user: String::new(),
            connect_timeout: default_connect_timeout(),
        }
    }
}
impl Default for Health {
    fn default() -> Self {
        Health {
            timeout: default_health_timeout(),
            stable_for: default_stable_for(),
            core_url: String::new(),
        }
    }
}

impl Config {
    /// Loads `explicit`, else the first of [`DEFAULT_PATHS`] that exists.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => DEFAULT_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no config file: pass --config FILE or create {}",
                        DEFAULT_PATHS.join(" or ")
                    ))
                })?,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
            path: path.clone(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            // toml's message spans lines (it quotes the source); the first line names the problem.
            msg: one_line(&e.to_string()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.compose_env = resolve(base, &cfg.compose_env);
        cfg.state_dir = resolve(base, &cfg.state_dir);
        cfg.age_key_file = cfg.age_key_file.as_deref().map(|p| resolve(base, p));
        cfg.source = path.to_path_buf();
        if !cfg.compose_env.is_file() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg: format!("compose_env {} does not exist", cfg.compose_env.display()),
            });
        }
        if let Err(msg) = cfg.git.check_template() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg,
            });
        }
        if cfg.git.network_timeout.is_zero() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg: "git.network_timeout must be more than 0s".into(),
            });
        }
        if cfg.backups.keep == 0 {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg: "backups.keep must be at least 1 (rescue needs the last replaced compose.env)"
                    .into(),
            });
        }
        cfg.periphery.check().map_err(|msg| Error::Config {
            path: path.to_path_buf(),
            msg,
        })?;
        if cfg.health.stable_for > cfg.health.timeout {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg: "health.stable_for is longer than health.timeout".into(),
            });
        }
        if !cfg.health.core_url.is_empty() {
            crate::probe::ProbeUrl::parse(&cfg.health.core_url).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                msg: format!("health.{e}"),
            })?;
        }
        Ok(cfg)
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.state_dir.join("journal")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("lock")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.state_dir.join("audit.log")
    }
    /// `state_dir/backups/<deployment key>`: a state_dir shared by several deployments keeps
    /// each one's backups apart (the rescue ladder reads only its own deployment's).
    pub fn backup_dir(&self) -> PathBuf {
        self.state_dir
            .join("backups")
            .join(deployment_key(&self.deployment()))
    }
    /// This deployment's name in audit records and backups: compose.env's canonical path.
    pub fn deployment(&self) -> String {
        deployment_of(&self.compose_env)
    }
}

/// The deployment `compose_env` belongs to: its canonical path (as given when it cannot be
/// resolved), so every spelling of it names one deployment.
pub fn deployment_of(compose_env: &Path) -> String {
    std::fs::canonicalize(compose_env)
        .unwrap_or_else(|_| compose_env.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// A short, stable directory name for a deployment (hex SHA-256 of its name, 16 digits).
pub fn deployment_key(deployment: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(deployment.as_bytes()))[..16].to_owned()
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        std::fs::write(dir.join("compose.env"), "X=1\n").unwrap();
        let p = dir.join("komodo-rotate.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn minimal_config_gets_official_compose_defaults() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config::load(Some(&write(d.path(), "compose_env = \"compose.env\"\n"))).unwrap();
        assert_eq!(cfg.compose_env, d.path().join("compose.env"));
        assert_eq!(cfg.discovery.project, "komodo");
        assert_eq!(cfg.discovery.services.core, "core");
        assert_eq!(cfg.discovery.services.periphery, vec!["periphery"]);
        assert_eq!(cfg.mongo.auth_source, "admin");
        assert_eq!(cfg.health.timeout, Duration::from_secs(90));
        assert_eq!(cfg.health.stable_for, Duration::from_secs(10));
        assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/komodo-rotate"));
        assert_eq!(cfg.backups.keep, 5);
    }

    #[test]
    fn backups_keep_is_read_and_zero_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "compose_env = \"compose.env\"\n[backups]\nkeep = 2\n",
        );
        assert_eq!(Config::load(Some(&p)).unwrap().backups.keep, 2);
        let p = write(
            d.path(),
            "compose_env = \"compose.env\"\n[backups]\nkeep = 0\n",
        );
        let e = Config::load(Some(&p)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("backups.keep"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "compose_env = \"compose.env\"\n[health]\nstable-for = \"5s\"\n",
        );
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("stable-for"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn missing_compose_env_is_a_config_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "compose_env = \"nope.env\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("nope.env"));
    }

    #[test]
    fn git_section_defaults_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config::load(Some(&write(d.path(), "compose_env = \"compose.env\"\n"))).unwrap();
        assert_eq!(cfg.git.mode, GitMode::Auto);
        assert_eq!(cfg.git.network_timeout, Duration::from_secs(30));
        assert_eq!(
            cfg.git.message("db-password", "r1"),
            "komodo-rotate: rotate db-password (run r1)"
        );
        let ok = write(
            d.path(),
            "compose_env = \"compose.env\"\n[git]\nmode = \"push\"\nremote = \"up\"\nnetwork_timeout = \"5s\"\n",
        );
        let cfg = Config::load(Some(&ok)).unwrap();
        assert_eq!(cfg.git.mode, GitMode::Push);
        assert_eq!(cfg.git.remote, "up");
        for (body, needle) in [
            ("[git]\nmode = \"always\"\n", "always"),
            (
                "[git]\ncommit_message = \"set {value}\"\n",
                "commit_message",
            ),
            ("[git]\ncommit_message = \" \"\n", "commit_message"),
            ("[git]\nnetwork_timeout = \"0s\"\n", "network_timeout"),
            ("[git]\npush = true\n", "push"),
        ] {
            let p = write(d.path(), &format!("compose_env = \"compose.env\"\n{body}"));
            let e = Config::load(Some(&p)).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE, "{body}");
            let e = e.to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{body}: {e}");
        }
    }

    #[test]
    fn bad_duration_names_the_value() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "compose_env = \"compose.env\"\n[health]\ntimeout = \"90\"\n",
        );
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("\"90\""), "{e}");
    }

    #[test]
    fn core_url_is_checked_at_load() {
        let d = tempfile::tempdir().unwrap();
        let ok = write(
            d.path(),
            "compose_env = \"compose.env\"\n[health]\ncore_url = \"http://core:9120/\"\n",
        );
        assert_eq!(
            Config::load(Some(&ok)).unwrap().health.core_url,
            "http://core:9120/"
        );
        let bad = write(
            d.path(),
            "compose_env = \"compose.env\"\n[health]\ncore_url = \"https://core:9120/\"\n",
        );
        let e = Config::load(Some(&bad)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("health.core_url"), "{e}");
    }
}
