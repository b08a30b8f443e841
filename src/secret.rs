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

/// Default length of a generated secret. 40 characters of `[A-Za-z0-9]` carry ~238 bits and are
/// safe in URIs, compose interpolation, comma-split lists and every Komodo version
/// (research/komodo.md §2.1).
pub const GENERATED_LEN: usize = 40;
/// Bounds of `--length`: below 16 characters a hex secret carries under 64 bits; above 4096 it no
/// longer fits what [`read_secret`] accepts back.
pub const MIN_GENERATED_LEN: usize = 16;
pub const MAX_GENERATED_LEN: usize = 4096;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The letters a generated secret is drawn from (`--charset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// `[A-Za-z0-9]`: safe everywhere (URIs, lists, compose interpolation). The default.
    #[default]
    Alnum,
    /// `[0-9a-f]`, for consumers that expect hex.
    Hex,
    /// `[A-Za-z0-9_-]` (RFC 4648 §5), 6 bits per letter.
    Base64url,
}

impl Charset {
    pub const ALL: [Charset; 3] = [Charset::Alnum, Charset::Hex, Charset::Base64url];

    pub fn name(self) -> &'static str {
        match self {
            Charset::Alnum => "alnum",
            Charset::Hex => "hex",
            Charset::Base64url => "base64url",
        }
    }

    pub fn alphabet(self) -> &'static [u8] {
        match self {
            Charset::Alnum => ALNUM,
            Charset::Hex => HEX,
            Charset::Base64url => BASE64URL,
        }
    }
}

impl std::str::FromStr for Charset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Charset::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("--charset {s:?}: expected alnum, hex or base64url"))
    }
}

/// How to generate a new secret: a length (checked against the bounds) and a [`Charset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generator {
    length: usize,
    charset: Charset,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            length: GENERATED_LEN,
            charset: Charset::Alnum,
        }
    }
}

impl Generator {
    /// Refuses a length outside [`MIN_GENERATED_LEN`]..=[`MAX_GENERATED_LEN`] with a one-line
    /// message naming the option.
    pub fn new(length: usize, charset: Charset) -> Result<Generator, String> {
        check_length(length)?;
        Ok(Generator { length, charset })
    }

    pub fn length(&self) -> usize {
        self.length
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// A fresh secret from the OS CSPRNG, uniformly distributed over the charset: a byte is used
    /// as `b % n` only below the largest multiple of `n` that fits in a byte and is drawn again
    /// otherwise (rejection sampling, no modulo bias).
    pub fn generate(&self) -> Result<Secret, getrandom::Error> {
        let alphabet = self.charset.alphabet();
        let n = alphabet.len();
        let limit = 256 - 256 % n;
        let mut out = String::with_capacity(self.length);
        let mut buf = zeroize::Zeroizing::new([0u8; 64]);
        while out.len() < self.length {
            getrandom::fill(&mut buf[..])?;
            for &b in buf.iter() {
                if usize::from(b) < limit && out.len() < self.length {
                    out.push(alphabet[usize::from(b) % n] as char);
                }
            }
        }
        Ok(Secret::new(out))
    }
}

/// `--length`'s check, also usable as a clap value parser.
pub fn check_length(length: usize) -> Result<usize, String> {
    if (MIN_GENERATED_LEN..=MAX_GENERATED_LEN).contains(&length) {
        Ok(length)
    } else {
        Err(format!(
            "--length {length}: a generated secret must be {MIN_GENERATED_LEN} to {MAX_GENERATED_LEN} characters"
        ))
    }
}

/// `--length N` as clap hands it over (text): a number within the bounds.
pub fn parse_length(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("--length {s:?}: expected a whole number of characters"))?;
    check_length(n)
}

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

    /// Counts of each letter of `charset` over `draws` secrets of `len` letters.
    fn counts(charset: Charset, len: usize, draws: usize) -> Vec<usize> {
        let g = Generator::new(len, charset).unwrap();
        let alphabet = charset.alphabet();
        let mut counts = vec![0usize; alphabet.len()];
        for _ in 0..draws {
            let s = g.generate().unwrap();
            assert_eq!(s.len(), len);
            for b in s.expose().bytes() {
                let i = alphabet.iter().position(|&a| a == b);
                counts[i.expect("a letter outside the charset")] += 1;
            }
        }
        counts
    }

    #[test]
    fn every_charset_yields_only_its_letters_at_the_asked_length() {
        for c in Charset::ALL {
            for len in [MIN_GENERATED_LEN, 40, 97, MAX_GENERATED_LEN] {
                let s = Generator::new(len, c).unwrap().generate().unwrap();
                assert_eq!(s.len(), len, "{c:?} {len}");
                let ok = s.expose().bytes().all(|b| c.alphabet().contains(&b));
                assert!(ok, "{c:?}: a letter outside the charset");
            }
        }
        assert_eq!(ALNUM.len(), 62);
        assert_eq!(HEX.len(), 16);
        assert_eq!(BASE64URL.len(), 64);
        assert!(HEX.iter().all(|b| b.is_ascii_hexdigit()));
        assert!(BASE64URL
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
    }

    /// Uniformity. For alnum (62 letters) a plain `b % 62` would favour the first 8 letters
    /// (5/256 instead of 4/256, +25%); the ratio of their mean count to the others' must stay
    /// within 5% (the standard deviation here is ~0.8%, so this never fails by chance). Every
    /// letter of every charset must also be within 30% of its expected count (> 6 sigma).
    #[test]
    fn generated_letters_are_uniform_without_modulo_bias() {
        let c = counts(Charset::Alnum, 1000, 124);
        let head = c[..8].iter().sum::<usize>() as f64 / 8.0;
        let tail = c[8..].iter().sum::<usize>() as f64 / 54.0;
        let ratio = head / tail;
        assert!(
            (0.95..1.05).contains(&ratio),
            "alnum head/tail ratio {ratio}"
        );
        for cs in Charset::ALL {
            let n = cs.alphabet().len();
            let c = counts(cs, 1000, 2 * n);
            let expected = 2000.0;
            for (i, k) in c.iter().enumerate() {
                let dev = (*k as f64 - expected).abs() / expected;
                assert!(dev < 0.3, "{cs:?} letter {i}: {k} of {expected}");
            }
        }
    }

    #[test]
    fn length_and_charset_are_checked_with_one_line_messages() {
        assert_eq!(Generator::default().length(), GENERATED_LEN);
        assert_eq!(Generator::default().charset(), Charset::Alnum);
        for bad in [
            0,
            1,
            MIN_GENERATED_LEN - 1,
            MAX_GENERATED_LEN + 1,
            usize::MAX,
        ] {
            let e = Generator::new(bad, Charset::Hex).unwrap_err();
            assert!(e.starts_with(&format!("--length {bad}:")), "{e}");
            assert!(e.contains("16 to 4096") && !e.contains('\n'), "{e}");
        }
        assert!(Generator::new(MIN_GENERATED_LEN, Charset::Hex).is_ok());
        assert!(Generator::new(MAX_GENERATED_LEN, Charset::Hex).is_ok());
        assert_eq!(parse_length("16"), Ok(16));
        assert!(parse_length("15").unwrap_err().contains("16 to 4096"));
        assert!(parse_length("-3").unwrap_err().contains("whole number"));
        assert!(parse_length("4k").unwrap_err().contains("whole number"));
        for c in Charset::ALL {
            assert_eq!(c.name().parse::<Charset>(), Ok(c));
        }
        let e = "base64".parse::<Charset>().unwrap_err();
        assert_eq!(e, "--charset \"base64\": expected alnum, hex or base64url");
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
