//! New files and durable writes: [`encrypt_new`] (what `sops encrypt` does) and
//! [`write_verified`] (atomic replace, verified before and compared after).

use super::cipher;
use super::decrypted::Decrypted;
use super::dotenv::{self, LineKind};
use super::edit::{render_pair, VerifiedEdit};
use super::error::SopsError;
use super::keys::{self, Identities};
use super::mac::{self, MacHasher};
use super::metadata::{self, Rule};
use super::store::SopsFile;
use crate::fsutil;
use secrecy::ExposeSecret;
use std::path::Path;
use zeroize::Zeroizing;

/// The sops version written into files we create (the version the project is tested against).
/// Files we edit keep theirs, as `sops set` does.
pub const WRITTEN_SOPS_VERSION: &str = "3.11.0";

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
                let plain = Zeroizing::new(dotenv::unescape(&plaintext_dotenv[value.clone()]));
                let by_rule = rule.encrypts(Some(kb));
                out.extend_from_slice(&render_pair(key, kb, &plain, by_rule, f)?);
                out.push(b'\n');
                hasher.value(&plain, by_rule);
            }
        }
    }
    let (lastmodified, mac_env) = mac::seal_now(key, hasher, f)?;
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
    // Check before touching the disk: a buffer that does not verify is never written. This is
    // the full check (parse, every value, the MAC, the identities open the data key); what is
    // on disk afterwards is then compared byte for byte with this buffer, which makes a second
    // decryption of the file redundant.
    let decrypted = SopsFile::parse(bytes.to_vec(), &name)?.decrypt(ids)?;
    write_edit(
        path,
        VerifiedEdit {
            bytes: bytes.to_vec(),
            decrypted,
        },
    )
}

/// Writes an edit verified in memory ([`SopsFile::with_values_verified`]): one atomic replace
/// (one fsync of the file, one of the directory), then the file is read back and compared byte
/// for byte with the verified buffer. On a difference the previous content is put back only when
/// what is there is no SOPS file (damage); a SOPS file there is another writer's (a `sops set`
/// that landed right after the rename), and it is kept: the caller's undo edits it by value.
pub fn write_edit(path: &Path, edit: VerifiedEdit) -> Result<Decrypted, SopsError> {
    write_edit_checked(path, edit, &mut |_| Ok(()))
}

/// [`write_verified`] with `check` called right before the rename (`fsutil::write_atomic_checked`):
/// a writer's compare-and-swap, so bytes it did not read are never replaced.
pub fn write_verified_checked(
    path: &Path,
    bytes: &[u8],
    ids: &Identities,
    check: &mut dyn FnMut(&Path) -> std::io::Result<()>,
) -> Result<Decrypted, SopsError> {
    let name = path.display().to_string();
    let decrypted = SopsFile::parse(bytes.to_vec(), &name)?.decrypt(ids)?;
    write_edit_checked(
        path,
        VerifiedEdit {
            bytes: bytes.to_vec(),
            decrypted,
        },
        check,
    )
}

fn write_edit_checked(
    path: &Path,
    edit: VerifiedEdit,
    check: &mut dyn FnMut(&Path) -> std::io::Result<()>,
) -> Result<Decrypted, SopsError> {
    let name = path.display().to_string();
    let io = |e| SopsError::Io {
        file: name.clone(),
        source: e,
    };
    let VerifiedEdit { bytes, decrypted } = edit;
    let previous = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    fsutil::write_atomic_checked(path, &bytes, fsutil::Mode::KeepOr0600, check).map_err(io)?;
    let check = std::fs::read(path).map_err(io).and_then(|back| {
        if back != bytes {
            return Err(SopsError::integrity(
                &name,
                "read back different bytes than were written",
            ));
        }
        Ok(decrypted)
    });
    match check {
        Ok(d) => Ok(d),
        Err(e) => {
            let now = std::fs::read(path).ok();
            let another_writers = now
                .as_deref()
                .is_some_and(|b| SopsFile::parse(b.to_vec(), &name).is_ok());
            if another_writers {
                return Err(SopsError::integrity(
                    &name,
                    "changed while it was written: another writer's SOPS file is there now, kept",
                ));
            }
            if let Some(prev) = previous {
                // Best effort: the error we return is the verification failure either way.
                let _ = fsutil::write_atomic(path, &prev, fsutil::Mode::KeepOr0600);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
