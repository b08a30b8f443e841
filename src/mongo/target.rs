//! Where and as whom to log in: the `[mongo]` URI without credentials, the user and auth source,
//! and the driver client built from them (the password only ever in the driver's `Credential`).

use super::error::{scrub, MongoError};
use super::uri_options::{uri_option, without_auth_options};
use crate::secret::Secret;
use mongodb::error::Error as DriverError;
use mongodb::options::{AuthMechanism, ClientOptions, Credential};
use mongodb::Client;
use std::time::Duration;

/// Default server-selection and connect timeout: short, so an unreachable server is reported
/// in seconds rather than after the driver's 30 s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `updateUser` may take, replication included: the server gives up waiting for the
/// majority after `wtimeout` ([`WTIMEOUT_MS`]) and the client stops waiting at this deadline, so
/// a lost secondary or a silent server can never hold a run (and its lock) forever.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
pub const WTIMEOUT_MS: i64 = 20_000;

/// Where and as whom to log in. The URI carries hosts and options, never credentials.
#[derive(Debug, Clone)]
pub struct Target {
    pub(super) uri: String,
    pub(super) server: String,
    pub user: String,
    pub auth_source: String,
    pub server_selection_timeout: Duration,
    pub connect_timeout: Duration,
    /// The deadline of a write (`updateUser`), see [`DEFAULT_COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// `authSource=` in the URI's options: it wins over the default `admin`.
    pub(super) uri_auth_source: Option<String>,
    /// `authMechanism=` in the URI's options (the driver refuses it in a URI without a user,
    /// so it is taken out of the URI and applied to our credential).
    pub(super) uri_mechanism: Option<AuthMechanism>,
}

impl Target {
    /// Checks the URI's shape; refuses one that carries credentials without echoing it.
    pub fn new(uri: &str, user: &str) -> Result<Target, MongoError> {
        let rest = uri
            .strip_prefix("mongodb://")
            .or_else(|| uri.strip_prefix("mongodb+srv://"))
            .ok_or_else(|| {
                MongoError::InvalidTarget("must start with mongodb:// or mongodb+srv://".into())
            })?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(MongoError::InvalidTarget(
                "must not carry credentials (give the user with --user and the password on stdin)"
                    .into(),
            ));
        }
        if authority.is_empty() {
            return Err(MongoError::InvalidTarget("names no host".into()));
        }
        if user.is_empty() {
            return Err(MongoError::InvalidTarget("user must not be empty".into()));
        }
        let uri_auth_source = uri_option(rest, "authSource");
        if uri_auth_source.as_deref() == Some("") {
            return Err(MongoError::InvalidTarget("has an empty authSource".into()));
        }
        if uri_option(rest, "authMechanismProperties").is_some() {
            return Err(MongoError::InvalidTarget(
                "has authMechanismProperties, which komodo-rotate does not pass on".into(),
            ));
        }
        let uri_mechanism = match uri_option(rest, "authMechanism").as_deref() {
            None => None,
            Some(m @ ("SCRAM-SHA-1" | "SCRAM-SHA-256" | "PLAIN")) => {
                Some(m.parse::<AuthMechanism>().map_err(|e| {
                    MongoError::InvalidTarget(format!("authMechanism {m}: {}", e.kind))
                })?)
            }
            Some(m) => {
                return Err(MongoError::InvalidTarget(format!(
                    "authMechanism {m} does not log in with a password (SCRAM-SHA-1, SCRAM-SHA-256 or PLAIN)"
                )))
            }
        };
        Ok(Target {
            uri: without_auth_options(uri),
            server: authority.to_owned(),
            user: user.to_owned(),
            auth_source: uri_auth_source.clone().unwrap_or_else(|| "admin".into()),
            server_selection_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            uri_auth_source,
            uri_mechanism,
        })
    }

    /// A target for a throw-away mongod started without access control on the real data volume
    /// (the last-resort runbook): `mongodb://` to a loopback address only, since an
    /// unauthenticated mongod must never be reached over a network, nor this pointed at one.
    pub fn loopback_no_auth(uri: &str, user: &str) -> Result<Target, MongoError> {
        let t = Target::new(uri, user)?;
        if !uri.starts_with("mongodb://") {
            return Err(MongoError::InvalidTarget(
                "must start with mongodb://".into(),
            ));
        }
        for host in t.server.split(',') {
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.rsplit_once(':').map_or(host, |(h, _)| h),
            };
            if !matches!(name, "127.0.0.1" | "localhost" | "::1") {
                return Err(MongoError::InvalidTarget(format!(
                    "host {name} is not a loopback address; publish the recovery container on 127.0.0.1"
                )));
            }
        }
        Ok(t)
    }

    /// The database the user is defined in. The default `admin` does not override the URI's
    /// own `authSource=`; any other value that differs from it is refused when connecting.
    pub fn with_auth_source(mut self, db: &str) -> Self {
        if self.uri_auth_source.is_none() || db != "admin" {
            self.auth_source = db.to_owned();
        }
        self
    }

    pub fn with_command_timeout(mut self, t: Duration) -> Self {
        self.command_timeout = t;
        self
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.server_selection_timeout = t;
        self.connect_timeout = t;
        self
    }

    /// The hosts part of the URI, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A client logging in with `password`, or with no credential at all for `None`.
    pub(super) async fn client(&self, password: Option<&Secret>) -> Result<Client, MongoError> {
        let opts = self.options(password).await?;
        Client::with_options(opts).map_err(|e| self.unreachable(&e, password))
    }

    /// The driver's options: the URI's, with our credential, timeouts and app name.
    pub(super) async fn options(
        &self,
        password: Option<&Secret>,
    ) -> Result<ClientOptions, MongoError> {
        let mut opts = ClientOptions::parse(&self.uri).await.map_err(|e| {
            MongoError::InvalidTarget(format!("cannot be parsed: {}", scrub(&e, password)))
        })?;
        if let Some(uri_db) = self.uri_auth_source.as_deref() {
            if uri_db != self.auth_source {
                return Err(MongoError::InvalidTarget(format!(
                    "says authSource={uri_db} but auth_source is {}: keep one",
                    self.auth_source
                )));
            }
        }
        // The URI's own authMechanism is kept (taken out of the URI by `new`).
        opts.credential = password.map(|p| {
            Credential::builder()
                .username(self.user.clone())
                .password(p.expose().to_owned())
                .source(self.auth_source.clone())
                .mechanism(self.uri_mechanism.clone())
                .build()
        });
        if password.is_none() {
            opts.direct_connection = Some(true);
        }
        opts.server_selection_timeout = Some(self.server_selection_timeout);
        opts.connect_timeout = Some(self.connect_timeout);
        opts.app_name = Some("komodo-rotate".into());
        Ok(opts)
    }

    pub(super) fn unreachable(&self, e: &DriverError, password: Option<&Secret>) -> MongoError {
        MongoError::Unreachable {
            server: self.server.clone(),
            user: self.user.clone(),
            reason: scrub(e, password),
        }
    }
}
