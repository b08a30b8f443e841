//! The value compose hands a container for a key of compose.env. sops keeps a dotenv value
//! byte for byte (quotes, a trailing ` # comment`, `$`), while compose strips quotes and
//! comments, decodes escapes and interpolates `${VAR}`. Every comparison of compose.env with a
//! live value, and every value the tool writes where compose reads it, goes through [`value`].
//! A pure function over the decrypted entries (key, raw bytes, in file order); no I/O.
//!
//! Two readers matter (docs/compose-env-values.md has the measurements):
//! Debian's `docker-compose` 1.29 (python-dotenv 0.21) and compose v2 (compose-go's dotenv).
//! They agree on a common subset, which is what this module reads; anything outside it (where
//! they differ, or where the result depends on the environment of whoever runs compose) is a
//! [`Refusal`] naming the key, never showing the value:
//!
//! - unquoted: leading blanks dropped; an inline comment starts at whitespace + `#` (1.29 takes
//!   any whitespace, v2 only a space: a value where the two cut differently is refused);
//!   trailing blanks dropped; a `#` left inside (`p#ss`) is refused: Compose v2 before 2.12
//!   (compose-go before 1.6) cut unquoted values at any `#`;
//! - `'single'`: literal in v2, but 1.29 interpolates `${..}` and decodes `\\`/`\'` inside:
//!   refused when the body holds `${` or a backslash;
//! - `"double"`: `\\ \" \n \r \t` decoded alike; other escapes (`\$`, `\'`, ...) are refused;
//! - after a closing quote only blanks and a `# comment` (else 1.29 drops the line and v2 reads
//!   the rest as another statement);
//! - `${NAME}` (unquoted or double-quoted) is the value of the last earlier line setting NAME;
//!   a NAME the file does not set before it comes from compose's own environment
//!   (undeterminable), refused; `$NAME`, `$$`, `${NAME:-x}` and every other `$` are refused (1.29
//!   keeps `$NAME` and `$$` literally, v2 interpolates them; the modifiers differ);
//! - control characters other than tab and non-ASCII blanks are refused (the two trim and cut
//!   them differently; a line break cannot be in a dotenv line at all).
//!
//! Assumed, as in Komodo's and the rehearsal's deployments: compose runs without an environment
//! variable of the same name as a key the value refers to (v2 lets such a variable win over the
//! file's earlier line, 1.29 does not).

mod syntax;

use crate::secret::Secret;
use std::fmt;
use syntax::{parse, Piece};

/// Why a key's compose reading cannot be determined; names the key, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: String,
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: compose's reading of its value cannot be determined ({}); write it unquoted, without `$`, `#` after a blank, or escapes",
            self.key, self.why
        )
    }
}

/// One data line of compose.env: its key and its raw (decrypted) value, as sops keeps them.
pub type Entry<'a> = (&'a [u8], &'a [u8]);

/// The value compose hands a container for `key` (its last line), `None` when the file does not
/// set it, or a refusal naming it.
pub fn value(entries: &[Entry<'_>], key: &str) -> Result<Option<Secret>, Refusal> {
    let Some(at) = last_before(entries, key, entries.len()).map_err(|why| refuse(key, why))? else {
        return Ok(None);
    };
    // A quote that does not close on its line makes compose read on into the next lines
    // (both versions): every line after it is in doubt.
    if let Some((k, _)) = entries[..at].iter().find(|(_, raw)| runs_on(raw)) {
        return Err(refuse(
            key,
            format!(
                "the line of {} before it opens a quote that compose may read on over the following lines",
                String::from_utf8_lossy(k)
            ),
        ));
    }
    resolve(entries, at, 0)
        .map(|v| Some(Secret::new(v)))
        .map_err(|why| refuse(key, why))
}

/// Whether a raw value opens a quote that a compose reader may continue past its own line: no
/// closing quote, or a closing quote right after a backslash (1.29's regex may take `\"` as an
/// escaped quote and close at a quote on a later line; v2 does so for `\'`).
fn runs_on(raw: &[u8]) -> bool {
    let s = raw.trim_ascii_start();
    match s.first() {
        Some(b'"') => {
            let mut i = 1;
            while i < s.len() {
                match s[i] {
                    b'\\' => i += 2,
                    b'"' => return s[i - 1] == b'\\',
                    _ => i += 1,
                }
            }
            true
        }
        Some(b'\'') => match s[1..].iter().position(|c| *c == b'\'') {
            Some(p) => p > 0 && s[p] == b'\\',
            None => true,
        },
        _ => false,
    }
}

/// Every key of the file (compose's names, once each, in file order) whose value compose reads
/// as `want`, compared in constant time; keys whose reading is refused are left out.
pub fn keys_holding(entries: &[Entry<'_>], want: &Secret) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, _) in entries {
        let Ok(name) = std::str::from_utf8(k) else {
            continue;
        };
        if out.iter().any(|o| o == name) {
            continue;
        }
        if let Ok(Some(v)) = value(entries, name) {
            if v.ct_eq(want) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Whether `key`'s raw value interpolates another key (a link that follows it).
pub fn is_link(entries: &[Entry<'_>], key: &str) -> bool {
    entries
        .iter()
        .rev()
        .find(|(k, _)| *k == key.as_bytes())
        .is_some_and(|(_, raw)| raw.windows(2).any(|w| w == b"${"))
}

fn refuse(key: &str, why: String) -> Refusal {
    Refusal {
        key: key.to_string(),
        why,
    }
}

/// The name compose gives a sops key: `export ` and surrounding blanks dropped.
fn compose_name(k: &[u8]) -> &[u8] {
    let t = k.trim_ascii();
    match t.strip_prefix(b"export") {
        Some(rest) if rest.first().is_some_and(|c| *c == b' ' || *c == b'\t') => rest.trim_ascii(),
        _ => t,
    }
}

/// The index of the last line before `end` that sets `name`; a line whose key compose would also
/// read as `name` but spelled otherwise (blanks, `export `) is refused.
fn last_before(entries: &[Entry<'_>], name: &str, end: usize) -> Result<Option<usize>, String> {
    let mut found = None;
    for (i, (k, _)) in entries[..end].iter().enumerate() {
        if compose_name(k) != name.as_bytes() {
            continue;
        }
        if *k != name.as_bytes() {
            return Err(format!(
                "a line sets {name} with blanks or `export` around the key, which compose reads as {name} too"
            ));
        }
        found = Some(i);
    }
    Ok(found)
}

/// Depth cap for `${A}` chains (a chain always points to earlier lines, so it ends; this only
/// bounds the work on a pathological file).
const MAX_DEPTH: usize = 64;

fn resolve(entries: &[Entry<'_>], at: usize, depth: usize) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err("a chain of more than 64 `${..}` references".into());
    }
    let mut out = String::new();
    for piece in parse(entries[at].1)? {
        match piece {
            Piece::Lit(s) => out.push_str(&s),
            Piece::Ref(name) => {
                let Some(i) = last_before(entries, &name, at)? else {
                    return Err(format!(
                        "it refers to ${{{name}}}, which the file does not set before it: compose would take it from the environment it runs in"
                    ));
                };
                let v = resolve(entries, i, depth + 1)
                    .map_err(|why| format!("it refers to ${{{name}}}, and for {name}: {why}"))?;
                out.push_str(&v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[(&str, &str)], key: &str) -> Result<Option<String>, Refusal> {
        let e: Vec<Entry> = lines
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        value(&e, key).map(|o| o.map(|s| s.expose().to_string()))
    }

    fn ok(raw: &str) -> String {
        read(&[("K", raw)], "K").unwrap().unwrap()
    }

    fn refused(raw: &str) -> String {
        let e = read(&[("K", raw)], "K").unwrap_err();
        assert_eq!(e.key, "K");
        e.why
    }

    #[test]
    fn quotes_comments_and_blanks_are_read_as_compose_reads_them() {
        // Measured with docker-compose 1.29.2 (docs/compose-env-values.md).
        for (raw, want) in [
            ("QuotedPw123", "QuotedPw123"),
            ("\"QuotedPw123\"", "QuotedPw123"),
            ("'QuotedPw123'", "QuotedPw123"),
            ("\"p#ss\"", "p#ss"),
            ("p #ss", "p"),
            ("  spaced  ", "spaced"),
            ("\"q\" # c", "q"),
            ("'q'#c", "q"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"l1\\nl2\"", "l1\nl2"),
            ("a\\tb", "a\\tb"),
            ("it's", "it's"),
            ("\"\"", ""),
            ("", ""),
            ("'$x'", "$x"),
            ("a\t #x", "a"),
        ] {
            assert_eq!(ok(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn what_the_compose_versions_read_differently_is_refused_by_name() {
        for (raw, why) in [
            ("a\t#x", "tab before `#`"),
            ("p#ss", "Compose v2 releases before 2.12"),
            ("'a${B}'", "single quotes"),
            ("'a\\\\b'", "backslash in single quotes"),
            ("\"a\\'b\"", "escape in double quotes"),
            ("\"a\\$b\"", "escape in double quotes"),
            ("$HOME", "outside `${NAME}`"),
            ("a$$b", "`$$`"),
            ("${A:-x}", "modifier"),
            ("\"open", "unterminated"),
            ("'open", "unterminated"),
            ("\"a\" b", "after the closing quote"),
            ("\"a\\\\\" # \"", "right before the closing"),
            ("a\rb", "control character"),
            ("a\u{a0}", "non-ASCII blank"),
            ("${NOPE}", "does not set before it"),
        ] {
            let got = refused(raw);
            assert!(got.contains(why), "{raw:?}: {got}");
        }
        let shown = read(&[("K", "\"s3cret\\q\"")], "K")
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with("K: ") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn references_take_the_last_earlier_line() {
        let lines = [
            ("A", "first"),
            ("A", "\"p#ss\""),
            ("B", "${A}-x"),
            ("C", "\"<${B}>\""),
            ("D", "${E}"),
            ("E", "later"),
            ("F", "${D}"),
        ];
        assert_eq!(read(&lines, "B").unwrap().unwrap(), "p#ss-x");
        assert_eq!(read(&lines, "C").unwrap().unwrap(), "<p#ss-x>");
        assert!(read(&lines, "D").unwrap_err().why.contains("${E}"));
        let e = read(&lines, "F").unwrap_err();
        assert!(e.why.contains("${D}") && e.why.contains("${E}"), "{e}");
        assert_eq!(read(&lines, "Z").unwrap(), None);
        // A quote left open (or closed right after a backslash) may run on over the next
        // lines: every later key is in doubt; an earlier one is not.
        for open in ["\"open", "'open", "\"a\\\\\"", "'a\\'"] {
            let lines = [("B", "before"), ("A", open), ("K", "fine")];
            let e = read(&lines, "K").unwrap_err();
            assert!(e.why.contains("line of A"), "{open:?}: {e}");
            assert_eq!(read(&lines, "B").unwrap().unwrap(), "before");
        }
        assert_eq!(
            read(&[("A", "\"a\\\"b\""), ("K", "fine")], "K")
                .unwrap()
                .unwrap(),
            "fine"
        );
        // A key compose reads under the same name is not silently ignored.
        assert!(read(&[("K", "a"), ("export K", "b")], "K")
            .unwrap_err()
            .why
            .contains("export"));
    }

    #[test]
    fn keys_holding_a_value_and_links() {
        let lines: Vec<Entry> = [
            ("KOMODO_DATABASE_PASSWORD", "\"pw-0123456789\""),
            ("KOMODO_DB_PASSWORD", "pw-0123456789"),
            ("LINK", "${KOMODO_DATABASE_PASSWORD}"),
            ("OTHER", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
        let want = Secret::new("pw-0123456789".into());
        assert_eq!(
            keys_holding(&lines, &want),
            ["KOMODO_DATABASE_PASSWORD", "KOMODO_DB_PASSWORD", "LINK"]
        );
        assert!(is_link(&lines, "LINK"));
        assert!(!is_link(&lines, "KOMODO_DB_PASSWORD"));
    }
}
