//! The decrypted content of a sops file: per data line its key (bytes), its plaintext and
//! whether the rule encrypts it. Values never reach Debug.

use super::dotenv;
use crate::secret::{secret_bytes, Secret, SecretBytes};
use zeroize::Zeroizing;

/// One data line after decryption.
pub(super) struct Item {
    pub(super) line: usize,
    /// `None` for a comment. Bytes, as sops keeps them (a key name need not be UTF-8).
    pub(super) key: Option<Vec<u8>>,
    pub(super) plain: Zeroizing<Vec<u8>>,
    /// Whether the file's rule encrypts this item.
    pub(super) by_rule: bool,
    /// For items stored encrypted: the IV length found (32 unless a foreign tool wrote it).
    pub(super) iv_len: Option<usize>,
}

/// The decrypted content of a file whose MAC verified.
pub struct Decrypted {
    pub(super) name: String,
    pub(super) items: Vec<Item>,
    pub(super) data_key: SecretBytes,
    pub(super) warnings: Vec<String>,
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
    /// A value that is not UTF-8 (sops stores any bytes) comes back with U+FFFD in place of the
    /// bad bytes: such a password can only fail to log in, it is never written back from here.
    pub fn get(&self, key: &str) -> Option<Secret> {
        self.items
            .iter()
            .rev()
            .find(|i| i.key.as_deref() == Some(key.as_bytes()))
            .map(|i| Secret::new(String::from_utf8_lossy(&i.plain).into_owned()))
    }

    /// Data key names in file order (duplicates included, metadata excluded). A name that is not
    /// UTF-8 is shown with U+FFFD.
    pub fn keys(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|i| {
                i.key
                    .as_ref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
            })
            .collect()
    }

    /// Every data line as (key, plaintext value) in file order, borrowed (no copy of a value):
    /// what `docker::compose_value` reads to know what compose hands a container.
    pub fn entries(&self) -> Vec<(&[u8], &[u8])> {
        self.items
            .iter()
            .filter_map(|i| i.key.as_deref().map(|k| (k, &i.plain[..])))
            .collect()
    }

    /// What sops would warn about on stderr while decrypting (a comment envelope it could not
    /// open, printed raw). Never holds a value.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Key names with whether each is stored encrypted and whether it is empty.
    pub fn key_info(&self) -> Vec<KeyInfo> {
        self.items
            .iter()
            .filter_map(|i| {
                i.key.as_ref().map(|k| KeyInfo {
                    name: String::from_utf8_lossy(k).into_owned(),
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
                    out.extend_from_slice(k);
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
            .filter(|i| matches!(i.iv_len, Some(n) if n != super::cipher::IV_LEN))
            .count()
    }
}
