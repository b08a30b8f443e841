//! Secrets in memory.
//!
//! A [`Secret`] never prints its value: `Debug` shows a fixed mask and there is no `Display`.
//! The bytes live in a `secrecy` box, so they are zeroed on drop. Reading the value requires an
//! explicit `expose()`, which makes every place that handles plaintext easy to audit with grep.

use secrecy::{ExposeSecret, SecretBox};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of every generated secret. 40 characters of `[A-Za-z0-9]` carry ~238 bits and are safe in
/// URIs, compose interpolation, comma-split lists and every Komodo version (research/komodo.md §2.1).
pub const GENERATED_LEN: usize = 40;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub struct Secret(SecretBox<str>);

impl Secret {
    /// Takes ownership of `value`; the `String` is moved into the box, not copied.
    pub fn new(value: String) -> Self {
        Secret(SecretBox::new(value.into_boxed_str()))
    }

    /// Builds a secret from bytes that must be UTF-8. On error the input is zeroed.
    pub fn from_utf8(bytes: Vec<u8>) -> Result<Self, std::string::FromUtf8Error> {
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Secret::new(s)),
            Err(e) => {
                let mut b = e.into_bytes();
                b.zeroize();
                // Report without the bytes: rebuild a FromUtf8Error from an invalid sequence.
                Err(String::from_utf8(vec![0xff]).unwrap_err())
            }
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Constant-time comparison, so that probing candidates never leaks a prefix through timing.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        let (a, b) = (self.expose().as_bytes(), other.expose().as_bytes());
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }

    /// A fresh secret of [`GENERATED_LEN`] characters from the OS CSPRNG, uniformly distributed
    /// over the 62-letter alphabet (rejection sampling: bytes ≥ 248 are drawn again, no modulo bias).
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut out = String::with_capacity(GENERATED_LEN);
        let mut buf = [0u8; 64];
        while out.len() < GENERATED_LEN {
            getrandom::fill(&mut buf)?;
            for &b in buf.iter() {
                if b < 248 && out.len() < GENERATED_LEN {
                    out.push(ALPHABET[(b % 62) as usize] as char);
                }
            }
        }
        buf.zeroize();
        Ok(Secret::new(out))
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::new(self.expose().to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Secret {}

/// Secret bytes that need not be UTF-8 (data keys, decrypted journal blobs). Zeroed on drop.
pub type SecretBytes = SecretBox<[u8]>;

pub fn secret_bytes(v: Vec<u8>) -> SecretBytes {
    SecretBox::new(v.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_value() {
        let s = Secret::new("hunter2-very-secret".into());
        let shown = format!("{s:?} {:?}", vec![s.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        for _ in 0..200 {
            let s = Secret::generate().unwrap();
            assert_eq!(s.len(), GENERATED_LEN);
            assert!(s.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn generated_secrets_differ_and_cover_the_alphabet() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert!(!a.ct_eq(&b));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            seen.extend(Secret::generate().unwrap().expose().bytes());
        }
        // 4000 uniform draws from 62 letters miss one with probability ~62·e^-64: effectively never.
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn ct_eq_compares_value_and_length() {
        let a = Secret::new("abc".into());
        assert!(a.ct_eq(&Secret::new("abc".into())));
        assert!(!a.ct_eq(&Secret::new("abd".into())));
        assert!(!a.ct_eq(&Secret::new("abcd".into())));
    }

    #[test]
    fn invalid_utf8_is_refused_without_echoing_bytes() {
        let e = Secret::from_utf8(vec![b's', 0xc3]).unwrap_err();
        assert!(!format!("{e:?}").contains("115"));
    }
}
