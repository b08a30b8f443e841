//! Which compose.env keys hold the DB password: the generation's key, each other generation's
//! password key on the same value (a host upgraded from Komodo 1.19 keeps `KOMODO_DB_PASSWORD`
//! beside `KOMODO_DATABASE_PASSWORD`), and any other key compose reads as the same value. A
//! rotation rewrites them together; another generation's key on another value is refused by
//! name (which one the containers get depends on the compose file). Pure: decrypted entries in,
//! names out; values compared in constant time, never shown.

use crate::docker::compose_value::{self, Entry};
use crate::docker::generation::ALL_COMPOSE_DB_PASSWORD_KEYS;
use crate::secret::Secret;

/// Below this length the password is not searched for under other keys (too many false hits).
pub const MIN_SEARCHED_LEN: usize = 8;

/// compose's reading of `key` (the generation's password key) and every key to rewrite with it,
/// `key` first. `user_key` (the username) is never taken for a copy. `${..}` links follow by
/// themselves and are left alone. Errors name keys only.
pub fn find(
    entries: &[Entry<'_>],
    key: &str,
    user_key: &str,
) -> Result<(Secret, Vec<String>), String> {
    let read = |k: &str| compose_value::value(entries, k).map_err(|e| e.to_string());
    let pw = read(key)?.ok_or_else(|| format!("has no {key}"))?;
    let mut keys = vec![key.to_string()];
    let mut split = Vec::new();
    for other in ALL_COMPOSE_DB_PASSWORD_KEYS.iter().filter(|k| **k != key) {
        match read(other)? {
            None => {}
            Some(v) if !v.ct_eq(&pw) => split.push(*other),
            // A `${..}` link follows the key it names by itself.
            Some(_) if compose_value::is_link(entries, other) => {}
            Some(_) => keys.push(other.to_string()),
        }
    }
    if !split.is_empty() {
        return Err(format!(
            "{} holds another value than {key} (two naming generations of the DB password, or a stray key): nothing was changed. Keep one value under every name (or remove the stale key), then run again",
            split.join(", ")
        ));
    }
    if pw.len() >= MIN_SEARCHED_LEN {
        for k in compose_value::keys_holding(entries, &pw) {
            if !keys.contains(&k) && k != user_key && !compose_value::is_link(entries, &k) {
                keys.push(k);
            }
        }
    }
    Ok((pw, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "pw-0123456789";

    fn find_in(lines: &[(&str, &str)]) -> Result<(Secret, Vec<String>), String> {
        let e: Vec<Entry> = lines
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        find(&e, "KOMODO_DATABASE_PASSWORD", "KOMODO_DATABASE_USERNAME")
    }

    #[test]
    fn both_generations_on_one_value_are_rewritten_together() {
        let (pw, keys) = find_in(&[
            ("KOMODO_DB_PASSWORD", PW),
            ("KOMODO_DATABASE_PASSWORD", &format!("\"{PW}\" # v2 name")),
            ("DB_PASSWORD", &format!("'{PW}'")),
            ("MONGO_PASSWORD", PW),
            ("LINK", "${KOMODO_DATABASE_PASSWORD}"),
            ("KOMODO_DATABASE_USERNAME", PW),
            ("OTHER", "x"),
        ])
        .unwrap();
        assert_eq!(pw.expose(), PW);
        assert_eq!(
            keys,
            [
                "KOMODO_DATABASE_PASSWORD",
                "KOMODO_DB_PASSWORD",
                "DB_PASSWORD",
                "MONGO_PASSWORD"
            ]
        );
        // A short password is not searched for under other names.
        let (_, keys) = find_in(&[
            ("KOMODO_DATABASE_PASSWORD", "short"),
            ("KOMODO_DB_PASSWORD", "short"),
            ("X", "short"),
        ])
        .unwrap();
        assert_eq!(keys, ["KOMODO_DATABASE_PASSWORD", "KOMODO_DB_PASSWORD"]);
    }

    #[test]
    fn another_value_under_another_generation_is_refused_by_name() {
        for stray in ["KOMODO_DB_PASSWORD", "DB_PASSWORD"] {
            let e = find_in(&[
                ("KOMODO_DATABASE_PASSWORD", PW),
                (stray, "stale-password-value"),
            ])
            .unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "{stray} holds another value than KOMODO_DATABASE_PASSWORD"
                )),
                "{e}"
            );
            assert!(!e.contains(PW) && !e.contains("stale-password"), "{e}");
        }
        // A quoted copy is the same value to compose: not a split.
        find_in(&[
            ("KOMODO_DATABASE_PASSWORD", PW),
            ("KOMODO_DB_PASSWORD", &format!("\"{PW}\"")),
        ])
        .unwrap();
        // The generation's key itself unreadable, or missing: refused by name.
        let e = find_in(&[("KOMODO_DATABASE_PASSWORD", "$$x")]).unwrap_err();
        assert!(e.starts_with("KOMODO_DATABASE_PASSWORD: "), "{e}");
        assert_eq!(
            find_in(&[("X", "y")]).unwrap_err(),
            "has no KOMODO_DATABASE_PASSWORD"
        );
    }
}
