//! Load and decrypt a sops dotenv file.
//!
//! Parsing works on bytes, as sops does: only LF ends a line, and keys, clear values, comments
//! and the recipient line may hold a CR or bytes that are not UTF-8. Edits live in `edit.rs`,
//! writes in `write.rs`.

use super::cipher::{self, CipherError};
use super::decrypted::{Decrypted, Item};
use super::dotenv::{self, Line, LineKind};
use super::error::SopsError;
use super::keys::{self, Identities};
use super::mac::MacHasher;
use super::metadata::{self, Metadata, Rule};
use crate::secret::SecretBytes;
use secrecy::ExposeSecret;
use std::path::Path;
use zeroize::Zeroizing;

/// Plaintexts of encrypted pair lines already decrypted and checked: line bytes → (plaintext,
/// IV length).
pub(super) type Known<'a> = std::collections::HashMap<&'a [u8], (&'a [u8], usize)>;

/// A sops-encrypted dotenv file as read from disk: its bytes, lines and metadata. Nothing is
/// decrypted until [`SopsFile::decrypt`].
#[derive(Debug)]
pub struct SopsFile {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
    pub(super) lines: Vec<Line>,
    pub(super) meta: Metadata,
}

impl SopsFile {
    /// Reads and parses `path` (named by its path in messages).
    pub fn load(path: &Path) -> Result<SopsFile, SopsError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SopsError::Io {
            file: name.clone(),
            source: e,
        })?;
        Self::parse(bytes, &name)
    }

    /// Parses the bytes of a sops dotenv file. Checks the grammar and the metadata, decrypts
    /// nothing.
    pub fn parse(bytes: impl Into<Vec<u8>>, display_name: &str) -> Result<SopsFile, SopsError> {
        let bytes = bytes.into();
        let name = display_name.to_string();
        let lines = dotenv::parse(&bytes)
            .map_err(|e| SopsError::format(&name, format!("line {} {}", e.line, e.problem)))?;
        let meta = metadata::collect(&name, &bytes, &lines)?;
        Ok(SopsFile {
            name,
            bytes,
            lines,
            meta,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `sops_version` as recorded.
    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// `sops_lastmodified` as recorded.
    pub fn lastmodified(&self) -> &str {
        &self.meta.lastmodified.1
    }

    /// The age recipients of the file, in list order (public keys: safe to print and to encrypt
    /// journal entries to).
    pub fn recipients(&self) -> Vec<String> {
        self.meta
            .age
            .values()
            .filter_map(|e| {
                e.recipient
                    .as_ref()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
            })
            .collect()
    }

    /// The encryption rule of this file that would store `key` in clear text, described for a
    /// message (`None`: a non-empty value of `key` is encrypted). `sops_mac_only_encrypted` only
    /// narrows the MAC and never leaves a key in clear, so it does not count.
    pub fn clear_text_rule(&self, key: &str) -> Option<String> {
        if self.meta.rule.encrypts(Some(key.as_bytes())) {
            return None;
        }
        let Some((name, value)) = &self.meta.rule_text else {
            return Some(format!(
                "sops' default rule (no rule recorded): keys ending in _unencrypted stay in clear, and {key} does"
            ));
        };
        let v = String::from_utf8_lossy(value);
        Some(match *name {
            "unencrypted_suffix" => format!("sops_unencrypted_suffix={v}: {key} ends with it"),
            "encrypted_suffix" => {
                format!("sops_encrypted_suffix={v}: only keys ending with it are encrypted, and {key} does not")
            }
            "unencrypted_regex" => format!("sops_unencrypted_regex={v} matches {key}"),
            _ if matches!(self.meta.rule, Rule::EncryptedRegex(None)) => format!(
                "sops_encrypted_regex={v} is not a valid regular expression, so sops encrypts no key"
            ),
            _ => format!("sops_encrypted_regex={v} does not match {key}"),
        })
    }

    /// Opens the data key with `ids` and decrypts the file, verifying every value and the MAC
    /// before anything is returned.
    pub fn decrypt(&self, ids: &Identities) -> Result<Decrypted, SopsError> {
        let key = self.data_key(ids)?;
        self.decrypt_with_data_key(key)
    }

    /// Decrypts with a data key obtained elsewhere (a test vector's `datakey.hex`, a PGP-wrapped
    /// file). The MAC is verified all the same.
    pub fn decrypt_with_data_key(&self, data_key: SecretBytes) -> Result<Decrypted, SopsError> {
        self.decrypt_known(data_key, &Known::new())
    }

    /// [`SopsFile::decrypt_with_data_key`], taking the plaintext of an encrypted line whose bytes
    /// are in `known` (proven by an earlier decryption under the same data key) instead of
    /// decrypting it again: a byte-identical `KEY=ENC[...]` decrypts to the same plaintext, so
    /// the result and every check (types, MAC) are the same.
    pub(super) fn decrypt_known(
        &self,
        data_key: SecretBytes,
        known: &Known,
    ) -> Result<Decrypted, SopsError> {
        let f = &self.name;
        let key = data_key.expose_secret();
        if key.len() != cipher::DATA_KEY_LEN {
            return Err(SopsError::integrity(
                f,
                format!("data key is {} bytes, not 32", key.len()),
            ));
        }
        let mut hasher = MacHasher::new(self.meta.mac_only_encrypted);
        let mut items = Vec::new();
        let mut warnings = Vec::new();
        for (idx, line) in self.lines.iter().enumerate() {
            match &line.kind {
                LineKind::Blank => {}
                LineKind::Comment { text } => {
                    let raw = &self.bytes[text.clone()];
                    let by_rule = self.meta.rule.encrypts(None);
                    // sops tries encrypted-looking comments and keeps the text when that fails
                    // (plain comments in an encrypted file are legal); comments are not in the MAC.
                    let (plain, iv_len) = if by_rule && !raw.is_empty() {
                        match cipher::decrypt(key, raw, b":") {
                            Ok((p, n, ty)) if ty == "comment" => (p, Some(n)),
                            Ok((p, _, ty)) => {
                                // sops' cipher turns a `str`/`bytes` envelope into a value, which
                                // then counts in the MAC (so the MAC check fails); any other type
                                // fails ("Unknown datatype") and the line is printed as it stands.
                                if ty == "str" || ty == "bytes" {
                                    hasher.value(&p, true);
                                }
                                warnings.push(format!(
                                    "{f}: line {}: comment envelope has type {ty:?}, not \"comment\"; printed as it stands",
                                    idx + 1
                                ));
                                (Zeroizing::new(raw.to_vec()), None)
                            }
                            Err(_) => (Zeroizing::new(raw.to_vec()), None),
                        }
                    } else {
                        (Zeroizing::new(raw.to_vec()), None)
                    };
                    items.push(Item {
                        line: idx,
                        key: None,
                        plain,
                        by_rule: by_rule && iv_len.is_some(),
                        iv_len,
                    });
                }
                LineKind::Pair { key: k, value } => {
                    let kb = &self.bytes[k.clone()];
                    if kb.starts_with(metadata::PREFIX) {
                        continue;
                    }
                    let kname = String::from_utf8_lossy(kb).into_owned();
                    let line_no = idx + 1;
                    let raw = dotenv::unescape(&self.bytes[value.clone()]);
                    let by_rule = self.meta.rule.encrypts(Some(kb));
                    let known = known.get(&self.bytes[line.span.clone()]);
                    let (plain, iv_len) = if let (true, Some((p, n))) = (by_rule, known) {
                        (Zeroizing::new(p.to_vec()), Some(*n))
                    } else if by_rule && !raw.is_empty() {
                        let (p, n, ty) = cipher::decrypt(key, &raw, &cipher::aad_for_key(kb))
                            .map_err(|e| value_error(f, &kname, idx, e))?;
                        if ty != "str" {
                            return Err(type_error(f, &format!("value of {kname}"), line_no, &ty));
                        }
                        (p, Some(n))
                    } else {
                        (Zeroizing::new(raw), None)
                    };
                    hasher.value(&plain, by_rule);
                    items.push(Item {
                        line: idx,
                        key: Some(kb.to_vec()),
                        plain,
                        by_rule,
                        iv_len,
                    });
                }
            }
        }
        self.verify_mac(key, hasher.finish())?;
        Ok(Decrypted {
            name: self.name.clone(),
            items,
            data_key,
            warnings,
        })
    }

    fn verify_mac(&self, key: &[u8], computed: String) -> Result<(), SopsError> {
        let f = &self.name;
        let raw = self.pair_value(self.meta.mac_line);
        let line = self.meta.mac_line + 1;
        let stored = cipher::decrypt(key, &raw, self.meta.mac_aad.as_bytes()).map_err(|_| {
            SopsError::integrity(
                f,
                format!("line {line}: cannot decrypt sops_mac (sops: \"Cannot decrypt MAC\"): sops_mac or sops_lastmodified was changed, or the data key is wrong"),
            )
        })?;
        if stored.2 != "str" {
            return Err(type_error(f, "sops_mac", line, &stored.2));
        }
        // Both sides are hex digests, not secrets; a plain comparison leaks nothing useful.
        if stored.0.as_slice() != computed.as_bytes() {
            return Err(SopsError::integrity(
                f,
                format!("line {line}: MAC mismatch (sops: \"MAC mismatch\"): the values do not match sops_mac (lines reordered, dropped or edited outside sops)"),
            ));
        }
        Ok(())
    }

    pub(super) fn pair_value(&self, idx: usize) -> Vec<u8> {
        match &self.lines[idx].kind {
            LineKind::Pair { value, .. } => dotenv::unescape(&self.bytes[value.clone()]),
            _ => Vec::new(),
        }
    }

    /// Unwraps the data key from the first age entry one of `ids` opens.
    fn data_key(&self, ids: &Identities) -> Result<SecretBytes, SopsError> {
        let f = &self.name;
        let entries: Vec<_> = self
            .meta
            .age
            .iter()
            .filter_map(|(i, e)| e.enc.as_ref().map(|(_, enc)| (i.to_string(), enc)))
            .chain(
                self.meta
                    .malformed_age
                    .iter()
                    .map(|(line, enc)| (format!("on line {}", line + 1), enc)),
            )
            .collect();
        if entries.is_empty() {
            let others = if self.meta.other_key_types.is_empty() {
                String::new()
            } else {
                format!(" (only {})", self.meta.other_key_types.join(", "))
            };
            return Err(SopsError::unsupported(
                f,
                format!("has no age key entries{others}; this tool opens age-encrypted files only"),
            ));
        }
        let mut broken = Vec::new();
        for (i, enc) in &entries {
            match ids.unwrap_data_key(enc) {
                Ok(Some(k)) if k.expose_secret().len() == cipher::DATA_KEY_LEN => return Ok(k),
                Ok(Some(_)) => broken.push(format!("age entry {i}: data key is not 32 bytes")),
                Ok(None) => {}
                Err(e) => broken.push(format!("age entry {i}: {e}")),
            }
        }
        if !broken.is_empty() && broken.len() == entries.len() {
            return Err(SopsError::integrity(f, broken.join("; ")));
        }
        let recipients = self.recipients();
        Err(SopsError::NoMatchingIdentity {
            file: f.clone(),
            identities: ids.describe(),
            recipients: if recipients.is_empty() {
                "(none recorded)".into()
            } else {
                recipients
                    .iter()
                    .map(|r| keys::short(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

/// A value envelope whose `type:` is not `str`: the types sops knows but dotenv cannot hold, or
/// a type sops does not know at all ("Unknown datatype", sops exit 51).
fn type_error(f: &str, what: &str, line: usize, ty: &str) -> SopsError {
    if ["int", "float", "bool", "bytes", "time", "comment"].contains(&ty) {
        SopsError::unsupported(
            f,
            format!("line {line}: {what} has type {ty}; a dotenv file holds strings only"),
        )
    } else {
        SopsError::integrity(
            f,
            format!("line {line}: {what}: Unknown datatype {ty:?} in its ENC[...] envelope (sops: \"Unknown datatype\")"),
        )
    }
}

fn value_error(f: &str, key: &str, idx: usize, e: CipherError) -> SopsError {
    match e {
        CipherError::Format => SopsError::integrity(
            f,
            format!(
                "value of {key} (line {}) is not a valid ENC[AES256_GCM,...] envelope, but the file's rule says it is encrypted (sops: \"does not match sops' data format\")",
                idx + 1
            ),
        ),
        e => SopsError::integrity(f, format!("value of {key} (line {}) {e}", idx + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::SopsFile;

    fn with_rule(rule: &str) -> SopsFile {
        let text = format!(
            "A=x\nsops_lastmodified=2026-01-01T00:00:00Z\nsops_mac=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n{rule}sops_version=3.11.0\n"
        );
        SopsFile::parse(text.into_bytes(), "t.env").unwrap()
    }

    #[test]
    fn clear_text_rule_names_the_rule_that_leaves_a_key_in_clear() {
        let f = with_rule("");
        assert_eq!(f.clear_text_rule("DB_PASSWORD"), None);
        assert!(f
            .clear_text_rule("TZ_unencrypted")
            .unwrap()
            .contains("default"));

        let f = with_rule("sops_unencrypted_suffix=_PLAIN\n");
        assert_eq!(f.clear_text_rule("DB_PASSWORD"), None);
        let r = f.clear_text_rule("DB_PASSWORD_PLAIN").unwrap();
        assert!(r.contains("sops_unencrypted_suffix=_PLAIN"), "{r}");

        let f = with_rule("sops_encrypted_suffix=_SECRET\n");
        assert_eq!(f.clear_text_rule("DB_SECRET"), None);
        let r = f.clear_text_rule("DB_PASSWORD").unwrap();
        assert!(r.contains("sops_encrypted_suffix=_SECRET"), "{r}");

        let f = with_rule("sops_unencrypted_regex=^DB_\n");
        assert_eq!(f.clear_text_rule("KOMODO_DB_PASSWORD"), None);
        let r = f.clear_text_rule("DB_PASSWORD").unwrap();
        assert!(
            r.contains("sops_unencrypted_regex=^DB_ matches DB_PASSWORD"),
            "{r}"
        );
        // An uncompilable unencrypted regex matches nothing: everything is encrypted.
        let f = with_rule("sops_unencrypted_regex=^DB_[\n");
        assert_eq!(f.clear_text_rule("DB_PASSWORD"), None);

        let f = with_rule("sops_encrypted_regex=PASS\n");
        assert_eq!(f.clear_text_rule("DB_PASSWORD"), None);
        let r = f.clear_text_rule("DB_USER").unwrap();
        assert!(r.contains("does not match DB_USER"), "{r}");
        let f = with_rule("sops_encrypted_regex=PASS[\n");
        let r = f.clear_text_rule("DB_PASSWORD").unwrap();
        assert!(r.contains("not a valid regular expression"), "{r}");

        // mac_only_encrypted narrows the MAC, it never leaves a key in clear.
        let f = with_rule("sops_mac_only_encrypted=true\n");
        assert_eq!(f.clear_text_rule("DB_PASSWORD"), None);
    }

    #[test]
    fn metadata_keys_match_in_any_case_and_keep_their_spelling_on_edit() {
        let text = "A=x\nsops_lastModified=2026-01-01T00:00:00Z\nsops_MAC=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\nsops_Version=3.11.0\n";
        let f = SopsFile::parse(text.as_bytes().to_vec(), "t.env").unwrap();
        assert_eq!(f.version(), "3.11.0");
        assert_eq!(f.key_text(f.meta.lastmodified.0), b"sops_lastModified");
        // Two spellings of one metadata name are ambiguous in sops: refused, naming both lines.
        let twice = format!("{text}sops_version=3.11.0\n");
        let e = SopsFile::parse(twice.into_bytes(), "t.env").unwrap_err();
        assert!(e.to_string().contains("lines 4 and 5"), "{e}");
    }
}
