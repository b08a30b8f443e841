//! The `sops_*` lines: sops flattens its metadata struct into them (`__map_<name>` for a nested
//! key, `__list_<n>` for a list index). They may sit anywhere in the file and in any order (sops
//! before 3.8 wrote them in map order), so they are collected by key, with the index of the line
//! each came from so an edit can replace exactly those lines.

use super::dotenv::{self, Line, LineKind};
use super::error::SopsError;
use regex::bytes::Regex;
use std::collections::BTreeMap;

pub(crate) const PREFIX: &[u8] = b"sops_";

/// The one partial-encryption rule a file records (sops refuses files with two).
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    UnencryptedSuffix(Vec<u8>),
    EncryptedSuffix(Vec<u8>),
    /// `None`: the regex does not compile, and (as in sops) matches nothing.
    UnencryptedRegex(Option<Regex>),
    EncryptedRegex(Option<Regex>),
}

impl Rule {
    /// sops' `shouldBeEncrypted` for a dotenv path: `Some(key)` for a value, `None` for a
    /// top-level comment (empty path). A suffix/regex "matches" only a path element, so with an
    /// empty path the positive rules encrypt nothing and the negative rules encrypt everything.
    pub fn encrypts(&self, key: Option<&[u8]>) -> bool {
        match (self, key) {
            (Rule::UnencryptedSuffix(s), Some(k)) => !k.ends_with(s),
            (Rule::EncryptedSuffix(s), Some(k)) => k.ends_with(s),
            (Rule::UnencryptedRegex(r), Some(k)) => !r.as_ref().is_some_and(|r| r.is_match(k)),
            (Rule::EncryptedRegex(r), Some(k)) => r.as_ref().is_some_and(|r| r.is_match(k)),
            (Rule::UnencryptedSuffix(_) | Rule::UnencryptedRegex(_), None) => true,
            (Rule::EncryptedSuffix(_) | Rule::EncryptedRegex(_), None) => false,
        }
    }
}

/// One `sops_age__list_<i>__map_*` entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgeEntry {
    /// The armored age file (LFs already unescaped) and its line.
    pub enc: Option<(usize, Vec<u8>)>,
    /// The recipient line as written (bytes: sops does not read it to decrypt).
    pub recipient: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    /// By list index, in index order.
    pub age: BTreeMap<usize, AgeEntry>,
    /// Line index and raw text of `sops_lastmodified`.
    pub lastmodified: (usize, String),
    /// The Go-RFC3339 form of `lastmodified`: the MAC's AAD.
    pub mac_aad: String,
    /// Line index of `sops_mac`; the raw envelope is read from the line.
    pub mac_line: usize,
    pub version: String,
    pub rule: Rule,
    /// The rule as recorded (`sops_<name>` and its value), `None` for sops' default.
    pub rule_text: Option<(&'static str, Vec<u8>)>,
    pub mac_only_encrypted: bool,
    /// Master-key types other than age (`pgp`, `kms`, ...): their lines are kept verbatim, but a
    /// data-key rotation would lock those holders out.
    pub other_key_types: Vec<String>,
    /// `sops_age__list_<not a number>__map_enc` lines (line index, envelope).
    pub malformed_age: Vec<(usize, Vec<u8>)>,
}

fn rule_name(n: &str) -> &'static str {
    match n {
        "unencrypted_suffix" => "unencrypted_suffix",
        "encrypted_suffix" => "encrypted_suffix",
        "unencrypted_regex" => "unencrypted_regex",
        _ => "encrypted_regex",
    }
}

fn utf8(file: &str, what: &str, b: &[u8]) -> Result<String, SopsError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| SopsError::format(file, format!("{what} is not UTF-8")))
}

/// Collects and checks the metadata of `lines`. `bytes` is the whole file.
pub(crate) fn collect(file: &str, bytes: &[u8], lines: &[Line]) -> Result<Metadata, SopsError> {
    let mut seen: BTreeMap<Vec<u8>, (usize, Vec<u8>)> = BTreeMap::new();
    // By the section's spelling as written (`age`, `aGe`, ...): see `merge_spellings`.
    let mut age_spelled: BTreeMap<Vec<u8>, BTreeMap<usize, AgeEntry>> = BTreeMap::new();
    let mut lastmodified = None;
    let mut mac_line = None;
    let mut version = None;
    let mut rules: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut mac_only_encrypted = false;
    let mut other_key_types: Vec<String> = Vec::new();
    let mut malformed_age: Vec<(usize, Vec<u8>)> = Vec::new();

    for (idx, line) in lines.iter().enumerate() {
        let LineKind::Pair { key, value } = &line.kind else {
            continue;
        };
        let key = &bytes[key.clone()];
        if !key.starts_with(PREFIX) {
            continue;
        }
        let name = &key[PREFIX.len()..];
        // sops collects these lines into a map (a later line replaces an earlier one with the same
        // name) and decodes it with Go's encoding/json, whose field names match without regard
        // to letter case. Two spellings of one name are ambiguous there: refused.
        let folded = name.to_ascii_lowercase();
        match seen.insert(folded.clone(), (idx, name.to_vec())) {
            Some((prev, spelled)) if spelled != name => {
                return Err(SopsError::format(
                    file,
                    format!(
                        "metadata key {} appears twice in different letter case (lines {} and {})",
                        String::from_utf8_lossy(key),
                        prev + 1,
                        idx + 1
                    ),
                ))
            }
            _ => {}
        }
        let value = dotenv::unescape(&bytes[value.clone()]);
        let name_s = String::from_utf8_lossy(&folded).into_owned();
        match name_s.as_str() {
            "lastmodified" => lastmodified = Some((idx, utf8(file, "sops_lastmodified", &value)?)),
            "mac" => mac_line = Some(idx),
            "version" => version = Some(utf8(file, "sops_version", &value)?),
            "unencrypted_suffix" | "encrypted_suffix" | "unencrypted_regex" | "encrypted_regex" => {
                rules.retain(|(n, _)| *n != name_s);
                rules.push((rule_name(&name_s), go_json_text(&value).into_bytes()));
            }
            "unencrypted_comment_regex" | "encrypted_comment_regex" => {
                return Err(SopsError::unsupported(
                    file,
                    format!("sops_{name_s} (comment-driven encryption) is not supported by this tool"),
                ))
            }
            "mac_only_encrypted" => {
                // Go's strconv.ParseBool, which sops' DecodeNonStrings uses.
                mac_only_encrypted = match value.as_slice() {
                    b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True" => true,
                    b"0" | b"f" | b"F" | b"false" | b"FALSE" | b"False" => false,
                    _ => {
                        return Err(SopsError::format(
                            file,
                            "sops_mac_only_encrypted is not a boolean",
                        ))
                    }
                }
            }
            "shamir_threshold" => {
                return Err(SopsError::unsupported(
                    file,
                    "uses Shamir secret sharing (sops_shamir_threshold); this tool handles single-group age files only",
                ))
            }
            _ if name.starts_with(b"key_groups__") => {
                return Err(SopsError::unsupported(
                    file,
                    "uses key groups (sops_key_groups_*); this tool handles single-group age files only",
                ))
            }
            _ if name.len() > 3
                && name[..3].eq_ignore_ascii_case(b"age")
                && name[3..].starts_with(b"__list_") =>
            {
                // The separators are matched as written (sops' unflatten is case-sensitive); the
                // section and field names fold case. An entry that is not a map makes sops panic.
                let spelling = name[..3].to_vec();
                let rest = &name[b"age__list_".len()..];
                let Some(sep) = rest.windows(6).position(|w| w == b"__map_") else {
                    return Err(SopsError::format(
                        file,
                        format!(
                            "line {}: metadata key {} has no __map_ field (sops fails on it too)",
                            idx + 1,
                            String::from_utf8_lossy(key)
                        ),
                    ));
                };
                let field = rest[sep + 6..].to_ascii_lowercase();
                let Some(index) = std::str::from_utf8(&rest[..sep])
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    // sops files such an entry under an index that depends on Go's random map
                    // order (measured: the same file opens in some runs and not in others). We
                    // try its envelope too, after the well-formed ones.
                    if field == b"enc" {
                        malformed_age.push((idx, value));
                    }
                    continue;
                };
                let entry = age_spelled
                    .entry(spelling)
                    .or_default()
                    .entry(index)
                    .or_default();
                match field.as_slice() {
                    b"enc" => entry.enc = Some((idx, value)),
                    // Not needed to decrypt; kept as bytes (sops does not look at it either).
                    b"recipient" => entry.recipient = Some(value),
                    _ => {}
                }
            }
            n => {
                for kind in ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"] {
                    if n.starts_with(&format!("{kind}__list_"))
                        && !other_key_types.iter().any(|k| k == kind)
                    {
                        other_key_types.push(kind.to_string());
                    }
                }
                // Anything else sops would ignore on read; the line stays as it is.
            }
        }
    }

    let age = merge_spellings(age_spelled);

    let Some((lm_line, lm)) = lastmodified else {
        return Err(SopsError::format(
            file,
            "no sops_lastmodified line: not a sops-encrypted dotenv file",
        ));
    };
    let mac_aad = super::mac::go_rfc3339_aad(&lm).ok_or_else(|| {
        SopsError::format(
            file,
            format!(
                "sops_lastmodified (line {}) is not an RFC 3339 time{}",
                lm_line + 1,
                if lm.ends_with('\r') {
                    " (it ends with a carriage return: CRLF line endings? sops splits lines on LF only and fails on this too)"
                } else {
                    ""
                }
            ),
        )
    })?;
    let mac_line = mac_line.ok_or_else(|| SopsError::format(file, "no sops_mac line"))?;
    let version = match version {
        None => {
            return Err(SopsError::format(
                file,
                "no sops_version line (sops refuses it too: \"Version string empty\")",
            ))
        }
        Some(v) if !is_semver(&v) => {
            return Err(SopsError::format(
                file,
                "sops_version is not a Major.Minor.Patch version",
            ))
        }
        Some(v) => v,
    };
    if rules.len() > 1 {
        let names: Vec<_> = rules.iter().map(|(n, _)| format!("sops_{n}")).collect();
        return Err(SopsError::format(
            file,
            format!(
                "records more than one encryption rule ({})",
                names.join(", ")
            ),
        ));
    }
    let rule_text = rules.last().cloned();
    let rule = match rules.pop() {
        // No rule recorded: sops' ToInternal falls back to the default suffix.
        None => Rule::UnencryptedSuffix(b"_unencrypted".to_vec()),
        Some(("unencrypted_suffix", v)) => Rule::UnencryptedSuffix(v),
        Some(("encrypted_suffix", v)) => Rule::EncryptedSuffix(v),
        Some((name, v)) => {
            // sops ignores the compile error and the rule then matches no key; Go's RE2 syntax
            // and the regex crate's agree closely enough for the rules sops users write.
            let re = std::str::from_utf8(&v)
                .ok()
                .and_then(|src| Regex::new(src).ok());
            if name == "unencrypted_regex" {
                Rule::UnencryptedRegex(re)
            } else {
                Rule::EncryptedRegex(re)
            }
        }
    };
    Ok(Metadata {
        age,
        lastmodified: (lm_line, lm),
        mac_aad,
        mac_line,
        version,
        rule,
        rule_text,
        mac_only_encrypted,
        other_key_types,
        malformed_age,
    })
}

/// What sops' version check (blang/semver, leading `v` allowed) accepts, closely enough to refuse
/// what sops refuses: `Major.Minor.Patch` digits, optionally followed by `-pre` / `+build`.
pub(crate) fn is_semver(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `b` as it comes out of sops' JSON round trip of the metadata (Go's `encoding/json` writes each
/// byte that does not start a valid UTF-8 sequence as U+FFFD, one per byte): a rule with such a
/// byte is the rule sops applies (`SECRET|DUP\xE9` matches `SECRET` there).
fn go_json_text(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                rest = &bad[1..];
            }
        }
    }
}

/// The age entries as sops ends up with them when the section is spelled in more than one letter
/// case (`sops_aGe__list_1__map_enc` beside `sops_age__list_*`). sops turns the lines into a map,
/// encodes it as JSON (keys in byte order, so `aGe` before `age`) and decodes that into its
/// metadata struct, whose field names match without regard to case: each spelling's list is
/// decoded into the same slice in turn, entry by entry, a field present in a later spelling
/// replacing the earlier one's. Measured against sops 3.11.0: one line re-spelled reads as if it
/// were not. When a later spelling's list is shorter, Go cuts the slice to it (and may later
/// expose the cut entries again, by capacity): those multi-line cases are not followed here, the
/// entries are kept.
fn merge_spellings(
    spelled: BTreeMap<Vec<u8>, BTreeMap<usize, AgeEntry>>,
) -> BTreeMap<usize, AgeEntry> {
    let mut age: BTreeMap<usize, AgeEntry> = BTreeMap::new();
    for entries in spelled.into_values() {
        for (index, e) in entries {
            let merged = age.entry(index).or_default();
            if e.enc.is_some() {
                merged.enc = e.enc;
            }
            if e.recipient.is_some() {
                merged.recipient = e.recipient;
            }
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_should_be_encrypted() {
        let us = Rule::UnencryptedSuffix(b"_unencrypted".to_vec());
        assert!(us.encrypts(Some(b"PASSWORD")));
        assert!(!us.encrypts(Some(b"TZ_unencrypted")));
        assert!(us.encrypts(None));
        let es = Rule::EncryptedSuffix(b"_secret".to_vec());
        assert!(es.encrypts(Some(b"db_secret")));
        assert!(!es.encrypts(Some(b"db")));
        assert!(!es.encrypts(None));
        let ur = Rule::UnencryptedRegex(Regex::new("^PUBLIC").ok());
        assert!(!ur.encrypts(Some(b"PUBLIC_URL")));
        assert!(ur.encrypts(Some(b"X_PUBLIC")));
        assert!(ur.encrypts(None));
        let er = Rule::EncryptedRegex(Regex::new("PASS").ok());
        assert!(er.encrypts(Some(b"DB_PASSWORD")));
        assert!(!er.encrypts(Some(b"DB_USER")));
        assert!(!er.encrypts(None));
    }

    #[test]
    fn semver_like_sops() {
        for ok in ["3.11.0", "v3.8.1", "1.0.0-rc.1", "3.9.0+build"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in ["", "3.11", "garbage", "3.x.0", "3..1"] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn a_re_spelled_age_section_merges_into_the_entries_as_in_sops() {
        let file = b"A=ENC[x]\n\
sops_age__list_0__map_enc=E0\n\
sops_age__list_0__map_recipient=R0\n\
sops_aGe__list_1__map_enc=E1\n\
sops_age__list_1__map_recipient=R1\n\
sops_age__list_2__map_enc=E2\n\
sops_lastmodified=2026-12-06T02:53:25Z\n\
sops_mac=ENC[y]\n\
sops_version=3.11.0\n";
        let lines = super::super::dotenv::parse(file).unwrap();
        let md = collect("f.env", file, &lines).unwrap();
        let enc = |i: usize| md.age[&i].enc.as_ref().map(|(_, v)| v.clone());
        assert_eq!(md.age.len(), 3);
        assert_eq!(enc(0).as_deref(), Some(&b"E0"[..]));
        // Only the re-spelled line holds entry 1's envelope: it is kept, with entry 1's recipient.
        assert_eq!(enc(1).as_deref(), Some(&b"E1"[..]));
        assert_eq!(md.age[&1].recipient.as_deref(), Some(&b"R1"[..]));
        assert_eq!(enc(2).as_deref(), Some(&b"E2"[..]));
        // One field in two spellings is ambiguous (sops keeps the one it decodes last): refused.
        let twice = [&file[..], b"sops_AGE__list_2__map_enc=other\n"].concat();
        let lines = super::super::dotenv::parse(&twice).unwrap();
        let e = collect("f.env", &twice, &lines).unwrap_err().to_string();
        assert!(e.contains("appears twice in different letter case"), "{e}");
    }

    #[test]
    fn rule_bytes_that_are_not_utf8_become_what_go_json_makes_of_them() {
        assert_eq!(go_json_text(b"SECRET|DUP\xE9"), "SECRET|DUP\u{FFFD}");
        // One U+FFFD per byte, not per invalid sequence (a cut 3-byte sequence gives two).
        assert_eq!(go_json_text(b"a\xE2\x82b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_json_text("é€".as_bytes()), "é€");
        let file = b"A_SECRET=ENC[x]\n\
sops_encrypted_regex=SECRET|DUP\xE9\n\
sops_lastmodified=2026-12-06T02:53:25Z\n\
sops_mac=ENC[y]\n\
sops_version=3.11.0\n";
        let lines = super::super::dotenv::parse(file).unwrap();
        let md = collect("f.env", file, &lines).unwrap();
        assert!(
            md.rule.encrypts(Some(b"A_SECRET")),
            "the rule still compiles and matches"
        );
        assert!(!md.rule.encrypts(Some(b"OTHER")));
    }
}
