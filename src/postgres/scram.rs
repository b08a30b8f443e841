//! PostgreSQL's SCRAM-SHA-256 secret (`pg_authid.rolpassword`):
//! `SCRAM-SHA-256$<iterations>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>` (RFC 5803 style,
//! standard base64 with padding). Built here from a password (4096 iterations and a 28-byte
//! salt, as FerretDB's `update_user` makes them, so libmongoc clients keep working), parsed from
//! what PostgreSQL stores, and checked against a password without any login.
//!
//! The derivation is PostgreSQL's and MongoDB's SCRAM-SHA-256 alike: SaltedPassword =
//! PBKDF2-HMAC-SHA256(prep(password), salt, i); ClientKey = HMAC(SaltedPassword, "Client Key");
//! StoredKey = SHA-256(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").

use super::PgError;
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use zeroize::Zeroizing;

/// The iterations a verifier built here uses (PostgreSQL's and DocumentDB's default; MongoDB
/// drivers refuse fewer).
pub const ITERATIONS: u32 = 4096;
/// The salt length a verifier built here uses: DocumentDB's `scramDefaultSaltLen`, the length
/// libmongoc demands (SHA-256's size minus 4). PostgreSQL's own default is 16.
pub const SALT_LEN: usize = 28;
const PREFIX: &str = "SCRAM-SHA-256$";
const KEY_LEN: usize = 32;

/// One parsed SCRAM-SHA-256 secret. Not a password, but enough for an offline guessing attack:
/// its Debug shows the iterations and the salt's length only, and its text is a [`Secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Verifier(SCRAM-SHA-256, i={}, salt {} bytes, keys ***)",
            self.iterations,
            self.salt.len()
        )
    }
}

impl Verifier {
    /// A new verifier for `password`: 4096 iterations, a fresh random 28-byte salt. A password
    /// that PostgreSQL and a MongoDB driver would prepare differently is refused
    /// ([`client_prep`]).
    pub fn build(password: &Secret) -> Result<Verifier, PgError> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| PgError::Refused(format!("no random salt from the OS: {e}")))?;
        Verifier::build_with(password, &salt, ITERATIONS)
    }

    /// [`Verifier::build`] with a given salt and iteration count (tests, and rebuilding).
    pub fn build_with(
        password: &Secret,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Verifier, PgError> {
        if salt.is_empty() || iterations == 0 {
            return Err(PgError::Refused(
                "a SCRAM verifier needs a salt and at least one iteration".into(),
            ));
        }
        let prepped = client_prep(password.expose()).map_err(PgError::Refused)?;
        let (stored_key, server_key) = keys(prepped.as_bytes(), salt, iterations);
        Ok(Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        })
    }

    /// Parses PostgreSQL's stored form. The error names the part that is wrong, never the text.
    pub fn parse(text: &str) -> Result<Verifier, PgError> {
        let bad = |what: &str| PgError::Verifier(format!("not a SCRAM-SHA-256 secret: {what}"));
        if text.starts_with("md5") && text.len() == 35 {
            return Err(PgError::Verifier(
                "the role's password is stored as MD5, not SCRAM-SHA-256 (FerretDB needs SCRAM-SHA-256)".into(),
            ));
        }
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("no SCRAM-SHA-256$ prefix"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| bad("no keys part"))?;
        let (iter, salt) = params
            .split_once(':')
            .ok_or_else(|| bad("no iterations:salt"))?;
        if iter.is_empty() || !iter.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("iterations not a number"));
        }
        let iterations: u32 = iter.parse().map_err(|_| bad("iterations out of range"))?;
        if iterations == 0 {
            return Err(bad("zero iterations"));
        }
        let salt = B64.decode(salt).map_err(|_| bad("salt is not base64"))?;
        if salt.is_empty() {
            return Err(bad("empty salt"));
        }
        let (stored, server) = keys
            .split_once(':')
            .ok_or_else(|| bad("no StoredKey:ServerKey"))?;
        let key = |s: &str, what: &str| -> Result<[u8; KEY_LEN], PgError> {
            let v = B64
                .decode(s)
                .map_err(|_| bad(&format!("{what} is not base64")))?;
            v.try_into()
                .map_err(|_| bad(&format!("{what} is not 32 bytes")))
        };
        Ok(Verifier {
            iterations,
            salt,
            stored_key: key(stored, "StoredKey")?,
            server_key: key(server, "ServerKey")?,
        })
    }

    /// The stored form, as PostgreSQL keeps it.
    pub fn text(&self) -> Secret {
        Secret::new(format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        ))
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn salt_len(&self) -> usize {
        self.salt.len()
    }

    /// Does `password` log in against this verifier? Checked as PostgreSQL checks a password
    /// ([`pg_prep`], then both keys compared in constant time); no server is asked.
    pub fn accepts(&self, password: &Secret) -> bool {
        let prepped = pg_prep(password.expose());
        let (stored, server) = keys(prepped.as_bytes(), &self.salt, self.iterations);
        use subtle::ConstantTimeEq;
        let a = stored.ct_eq(&self.stored_key);
        let b = server.ct_eq(&self.server_key);
        bool::from(a & b)
    }

    /// Why a MongoDB client through FerretDB may refuse this verifier, or `None`: fewer than
    /// 4096 iterations (every driver), a salt other than 28 bytes (libmongoc: PHP, Navicat...).
    pub fn client_caveat(&self) -> Option<String> {
        if self.iterations < ITERATIONS {
            Some(format!(
                "{} iterations (MongoDB drivers refuse fewer than {ITERATIONS})",
                self.iterations
            ))
        } else if self.salt.len() != SALT_LEN {
            Some(format!(
                "a {}-byte salt (libmongoc clients demand {SALT_LEN}; the Rust driver and core accept it)",
                self.salt.len()
            ))
        } else {
            None
        }
    }
}

/// StoredKey and ServerKey for an already prepared password.
fn keys(prepped: &[u8], salt: &[u8], iterations: u32) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let mut salted = Zeroizing::new([0u8; KEY_LEN]);
    pbkdf2::pbkdf2::<Hmac<Sha256>>(prepped, salt, iterations, &mut salted[..])
        .expect("HMAC takes a key of any length");
    let hmac = |msg: &[u8]| -> [u8; KEY_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&salted[..])
            .expect("HMAC takes a key of any length");
        m.update(msg);
        m.finalize().into_bytes().into()
    };
    let client_key = Zeroizing::new(hmac(b"Client Key"));
    let stored: [u8; KEY_LEN] = Sha256::digest(&client_key[..]).into();
    (stored, hmac(b"Server Key"))
}

/// The password as PostgreSQL hashes it (`pg_saslprep` in `pg_be_scram_build_secret` and
/// `scram_verify_plain_password`): pure ASCII as is (control characters included); otherwise
/// SASLprep (RFC 4013), falling back to the raw bytes when SASLprep refuses it or maps it to
/// nothing.
/// The result is a zeroizing copy: the prepared password never lingers in freed memory.
pub fn pg_prep(password: &str) -> Zeroizing<String> {
    if password.is_ascii() {
        return Zeroizing::new(password.to_string());
    }
    match stringprep::saslprep(password) {
        Ok(p) if !p.is_empty() => owned(p),
        _ => Zeroizing::new(password.to_string()),
    }
}

/// SASLprep's answer as a zeroizing string (an owned one is moved, not copied).
fn owned(p: Cow<'_, str>) -> Zeroizing<String> {
    Zeroizing::new(p.into_owned())
}

/// The password as both PostgreSQL and a MongoDB driver prepare it (drivers SASLprep and fail
/// where PostgreSQL falls back to raw bytes): refused, naming the reason and never the value,
/// when the two would differ, so a verifier built here always admits the client.
pub fn client_prep(password: &str) -> Result<Zeroizing<String>, String> {
    if password.is_empty() {
        return Err("an empty password cannot be a SCRAM secret".into());
    }
    if password.bytes().any(|b| b.is_ascii_control()) {
        return Err(
            "the password holds an ASCII control character, which SASLprep prohibits (MongoDB clients could not log in)".into(),
        );
    }
    if password.is_ascii() {
        return Ok(Zeroizing::new(password.to_string()));
    }
    match stringprep::saslprep(password) {
        Ok(p) if !p.is_empty() => Ok(owned(p)),
        Ok(_) => Err("the password is mapped to nothing by SASLprep".into()),
        Err(_) => Err(
            "the password holds characters SASLprep prohibits (MongoDB clients could not log in)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Secret {
        Secret::new(v.into())
    }

    /// RFC 7677's test vector: user "user", password "pencil", salt and i=4096 from the
    /// example's server-first message. Its ClientProof/ServerSignature follow from these keys;
    /// the keys themselves are checked against the RFC's messages below.
    #[test]
    fn rfc_7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = Verifier::build_with(&s("pencil"), &salt, 4096).unwrap();
        // The proof from RFC 7677 §3: ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&v.stored_key).unwrap();
        m.update(auth.as_bytes());
        let sig = m.finalize().into_bytes();
        let client_key: Vec<u8> = proof.iter().zip(sig.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha256::digest(&client_key).as_slice(), &v.stored_key);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&v.server_key).unwrap();
        m.update(auth.as_bytes());
        assert_eq!(
            B64.encode(m.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn text_round_trips_and_accepts_only_its_password() {
        for (i, pw) in ["a", "komodo-Secret_123", "Ⅳ", "p w"].iter().enumerate() {
            let v = Verifier::build(&s(pw)).unwrap();
            assert_eq!(v.iterations(), 4096);
            assert_eq!(v.salt_len(), 28);
            assert!(v.client_caveat().is_none());
            let t = v.text();
            assert!(t.expose().starts_with("SCRAM-SHA-256$4096:"), "{i}");
            let back = Verifier::parse(t.expose()).unwrap();
            assert_eq!(back, v);
            assert_eq!(back.text().expose(), t.expose());
            assert!(back.accepts(&s(pw)));
            assert!(!back.accepts(&s(&format!("{pw}x"))));
        }
        // SASLprep: the Roman numeral four is prepared as "IV".
        assert!(Verifier::build(&s("Ⅳ")).unwrap().accepts(&s("IV")));
    }

    #[test]
    fn parse_names_the_wrong_part_and_never_the_text() {
        let good = Verifier::build(&s("pw")).unwrap().text();
        let g = good.expose();
        let cases = [
            ("md5".to_string() + &"0".repeat(32), "MD5"),
            ("plain-password".to_string(), "prefix"),
            (g.replacen("$4096:", "$x:", 1), "iterations"),
            (g.replacen("$4096:", "$0:", 1), "zero"),
            (g.replacen("$4096:", "$4096", 1), "iterations:salt"),
            (
                g.rsplit_once(':').unwrap().0.to_string(),
                "StoredKey:ServerKey",
            ),
            (
                format!(
                    "{}:{}",
                    g.rsplit_once(':').unwrap().0,
                    B64.encode([7u8; 16])
                ),
                "ServerKey is not 32 bytes",
            ),
            (g.replacen('$', "$!", 1), "not a number"),
        ];
        for (text, want) in cases {
            let e = Verifier::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
            assert!(!e.contains(&text), "{e}");
        }
        assert!(!format!("{:?}", Verifier::parse(g).unwrap()).contains(g));
    }

    #[test]
    fn client_prep_refuses_what_postgres_and_drivers_would_prepare_differently() {
        for bad in ["", "a\u{7}b", "tab\there", "a\u{E000}b", "\u{AD}"] {
            let e = client_prep(bad).unwrap_err();
            assert!(!e.contains(bad) || bad.is_empty(), "{e}");
            assert!(Verifier::build(&s(bad)).is_err());
        }
        assert_eq!(client_prep("a\u{A0}b").unwrap().as_str(), "a b");
        // PostgreSQL's side of the same inputs: raw bytes when SASLprep refuses.
        assert_eq!(pg_prep("tab\there").as_str(), "tab\there");
        assert_eq!(pg_prep("a\u{E000}b").as_str(), "a\u{E000}b");
        assert_eq!(pg_prep("\u{AD}").as_str(), "\u{AD}");
        assert_eq!(pg_prep("I\u{AD}X").as_str(), "IX");
    }

    /// Issue 21 item 5: the prepared password is a zeroizing buffer on every path (ASCII, and
    /// SASLprep's own string), so it is wiped when dropped. (A `Cow<str>` here did not compile.)
    #[test]
    fn prepared_passwords_are_zeroizing() {
        fn wiped_on_drop(_: &Zeroizing<String>) {}
        for pw in ["ascii-pw", "a\u{A0}b", "\u{2163}"] {
            wiped_on_drop(&client_prep(pw).unwrap());
            wiped_on_drop(&pg_prep(pw));
        }
        wiped_on_drop(&pg_prep("a\u{E000}b"));
    }

    #[test]
    fn caveats_name_iterations_and_salt_length() {
        let v = Verifier::build_with(&s("pw"), &[1; 16], 4096).unwrap();
        assert!(v.client_caveat().unwrap().contains("16-byte salt"));
        let v = Verifier::build_with(&s("pw"), &[1; 28], 1000).unwrap();
        assert!(v.client_caveat().unwrap().contains("1000 iterations"));
    }
}
