//! The file MAC (sops.go `Tree.Encrypt`/`Decrypt`) and the `lastmodified` timestamp it is bound to.
//!
//! The MAC is SHA-512 over the plaintext of every data value in file order (keys, comments and
//! metadata excluded, no separators), printed as upper-case hex, then encrypted like a value with
//! the timestamp as AAD. The AAD is the timestamp *as Go re-formats it* (`time.RFC3339`: whole
//! seconds, `Z` for a zero offset), not the raw text, so a file written by another tool with
//! fractional seconds or `+00:00` still verifies.

use sha2::{Digest, Sha256, Sha512};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

pub(crate) struct MacHasher {
    h: Sha512,
    only_encrypted: bool,
}

impl MacHasher {
    pub fn new(only_encrypted: bool) -> Self {
        let mut h = Sha512::new();
        if only_encrypted {
            // sops' MACOnlyEncryptedInitialization: SHA-256("sops") fed first.
            h.update(Sha256::digest(b"sops"));
        }
        MacHasher { h, only_encrypted }
    }

    /// Feeds one data value. `encrypted` says whether the rules encrypt it; with
    /// `mac_only_encrypted` only those count.
    pub fn value(&mut self, plain: &[u8], encrypted: bool) {
        if !self.only_encrypted || encrypted {
            self.h.update(plain);
        }
    }

    /// Go's `%X` of the digest: 128 upper-case hex characters.
    pub fn finish(self) -> String {
        hex::encode_upper(self.h.finalize())
    }
}

/// Parses `sops_lastmodified` as Go's `time.Parse(time.RFC3339, ..)` does (fractions and offsets
/// allowed) and returns the string Go's `Format(time.RFC3339)` prints for it: the MAC's AAD.
pub(crate) fn go_rfc3339_aad(raw: &str) -> Option<String> {
    // Go requires upper-case `T` and `Z`; the time crate is more lenient, so check first.
    let b = raw.as_bytes();
    if b.len() < 20 || b[10] != b'T' || raw.ends_with('z') {
        return None;
    }
    let t = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    Some(format_go_rfc3339(t))
}

fn format_go_rfc3339(t: OffsetDateTime) -> String {
    let off = t.offset();
    let zone = if off == UtcOffset::UTC {
        "Z".to_string()
    } else {
        let (h, m, _) = off.as_hms();
        let sign = if off.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A new `sops_lastmodified` (now) and the MAC `hasher` computed, encrypted under `key` with
/// that timestamp as AAD: what every rewrite of a file puts in its two metadata lines.
pub(crate) fn seal_now(
    key: &[u8],
    hasher: MacHasher,
    f: &str,
) -> Result<(String, String), super::error::SopsError> {
    let lastmodified = now_lastmodified();
    let mac_env = super::cipher::encrypt(
        key,
        hasher.finish().as_bytes(),
        lastmodified.as_bytes(),
        "str",
    )
    .map_err(|e| super::error::SopsError::internal(f, e))?;
    Ok((lastmodified, mac_env))
}

/// Now, as sops writes it: UTC, whole seconds, `Z`.
pub(crate) fn now_lastmodified() -> String {
    format_go_rfc3339(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_go_reformatted() {
        let cases = [
            ("2026-11-28T21:15:23Z", "2026-11-28T21:15:23Z"),
            ("2026-11-28T21:15:23.5Z", "2026-11-28T21:15:23Z"),
            ("2026-11-28T21:15:23+00:00", "2026-11-28T21:15:23Z"),
            ("2026-11-28T21:15:23+01:00", "2026-11-28T21:15:23+01:00"),
            (
                "2026-11-28T21:15:23.123456789-05:30",
                "2026-11-28T21:15:23-05:30",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(go_rfc3339_aad(raw).as_deref(), Some(want), "{raw}");
        }
        for bad in [
            "",
            "2026-11-28 21:15:23Z",
            "2026-11-28T21:15:23",
            "yesterday",
            "2026-11-28T21:15:23Z\r",
        ] {
            assert_eq!(go_rfc3339_aad(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn now_is_utc_whole_seconds() {
        let n = now_lastmodified();
        assert_eq!(n.len(), 20);
        assert!(n.ends_with('Z'));
        assert_eq!(go_rfc3339_aad(&n).unwrap(), n);
    }

    #[test]
    fn mac_only_encrypted_changes_the_digest_and_skips_clear_values() {
        let mut a = MacHasher::new(false);
        a.value(b"x", true);
        a.value(b"y", false);
        let all = a.finish();
        assert_eq!(all.len(), 128);
        assert_eq!(all, all.to_uppercase());
        let mut b = MacHasher::new(false);
        b.value(b"xy", true);
        assert_eq!(all, b.finish(), "no separator between values");
        let mut c = MacHasher::new(true);
        c.value(b"x", true);
        c.value(b"y", false);
        let mut d = MacHasher::new(true);
        d.value(b"x", true);
        assert_eq!(c.finish(), d.finish());
    }
}
