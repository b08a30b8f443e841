//! The SQL the plane sends and how psql's answers are read. Everything goes to `psql` on its
//! stdin (never argv, never env): the statements carry the role's SCRAM verifier, never a
//! password. psql runs unaligned, tuples only, quiet, terse errors (no `LINE n:` echo of the
//! statement), stopping at the first error, and ends on `\q` so it needs no EOF on stdin.

use super::scram::Verifier;
use super::PgError;
use crate::secret::Secret;

/// The database psql connects to: `initdb` always makes it.
pub const DATABASE: &str = "postgres";
/// Marks the one row the read statement returns, so stray output is never taken for it.
const TAG: &str = "komodo-rotate:";

/// `psql`'s arguments (the program's name first) for a session as `user` on the server's
/// default socket. No secret: the SQL follows on stdin.
pub fn psql_argv(user: &str) -> Vec<String> {
    [
        "psql",
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=terse",
        "-w",
        "-U",
        user,
        "-d",
        DATABASE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An identifier as PostgreSQL's `quote_ident` writes it, always quoted. NUL is refused.
pub fn quote_ident(name: &str) -> Result<String, PgError> {
    if name.is_empty() || name.contains('\0') {
        return Err(PgError::Refused(format!(
            "role name {name:?} cannot be quoted (empty or NUL)"
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A string literal as PostgreSQL's `quote_literal` writes it (`E'...'` when it holds a
/// backslash, so `standard_conforming_strings` does not matter). NUL is refused.
pub fn quote_literal(s: &str) -> Result<String, PgError> {
    if s.contains('\0') {
        return Err(PgError::Refused(
            "a string with NUL cannot be quoted".into(),
        ));
    }
    let q = s.replace('\'', "''");
    Ok(if q.contains('\\') {
        format!("E'{}'", q.replace('\\', "\\\\"))
    } else {
        format!("'{q}'")
    })
}

/// Reads the role's stored password: one tagged row (`set:<secret>` or `none`), no row when
/// the role does not exist.
pub fn read_role(role: &str) -> Result<String, PgError> {
    Ok(format!(
        "SELECT '{TAG}' || CASE WHEN rolpassword IS NULL THEN 'none' ELSE 'set:' || rolpassword END FROM pg_catalog.pg_authid WHERE rolname = {};\n\\q\n",
        quote_literal(role)?
    ))
}

/// Sets the role's stored password to `stored` verbatim (a SCRAM verifier, or a previous
/// secret being restored; `None` clears it), then reads it back in the same session. PostgreSQL
/// stores a string it parses as a SCRAM or MD5 secret as is, and would hash anything else as a
/// plaintext: the caller compares the read-back byte for byte.
pub fn set_role(role: &str, stored: Option<&Secret>) -> Result<Secret, PgError> {
    let value = match stored {
        Some(s) => quote_literal(s.expose())?,
        None => "NULL".into(),
    };
    let sql = format!(
        "ALTER ROLE {} PASSWORD {value};\n{}",
        quote_ident(role)?,
        read_role(role)?
    );
    Ok(Secret::new(sql))
}

/// The SQL of [`set_role`] for a verifier built here.
pub fn set_verifier(role: &str, v: &Verifier) -> Result<Secret, PgError> {
    set_role(role, Some(&v.text()))
}

/// What `pg_authid` holds for the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No such role.
    NoRole,
    /// The role has no password (`rolpassword` NULL).
    NoPassword,
    /// The stored secret, verbatim.
    Secret(Secret),
}

/// Reads psql's output of [`read_role`] (also the tail of [`set_role`]'s).
pub fn parse_stored(stdout: &[u8]) -> Result<Stored, PgError> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| PgError::Output("psql's output is not UTF-8".into()))?;
    let rows: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(TAG)).collect();
    match rows.as_slice() {
        [] => Ok(Stored::NoRole),
        ["none"] => Ok(Stored::NoPassword),
        [row] => match row.strip_prefix("set:") {
            Some(s) => Ok(Stored::Secret(Secret::new(s.to_string()))),
            None => Err(PgError::Output("psql's row is neither set nor none".into())),
        },
        many => Err(PgError::Output(format!(
            "psql returned {} rows for one role",
            many.len()
        ))),
    }
}

/// One line from psql's stderr for an error message: the first `ERROR:`/`FATAL:`/`psql:` line,
/// with anything shaped like a stored secret masked (terse verbosity already leaves the
/// statement out).
pub fn error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains("ERROR:") || l.contains("FATAL:") || l.starts_with("psql:"))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no message)");
    let masked = match line.find("SCRAM-SHA-256$") {
        Some(i) => format!("{}SCRAM-SHA-256$***", &line[..i]),
        None => line.to_string(),
    };
    crate::text::one_line(&masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_postgres() {
        assert_eq!(quote_ident("komodo").unwrap(), "\"komodo\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_ident("").is_err() && quote_ident("a\0").is_err());
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert_eq!(quote_literal("a\\b'").unwrap(), "E'a\\\\b'''");
        assert!(quote_literal("\0").is_err());
    }

    #[test]
    fn sql_carries_the_verifier_never_the_password() {
        let pw = Secret::new("plain-Password-42".into());
        let v = Verifier::build(&pw).unwrap();
        let sql = set_verifier("komodo", &v).unwrap();
        let sql = sql.expose();
        assert!(sql.starts_with("ALTER ROLE \"komodo\" PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(sql.contains(v.text().expose()));
        assert!(!sql.contains(pw.expose()));
        assert!(sql.ends_with("\\q\n"));
        assert!(!psql_argv("komodo").join(" ").contains("SCRAM"));
        let clear = set_role("komodo", None).unwrap();
        assert!(clear
            .expose()
            .starts_with("ALTER ROLE \"komodo\" PASSWORD NULL;"));
    }

    #[test]
    fn psql_output_is_read_by_its_tag() {
        assert_eq!(parse_stored(b"").unwrap(), Stored::NoRole);
        assert_eq!(
            parse_stored(b"komodo-rotate:none\n").unwrap(),
            Stored::NoPassword
        );
        match parse_stored(b"noise\nkomodo-rotate:set:SCRAM-SHA-256$4096:x$y:z\n").unwrap() {
            Stored::Secret(s) => assert_eq!(s.expose(), "SCRAM-SHA-256$4096:x$y:z"),
            other => panic!("{other:?}"),
        }
        assert!(parse_stored(b"komodo-rotate:none\nkomodo-rotate:none\n").is_err());
        assert!(parse_stored(b"komodo-rotate:what\n").is_err());
        assert!(parse_stored(&[0xff]).is_err());
    }

    #[test]
    fn error_lines_mask_secrets() {
        let e = error_line(b"psql:<stdin>:1: ERROR:  bad 'SCRAM-SHA-256$4096:abc$def:ghi'\n");
        assert!(e.contains("ERROR:") && !e.contains("abc"), "{e}");
        assert_eq!(error_line(b""), "(no message)");
    }
}
