//! The front end's PostgreSQL leg: connections opened with `FERRETDB_POSTGRESQL_URL` (read once
//! at start, as FerretDB reads it), over TCP with PostgreSQL's own password check
//! (scram-sha-256 in pg_hba for non-local hosts), through tokio-postgres without TLS as the
//! stock compose file connects.
//!
//! [`Backend::fresh`] opens a new connection every time: the SCRAM conversations and `ping`
//! use it, so after an `ALTER ROLE` a front end holding a stale URL fails on its next
//! conversation, deterministically. FerretDB uses one pgx pool for everything, whose new
//! connections fail the same way, but whose open ones may hide it for up to an hour
//! (research/ferretdb-auth.md Q3). [`Backend::pooled`] is that pool for the other commands:
//! an idle connection is reused while it is open, else a new one is made with the URL.

use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// Why the PostgreSQL leg failed, as FerretDB reports it: code 1 `InternalError` with
/// PostgreSQL's own message (`password authentication failed for user "admin"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError(pub String);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// PostgreSQL's message when the server sent one, else the client library's (no URL, no
/// password: tokio-postgres never prints its config).
fn pg_error(e: &tokio_postgres::Error) -> PgError {
    match e.as_db_error() {
        Some(db) => PgError(db.message().to_string()),
        None => PgError(e.to_string()),
    }
}

pub struct Backend {
    config: Config,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

impl Backend {
    /// Parses the URL (`postgres://user:password@host:port/db`). The error never repeats it.
    pub fn new(url: &str) -> Result<Backend, String> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            format!("FERRETDB_POSTGRESQL_URL is not a PostgreSQL URL (the value is not shown): {e}")
        })?;
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("ferretdb-standin");
        Ok(Backend {
            config,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The URL's user (FerretDB's pool role).
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("")
    }

    /// A new connection, made now with the URL's password.
    pub async fn fresh(&self) -> Result<Client, PgError> {
        let (client, conn) = self.config.connect(NoTls).await.map_err(|e| pg_error(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// An open idle connection, else a new one; give it back with [`Self::release`].
    pub async fn pooled(&self) -> Result<Client, PgError> {
        loop {
            let next = lock(&self.idle).pop();
            match next {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return self.fresh().await,
            }
        }
    }

    pub fn release(&self, c: Client) {
        if !c.is_closed() {
            lock(&self.idle).push(c);
        }
    }
}

fn lock(m: &Mutex<Vec<Client>>) -> std::sync::MutexGuard<'_, Vec<Client>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `rolpassword` of `role`, `None` when the role does not exist or has no password.
pub async fn role_secret(c: &Client, role: &str) -> Result<Option<String>, PgError> {
    let row = c
        .query_opt(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .map_err(|e| pg_error(&e))?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
}

/// `SELECT 1`: what a command run on a backend connection costs at least.
pub async fn ping(c: &Client) -> Result<(), PgError> {
    c.simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| pg_error(&e))
}

/// Whether a failed statement was "role does not exist" (SQLSTATE 42704).
pub fn is_undefined_role(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT)
}

/// `ALTER ROLE "<role>" PASSWORD '<secret>'`: the pre-hashed secret, stored verbatim by
/// PostgreSQL; the plaintext is never in the SQL text. `Ok(false)`: no such role.
pub async fn alter_role_secret(c: &Client, role: &str, secret: &str) -> Result<bool, PgError> {
    let sql = format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_ident(role),
        quote_literal(secret)
    );
    match c.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        Err(e) if is_undefined_role(&e) => Ok(false),
        Err(e) => Err(pg_error(&e)),
    }
}

/// PostgreSQL's `quote_ident`, always quoting.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// PostgreSQL's `quote_literal` for a standard-conforming string (no backslash escapes).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("ad\"min"), "\"ad\"\"min\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = Backend::new("postgres://u:s3cr3t@host:notaport/db").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let b = Backend::new("postgres://admin:pw@postgres:5432/postgres").unwrap();
        assert_eq!(b.user(), "admin");
        assert!(!format!("{b:?}").contains("pw"));
    }
}
