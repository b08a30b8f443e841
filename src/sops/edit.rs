//! Edits of a loaded sops file. An edit is line-preserving: every line it does not have to
//! change is written back byte-for-byte (old ciphertexts, the `enc` envelopes, comments, blank
//! lines, metadata order and spelling, CRs and bytes that are not UTF-8). Only the changed values,
//! `sops_lastmodified` and `sops_mac` are rewritten, which is exactly what `sops set` changes
//! too, so a git diff of a rotation shows one value and the MAC.

use super::cipher::{self, IV_LEN};
use super::decrypted::Decrypted;
use super::dotenv::{self, LineKind};
use super::error::SopsError;
use super::keys::{self, Identities};
use super::mac::{self, MacHasher};
use super::metadata::{self, Rule};
use super::store::{Known, SopsFile};
use crate::secret::{secret_bytes, Secret, SecretBytes};
use secrecy::ExposeSecret;

/// New file bytes and their decryption, proven to verify (see
/// [`SopsFile::with_values_verified`]); only [`super::write_edit`] consumes it.
pub struct VerifiedEdit {
    pub(super) bytes: Vec<u8>,
    pub(super) decrypted: Decrypted,
}

impl VerifiedEdit {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn decrypted(&self) -> &Decrypted {
        &self.decrypted
    }
}

/// A new data key and, per `sops_age__list_<i>__map_enc` line index, its new envelope.
type Rekey = (SecretBytes, Vec<(usize, Vec<u8>)>);

impl SopsFile {
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
        self.edit(&dec, changes, &[], None)
    }

    /// [`SopsFile::with_values`] that also drops the lines of `removes` (as `sops unset` does:
    /// the key and its value gone, the MAC over what is left). A key to remove that appears
    /// several times is refused, as a key to set is; one that is absent is nothing to do.
    pub fn with_values_removing(
        &self,
        ids: &Identities,
        changes: &[(&str, &Secret)],
        removes: &[&str],
    ) -> Result<Vec<u8>, SopsError> {
        let dec = self.decrypt(ids)?;
        self.edit(&dec, changes, removes, None)
    }

    /// [`SopsFile::with_values`], with the new bytes verified in memory as [`write_verified`]
    /// would verify them (parse, every value, types, MAC), for [`write_edit`]. Equivalent and
    /// cheaper: the `enc` lines are unchanged, so the data key is the one just unwrapped, and a
    /// byte-identical encrypted line is not decrypted a second time.
    ///
    /// [`write_verified`]: super::write_verified
    /// [`write_edit`]: super::write_edit
    pub fn with_values_verified(
        &self,
        ids: &Identities,
        changes: &[(&str, &Secret)],
    ) -> Result<VerifiedEdit, SopsError> {
        let dec = self.decrypt(ids)?;
        let bytes = self.edit(&dec, changes, &[], None)?;
        let known: Known = dec
            .items
            .iter()
            .filter(|i| i.key.is_some())
            .filter_map(|i| {
                i.iv_len.map(|n| {
                    (
                        &self.bytes[self.lines[i.line].span.clone()],
                        (&i.plain[..], n),
                    )
                })
            })
            .collect();
        let new = SopsFile::parse(bytes.clone(), &self.name)?;
        let data_key = secret_bytes(dec.data_key.expose_secret().to_vec());
        let decrypted = new.decrypt_known(data_key, &known)?;
        Ok(VerifiedEdit { bytes, decrypted })
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
        if !self.meta.malformed_age.is_empty() {
            return Err(SopsError::unsupported(
                f,
                "has an sops_age__list_<index> line whose index is not a number; sops reads such a file only in some runs, so rotating its data key is refused: fix the index first",
            ));
        }
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
            let r = e
                .recipient
                .as_deref()
                .and_then(|r| std::str::from_utf8(r).ok())
                .ok_or_else(|| {
                    SopsError::unsupported(
                        f,
                        format!(
                            "age entry {i} has no readable recipient line (missing or not UTF-8), so its key cannot be wrapped again"
                        ),
                    )
                })?;
            let rec = keys::parse_recipient(r).map_err(|e| SopsError::unsupported(f, e))?;
            let env =
                keys::wrap_data_key(&new_key, &*rec).map_err(|e| SopsError::internal(f, e))?;
            envelopes.push((*line, env));
        }
        self.edit(&dec, changes, &[], Some((new_key, envelopes)))
    }

    /// The key of a pair line as written (empty for other lines, which metadata never points at).
    pub(super) fn key_text(&self, line: usize) -> &[u8] {
        match &self.lines[line].kind {
            LineKind::Pair { key, .. } => &self.bytes[key.clone()],
            _ => b"",
        }
    }

    /// The one rewrite routine. `removes`: keys whose lines are dropped. `rekey`: a new data key
    /// and, per `enc` line, its new envelope.
    fn edit(
        &self,
        dec: &Decrypted,
        changes: &[(&str, &Secret)],
        removes: &[&str],
        rekey: Option<Rekey>,
    ) -> Result<Vec<u8>, SopsError> {
        let f = &self.name;
        validate_changes(f, &self.meta.rule, changes)?;
        if let Some(k) = removes
            .iter()
            .find(|k| changes.iter().any(|(c, _)| c == *k))
        {
            return Err(SopsError::Usage(format!(
                "{f}: key {k} is both set and removed in one edit"
            )));
        }
        let (key, envelopes) = match &rekey {
            Some((k, e)) => (k.expose_secret(), e.as_slice()),
            None => (dec.data_key.expose_secret(), &[][..]),
        };
        let rekeying = rekey.is_some();
        // Replacement text per line index (without the LF).
        let mut replace: Vec<Option<Vec<u8>>> = vec![None; self.lines.len()];
        let mut dropped = vec![false; self.lines.len()];
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
                Some(k) if removes.iter().any(|r| r.as_bytes() == k.as_slice()) => {
                    once(dec, k, f, "remove it: remove the duplicates first")?;
                    // Gone from the file, so from the MAC too.
                    dropped[item.line] = true;
                }
                Some(k) => {
                    let change = pending
                        .iter()
                        .position(|(ck, _)| ck.as_bytes() == k.as_slice());
                    if let Some(pos) = change {
                        once(dec, k, f, "set it (deliberately unlike `sops set`, which changes the first while docker compose uses the last, so a rotation would leave them split): remove the duplicates first")?;
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
            appended.push(render_pair(key, k.as_bytes(), plain, by_rule, f)?);
            hasher.value(plain, by_rule);
        }
        let (lastmodified, mac_env) = mac::seal_now(key, hasher, f)?;
        // The metadata key names keep their spelling (sops matches them in any letter case).
        let lm_line = self.meta.lastmodified.0;
        replace[lm_line] = Some([self.key_text(lm_line), b"=", lastmodified.as_bytes()].concat());
        replace[self.meta.mac_line] =
            Some([self.key_text(self.meta.mac_line), b"=", mac_env.as_bytes()].concat());
        for (line, env) in envelopes {
            replace[*line] = Some([self.key_text(*line), b"=", &dotenv::escape(env)].concat());
        }

        let insert_after = self
            .lines
            .iter()
            .enumerate()
            .rposition(|(idx, l)| match &l.kind {
                _ if dropped[idx] => false,
                LineKind::Blank => false,
                LineKind::Comment { .. } => true,
                LineKind::Pair { key, .. } => {
                    !self.bytes[key.clone()].starts_with(metadata::PREFIX)
                }
            });
        let mut out = Vec::with_capacity(self.bytes.len() + 256 * (appended.len() + 1));
        if insert_after.is_none() {
            for a in &appended {
                out.extend_from_slice(a);
                out.push(b'\n');
            }
        }
        for (idx, line) in self.lines.iter().enumerate() {
            if dropped[idx] {
                continue;
            }
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

/// Refuses to `what` key `k` of file `f` when it appears more than once in `dec`.
fn once(dec: &Decrypted, k: &[u8], f: &str, what: &str) -> Result<(), SopsError> {
    let occurrences = dec
        .items
        .iter()
        .filter(|x| x.key.as_deref() == Some(k))
        .count();
    if occurrences > 1 {
        let k = String::from_utf8_lossy(k);
        return Err(SopsError::Usage(format!(
            "{f}: key {k} appears {occurrences} times; refusing to {what}"
        )));
    }
    Ok(())
}

/// `KEY=...` for a value: empty stays empty, clear stays clear (escaped), else a fresh envelope.
pub(super) fn render_pair(
    data_key: &[u8],
    key: &[u8],
    plain: &[u8],
    by_rule: bool,
    f: &str,
) -> Result<Vec<u8>, SopsError> {
    let mut out = Vec::with_capacity(key.len() + 1 + plain.len() * 2 + 120);
    out.extend_from_slice(key);
    out.push(b'=');
    if plain.is_empty() {
        // sops never encrypts an empty value: it stays `KEY=`.
    } else if by_rule {
        let enc = cipher::encrypt(data_key, plain, &cipher::aad_for_key(key), "str")
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
        } else if k.contains(['=', '\n']) {
            Some("contains '=' or a newline, which sops' dotenv format cannot hold in a key")
        } else if k.starts_with('#') {
            Some("starts with '#' (that would be a comment)")
        } else if k.as_bytes().starts_with(metadata::PREFIX) {
            Some("starts with sops_, which sops reserves for its metadata (sops would write it and then fail to read the file)")
        } else if changes[..n].iter().any(|(p, _)| p == k) {
            Some("is given twice")
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(SopsError::Usage(format!("{f}: key name {k:?} {p}")));
        }
        let clear = !rule.encrypts(Some(k.as_bytes()));
        if clear && v.expose().contains("\\n") {
            return Err(SopsError::Usage(format!(
                "{f}: the value for {k} would be stored in clear and contains a literal backslash-n, which sops reads back as a newline (the value would change, and sops' own MAC check fails unless mac_only_encrypted): refusing"
            )));
        }
    }
    Ok(())
}
