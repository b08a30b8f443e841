//! `komodo-rotate.toml`. Every field has a default that matches Komodo's official compose, so
//! most installs set only `compose_env`. Unknown keys are refused: a typo in a safety setting
//! (say `stable-for`) must not silently fall back to a default.

mod defaults;
pub mod duration;
pub mod periphery;

use crate::error::{Error, Result};
use crate::text::one_line;
use defaults::{
    default_auth_source, default_commit_message, default_connect_timeout, default_core_service,
    default_git_timeout, default_health_timeout, default_mongo_service, default_periphery_services,
    default_project, default_stable_for, default_state_dir,
};
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
mod tests;
