//! The password inside a connection URI (`KOMODO_DATABASE_URI`, `FERRETDB_POSTGRESQL_URL`):
//! read it out, or replace it, keeping every other byte (scheme, user, host list, path, query,
//! fragment) exactly as it was. The password is RFC 3986 userinfo: written percent-encoded
//! (every byte outside `A-Za-z0-9-._~`), read back percent-decoded.
//!
//! Parsing is deliberately strict, because a URI we misread would be rewritten wrongly: the
//! authority ends at the first `/`, `?` or `#` after `scheme://`; userinfo ends at the last `@`
//! of the authority; the password starts after the first `:` of the userinfo. A password with a
//! raw `@ : [ ]` (not percent-encoded) or a broken `%` escape is refused, as drivers refuse it.
//! Errors name the env key and the reason, never any part of the value.

use crate::secret::Secret;
use zeroize::Zeroizing;

/// Why a URI cannot be read or patched. Names the key only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct UriError {
    pub key: String,
    pub why: &'static str,
}

/// Byte offsets of the password inside a URI (`start..end`; the `:` before it is excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PasswordSpan {
    start: usize,
    end: usize,
}

fn err(key: &str, why: &'static str) -> UriError {
    UriError {
        key: key.to_string(),
        why,
    }
}

fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Finds the password. `Ok(None)`: a well-formed URI that carries no password.
fn locate(key: &str, uri: &str) -> Result<Option<PasswordSpan>, UriError> {
    let Some((scheme, _)) = uri.split_once("://") else {
        return Err(err(key, "is not a URI (no scheme://)"));
    };
    if !valid_scheme(scheme) {
        return Err(err(key, "is not a URI (invalid scheme)"));
    }
    let auth_start = scheme.len() + 3;
    let rest = &uri[auth_start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let Some(at) = authority.rfind('@') else {
        // `u:pa/ss@h`: a raw `/ ? #` in a password cut the authority short, leaving a "host"
        // whose port is not a number and an `@` further on. Refused, not read as no password.
        let port_ok = |h: &str| {
            h.starts_with('[')
                || h.rsplit_once(':')
                    .is_none_or(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        if rest[auth_len..].contains('@') && !authority.split(',').all(port_ok) {
            return Err(err(
                key,
                "holds a password that is not percent-encoded (a raw / ? or #); encode it first",
            ));
        }
        return Ok(None);
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return Ok(None);
    };
    let start = auth_start + colon + 1;
    let end = auth_start + at;
    let raw = &uri[start..end];
    if raw.contains(['@', ':', '[', ']']) {
        return Err(err(
            key,
            "holds a password that is not percent-encoded (a raw @ : [ or ]); encode it first",
        ));
    }
    if authority[at + 1..].is_empty() {
        return Err(err(key, "is a URI with credentials but no host"));
    }
    decode(raw).map_err(|why| err(key, why))?;
    Ok(Some(PasswordSpan { start, end }))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes into a zeroizing buffer, then checks UTF-8.
fn decode(raw: &str) -> Result<Secret, &'static str> {
    let bytes = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("holds a password with a broken % escape");
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = std::str::from_utf8(&out).map_err(|_| "holds a password that is not UTF-8")?;
    Ok(Secret::new(text.to_owned()))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, so the result is valid
/// userinfo for every driver (mongodb, libpq, sqlx).
fn encode_into(out: &mut String, password: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in password.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Whether the URI in `key` carries a password. Refuses what cannot be parsed.
pub fn has_password(key: &str, uri: &Secret) -> Result<bool, UriError> {
    Ok(locate(key, uri.expose())?.is_some())
}

/// The password the URI in `key` carries, percent-decoded (for proofs: "does it carry NEW?").
pub fn password(key: &str, uri: &Secret) -> Result<Secret, UriError> {
    match locate(key, uri.expose())? {
        Some(s) => decode(&uri.expose()[s.start..s.end]).map_err(|why| err(key, why)),
        None => Err(err(key, "is a URI without a password")),
    }
}

/// The URI in `key` with its password replaced by `new` (percent-encoded); every other byte
/// kept. Refuses a URI without a password: there is no place to put one we could be sure of.
pub fn with_password(key: &str, uri: &Secret, new: &Secret) -> Result<Secret, UriError> {
    let text = uri.expose();
    let Some(s) = locate(key, text)? else {
        return Err(err(key, "is a URI without a password"));
    };
    let mut out = String::with_capacity(text.len() + 3 * new.len());
    out.push_str(&text[..s.start]);
    encode_into(&mut out, new.expose());
    out.push_str(&text[s.end..]);
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Secret {
        Secret::new(v.to_string())
    }
    const K: &str = "KOMODO_DATABASE_URI";

    fn swap(uri: &str, new: &str) -> String {
        with_password(K, &s(uri), &s(new))
            .unwrap()
            .expose()
            .to_string()
    }

    #[test]
    fn only_the_password_changes_byte_for_byte() {
        let cases = [
            (
                "mongodb://admin:old@mongo:27017/?authSource=admin",
                "mongodb://admin:NEW@mongo:27017/?authSource=admin",
            ),
            (
                "mongodb://admin:old@h1:27017,h2:27018,h3/komodo?replicaSet=rs0&authSource=admin",
                "mongodb://admin:NEW@h1:27017,h2:27018,h3/komodo?replicaSet=rs0&authSource=admin",
            ),
            (
                "mongodb+srv://u%40x:old@cluster0.example.net/db?retryWrites=true#frag",
                "mongodb+srv://u%40x:NEW@cluster0.example.net/db?retryWrites=true#frag",
            ),
            (
                "mongodb://admin:old@[::1]:27017,[fe80::1%25eth0]:27018/?directConnection=false",
                "mongodb://admin:NEW@[::1]:27017,[fe80::1%25eth0]:27018/?directConnection=false",
            ),
            (
                "postgres://komodo:old@postgres:5432/postgres?sslmode=disable",
                "postgres://komodo:NEW@postgres:5432/postgres?sslmode=disable",
            ),
            (
                "postgresql://komodo:old@postgres",
                "postgresql://komodo:NEW@postgres",
            ),
            // An empty password is a password; a query with @ and : stays as it was.
            ("mongodb://u:@h/?x=a@b:c", "mongodb://u:NEW@h/?x=a@b:c"),
        ];
        for (before, after) in cases {
            assert_eq!(swap(before, "NEW"), after, "{before}");
            assert_eq!(password(K, &s(after)).unwrap().expose(), "NEW");
        }
    }

    #[test]
    fn reserved_bytes_are_percent_encoded_and_read_back() {
        for pw in [
            "p@ss:w/o?r#d%",
            "sp ace+plus&amp=eq",
            "ünï€😀",
            "[]!$'()*,;",
            "%41",
        ] {
            let uri = swap("mongodb://admin:x@mongo:27017/?authSource=admin", pw);
            assert!(uri.starts_with("mongodb://admin:"), "{uri}");
            assert!(uri.ends_with("@mongo:27017/?authSource=admin"), "{uri}");
            let enc =
                &uri["mongodb://admin:".len()..uri.len() - "@mongo:27017/?authSource=admin".len()];
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{enc}"
            );
            assert_eq!(password(K, &s(&uri)).unwrap().expose(), pw);
        }
        // An already-encoded old password is decoded, not taken literally.
        assert_eq!(
            password(K, &s("mongodb://u:p%40ss%3A%2F@h"))
                .unwrap()
                .expose(),
            "p@ss:/"
        );
    }

    #[test]
    fn no_password_or_unparsable_is_refused_by_key_never_by_value() {
        let refused = [
            ("mongodb://mongo:27017", "without a password"),
            ("mongodb://admin@mongo:27017", "without a password"),
            (
                "mongodb://[::1]:27017/?authSource=admin",
                "without a password",
            ),
            ("mongodb://mongo/?x=u:hunter2@h", "without a password"),
            ("admin:hunter2@mongo:27017", "no scheme://"),
            ("1x://admin:hunter2@h", "invalid scheme"),
            ("mongodb://admin:hunter2@", "no host"),
            ("mongodb://admin:hun@ter2@h", "not percent-encoded"),
            ("mongodb://admin:hun:ter2@h", "not percent-encoded"),
            ("mongodb://admin:hunter2%4@h", "broken % escape"),
            ("mongodb://admin:hunter2%zz@h", "broken % escape"),
            ("mongodb://admin:hunter2%ff@h", "not UTF-8"),
        ];
        for (uri, why) in refused {
            let e = with_password(K, &s(uri), &s("NEW")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("KOMODO_DATABASE_URI: "), "{msg}");
            assert!(msg.contains(why), "{uri}: {msg}");
            assert!(!msg.contains("hunter") && !msg.contains("ter2"), "{msg}");
            assert!(!format!("{e:?}").contains("hun"));
            assert!(password(K, &s(uri)).is_err(), "{uri}");
        }
        assert!(!has_password(K, &s("mongodb://mongo:27017")).unwrap());
        assert!(has_password(K, &s("mongodb://u:p@mongo:27017")).unwrap());
        assert!(has_password(K, &s("nonsense")).is_err());
    }

    #[test]
    fn a_raw_slash_in_a_password_ends_the_authority_and_is_not_misread() {
        // `mongodb://u:pa/ss@h`: the authority is `u:pa`, so neither "no password" nor a
        // password can be read from it with certainty: refused by key.
        for uri in [
            "mongodb://u:pa/ss@h",
            "mongodb://u:pa?ss@h:27017/db",
            "mongodb://u:pa#ss@h",
            "mongodb://u:/hunter2@h",
            "postgres://u:a/b?c@h1:5432,h2/db",
        ] {
            let e = has_password(K, &s(uri)).unwrap_err();
            assert!(e.to_string().contains("raw / ? or #"), "{uri}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(with_password(K, &s(uri), &s("N")).is_err(), "{uri}");
        }
        // An `@` after the authority of a URI without credentials is not a password.
        for uri in [
            "mongodb://h:27017/?appName=a@b",
            "mongodb://h1,h2:1/db?x=@",
            "mongodb://[::1]:1/?a=@",
        ] {
            assert!(!has_password(K, &s(uri)).unwrap(), "{uri}");
        }
    }
}
