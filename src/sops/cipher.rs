//! sops' value cipher (aes/cipher.go): AES-256-GCM under the file's data key, with a **32-byte**
//! IV, the tag stored apart from the ciphertext, and the key path plus `:` as additional data.
//!
//! Reading accepts the IV lengths other tools have written (12 and 16 bytes decrypt in sops too),
//! but writing always uses 32: sops' own re-encryption of an unchanged value reuses the old IV with
//! a fixed 32-byte GCM, and panics on anything else.

use aes_gcm::aead::consts::{U12, U16, U32};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

/// Go's `base64.StdEncoding`: padding required, and the unused bits of the last character
/// ignored on decode (the crate refuses them by default). Encoding is canonical either way.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Length of every IV we write.
pub(crate) const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;
pub(crate) const DATA_KEY_LEN: usize = 32;

/// Why a value could not be decrypted. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// Not `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` (sops: "does not match sops' data format").
    Format,
    /// One of data/iv/tag is not valid padded base64, or the tag is not 16 bytes.
    Encoding,
    /// An IV length sops never writes and we do not read.
    IvLength(usize),
    /// GCM authentication failed: wrong key, wrong key name (AAD), or tampered bytes.
    Auth,
}

impl std::fmt::Display for CipherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CipherError::Format => f.write_str("does not match sops' ENC[AES256_GCM,...] format"),
            CipherError::Encoding => f.write_str("has invalid base64 in its ENC[...] envelope"),
            CipherError::IvLength(n) => write!(f, "has a {n}-byte IV (sops uses 32)"),
            CipherError::Auth => f.write_str(
                "failed authentication (cipher: message authentication failed: wrong key, renamed key or tampered ciphertext)",
            ),
        }
    }
}

/// A parsed `ENC[...]` envelope.
pub(crate) struct Envelope {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub ty: String,
}

/// The captures of aes/cipher.go's pattern
/// `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`, unanchored at the end like sops'
/// (bytes after the `]` are ignored there too), matched by hand: Go's `.` takes any byte but LF
/// (an invalid UTF-8 byte is one U+FFFD to it), and a backtracking regex here cost more than the
/// AES of the file. Greedy groups: the rightmost separator that still lets the rest match wins,
/// tried in the order a backtracking engine tries them.
fn envelope_groups(raw: &[u8]) -> Option<[&[u8]; 4]> {
    fn rest<'a>(s: &'a [u8], level: usize, out: &mut [&'a [u8]; 4]) -> bool {
        const SEPS: [&[u8]; 3] = [b",iv:", b",tag:", b",type:"];
        let sep: &[u8] = if level < 3 { SEPS[level] } else { b"]" };
        let mut end = s.len();
        while let Some(p) = s[..end].windows(sep.len()).rposition(|w| w == sep) {
            if p == 0 {
                return false; // each group holds at least one byte
            }
            out[level] = &s[..p];
            if level == 3 || rest(&s[p + sep.len()..], level + 1, out) {
                return true;
            }
            end = p + sep.len() - 1;
        }
        false
    }
    let body = raw.strip_prefix(b"ENC[AES256_GCM,data:")?;
    let line = &body[..body.iter().position(|&b| b == b'\n').unwrap_or(body.len())];
    let mut out: [&[u8]; 4] = [b""; 4];
    rest(line, 0, &mut out).then_some(out)
}

pub(crate) fn parse_envelope(raw: &[u8]) -> Result<Envelope, CipherError> {
    let caps = envelope_groups(raw).ok_or(CipherError::Format)?;
    // Go's decoder also skips CR and LF inside the text (only a CR can reach here).
    let dec = |i: usize| {
        let text = caps[i - 1];
        let r = if text.contains(&b'\r') {
            let t: Vec<u8> = text.iter().copied().filter(|&b| b != b'\r').collect();
            B64.decode(t)
        } else {
            B64.decode(text)
        };
        r.map_err(|_| CipherError::Encoding)
    };
    let env = Envelope {
        data: dec(1)?,
        iv: dec(2)?,
        tag: dec(3)?,
        ty: String::from_utf8_lossy(caps[3]).into_owned(),
    };
    if env.tag.len() != TAG_LEN {
        return Err(CipherError::Encoding);
    }
    Ok(env)
}

/// The AAD sops uses for a value at `key`: the path joined with `:` plus a final `:`; a top-level
/// comment has an empty path, so just `:`.
pub(crate) fn aad_for_key(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 1);
    v.extend_from_slice(key);
    v.push(b':');
    v
}

/// Decrypts an envelope. Returns the plaintext and the envelope's IV length (so callers can tell
/// foreign 12-byte IVs apart) and its `type`.
pub(crate) fn decrypt(
    key: &[u8],
    raw: &[u8],
    aad: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, usize, String), CipherError> {
    let env = parse_envelope(raw)?;
    let mut buf = Zeroizing::new(env.data);
    let tag = GenericArray::from_slice(&env.tag);
    let key = GenericArray::from_slice(key);
    let res = match env.iv.len() {
        32 => AesGcm::<Aes256, U32>::new(key).decrypt_in_place_detached(
            GenericArray::from_slice(&env.iv),
            aad,
            &mut buf,
            tag,
        ),
        12 => AesGcm::<Aes256, U12>::new(key).decrypt_in_place_detached(
            GenericArray::from_slice(&env.iv),
            aad,
            &mut buf,
            tag,
        ),
        16 => AesGcm::<Aes256, U16>::new(key).decrypt_in_place_detached(
            GenericArray::from_slice(&env.iv),
            aad,
            &mut buf,
            tag,
        ),
        n => return Err(CipherError::IvLength(n)),
    };
    res.map_err(|_| CipherError::Auth)?;
    Ok((buf, env.iv.len(), env.ty))
}

/// Encrypts `plain` with a fresh random 32-byte IV into sops' envelope string. `plain` must not
/// be empty: sops never encrypts empty values (and rejects `data:` with nothing after it).
pub(crate) fn encrypt(key: &[u8], plain: &[u8], aad: &[u8], ty: &str) -> Result<String, String> {
    debug_assert!(!plain.is_empty());
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|e| format!("no randomness for an IV: {e}"))?;
    let mut buf = Zeroizing::new(plain.to_vec());
    let tag = AesGcm::<Aes256, U32>::new(GenericArray::from_slice(key))
        .encrypt_in_place_detached(GenericArray::from_slice(&iv), aad, &mut buf)
        .map_err(|_| "AES-GCM encryption failed".to_string())?;
    let out = format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        B64.encode(&*buf),
        B64.encode(iv),
        B64.encode(tag)
    );
    iv.zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    #[test]
    fn round_trip_uses_a_32_byte_iv_and_the_aad() {
        let s = encrypt(&KEY, b"hunter2", b"PASSWORD:", "str").unwrap();
        let env = parse_envelope(s.as_bytes()).unwrap();
        assert_eq!(env.iv.len(), 32);
        assert_eq!(env.tag.len(), 16);
        assert_eq!(env.ty, "str");
        let (p, ivlen, ty) = decrypt(&KEY, s.as_bytes(), b"PASSWORD:").unwrap();
        assert_eq!(&p[..], b"hunter2");
        assert_eq!((ivlen, ty.as_str()), (32, "str"));
        // Same value under another key name: GCM refuses.
        assert_eq!(
            decrypt(&KEY, s.as_bytes(), b"OTHER:").unwrap_err(),
            CipherError::Auth
        );
        // Fresh IV each time.
        assert_ne!(s, encrypt(&KEY, b"hunter2", b"PASSWORD:", "str").unwrap());
    }

    #[test]
    fn foreign_12_byte_iv_still_decrypts() {
        let iv = [1u8; 12];
        let mut buf = b"abc".to_vec();
        let tag = AesGcm::<Aes256, U12>::new(GenericArray::from_slice(&KEY))
            .encrypt_in_place_detached(GenericArray::from_slice(&iv), b"K:", &mut buf)
            .unwrap();
        let raw = format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
            B64.encode(&buf),
            B64.encode(iv),
            B64.encode(tag)
        );
        let (p, ivlen, _) = decrypt(&KEY, raw.as_bytes(), b"K:").unwrap();
        assert_eq!((&p[..], ivlen), (&b"abc"[..], 12));
    }

    #[test]
    fn hand_matcher_agrees_with_the_sops_regex() {
        let re = regex::bytes::Regex::new(
            r"(?-u)^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]",
        )
        .unwrap();
        let parts: [&[u8]; 9] = [
            b"A", b",iv:", b",tag:", b",type:", b"]", b"=", b"\xff", b",", b"\n",
        ];
        let mut state = 0x1234_5678_9abc_def1_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut matched, mut ambiguous) = (0, 0);
        for _ in 0..30_000 {
            let mut raw = b"ENC[AES256_GCM,data:".to_vec();
            for _ in 0..4 + next() % 12 {
                raw.extend_from_slice(parts[(next() % parts.len() as u64) as usize]);
            }
            let want = re
                .captures(&raw)
                .map(|c| [1, 2, 3, 4].map(|i| c.get(i).unwrap().as_bytes().to_vec()));
            let got = envelope_groups(&raw).map(|g| g.map(|x| x.to_vec()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&raw));
            if want.is_some() {
                matched += 1;
                if raw.windows(4).filter(|w| w == b",iv:").count() > 1 {
                    ambiguous += 1;
                }
            }
        }
        assert!(matched > 30 && ambiguous > 10, "{matched} {ambiguous}");
    }

    #[test]
    fn base64_is_read_like_go_std_encoding() {
        let s = encrypt(&KEY, b"Y", b"K:", "str").unwrap();
        let env = parse_envelope(s.as_bytes()).unwrap();
        // One data byte: `XX==`; bump the unused low bits of the second character.
        let data = B64.encode(&env.data);
        let mut bumped = data.clone().into_bytes();
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = ALPHABET.iter().position(|&a| a == bumped[1]).unwrap();
        bumped[1] = ALPHABET[i ^ 1];
        let bumped = String::from_utf8(bumped).unwrap();
        assert_ne!(bumped, data);
        let raw = s.replacen(&data, &bumped, 1);
        let (p, _, _) = decrypt(&KEY, raw.as_bytes(), b"K:").unwrap();
        assert_eq!(
            &p[..],
            b"Y",
            "non-canonical padding bits are ignored, as in Go"
        );
        // Go also skips CR inside base64; missing padding is still refused.
        let with_cr = s.replacen(",iv:", ",iv:\r", 1);
        assert!(decrypt(&KEY, with_cr.as_bytes(), b"K:").is_ok());
        let unpadded = s.replacen(&data, data.trim_end_matches('='), 1);
        assert_eq!(
            decrypt(&KEY, unpadded.as_bytes(), b"K:").unwrap_err(),
            CipherError::Encoding
        );
    }

    #[test]
    fn malformed_envelopes_are_named_not_echoed() {
        for raw in [
            "ENC[AES256_GCM,data:,iv:AAAA,tag:AAAA,type:str]",
            "plain-secret",
            "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA]",
        ] {
            assert_eq!(
                decrypt(&KEY, raw.as_bytes(), b"K:").unwrap_err(),
                CipherError::Format,
                "{raw}"
            );
        }
        let bad = "ENC[AES256_GCM,data:!!!,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]";
        assert_eq!(
            decrypt(&KEY, bad.as_bytes(), b"K:").unwrap_err(),
            CipherError::Encoding
        );
    }
}
