//! age identities and recipients, found the way sops finds them, and the data-key envelope.
//!
//! sops wraps the 32-byte data key separately for each recipient: every `sops_age__list_<i>__map_enc`
//! is a complete ASCII-armored age file addressed to one recipient. To read a file we try every
//! entry with every identity; to rotate the data key we wrap the new one to each recipient again.

use super::error::SopsError;
use crate::secret::{secret_bytes, SecretBytes};
use age::secrecy::ExposeSecret;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use zeroize::Zeroizing;

/// One usable identity, with where it came from and its public recipient (for messages: which
/// keys were tried, never the key itself).
struct Loaded {
    identity: Box<dyn age::Identity + Send + Sync>,
    source: String,
    public: String,
}

/// The age identities available to this run.
pub struct Identities {
    loaded: Vec<Loaded>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("public", &self.public_recipients())
            .finish()
    }
}

impl Identities {
    /// Finds identities as sops does. An explicit key file (`--age-key-file`) is used alone.
    /// Otherwise every source sops reads is collected: `SOPS_AGE_KEY` (key text),
    /// `SOPS_AGE_KEY_FILE`, `$XDG_CONFIG_HOME/sops/age/keys.txt` (else `~/.config/...`), and the
    /// SSH key in `SOPS_AGE_SSH_PRIVATE_KEY_FILE` (else `~/.ssh/id_ed25519` if it exists and is
    /// not passphrase-protected: we cannot prompt).
    pub fn discover(explicit: Option<&Path>) -> Result<Identities, SopsError> {
        Self::discover_with(explicit, |name| std::env::var_os(name))
    }

    /// [`Identities::discover`] with the environment supplied by the caller (tests, or a config
    /// that pins the variables).
    pub fn discover_with(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Identities, SopsError> {
        let mut loaded = Vec::new();
        if let Some(p) = explicit {
            loaded.extend(load_key_file(
                p,
                &format!("--age-key-file {}", p.display()),
            )?);
            return Self::non_empty(loaded);
        }
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(text) = set("SOPS_AGE_KEY") {
            let text = Zeroizing::new(text.into_string().map_err(|_| SopsError::Identity {
                source_name: "SOPS_AGE_KEY".into(),
                problem: "is not UTF-8".into(),
            })?);
            loaded.extend(parse_key_text(&text, "SOPS_AGE_KEY")?);
        }
        if let Some(p) = set("SOPS_AGE_KEY_FILE") {
            let p = PathBuf::from(p);
            loaded.extend(load_key_file(
                &p,
                &format!("SOPS_AGE_KEY_FILE={}", p.display()),
            )?);
        }
        if let Some(dir) = user_config_dir(&env) {
            let p = dir.join("sops/age/keys.txt");
            if p.exists() {
                loaded.extend(load_key_file(&p, &p.display().to_string())?);
            }
        }
        if let Some(p) = set("SOPS_AGE_SSH_PRIVATE_KEY_FILE") {
            let p = PathBuf::from(p);
            let name = format!("SOPS_AGE_SSH_PRIVATE_KEY_FILE={}", p.display());
            loaded.push(load_ssh_key(&p, &name)?);
        } else if let Some(home) = set("HOME") {
            let p = PathBuf::from(home).join(".ssh/id_ed25519");
            // A default SSH key is optional: one we cannot use (passphrase, unsupported type)
            // must not stop a run that has an age key elsewhere.
            if p.exists() {
                if let Ok(l) = load_ssh_key(&p, &p.display().to_string()) {
                    loaded.push(l);
                }
            }
        }
        Self::non_empty(loaded)
    }

    /// Identities from the text of an age key file (`#` comment lines allowed), e.g. a key held
    /// in memory. `source` names it in messages.
    pub fn from_key_text(text: &str, source: &str) -> Result<Identities, SopsError> {
        Self::non_empty(parse_key_text(text, source)?)
    }

    /// Identities from one age key file.
    pub fn from_key_file(path: &Path) -> Result<Identities, SopsError> {
        Self::non_empty(load_key_file(path, &path.display().to_string())?)
    }

    /// Identities from an unencrypted OpenSSH ed25519 (or RSA) private key file.
    pub fn from_ssh_key_file(path: &Path) -> Result<Identities, SopsError> {
        Ok(Identities {
            loaded: vec![load_ssh_key(path, &path.display().to_string())?],
        })
    }

    fn non_empty(loaded: Vec<Loaded>) -> Result<Identities, SopsError> {
        if loaded.is_empty() {
            return Err(SopsError::Usage(
                "no age identity found: pass --age-key-file, set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, or create ~/.config/sops/age/keys.txt".into(),
            ));
        }
        Ok(Identities { loaded })
    }

    /// The public recipients of the loaded identities (safe to print).
    pub fn public_recipients(&self) -> Vec<String> {
        self.loaded.iter().map(|l| l.public.clone()).collect()
    }

    /// "age1… (from SOURCE), …" for messages.
    pub(crate) fn describe(&self) -> String {
        self.loaded
            .iter()
            .map(|l| format!("{} from {}", short(&l.public), l.source))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Opens one armored envelope, if any identity matches. `Ok(None)`: addressed to someone else.
    pub(crate) fn unwrap_data_key(&self, armored: &[u8]) -> Result<Option<SecretBytes>, String> {
        let reader = age::armor::ArmoredReader::new(armored);
        let decryptor =
            age::Decryptor::new(reader).map_err(|e| format!("unreadable age envelope: {e}"))?;
        let ids = self
            .loaded
            .iter()
            .map(|l| &*l.identity as &dyn age::Identity);
        match decryptor.decrypt(ids) {
            Ok(mut r) => {
                let mut key = Zeroizing::new(Vec::with_capacity(32));
                r.read_to_end(&mut key)
                    .map_err(|_| "age envelope payload failed to decrypt".to_string())?;
                Ok(Some(secret_bytes(std::mem::take(&mut *key))))
            }
            Err(age::DecryptError::NoMatchingKeys) => Ok(None),
            Err(e) => Err(format!("age envelope failed to decrypt: {e}")),
        }
    }
}

/// Shortens a recipient for messages (ssh keys are long).
pub(crate) fn short(r: &str) -> String {
    let chars: Vec<char> = r.chars().collect();
    if chars.len() > 40 {
        let head: String = chars[..24].iter().collect();
        let tail: String = chars[chars.len() - 8..].iter().collect();
        format!("{head}…{tail}")
    } else {
        r.to_string()
    }
}

/// Go's `os.UserConfigDir` on Unix: `$XDG_CONFIG_HOME` if set (it must be absolute), else
/// `$HOME/.config`.
fn user_config_dir(env: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(x);
        return p.is_absolute().then_some(p);
    }
    env("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".config"))
}

fn load_key_file(path: &Path, source: &str) -> Result<Vec<Loaded>, SopsError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| SopsError::Identity {
        source_name: source.to_string(),
        problem: format!("cannot read: {}", e.kind()),
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| SopsError::Identity {
        source_name: source.to_string(),
        problem: "is not UTF-8 text".into(),
    })?;
    let loaded = parse_key_text(text, source)?;
    if loaded.is_empty() {
        return Err(SopsError::Identity {
            source_name: source.to_string(),
            problem: "holds no AGE-SECRET-KEY line".into(),
        });
    }
    Ok(loaded)
}

/// Parses age's key-file format: one identity per line, `#` comments and blank lines skipped. A
/// bad line is reported by number only (age does the same), so no key material reaches a message.
fn parse_key_text(text: &str, source: &str) -> Result<Vec<Loaded>, SopsError> {
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = age::x25519::Identity::from_str(line.trim()).map_err(|_| SopsError::Identity {
            source_name: source.to_string(),
            problem: format!(
                "line {} is not an age X25519 identity (AGE-SECRET-KEY-1…; plugin and post-quantum keys are not supported)",
                n + 1
            ),
        })?;
        let public = id.to_public().to_string();
        out.push(Loaded {
            identity: Box::new(id),
            source: source.to_string(),
            public,
        });
    }
    Ok(out)
}

fn load_ssh_key(path: &Path, source: &str) -> Result<Loaded, SopsError> {
    let err = |problem: String| SopsError::Identity {
        source_name: source.to_string(),
        problem,
    };
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| err(format!("cannot read: {}", e.kind())))?);
    let id = age::ssh::Identity::from_buffer(&bytes[..], None)
        .map_err(|_| err("is not an OpenSSH private key".into()))?;
    match &id {
        age::ssh::Identity::Unencrypted(_) => {}
        age::ssh::Identity::Encrypted(_) => {
            return Err(err(
                "is passphrase-protected; this tool cannot prompt (use an age key instead)".into(),
            ))
        }
        age::ssh::Identity::Unsupported(_) => {
            return Err(err("is an SSH key type age does not support".into()))
        }
    }
    let public = age::ssh::Recipient::try_from(id.clone())
        .map(|r| r.to_string())
        .map_err(|_| err("has no usable public key".into()))?;
    Ok(Loaded {
        identity: Box::new(id),
        source: source.to_string(),
        public,
    })
}

/// An age recipient string from a file's metadata, parsed. X25519 (`age1…`) and SSH
/// (`ssh-ed25519 …`, `ssh-rsa …`) are supported; anything else is refused by name.
pub(crate) fn parse_recipient(r: &str) -> Result<Box<dyn age::Recipient + Send>, String> {
    let r = r.trim();
    if r.starts_with("age1") {
        age::x25519::Recipient::from_str(r)
            .map(|x| Box::new(x) as Box<dyn age::Recipient + Send>)
            .map_err(|_| {
                format!(
                    "recipient {} is not an X25519 age recipient (post-quantum and plugin recipients are not supported)",
                    short(r)
                )
            })
    } else if r.starts_with("ssh-") {
        age::ssh::Recipient::from_str(r)
            .map(|x| Box::new(x) as Box<dyn age::Recipient + Send>)
            .map_err(|_| format!("recipient {} is not a supported SSH recipient", short(r)))
    } else {
        Err(format!("recipient {} is not an age recipient", short(r)))
    }
}

/// Wraps `data_key` to one recipient as sops does: an ASCII-armored age file (with real LFs;
/// the dotenv writer escapes them).
pub(crate) fn wrap_data_key(
    data_key: &SecretBytes,
    recipient: &dyn age::Recipient,
) -> Result<Vec<u8>, String> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient))
        .map_err(|e| format!("age cannot encrypt to this recipient: {e}"))?;
    let mut out = Vec::with_capacity(400);
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| e.to_string())?;
    let mut w = enc.wrap_output(armor).map_err(|e| e.to_string())?;
    w.write_all(data_key.expose_secret())
        .map_err(|e| e.to_string())?;
    w.finish()
        .and_then(|a| a.finish())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A fresh random data key.
pub(crate) fn new_data_key() -> Result<SecretBytes, String> {
    let mut k = Zeroizing::new(vec![0u8; super::cipher::DATA_KEY_LEN]);
    getrandom::fill(&mut k).map_err(|e| format!("no randomness for a data key: {e}"))?;
    Ok(secret_bytes(std::mem::take(&mut *k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen() -> (String, String) {
        let id = age::x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_string(),
            id.to_public().to_string(),
        )
    }

    #[test]
    fn key_text_skips_comments_and_names_bad_lines_by_number() {
        let (sk, pk) = keygen();
        let text = format!("# created: now\n# public key: {pk}\n{sk}\n\n");
        let ids = Identities::from_key_text(&text, "test").unwrap();
        assert_eq!(ids.public_recipients(), vec![pk]);
        let bad = format!("# c\n{sk}\nAGE-SECRET-KEY-1NOTAKEYhunter2\n");
        let e = Identities::from_key_text(&bad, "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains(&sk), "{e}");
        assert!(Identities::from_key_text("# only comments\n", "t")
            .unwrap_err()
            .is_usage());
    }

    #[test]
    fn wrap_and_unwrap_round_trip_and_other_keys_do_not_match() {
        let (sk, pk) = keygen();
        let (sk2, _) = keygen();
        let dk = new_data_key().unwrap();
        let r = parse_recipient(&pk).unwrap();
        let env = wrap_data_key(&dk, &*r).unwrap();
        assert!(env.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(env.ends_with(b"-----END AGE ENCRYPTED FILE-----\n"));
        let ids = Identities::from_key_text(&sk, "t").unwrap();
        let got = ids.unwrap_data_key(&env).unwrap().unwrap();
        assert_eq!(got.expose_secret(), dk.expose_secret());
        let other = Identities::from_key_text(&sk2, "t").unwrap();
        assert!(other.unwrap_data_key(&env).unwrap().is_none());
    }

    #[test]
    fn discovery_order_and_explicit_override() {
        let d = tempfile::tempdir().unwrap();
        let (sk1, pk1) = keygen();
        let (sk2, pk2) = keygen();
        let (sk3, pk3) = keygen();
        std::fs::create_dir_all(d.path().join("xdg/sops/age")).unwrap();
        std::fs::write(d.path().join("xdg/sops/age/keys.txt"), &sk3).unwrap();
        std::fs::write(d.path().join("k2.txt"), &sk2).unwrap();
        let xdg = d.path().join("xdg");
        let k2 = d.path().join("k2.txt");
        let env = |n: &str| -> Option<OsString> {
            match n {
                "SOPS_AGE_KEY" => Some(sk1.clone().into()),
                "SOPS_AGE_KEY_FILE" => Some(k2.clone().into()),
                "XDG_CONFIG_HOME" => Some(xdg.clone().into()),
                "HOME" => Some(d.path().into()),
                _ => None,
            }
        };
        let ids = Identities::discover_with(None, env).unwrap();
        assert_eq!(
            ids.public_recipients(),
            vec![pk1.clone(), pk2.clone(), pk3.clone()]
        );
        let ids = Identities::discover_with(Some(&d.path().join("k2.txt")), env).unwrap();
        assert_eq!(ids.public_recipients(), vec![pk2]);
        let none = Identities::discover_with(None, |_| None).unwrap_err();
        assert!(none.is_usage());
        let missing = Identities::discover_with(Some(&d.path().join("nope")), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope") && missing.contains("cannot read"),
            "{missing}"
        );
    }

    #[test]
    fn recipients_of_unknown_kinds_are_refused_by_name() {
        assert!(parse_recipient("age1pq1abcdef").is_err());
        let e = parse_recipient("pgp:ABCDEF").err().unwrap();
        assert!(e.contains("pgp:ABCDEF"), "{e}");
    }
}
