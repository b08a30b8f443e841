//! Secrets at rest in the state dir are sealed with age to compose.env's own recipients: whoever
//! can decrypt compose.env can resume a run, and nobody else can read the journal. Recipient
//! parsing and opening are the SOPS store's own, so both accept exactly the same keys.

use crate::secret::SecretBytes;
use crate::sops::keys::parse_recipient;
use crate::sops::Identities;
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot seal: {0}")]
    Seal(String),
    #[error("cannot open sealed data: {0}")]
    Open(String),
}

/// Encrypts `plaintext` to every recipient, ASCII-armored so the journal stays a text file.
pub fn seal(plaintext: &[u8], recipients: &[String]) -> Result<String, SealError> {
    if recipients.is_empty() {
        return Err(SealError::Seal("no recipients".into()));
    }
    let parsed = recipients
        .iter()
        .map(|r| parse_recipient(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SealError::Seal)?;
    let enc =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| SealError::Seal(e.to_string()))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let mut w = enc
        .wrap_output(armor)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    w.write_all(plaintext)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    w.finish()
        .and_then(|a| a.finish())
        .map_err(|e| SealError::Seal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| SealError::Seal(e.to_string()))
}

pub fn open(armored: &str, ids: &Identities) -> Result<SecretBytes, SealError> {
    match ids.unwrap_data_key(armored.as_bytes()) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(SealError::Open(format!(
            "sealed to other recipients than this identity ({})",
            ids.public_recipients().join(", ")
        ))),
        Err(e) => Err(SealError::Open(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ids(id: &age::x25519::Identity) -> Identities {
        Identities::from_key_text(id.to_string().expose_secret(), "test").unwrap()
    }

    #[test]
    fn round_trip_and_wrong_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let sealed = seal(b"old=abc new=def", &[id.to_public().to_string()]).unwrap();
        assert!(sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!sealed.contains("abc"));
        let opened = open(&sealed, &ids(&id)).unwrap();
        assert_eq!(opened.expose_secret(), b"old=abc new=def");
        let e = open(&sealed, &ids(&other)).unwrap_err();
        assert!(e.to_string().contains("other recipients"), "{e}");
    }

    #[test]
    fn bad_recipient_is_refused() {
        assert!(seal(b"x", &["age1nope".into()]).is_err());
        assert!(seal(b"x", &[]).is_err());
    }
}
