//! Secrets in memory.
//!
//! A [`Secret`] never prints its value: `Debug` shows a fixed mask and there is no `Display`.
//! The bytes live in a `secrecy` box, so they are zeroed on drop. Reading the value requires an
//! explicit `expose()`, which makes every place that handles plaintext easy to audit with grep.
//!
//! What is guaranteed, and no more:
//! - never printed: no `Display`, a masked `Debug`, and no error of this crate carries a value;
//! - zeroed where we own the buffer: a `Secret`/[`SecretBytes`] on drop, and the buffer
//!   [`read_secret`] reads into (pre-sized, never reallocated, so it leaves no stale copy);
//! - copies we make are few and each is itself zeroing (`Secret::clone` allocates a new box);
//! - NOT guaranteed: copies made by libraries we hand a value to (the MongoDB driver's
//!   credential, serde_json while sealing, the kernel's pipe buffers), and pages swapped out
//!   before they were zeroed. Core dumps are disabled at start (see `main.rs`) so a crash does
//!   not write any of them to disk.

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

/// The most a secret read by [`read_secret`] may hold (a password, not a file).
pub const MAX_SECRET_INPUT: usize = 4096;

/// The one reader of a secret from stdin or a file, used by every command. It reads into a
/// zeroing buffer sized once (never reallocated, so no stale copy is left on the heap), applies
/// the one trimming rule — exactly one trailing line ending (`\n` or `\r\n`) is removed, nothing
/// else — and checks UTF-8. `what` names the input in errors (e.g. `stdin`); the value never
/// appears in one.
pub fn read_secret(mut input: impl std::io::Read, what: &str) -> crate::Result<Secret> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; MAX_SECRET_INPUT + 1]);
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(crate::Error::io(what, e)),
        }
    }
    if n > MAX_SECRET_INPUT {
        return Err(crate::Error::Usage(format!(
            "{what}: the secret is longer than {MAX_SECRET_INPUT} bytes"
        )));
    }
    let mut v = &buf[..n];
    if let Some(rest) = v.strip_suffix(b"\n") {
        v = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    let text = std::str::from_utf8(v)
        .map_err(|_| crate::Error::Usage(format!("{what}: the secret is not UTF-8 text")))?;
    let mut owned = String::with_capacity(text.len());
    owned.push_str(text);
    Ok(Secret::new(owned))
}

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
    fn read_secret_trims_exactly_one_line_ending() {
        let r = |b: &[u8]| read_secret(b, "stdin").unwrap().expose().to_owned();
        assert_eq!(r(b"pw\n"), "pw");
        assert_eq!(r(b"pw\r\n"), "pw");
        assert_eq!(r(b"pw\n\n"), "pw\n");
        assert_eq!(r(b"pw"), "pw");
        assert_eq!(r(b" pw \n"), " pw ");
        assert_eq!(r(b""), "");
    }

    #[test]
    fn read_secret_refuses_long_and_non_utf8_input_without_echo() {
        let long = vec![b'a'; MAX_SECRET_INPUT + 1];
        let e = read_secret(&long[..], "stdin").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("longer"), "{e}");
        let ok = vec![b'a'; MAX_SECRET_INPUT];
        assert_eq!(
            read_secret(&ok[..], "stdin").unwrap().len(),
            MAX_SECRET_INPUT
        );
        let e = read_secret(&b"s3cr\xc3"[..], "pw.txt").unwrap_err();
        assert!(e.to_string().starts_with("pw.txt:"), "{e}");
        assert!(!e.to_string().contains("s3cr"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_refused_without_echoing_bytes() {
        let e = Secret::from_utf8(vec![b's', 0xc3]).unwrap_err();
        assert!(!format!("{e:?}").contains("115"));
    }
}
