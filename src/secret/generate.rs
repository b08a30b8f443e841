//! Generating secrets: the charsets, the length bounds, and a uniform draw from the OS's
//! randomness ([`Generator`]); each draw is a [`Secret`].

use super::Secret;

/// Default length of a generated secret. 40 characters of `[A-Za-z0-9]` carry ~238 bits and are
/// safe in URIs, compose interpolation, comma-split lists and every Komodo version
/// (research/komodo.md §2.1).
pub const GENERATED_LEN: usize = 40;
/// Bounds of `--length`: below 16 characters a hex secret carries under 64 bits; above 4096 it no
/// longer fits what [`read_secret`](super::read_secret) accepts back.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
