//! A FerretDB-shaped front end for the rehearsal stack's FerretDB variant (issue 21). FerretDB's
//! own code is not exercised: no FerretDB or DocumentDB can be installed here. What it does take
//! from them (research/ferretdb-auth.md Q1-Q3) is the credential plane, against a real
//! PostgreSQL:
//!
//! - the client's SCRAM-SHA-256 proof is checked against the role's real `pg_authid` secret,
//!   read over a PostgreSQL connection opened with `FERRETDB_POSTGRESQL_URL` (read once at
//!   start), so that URL's password is checked by PostgreSQL itself;
//! - that connection failing is code 1 `InternalError` carrying PostgreSQL's message
//!   (`password authentication failed for user "admin"`), a wrong client password is code 18;
//! - `updateUser {pwd}` is `ALTER ROLE` with a pre-hashed secret (28-byte salt, 4096 iterations);
//! - an unauthenticated `ping` runs a query on a new backend connection.
//!
//! The CRUD a Komodo core issues runs on the MongoDB wire test server's own store (in the
//! container's `/state` volume), not in PostgreSQL. See [`front`] for the command table and
//! [`pg`] for when backend connections are new.

pub mod front;
pub mod image;
pub mod pg;
pub mod verifier;

use crate::mongo::{Server, ServerConfig, StartError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The variables the front end reads, FerretDB's names.
pub const URL_VAR: &str = "FERRETDB_POSTGRESQL_URL";
pub const LISTEN_VAR: &str = "FERRETDB_LISTEN_ADDR";
pub const STATE_VAR: &str = "FERRETDB_STATE_DIR";
/// The test server's fault controls (`komodoTestControl`), off unless "1".
pub const CONTROLS_VAR: &str = "FERRETDB_STANDIN_TEST_CONTROLS";

#[derive(Debug, Clone)]
pub struct FerretConfig {
    pub listen: SocketAddr,
    /// Holds the CRUD store (the test server's data dir).
    pub state_dir: PathBuf,
    pub test_controls: bool,
    pub log: bool,
}

impl FerretConfig {
    /// FerretDB's image defaults: `:27017`, `/state`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<FerretConfig, String> {
        let listen = match get(LISTEN_VAR).filter(|v| !v.is_empty()) {
            None => SocketAddr::from(([0, 0, 0, 0], 27017)),
            Some(v) => {
                let full = if v.starts_with(':') {
                    format!("0.0.0.0{v}")
                } else {
                    v.clone()
                };
                full.parse()
                    .map_err(|_| format!("{LISTEN_VAR}={v}: expected HOST:PORT or :PORT"))?
            }
        };
        Ok(FerretConfig {
            listen,
            state_dir: get(STATE_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/state")),
            test_controls: get(CONTROLS_VAR).as_deref() == Some("1"),
            log: true,
        })
    }
}

/// Starts the front end with the PostgreSQL URL given once (it is never read again).
pub async fn start(cfg: &FerretConfig, url: &str) -> Result<Server, String> {
    let backend = pg::Backend::new(url)?;
    let front = Arc::new(front::FerretFront::new(backend, cfg.log));
    let mut inner = ServerConfig::new(cfg.state_dir.join("komodo-standin"))
        .auth(false)
        .test_controls(cfg.test_controls)
        .front(front);
    inner.bind = cfg.listen;
    inner.quiet = true;
    Server::start(inner)
        .await
        .map_err(|e: StartError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_follows_ferretdb_forms() {
        let env = |v: Option<&str>| {
            let v = v.map(String::from);
            move |k: &str| (k == LISTEN_VAR).then(|| v.clone()).flatten()
        };
        let c = FerretConfig::from_env(env(None)).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:27017");
        assert_eq!(c.state_dir, PathBuf::from("/state"));
        assert!(!c.test_controls);
        let c = FerretConfig::from_env(env(Some(":27018"))).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:27018");
        let c = FerretConfig::from_env(env(Some("127.0.0.1:1"))).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert!(FerretConfig::from_env(env(Some("nope"))).is_err());
    }
}
