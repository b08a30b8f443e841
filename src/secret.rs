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

mod generate;

pub use generate::{
    check_length, parse_length, Charset, Generator, GENERATED_LEN, MAX_GENERATED_LEN,
    MIN_GENERATED_LEN,
};
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

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

    /// A fresh secret of [`GENERATED_LEN`] alphanumeric characters (the default [`Generator`]).
    pub fn generate() -> Result<Secret, getrandom::Error> {
        Generator::default().generate()
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
/// zeroing buffer (grown by copying into a new zeroing buffer, so no stale copy is left on the
/// heap), applies the one trimming rule — exactly one trailing line ending (`\n` or `\r\n`) is
/// removed, nothing else — then checks the length (of the value, not of its line ending) and
/// UTF-8. `what` names the input in errors (e.g. `stdin`); the value never appears in one.
pub fn read_secret(input: impl std::io::Read, what: &str) -> crate::Result<Secret> {
    read_secret_limited(input, what, MAX_SECRET_INPUT)
}

/// The largest value `sops set` takes from stdin: a certificate chain or a JSON credential
/// fits many times over (sops itself has no limit; ours bounds the memory a pipe can claim).
pub const MAX_SOPS_VALUE: usize = 1 << 20;

/// [`read_secret`] with a limit of `max` bytes for the value.
pub fn read_secret_limited(
    mut input: impl std::io::Read,
    what: &str,
    max: usize,
) -> crate::Result<Secret> {
    // Up to two bytes of line ending beyond the value, and one more to see that input goes on.
    let cap = max.saturating_add(3);
    let mut buf = zeroize::Zeroizing::new(vec![0u8; cap.min(8192)]);
    let mut n = 0;
    loop {
        if n == buf.len() {
            if buf.len() == cap {
                break;
            }
            let mut bigger =
                zeroize::Zeroizing::new(vec![0u8; buf.len().saturating_mul(2).min(cap)]);
            bigger[..n].copy_from_slice(&buf[..n]);
            buf = bigger; // the old buffer is zeroed as it drops
        }
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(crate::Error::io(what, e)),
        }
    }
    let mut v = &buf[..n];
    if let Some(rest) = v.strip_suffix(b"\n") {
        v = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    if v.len() > max {
        return Err(crate::Error::Usage(format!(
            "{what}: the secret is longer than {max} bytes"
        )));
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
        // The limit is the value's: its line ending does not count.
        for end in [&b"\n"[..], b"\r\n"] {
            let mut full = ok.clone();
            full.extend_from_slice(end);
            assert_eq!(
                read_secret(&full[..], "stdin").unwrap().len(),
                MAX_SECRET_INPUT
            );
            let mut over = long.clone();
            over.extend_from_slice(end);
            assert!(read_secret(&over[..], "stdin").is_err());
        }
        let e = read_secret(&b"s3cr\xc3"[..], "pw.txt").unwrap_err();
        assert!(e.to_string().starts_with("pw.txt:"), "{e}");
        assert!(!e.to_string().contains("s3cr"), "{e}");
    }

    /// Seeded sizes around every buffer step and the limit, each read through a reader that
    /// hands out odd-sized chunks: the value comes back whole, or is refused only past the limit.
    #[test]
    fn values_up_to_the_limit_come_back_whole_across_buffer_growth() {
        struct Chunky<'a>(&'a [u8], usize);
        impl std::io::Read for Chunky<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.1 = (self.1 * 7 + 3) % 5000 + 1;
                let k = self.1.min(out.len()).min(self.0.len());
                out[..k].copy_from_slice(&self.0[..k]);
                self.0 = &self.0[k..];
                Ok(k)
            }
        }
        let max = 40_000;
        let mut sizes = vec![
            0,
            1,
            4095,
            4096,
            4097,
            8189,
            8190,
            8191,
            8192,
            16_384,
            max - 1,
            max,
            max + 1,
            max + 2,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..60 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sizes.push((x % (max as u64 + 10)) as usize);
        }
        for (i, &len) in sizes.iter().enumerate() {
            let value: Vec<u8> = (0..len).map(|j| b'A' + ((j * 31 + i) % 26) as u8).collect();
            for end in [&b""[..], b"\n", b"\r\n"] {
                let mut input = value.clone();
                input.extend_from_slice(end);
                let got = read_secret_limited(Chunky(&input, i), "stdin", max);
                if len <= max {
                    let got = got.unwrap_or_else(|e| panic!("{len}+{end:?}: {e}"));
                    assert_eq!(got.expose().as_bytes(), &value[..], "{len}+{end:?}");
                } else {
                    assert!(got.is_err(), "{len}+{end:?}");
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused_without_echoing_bytes() {
        let e = Secret::from_utf8(vec![b's', 0xc3]).unwrap_err();
        assert!(!format!("{e:?}").contains("115"));
    }
}
