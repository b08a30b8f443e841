//! PostgreSQL's SCRAM-SHA-256 secret (`pg_authid.rolpassword`):
//! `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`, the same
//! derivation as MongoDB's SCRAM-SHA-256 (research/ferretdb-auth.md Q5), read into the test
//! server's [`Credential`], and built as DocumentDB's `update_user` builds it (28-byte salt,
//! 4096 iterations) for `ALTER ROLE ... PASSWORD '<secret>'`.

use crate::mongo::scram::{self, Credential, Mechanism};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// DocumentDB's `ScramDefaultSaltLen` ("compatibility with drivers that expect a salt length
/// of 28"), where PostgreSQL's own default is 16.
pub const SALT_LEN: usize = 28;
/// `SCRAM_DEFAULT_ITERATIONS` / PostgreSQL's default.
pub const ITERATIONS: u32 = 4096;

/// Parses a stored secret; `None` for anything else (an md5 hash, NULL, a malformed string).
pub fn parse(secret: &str) -> Option<Credential> {
    let rest = secret.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iter_salt.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    let cred = Credential {
        iteration_count: iterations.parse().ok().filter(|i| *i > 0)?,
        salt: B64.decode(salt).ok()?,
        stored_key: B64.decode(stored).ok()?,
        server_key: B64.decode(server).ok()?,
    };
    (cred.stored_key.len() == 32 && cred.server_key.len() == 32 && !cred.salt.is_empty())
        .then_some(cred)
}

/// Formats a credential as PostgreSQL stores it.
pub fn format(c: &Credential) -> String {
    format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        c.iteration_count,
        B64.encode(&c.salt),
        B64.encode(&c.stored_key),
        B64.encode(&c.server_key)
    )
}

/// The secret for `password` with a fresh 28-byte salt and 4096 iterations. The password is
/// SASLprepped, falling back to the raw string when SASLprep refuses it, as PostgreSQL's
/// `pg_be_scram_build_secret` and DocumentDB's `PrehashPassword` do.
pub fn build(password: &str) -> String {
    let mut salt = vec![0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("OS random source unavailable");
    build_with(password, &salt, ITERATIONS)
}

pub fn build_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let prepared =
        zeroize::Zeroizing::new(scram::saslprep(password).unwrap_or_else(|_| password.to_owned()));
    format(&scram::derive(
        Mechanism::Sha256,
        &prepared,
        salt,
        iterations,
    ))
}

/// Whether `password` derives the stored secret's StoredKey.
pub fn accepts(secret: &str, password: &str) -> bool {
    let Some(c) = parse(secret) else {
        return false;
    };
    parse(&build_with(password, &c.salt, c.iteration_count))
        .is_some_and(|d| d.stored_key == c.stored_key && d.server_key == c.server_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret made by Debian's PostgreSQL 15 (`ALTER ROLE t PASSWORD 'pencil'`, then
    /// `SELECT rolpassword FROM pg_authid`): i=4096, 16-byte salt.
    const PG_PENCIL: &str = "SCRAM-SHA-256$4096:QKyfFEL6xRcRdrFq8RP41w==$wUTn9WD14enF0HAXTzo2qLaMkcYPXBeoK0y2TWtCveY=:AkzklkxNMJ5REzok+zrlFzieO7+P2ZsTHG40wKT1l8w=";

    #[test]
    fn a_secret_postgres_made_accepts_its_password_only() {
        let c = parse(PG_PENCIL).expect("parses");
        assert_eq!((c.iteration_count, c.salt.len()), (4096, 16));
        assert_eq!(format(&c), PG_PENCIL, "round trip is byte for byte");
        assert!(accepts(PG_PENCIL, "pencil"));
        assert!(!accepts(PG_PENCIL, "pencil2"));
    }

    #[test]
    fn built_secrets_have_28_byte_salts_4096_iterations_and_fresh_salts() {
        for pw in ["a", "abcDEF123", "Ⅳ", "a\u{a0}b"] {
            let s = build(pw);
            let c = parse(&s).unwrap();
            assert_eq!((c.iteration_count, c.salt.len()), (ITERATIONS, SALT_LEN));
            assert!(accepts(&s, pw) && !accepts(&s, &format!("{pw}x")), "{pw}");
            assert_ne!(build(pw), s, "a new salt each time");
        }
        // SASLprep, as PostgreSQL: Ⅳ maps to IV.
        assert!(accepts(&build("Ⅳ"), "IV"));
    }

    #[test]
    fn other_strings_are_not_secrets() {
        for s in [
            "",
            "md5abcdef",
            "SCRAM-SHA-256$x:AA==$AA==:AA==",
            "SCRAM-SHA-256$4096:AA==$AA==:AA==",
            "SCRAM-SHA-256$4096:!!$AA==:AA==",
        ] {
            assert!(parse(s).is_none(), "{s}");
        }
    }
}
