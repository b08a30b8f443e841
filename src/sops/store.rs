//! Load, decrypt, edit and write a sops dotenv file.
//!
//! An edit is line-preserving: every line it does not have to change is written back
//! byte-for-byte (old ciphertexts, the `enc` envelopes, comments, blank lines, metadata order).
//! Only the changed values, `sops_lastmodified` and `sops_mac` are rewritten, which is exactly
//! what `sops set` changes too, so a git diff of a rotation shows one value and the MAC.

use super::cipher::{self, CipherError, IV_LEN};
use super::dotenv::{self, Line, LineKind};
use super::error::SopsError;
use super::keys::{self, Identities};
use super::mac::{self, MacHasher};
use super::metadata::{self, Metadata, Rule};
use crate::fsutil;
use crate::secret::{secret_bytes, Secret, SecretBytes};
use secrecy::ExposeSecret;
use std::path::Path;
use zeroize::Zeroizing;

/// The sops version written into files we create (the version the project is tested against).
/// Files we edit keep theirs, as `sops set` does.
pub const WRITTEN_SOPS_VERSION: &str = "3.11.0";

/// A sops-encrypted dotenv file as read from disk: its bytes, lines and metadata. Nothing is
/// decrypted until [`SopsFile::decrypt`].
#[derive(Debug)]
pub struct SopsFile {
    name: String,
    bytes: Vec<u8>,
    lines: Vec<Line>,
    meta: Metadata,
}

/// A new data key and, per `sops_age__list_<i>__map_enc` line index, its new envelope.
type Rekey = (SecretBytes, Vec<(usize, Vec<u8>)>);

/// One data line after decryption.
struct Item {
    line: usize,
    /// `None` for a comment.
    key: Option<String>,
    plain: Zeroizing<Vec<u8>>,
    /// Whether the file's rule encrypts this item.
    by_rule: bool,
    /// For items stored encrypted: the IV length found (32 unless a foreign tool wrote it).
    iv_len: Option<usize>,
}

/// The decrypted content of a file whose MAC verified.
pub struct Decrypted {
    name: String,
    items: Vec<Item>,
    data_key: SecretBytes,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("file", &self.name)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

/// What `check` reports for one key (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    /// Stored encrypted (`ENC[...]`), as the file's rule demands.
    pub encrypted: bool,
    pub empty: bool,
}

impl Decrypted {
    /// The value of `key`. With duplicate keys this is the last one, which is what compose's
    /// env-file reader ends up using.
    pub fn get(&self, key: &str) -> Option<Secret> {
        self.items
            .iter()
            .rev()
            .find(|i| i.key.as_deref() == Some(key))
            .map(|i| {
                // Values were checked to be UTF-8 during decryption.
                Secret::new(String::from_utf8_lossy(&i.plain).into_owned())
            })
    }

    /// Data key names in file order (duplicates included, metadata excluded).
    pub fn keys(&self) -> Vec<String> {
        self.items.iter().filter_map(|i| i.key.clone()).collect()
    }

    /// Key names with whether each is stored encrypted and whether it is empty.
    pub fn key_info(&self) -> Vec<KeyInfo> {
        self.items
            .iter()
            .filter_map(|i| {
                i.key.as_ref().map(|k| KeyInfo {
                    name: k.clone(),
                    encrypted: i.by_rule && !i.plain.is_empty(),
                    empty: i.plain.is_empty(),
                })
            })
            .collect()
    }

    /// Exactly what `sops decrypt` prints: one line per comment and value, blank lines and
    /// metadata dropped, LF in values written as `\n`.
    pub fn plaintext_dotenv(&self) -> SecretBytes {
        let mut out = Zeroizing::new(Vec::new());
        for i in &self.items {
            match &i.key {
                None => {
                    out.push(b'#');
                    out.extend_from_slice(&i.plain);
                }
                Some(k) => {
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'=');
                    out.extend_from_slice(&dotenv::escape(&i.plain));
                }
            }
            out.push(b'\n');
        }
        secret_bytes(std::mem::take(&mut *out))
    }

    /// How many values are stored with an IV length other than 32 bytes (written by a foreign
    /// tool; `sops set` panics on such files). Our edits re-encrypt them.
    pub fn foreign_iv_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.iv_len, Some(n) if n != IV_LEN))
            .count()
    }
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
        if std::str::from_utf8(&bytes).is_err() {
            return Err(SopsError::format(&name, "is not UTF-8 text"));
        }
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
            .filter_map(|e| e.recipient.clone())
            .collect()
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
                            Ok((p, n, _)) => (p, Some(n)),
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
                    let raw = dotenv::unescape(&self.bytes[value.clone()]);
                    let by_rule = self.meta.rule.encrypts(Some(kb));
                    let (plain, iv_len) = if by_rule && !raw.is_empty() {
                        let (p, n, ty) = cipher::decrypt(key, &raw, &cipher::aad_for_key(kb))
                            .map_err(|e| value_error(f, &kname, idx, e))?;
                        if ty != "str" {
                            return Err(SopsError::unsupported(
                                f,
                                format!("value of {kname} (line {}) has type {ty}; dotenv files hold strings", idx + 1),
                            ));
                        }
                        if std::str::from_utf8(&p).is_err() {
                            return Err(SopsError::unsupported(
                                f,
                                format!("value of {kname} (line {}) is not UTF-8", idx + 1),
                            ));
                        }
                        (p, Some(n))
                    } else {
                        (Zeroizing::new(raw), None)
                    };
                    hasher.value(&plain, by_rule);
                    items.push(Item {
                        line: idx,
                        key: Some(kname),
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
        })
    }

    fn verify_mac(&self, key: &[u8], computed: String) -> Result<(), SopsError> {
        let f = &self.name;
        let raw = self.pair_value(self.meta.mac_line);
        let stored = cipher::decrypt(key, &raw, self.meta.mac_aad.as_bytes()).map_err(|_| {
            SopsError::integrity(
                f,
                "cannot decrypt sops_mac (sops: \"Cannot decrypt MAC\"): sops_mac or sops_lastmodified was changed, or the data key is wrong",
            )
        })?;
        // Both sides are hex digests, not secrets; a plain comparison leaks nothing useful.
        if stored.0.as_slice() != computed.as_bytes() {
            return Err(SopsError::integrity(
                f,
                "MAC mismatch: the values do not match sops_mac (lines reordered, dropped or edited outside sops)",
            ));
        }
        Ok(())
    }

    fn pair_value(&self, idx: usize) -> Vec<u8> {
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
            .filter_map(|(i, e)| e.enc.as_ref().map(|(_, enc)| (i, enc)))
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

    /// New file bytes with `changes` applied: each `(KEY, value)` replaces that key's value (or
    /// appends the key after the last data line when absent). Every other line is kept
    /// byte-for-byte; the changed values get fresh 32-byte IVs; `sops_lastmodified` and `sops_mac`
    /// are renewed. The file must decrypt and verify first.
    pub fn with_values(
        &self,
        ids: &Identities,
        changes: &[(&str, &Secret)],
    ) -> Result<Vec<u8>, SopsError> {
        let dec = self.decrypt(ids)?;
        self.edit(&dec, changes, None)
    }

    /// New file bytes under a fresh data key: every encrypted value and comment re-encrypted, the
    /// key wrapped to every age recipient again, clear lines kept. Refused when the file also has
    /// non-age master keys (their holders would lose access).
    pub fn rotate_data_key(&self, ids: &Identities) -> Result<Vec<u8>, SopsError> {
        self.with_values_rotating_key(ids, &[])
    }

    /// [`SopsFile::with_values`] and [`SopsFile::rotate_data_key`] in one rewrite.
    pub fn with_values_rotating_key(
        &self,
        ids: &Identities,
        changes: &[(&str, &Secret)],
    ) -> Result<Vec<u8>, SopsError> {
        let dec = self.decrypt(ids)?;
        let f = &self.name;
        if !self.meta.other_key_types.is_empty() {
            return Err(SopsError::unsupported(
                f,
                format!(
                    "also has {} master keys; rotating the data key would lock them out (use sops rotate)",
                    self.meta.other_key_types.join(", ")
                ),
            ));
        }
        let mut envelopes = Vec::new();
        let new_key = keys::new_data_key().map_err(|e| SopsError::internal(f, e))?;
        for (i, e) in &self.meta.age {
            let Some((line, _)) = &e.enc else { continue };
            let r = e.recipient.as_deref().ok_or_else(|| {
                SopsError::unsupported(
                    f,
                    format!(
                        "age entry {i} has no recipient line, so its key cannot be wrapped again"
                    ),
                )
            })?;
            let rec = keys::parse_recipient(r).map_err(|e| SopsError::unsupported(f, e))?;
            let env =
                keys::wrap_data_key(&new_key, &*rec).map_err(|e| SopsError::internal(f, e))?;
            envelopes.push((*line, env));
        }
        self.edit(&dec, changes, Some((new_key, envelopes)))
    }

    /// The one rewrite routine. `rekey`: a new data key and, per `enc` line, its new envelope.
    fn edit(
        &self,
        dec: &Decrypted,
        changes: &[(&str, &Secret)],
        rekey: Option<Rekey>,
    ) -> Result<Vec<u8>, SopsError> {
        let f = &self.name;
        validate_changes(f, &self.meta.rule, changes)?;
        let (key, envelopes) = match &rekey {
            Some((k, e)) => (k.expose_secret(), e.as_slice()),
            None => (dec.data_key.expose_secret(), &[][..]),
        };
        let rekeying = rekey.is_some();
        // Replacement text per line index (without the LF).
        let mut replace: Vec<Option<Vec<u8>>> = vec![None; self.lines.len()];
        let mut hasher = MacHasher::new(self.meta.mac_only_encrypted);
        let mut pending: Vec<(&str, &Secret)> = changes.to_vec();
        for item in &dec.items {
            match &item.key {
                None => {
                    // Only comments we decrypted are re-encrypted (and only when the key changes
                    // or the IV is foreign); plain comments stay plain.
                    let foreign = matches!(item.iv_len, Some(n) if n != IV_LEN);
                    if item.iv_len.is_some() && (rekeying || foreign) {
                        let enc = cipher::encrypt(key, &item.plain, b":", "comment")
                            .map_err(|e| SopsError::internal(f, e))?;
                        replace[item.line] = Some([b"#", enc.as_bytes()].concat());
                    }
                }
                Some(k) => {
                    let change = pending.iter().position(|(ck, _)| *ck == k.as_str());
                    if let Some(pos) = change {
                        let occurrences = dec.keys().iter().filter(|x| *x == k).count();
                        if occurrences > 1 {
                            return Err(SopsError::Usage(format!(
                                "{f}: key {k} appears {occurrences} times; remove the duplicates before setting it"
                            )));
                        }
                        let (_, v) = pending.remove(pos);
                        let plain = v.expose().as_bytes();
                        replace[item.line] = Some(render_pair(key, k, plain, item.by_rule, f)?);
                        hasher.value(plain, item.by_rule);
                    } else {
                        let foreign = matches!(item.iv_len, Some(n) if n != IV_LEN);
                        if item.iv_len.is_some() && (rekeying || foreign) {
                            replace[item.line] =
                                Some(render_pair(key, k, &item.plain, item.by_rule, f)?);
                        }
                        hasher.value(&item.plain, item.by_rule);
                    }
                }
            }
        }
        // Keys not in the file are appended after the last data line, as `sops set` adds them
        // at the end of the data.
        let mut appended = Vec::new();
        for (k, v) in &pending {
            let by_rule = self.meta.rule.encrypts(Some(k.as_bytes()));
            let plain = v.expose().as_bytes();
            appended.push(render_pair(key, k, plain, by_rule, f)?);
            hasher.value(plain, by_rule);
        }
        let lastmodified = mac::now_lastmodified();
        let mac_env = cipher::encrypt(
            key,
            hasher.finish().as_bytes(),
            lastmodified.as_bytes(),
            "str",
        )
        .map_err(|e| SopsError::internal(f, e))?;
        replace[self.meta.lastmodified.0] =
            Some(format!("sops_lastmodified={lastmodified}").into_bytes());
        replace[self.meta.mac_line] = Some(format!("sops_mac={mac_env}").into_bytes());
        for (line, env) in envelopes {
            let key_text = match &self.lines[*line].kind {
                LineKind::Pair { key, .. } => &self.bytes[key.clone()],
                _ => unreachable!("enc entries come from pair lines"),
            };
            replace[*line] = Some([key_text, b"=", &dotenv::escape(env)].concat());
        }

        let insert_after = self.lines.iter().rposition(|l| match &l.kind {
            LineKind::Blank => false,
            LineKind::Comment { .. } => true,
            LineKind::Pair { key, .. } => !self.bytes[key.clone()].starts_with(metadata::PREFIX),
        });
        let mut out = Vec::with_capacity(self.bytes.len() + 256 * (appended.len() + 1));
        if insert_after.is_none() {
            for a in &appended {
                out.extend_from_slice(a);
                out.push(b'\n');
            }
        }
        for (idx, line) in self.lines.iter().enumerate() {
            match &replace[idx] {
                Some(r) => out.extend_from_slice(r),
                None => out.extend_from_slice(&self.bytes[line.span.clone()]),
            }
            let last = Some(idx) == insert_after;
            if line.has_newline || (last && !appended.is_empty()) {
                out.push(b'\n');
            }
            if last {
                for (n, a) in appended.iter().enumerate() {
                    out.extend_from_slice(a);
                    // Keep a missing final newline missing only when these are the file's end.
                    if line.has_newline || n + 1 < appended.len() || idx + 1 < self.lines.len() {
                        out.push(b'\n');
                    }
                }
            }
        }
        Ok(out)
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

/// `KEY=...` for a value: empty stays empty, clear stays clear (escaped), else a fresh envelope.
fn render_pair(
    data_key: &[u8],
    key: &str,
    plain: &[u8],
    by_rule: bool,
    f: &str,
) -> Result<Vec<u8>, SopsError> {
    let mut out = Vec::with_capacity(key.len() + 1 + plain.len() * 2 + 120);
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    if plain.is_empty() {
        // sops never encrypts an empty value: it stays `KEY=`.
    } else if by_rule {
        let enc = cipher::encrypt(data_key, plain, &cipher::aad_for_key(key.as_bytes()), "str")
            .map_err(|e| SopsError::internal(f, e))?;
        out.extend_from_slice(enc.as_bytes());
    } else {
        out.extend_from_slice(&dotenv::escape(plain));
    }
    Ok(out)
}

/// Refuses key names and values the dotenv grammar cannot carry back unchanged.
fn validate_changes(f: &str, rule: &Rule, changes: &[(&str, &Secret)]) -> Result<(), SopsError> {
    for (n, (k, v)) in changes.iter().enumerate() {
        let problem = if k.is_empty() {
            Some("is empty")
        } else if k.contains(['=', '\n', '\r']) {
            Some("contains '=', a newline or a carriage return")
        } else if k.starts_with('#') {
            Some("starts with '#' (that would be a comment)")
        } else if k.as_bytes().starts_with(metadata::PREFIX) {
            Some("starts with sops_ (reserved for sops metadata)")
        } else if changes[..n].iter().any(|(p, _)| p == k) {
            Some("is given twice")
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(SopsError::Usage(format!("{f}: key name {k:?} {p}")));
        }
        let clear = !rule.encrypts(Some(k.as_bytes()));
        let val = v.expose();
        if clear && (val.contains('\r') || val.contains("\\n")) {
            return Err(SopsError::Usage(format!(
                "{f}: the value for {k} is stored in clear and contains a carriage return or a literal backslash-n, which sops' dotenv format cannot store unchanged"
            )));
        }
    }
    Ok(())
}

/// Encrypts a plaintext dotenv as `sops encrypt --input-type dotenv --age R1,R2` does: a new
/// data key wrapped to each recipient, every non-empty value and comment encrypted (keys ending
/// in `_unencrypted` stay clear, sops' default rule), blank lines dropped, MAC, and the metadata
/// lines after the data in sops' order.
pub fn encrypt_new(plaintext_dotenv: &[u8], recipients: &[String]) -> Result<Vec<u8>, SopsError> {
    encrypt_new_named(plaintext_dotenv, recipients, "plaintext")
}

/// [`encrypt_new`], naming the input in messages.
pub fn encrypt_new_named(
    plaintext_dotenv: &[u8],
    recipients: &[String],
    display_name: &str,
) -> Result<Vec<u8>, SopsError> {
    let f = display_name;
    if recipients.is_empty() {
        return Err(SopsError::Usage(format!("{f}: no age recipient given")));
    }
    if std::str::from_utf8(plaintext_dotenv).is_err() {
        return Err(SopsError::format(f, "is not UTF-8 text"));
    }
    let lines = dotenv::parse(plaintext_dotenv)
        .map_err(|e| SopsError::format(f, format!("line {} {}", e.line, e.problem)))?;
    let parsed: Vec<_> = recipients
        .iter()
        .map(|r| keys::parse_recipient(r).map_err(|e| SopsError::Usage(format!("{f}: {e}"))))
        .collect::<Result<_, _>>()?;
    let rule = Rule::UnencryptedSuffix(b"_unencrypted".to_vec());
    let data_key = keys::new_data_key().map_err(|e| SopsError::internal(f, e))?;
    let key = data_key.expose_secret();
    let mut hasher = MacHasher::new(false);
    let mut out = Vec::with_capacity(plaintext_dotenv.len() * 3 + 1024);
    for (idx, line) in lines.iter().enumerate() {
        match &line.kind {
            LineKind::Blank => {}
            LineKind::Comment { text } => {
                let t = &plaintext_dotenv[text.clone()];
                out.push(b'#');
                if !t.is_empty() {
                    let enc = cipher::encrypt(key, t, b":", "comment")
                        .map_err(|e| SopsError::internal(f, e))?;
                    out.extend_from_slice(enc.as_bytes());
                }
                out.push(b'\n');
            }
            LineKind::Pair { key: k, value } => {
                let kb = &plaintext_dotenv[k.clone()];
                if kb.starts_with(metadata::PREFIX) {
                    return Err(SopsError::format(
                        f,
                        format!("line {} has a key starting with sops_, which sops reserves for its metadata", idx + 1),
                    ));
                }
                let kname = String::from_utf8_lossy(kb);
                let plain = Zeroizing::new(dotenv::unescape(&plaintext_dotenv[value.clone()]));
                let by_rule = rule.encrypts(Some(kb));
                out.extend_from_slice(&render_pair(key, &kname, &plain, by_rule, f)?);
                out.push(b'\n');
                hasher.value(&plain, by_rule);
            }
        }
    }
    let lastmodified = mac::now_lastmodified();
    let mac_env = cipher::encrypt(
        key,
        hasher.finish().as_bytes(),
        lastmodified.as_bytes(),
        "str",
    )
    .map_err(|e| SopsError::internal(f, e))?;
    let mut meta: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (r, rec)) in recipients.iter().zip(&parsed).enumerate() {
        let env = keys::wrap_data_key(&data_key, &**rec).map_err(|e| SopsError::internal(f, e))?;
        meta.push((format!("sops_age__list_{i}__map_enc"), dotenv::escape(&env)));
        meta.push((
            format!("sops_age__list_{i}__map_recipient"),
            r.trim().as_bytes().to_vec(),
        ));
    }
    meta.push(("sops_lastmodified".into(), lastmodified.into_bytes()));
    meta.push(("sops_mac".into(), mac_env.into_bytes()));
    meta.push(("sops_unencrypted_suffix".into(), b"_unencrypted".to_vec()));
    meta.push((
        "sops_version".into(),
        WRITTEN_SOPS_VERSION.as_bytes().to_vec(),
    ));
    // sops 3.8-3.12 sort the flattened keys as strings (so list_10 sorts before list_2).
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in meta {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&v);
        out.push(b'\n');
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically (mode kept, 0600 when new), then reads the file back and
/// decrypts it with `ids`, MAC included. If the written file does not verify, the previous
/// content is put back and an error returned, so a caller never reports success on a file sops
/// would refuse.
pub fn write_verified(path: &Path, bytes: &[u8], ids: &Identities) -> Result<Decrypted, SopsError> {
    let name = path.display().to_string();
    let io = |e| SopsError::Io {
        file: name.clone(),
        source: e,
    };
    // Check before touching the disk: a buffer that does not verify is never written.
    SopsFile::parse(bytes.to_vec(), &name)?.decrypt(ids)?;
    let previous = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    fsutil::write_atomic(path, bytes, fsutil::Mode::KeepOr0600).map_err(io)?;
    let check = std::fs::read(path).map_err(io).and_then(|back| {
        if back != bytes {
            return Err(SopsError::integrity(
                &name,
                "read back different bytes than were written",
            ));
        }
        SopsFile::parse(back, &name)?.decrypt(ids)
    });
    match check {
        Ok(d) => Ok(d),
        Err(e) => {
            if let Some(prev) = previous {
                // Best effort: the error we return is the verification failure either way.
                let _ = fsutil::write_atomic(path, &prev, fsutil::Mode::KeepOr0600);
            }
            Err(e)
        }
    }
}
