//! MongoAdmin: the only place that talks to MongoDB. It answers "does this password log in?"
//! (telling a rejection, code 18, apart from "could not reach / other error"), and changes a
//! user's password with `updateUser` over a session authenticated with the old one, then proves
//! the change with a fresh client.
//!
//! Passwords travel only inside the driver's `Credential` (never spliced into a URI, which driver
//! errors may quote), and no message of this module carries one.

mod error;
mod target;
mod uri_options;

use crate::secret::Secret;
use error::scrub;
pub use error::MongoError;
use mongodb::bson::{doc, Document};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::Client;
pub use target::{Target, DEFAULT_COMMAND_TIMEOUT, DEFAULT_TIMEOUT, WTIMEOUT_MS};

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
            if matches!(*e.kind, ErrorKind::ServerSelection { .. }) {
                // No server was selected, so the command never left (`runCommand` is not retried).
                return Err(self.target.unreachable(&e, Some(new)));
            }
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
