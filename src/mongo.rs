//! MongoAdmin: the only place that talks to MongoDB. It answers "does this password log in?"
//! (telling a rejection, code 18, apart from "could not reach / other error"), and changes a
//! user's password with `updateUser` over a session authenticated with the old one, then proves
//! the change with a fresh client.
//!
//! Passwords travel only inside the driver's `Credential` (never spliced into a URI, which driver
//! errors may quote), and no message of this module carries one.

mod uri_options;

use crate::secret::Secret;
use mongodb::bson::{doc, Document};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::{AuthMechanism, ClientOptions, Credential};
use mongodb::Client;
use std::time::Duration;
use uri_options::{uri_option, without_auth_options};

/// Default server-selection and connect timeout: short, so an unreachable server is reported
/// in seconds rather than after the driver's 30 s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `updateUser` may take, replication included: the server gives up waiting for the
/// majority after `wtimeout` ([`WTIMEOUT_MS`]) and the client stops waiting at this deadline, so
/// a lost secondary or a silent server can never hold a run (and its lock) forever.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
pub const WTIMEOUT_MS: i64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("MongoDB URI {0}")]
    InvalidTarget(String),
    #[error(
        "MongoDB at {server} rejected the password of user {user} (code 18 AuthenticationFailed)"
    )]
    Rejected { server: String, user: String },
    #[error("MongoDB at {server} (user {user}) could not be reached: {reason}")]
    Unreachable {
        server: String,
        user: String,
        reason: String,
    },
    #[error("MongoDB at {server}: {command} for user {user} failed: {reason}")]
    Command {
        server: String,
        user: String,
        command: &'static str,
        code: Option<i32>,
        reason: String,
    },
    #[error("MongoDB at {server}: the password of user {user} was changed, but a fresh login with the new password {outcome}")]
    ProofFailed {
        server: String,
        user: String,
        outcome: String,
    },
}

impl MongoError {
    /// A malformed `[mongo] uri` is a configuration error (exit 2), not a failed precondition.
    pub fn is_usage(&self) -> bool {
        matches!(self, MongoError::InvalidTarget(_))
    }
}

/// Where and as whom to log in. The URI carries hosts and options, never credentials.
#[derive(Debug, Clone)]
pub struct Target {
    uri: String,
    server: String,
    pub user: String,
    pub auth_source: String,
    pub server_selection_timeout: Duration,
    pub connect_timeout: Duration,
    /// The deadline of a write (`updateUser`), see [`DEFAULT_COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// `authSource=` in the URI's options: it wins over the default `admin`.
    uri_auth_source: Option<String>,
    /// `authMechanism=` in the URI's options (the driver refuses it in a URI without a user,
    /// so it is taken out of the URI and applied to our credential).
    uri_mechanism: Option<AuthMechanism>,
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
    async fn client(&self, password: Option<&Secret>) -> Result<Client, MongoError> {
        let opts = self.options(password).await?;
        Client::with_options(opts).map_err(|e| self.unreachable(&e, password))
    }

    /// The driver's options: the URI's, with our credential, timeouts and app name.
    async fn options(&self, password: Option<&Secret>) -> Result<ClientOptions, MongoError> {
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

    fn unreachable(&self, e: &DriverError, password: Option<&Secret>) -> MongoError {
        MongoError::Unreachable {
            server: self.server.clone(),
            user: self.user.clone(),
            reason: scrub(e, password),
        }
    }
}

/// The answer to "does this password log in?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Accepted,
    /// The server refused the credentials (code 18): wrong password or unknown user.
    Rejected,
    /// No verdict: the server could not be reached, or failed otherwise. The reason never
    /// holds the candidate.
    Unreachable(String),
}

/// Tries `candidate` with a throwaway client; never puts the candidate in a result or log.
pub async fn login_works(target: &Target, candidate: &Secret) -> LoginOutcome {
    let client = match target.client(Some(candidate)).await {
        Ok(c) => c,
        Err(e) => return LoginOutcome::Unreachable(e.to_string()),
    };
    let outcome = match ping(&client).await {
        Ok(()) => LoginOutcome::Accepted,
        Err(e) if is_rejection(&e) => LoginOutcome::Rejected,
        Err(e) => LoginOutcome::Unreachable(scrub(&e, Some(candidate))),
    };
    client.shutdown().await;
    outcome
}

async fn ping(client: &Client) -> Result<(), DriverError> {
    // ping needs no privileges, but the pooled connection authenticates during its handshake,
    // so a bad password surfaces here.
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .map(|_| ())
}

/// Code 18 anywhere in the chain: the driver wraps the server's reply as the source of its
/// Authentication error.
fn is_rejection(e: &DriverError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // The driver's `source` is an `Option<Box<Error>>`, so the chain holds the boxed type.
        let me = err
            .downcast_ref::<DriverError>()
            .or_else(|| err.downcast_ref::<Box<DriverError>>().map(|b| &**b));
        if let Some(me) = me {
            match me.kind.as_ref() {
                ErrorKind::Command(c) if c.code == 18 => return true,
                _ => {}
            }
        }
        cur = err.source();
    }
    false
}

/// One line from a driver error, with the secret masked should a server ever echo it (the whole
/// message is checked before anything is cut).
fn scrub(e: &DriverError, secret: Option<&Secret>) -> String {
    // The kind alone: the full Display adds label and source dumps that make the line unreadable.
    let mut s = e.kind.to_string().replace(['\n', '\r'], " ");
    if let Some(secret) = secret {
        if !secret.is_empty() && s.contains(secret.expose()) {
            s = s.replace(secret.expose(), "***");
        }
    }
    s
}

fn command_code(e: &DriverError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// A session authenticated as the target's user.
pub struct MongoAdmin {
    target: Target,
    client: Client,
}

impl std::fmt::Debug for MongoAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoAdmin")
            .field("server", &self.target.server)
            .field("user", &self.target.user)
            .finish_non_exhaustive()
    }
}

impl MongoAdmin {
    /// Logs in (the first command authenticates) and keeps the session.
    pub async fn connect(target: &Target, password: &Secret) -> Result<MongoAdmin, MongoError> {
        Self::connect_with(target, Some(password)).await
    }

    /// Connects with no credential, to a mongod running without access control (see
    /// [`Target::loopback_no_auth`]).
    pub async fn connect_no_auth(target: &Target) -> Result<MongoAdmin, MongoError> {
        Self::connect_with(target, None).await
    }

    async fn connect_with(
        target: &Target,
        password: Option<&Secret>,
    ) -> Result<MongoAdmin, MongoError> {
        let client = target.client(password).await?;
        if let Err(e) = ping(&client).await {
            client.shutdown().await;
            return Err(if is_rejection(&e) {
                MongoError::Rejected {
                    server: target.server.clone(),
                    user: target.user.clone(),
                }
            } else {
                target.unreachable(&e, password)
            });
        }
        Ok(MongoAdmin {
            target: target.clone(),
            client,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs a command on `admin` over the authenticated session (for diagnostics and tests).
    pub async fn run_admin_command(&self, cmd: Document) -> Result<Document, MongoError> {
        self.run_command("admin", cmd).await
    }

    /// Runs a command on database `db` over the authenticated session (read-only uses: the
    /// passkey kind reads Komodo's `Server` collection).
    pub async fn run_command(&self, db: &str, cmd: Document) -> Result<Document, MongoError> {
        self.client
            .database(db)
            .run_command(cmd)
            .await
            .map_err(|e| MongoError::Command {
                server: self.target.server.clone(),
                user: self.target.user.clone(),
                command: "command",
                code: command_code(&e),
                reason: e.kind.to_string().replace(['\n', '\r'], " "),
            })
    }

    /// `updateUser {pwd}` on the target's auth source (where the user is defined) with write concern majority (mechanisms and digest left at
    /// the server's defaults: both SCRAM mechanisms rebuilt), then proves with a fresh client that
    /// the new password logs in. This session stays valid either way, as in mongod, so the caller
    /// can undo with it.
    pub async fn change_password(&self, user: &str, new: &Secret) -> Result<(), MongoError> {
        self.update_password(user, new).await?;
        self.prove(user, new).await
    }

    /// `updateUser {pwd}` only, without the proof login (a mongod without access control
    /// accepts any login, so there a proof would prove nothing).
    pub async fn update_password(&self, user: &str, new: &Secret) -> Result<(), MongoError> {
        let cmd = doc! {
            "updateUser": user,
            "pwd": new.expose(),
            "writeConcern": {"w": "majority", "wtimeout": WTIMEOUT_MS},
        };
        // A user lives in its authentication database: updateUser must run there.
        let db = self.client.database(&self.target.auth_source);
        let run = db.run_command(cmd);
        let Ok(result) = tokio::time::timeout(self.target.command_timeout, run).await else {
            return Err(MongoError::Command {
                server: self.target.server.clone(),
                user: user.to_owned(),
                command: "updateUser",
                code: None,
                reason: format!(
                    "no answer within {} s (it may or may not have been applied)",
                    self.target.command_timeout.as_secs_f32()
                ),
            });
        };
        if let Err(e) = result {
            return Err(MongoError::Command {
                server: self.target.server.clone(),
                user: user.to_owned(),
                command: "updateUser",
                code: command_code(&e),
                reason: scrub(&e, Some(new)),
            });
        }
        Ok(())
    }

    async fn prove(&self, user: &str, new: &Secret) -> Result<(), MongoError> {
        let proof_target = Target {
            user: user.to_owned(),
            ..self.target.clone()
        };
        match login_works(&proof_target, new).await {
            LoginOutcome::Accepted => Ok(()),
            LoginOutcome::Rejected => Err(MongoError::ProofFailed {
                server: self.target.server.clone(),
                user: user.to_owned(),
                outcome: "was rejected (code 18)".into(),
            }),
            LoginOutcome::Unreachable(reason) => Err(MongoError::ProofFailed {
                server: self.target.server.clone(),
                user: user.to_owned(),
                outcome: format!("could not be checked: {reason}"),
            }),
        }
    }

    /// Ends the session (the driver sends `endSessions`).
    pub async fn close(self) {
        self.client.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_with_credentials_are_refused_without_echo() {
        for uri in [
            "mongodb://root:hunter2secret@127.0.0.1:27017/",
            "mongodb://root@127.0.0.1:27017",
            "mongodb+srv://root:hunter2secret@cluster.example/?x=1",
        ] {
            let e = Target::new(uri, "root").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("must not carry credentials"), "{msg}");
            assert!(
                !msg.contains("hunter2secret") && !msg.contains("root@"),
                "{msg}"
            );
        }
    }

    #[test]
    fn target_shape_is_checked() {
        assert!(Target::new("http://127.0.0.1", "root").is_err());
        assert!(Target::new("mongodb:///?x", "root").is_err());
        assert!(Target::new("mongodb://127.0.0.1", "").is_err());
        let t = Target::new("mongodb://127.0.0.1:27017/?directConnection=true", "root").unwrap();
        assert_eq!(t.server(), "127.0.0.1:27017");
        assert_eq!(t.auth_source, "admin");
        assert_eq!(t.server_selection_timeout, DEFAULT_TIMEOUT);
        // An '@' in the query string is not a credential.
        assert!(Target::new("mongodb://h:1/?appName=a@b", "root").is_ok());
    }

    #[test]
    fn the_uris_auth_source_is_honoured_not_overridden() {
        let uri = "mongodb://127.0.0.1:27017/?directConnection=true&authSource=komodo";
        // As the config's default hands it over.
        let t = Target::new(uri, "komodo")
            .unwrap()
            .with_auth_source("admin");
        assert_eq!(t.auth_source, "komodo");
        let t = Target::new(uri, "komodo")
            .unwrap()
            .with_auth_source("komodo");
        assert_eq!(t.auth_source, "komodo");
        let t = Target::new("mongodb://h/?AUTHSOURCE=k%6Fmodo", "u").unwrap();
        assert_eq!(t.auth_source, "komodo");
        let t = Target::new("mongodb://h/", "u")
            .unwrap()
            .with_auth_source("other");
        assert_eq!(t.auth_source, "other");
        assert!(Target::new("mongodb://h/?authSource=", "u")
            .unwrap_err()
            .is_usage());
    }

    #[tokio::test]
    async fn a_conflicting_auth_source_is_refused_by_name() {
        let t = Target::new("mongodb://127.0.0.1:1/?authSource=komodo", "u")
            .unwrap()
            .with_auth_source("other");
        let e = t.client(Some(&Secret::new("pw".into()))).await.unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert!(
            e.to_string().contains("authSource=komodo") && e.to_string().contains("other"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_uris_auth_mechanism_is_kept() {
        let pw = Secret::new("pw".into());
        let t = Target::new("mongodb://127.0.0.1:1/?authMechanism=SCRAM-SHA-1", "u")
            .unwrap()
            .with_auth_source("admin");
        let c = t.options(Some(&pw)).await.unwrap().credential.unwrap();
        assert_eq!(
            c.mechanism,
            Some(mongodb::options::AuthMechanism::ScramSha1)
        );
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.source.as_deref(), Some("admin"));
        let t = Target::new(
            "mongodb://127.0.0.1:1/?authSource=komodo&directConnection=true",
            "u",
        )
        .unwrap()
        .with_auth_source("admin");
        let o = t.options(Some(&pw)).await.unwrap();
        assert_eq!(o.direct_connection, Some(true), "other options are kept");
        assert_eq!(o.credential.unwrap().source.as_deref(), Some("komodo"));
        for (bad, why) in [
            ("mongodb://h/?authMechanism=MONGODB-X509", "password"),
            (
                "mongodb://h/?authMechanismProperties=A:b",
                "authMechanismProperties",
            ),
        ] {
            let e = Target::new(bad, "u").unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn no_auth_targets_are_loopback_only() {
        for ok in [
            "mongodb://127.0.0.1:27018",
            "mongodb://localhost",
            "mongodb://[::1]:27018/?x=1",
        ] {
            Target::loopback_no_auth(ok, "root").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("mongodb://10.0.0.5:27017", "not a loopback"),
            ("mongodb://127.0.0.1,db.example:27017", "not a loopback"),
            ("mongodb+srv://localhost", "mongodb://"),
            ("mongodb://root:hunter2secret@127.0.0.1", "credentials"),
        ] {
            let e = Target::loopback_no_auth(bad, "root").unwrap_err();
            assert!(e.is_usage());
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert!(!e.to_string().contains("hunter2secret"), "{e}");
        }
    }

    #[test]
    fn errors_name_server_and_user_only() {
        let e = MongoError::Rejected {
            server: "127.0.0.1:27017".into(),
            user: "root".into(),
        };
        assert_eq!(
            e.to_string(),
            "MongoDB at 127.0.0.1:27017 rejected the password of user root (code 18 AuthenticationFailed)"
        );
    }
}
