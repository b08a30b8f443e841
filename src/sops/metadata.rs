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
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
}

impl Rule {
    /// sops' `shouldBeEncrypted` for a dotenv path: `Some(key)` for a value, `None` for a
    /// top-level comment (empty path). A suffix/regex "matches" only a path element, so with an
    /// empty path the positive rules encrypt nothing and the negative rules encrypt everything.
    pub fn encrypts(&self, key: Option<&[u8]>) -> bool {
        match (self, key) {
            (Rule::UnencryptedSuffix(s), Some(k)) => !k.ends_with(s),
            (Rule::EncryptedSuffix(s), Some(k)) => k.ends_with(s),
            (Rule::UnencryptedRegex(r), Some(k)) => !r.is_match(k),
            (Rule::EncryptedRegex(r), Some(k)) => r.is_match(k),
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
    pub recipient: Option<String>,
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
    pub mac_only_encrypted: bool,
    /// Master-key types other than age (`pgp`, `kms`, ...): their lines are kept verbatim, but a
    /// data-key rotation would lock those holders out.
    pub other_key_types: Vec<String>,
}

fn utf8(file: &str, what: &str, b: &[u8]) -> Result<String, SopsError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| SopsError::format(file, format!("{what} is not UTF-8")))
}

/// Collects and checks the metadata of `lines`. `bytes` is the whole file.
pub(crate) fn collect(file: &str, bytes: &[u8], lines: &[Line]) -> Result<Metadata, SopsError> {
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut age: BTreeMap<usize, AgeEntry> = BTreeMap::new();
    let mut lastmodified = None;
    let mut mac_line = None;
    let mut version = None;
    let mut rules: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut mac_only_encrypted = false;
    let mut other_key_types: Vec<String> = Vec::new();

    for (idx, line) in lines.iter().enumerate() {
        let LineKind::Pair { key, value } = &line.kind else {
            continue;
        };
        let key = &bytes[key.clone()];
        if !key.starts_with(PREFIX) {
            continue;
        }
        let name = &key[PREFIX.len()..];
        if let Some(prev) = seen.insert(name.to_vec(), idx) {
            return Err(SopsError::format(
                file,
                format!(
                    "metadata key {} appears twice (lines {} and {})",
                    String::from_utf8_lossy(key),
                    prev + 1,
                    idx + 1
                ),
            ));
        }
        let value = dotenv::unescape(&bytes[value.clone()]);
        let name_s = String::from_utf8_lossy(name).into_owned();
        match name_s.as_str() {
            "lastmodified" => lastmodified = Some((idx, utf8(file, "sops_lastmodified", &value)?)),
            "mac" => mac_line = Some(idx),
            "version" => version = Some(utf8(file, "sops_version", &value)?),
            "unencrypted_suffix" => rules.push(("unencrypted_suffix", value)),
            "encrypted_suffix" => rules.push(("encrypted_suffix", value)),
            "unencrypted_regex" => rules.push(("unencrypted_regex", value)),
            "encrypted_regex" => rules.push(("encrypted_regex", value)),
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
            n if n.starts_with("key_groups__") => {
                return Err(SopsError::unsupported(
                    file,
                    "uses key groups (sops_key_groups_*); this tool handles single-group age files only",
                ))
            }
            n if n.starts_with("age__list_") => {
                let rest = &n["age__list_".len()..];
                let (index, field) = rest.split_once("__map_").ok_or_else(|| {
                    SopsError::format(file, format!("malformed metadata key sops_{n}"))
                })?;
                let index: usize = index.parse().map_err(|_| {
                    SopsError::format(file, format!("malformed metadata key sops_{n}"))
                })?;
                let entry = age.entry(index).or_default();
                match field {
                    "enc" => entry.enc = Some((idx, value)),
                    "recipient" => entry.recipient = Some(utf8(file, "an age recipient", &value)?),
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
                "sops_lastmodified (line {}) is not an RFC 3339 time",
                lm_line + 1
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
    let rule = match rules.pop() {
        // No rule recorded: sops' ToInternal falls back to the default suffix.
        None => Rule::UnencryptedSuffix(b"_unencrypted".to_vec()),
        Some(("unencrypted_suffix", v)) => Rule::UnencryptedSuffix(v),
        Some(("encrypted_suffix", v)) => Rule::EncryptedSuffix(v),
        Some((name, v)) => {
            let src = utf8(file, &format!("sops_{name}"), &v)?;
            let re = Regex::new(&src).map_err(|_| {
                SopsError::format(
                    file,
                    format!("sops_{name} is not a valid regular expression"),
                )
            })?;
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
        mac_only_encrypted,
        other_key_types,
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
        let ur = Rule::UnencryptedRegex(Regex::new("^PUBLIC").unwrap());
        assert!(!ur.encrypts(Some(b"PUBLIC_URL")));
        assert!(ur.encrypts(Some(b"X_PUBLIC")));
        assert!(ur.encrypts(None));
        let er = Rule::EncryptedRegex(Regex::new("PASS").unwrap());
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
}
