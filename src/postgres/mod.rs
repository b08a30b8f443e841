//! The PostgreSQL plane of a FerretDB deployment: the role's SCRAM-SHA-256 verifier in
//! `pg_authid`, which FerretDB checks every client's proof against. Imports none of the other
//! outside systems (sops, mongo, docker, git): it says what to run (`psql`'s argv, the SQL for
//! its stdin) and reads the answer; the caller supplies a [`Psql`] that runs it (the planes:
//! `docker exec` into the postgres container, over its local socket; the tests: a throwaway
//! cluster's socket).
//!
//! The password itself never leaves this process: the tool builds the verifier
//! ([`scram::Verifier::build`]) and sends `ALTER ROLE ... PASSWORD '<verifier>'`, which
//! PostgreSQL stores verbatim. A password is checked against the stored verifier offline
//! ([`scram::Verifier::accepts`]); no login is needed. An undo restores the previous stored
//! secret byte for byte, so a rollback needs no old plaintext.

pub mod scram;
pub mod sql;

pub use scram::Verifier;
pub use sql::Stored;

use crate::secret::Secret;

/// Errors of the PostgreSQL plane: one line, naming the role or the part at fault, never a
/// password or a verifier.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// An input this plane will not handle (a password SASLprep would split, a NUL).
    #[error("postgres: {0}")]
    Refused(String),
    /// The stored secret is not a SCRAM-SHA-256 verifier this plane can read.
    #[error("postgres: {0}")]
    Verifier(String),
    /// psql could not be run or did not finish.
    #[error("postgres: cannot run psql in {at}: {msg}")]
    Unreachable { at: String, msg: String },
    /// psql ran and failed (its exit code and first error line).
    #[error("postgres: psql in {at} exited {code}: {line}")]
    Psql { at: String, code: i64, line: String },
    /// psql's answer is not what the statement returns.
    #[error("postgres: {0}")]
    Output(String),
}

/// What one psql run gave back.
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// psql's exit code (0 ok, 1 fatal, 2 connection lost/refused, 3 a statement failed).
    pub code: i64,
}

/// Runs `psql` (argv given, program first) with `stdin` on the server's local socket.
pub trait Psql {
    /// Where psql runs, for messages (a container name, a socket dir).
    fn at(&self) -> String;
    /// Runs it; `Err` is a one-line reason psql could not be run (no secret in it).
    fn run(
        &self,
        argv: &[String],
        stdin: &[u8],
    ) -> impl std::future::Future<Output = Result<Output, String>> + Send;
}

/// The role whose verifier FerretDB checks, reached through psql as `admin` (in Komodo's
/// deployment the same bootstrap superuser: `POSTGRES_USER`).
pub struct Role<'a, P: Psql> {
    pub psql: &'a P,
    pub admin: &'a str,
    pub name: &'a str,
}

impl<P: Psql> Role<'_, P> {
    async fn session(&self, sql: &Secret) -> Result<Stored, PgError> {
        let out = self
            .psql
            .run(&sql::psql_argv(self.admin), sql.expose().as_bytes())
            .await
            .map_err(|msg| PgError::Unreachable {
                at: self.psql.at(),
                msg,
            })?;
        if out.code != 0 {
            return Err(PgError::Psql {
                at: self.psql.at(),
                code: out.code,
                line: sql::error_line(&out.stderr),
            });
        }
        sql::parse_stored(&out.stdout)
    }

    /// What `pg_authid` holds for the role now.
    pub async fn stored(&self) -> Result<Stored, PgError> {
        self.session(&Secret::new(sql::read_role(self.name)?)).await
    }

    /// The role's verifier, parsed; a missing role or password is an error naming it.
    pub async fn verifier(&self) -> Result<(Secret, Verifier), PgError> {
        match self.stored().await? {
            Stored::Secret(s) => {
                let v = Verifier::parse(s.expose())
                    .map_err(|e| PgError::Verifier(format!("role {}: {e}", self.name)))?;
                Ok((s, v))
            }
            Stored::NoPassword => Err(PgError::Verifier(format!(
                "role {} has no password in pg_authid",
                self.name
            ))),
            Stored::NoRole => Err(PgError::Verifier(format!(
                "no role {} in pg_authid",
                self.name
            ))),
        }
    }

    /// Sets the stored secret to `stored` verbatim (`None`: no password) and proves it by the
    /// read-back in the same session: PostgreSQL would hash a string it does not parse as a
    /// secret as if it were a plaintext password.
    pub async fn set_stored(&self, stored: Option<&Secret>) -> Result<(), PgError> {
        let back = self.session(&sql::set_role(self.name, stored)?).await?;
        let same = match (&back, stored) {
            (Stored::Secret(b), Some(want)) => b.ct_eq(want),
            (Stored::NoPassword, None) => true,
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(PgError::Output(format!(
                "role {}: pg_authid does not hold the secret just set, byte for byte",
                self.name
            )))
        }
    }

    /// Sets a verifier built by the tool.
    pub async fn set_verifier(&self, v: &Verifier) -> Result<(), PgError> {
        self.set_stored(Some(&v.text())).await
    }
}
