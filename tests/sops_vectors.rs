//! Third-party sops dotenv vectors (`shared/sops-vectors/`, see its SOURCES.md): every dotenv
//! vector decrypts byte-exactly to what real sops 3.11.0 printed for it, through age where the
//! age key is published and through the recorded data key for the PGP ones. Tampered copies are
//! refused, and edits keep every untouched line byte-identical.
//!
//! The YAML/JSON vectors belong to other sops stores, which this tool does not read; they are
//! not used here.

use komodo_rotate::secret::{secret_bytes, Secret};
use komodo_rotate::sops::{Identities, SopsError, SopsFile};
use std::path::PathBuf;

#[path = "common/shared.rs"]
mod shared;

fn vectors() -> PathBuf {
    shared::sops_vectors("")
}

fn read(rel: &str) -> Vec<u8> {
    let p = vectors().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load(rel: &str) -> SopsFile {
    SopsFile::load(&vectors().join(rel)).unwrap()
}

fn ids(rel: &str) -> Identities {
    Identities::from_key_file(&vectors().join(rel)).unwrap()
}

fn datakey(rel: &str) -> komodo_rotate::secret::SecretBytes {
    let hex_text = String::from_utf8(read(rel)).unwrap();
    secret_bytes(hex::decode(hex_text.trim()).unwrap())
}

/// (encrypted file, age key file, sops' plaintext)
const AGE_VECTORS: &[(&str, &str, &str)] = &[
    (
        "humphd-sops-age/secret.enc.env",
        "humphd-sops-age/key.txt",
        "humphd-sops-age/secret.sops-3.11.0-decrypted.env",
    ),
    (
        "fluxcd-kustomize-controller/envs-env.env",
        "fluxcd-kustomize-controller/age.txt",
        "fluxcd-kustomize-controller/envs-env.sops-3.11.0-decrypted.env",
    ),
    (
        "fluxcd-kustomize-controller/component-env.env",
        "fluxcd-kustomize-controller/age.txt",
        "fluxcd-kustomize-controller/component-env.sops-3.11.0-decrypted.env",
    ),
];

/// (encrypted file, data key hex, sops' plaintext): every dotenv vector with a recorded key.
const DATAKEY_VECTORS: &[(&str, &str, &str)] = &[
    (
        "humphd-sops-age/secret.enc.env",
        "humphd-sops-age/secret.enc.datakey.hex",
        "humphd-sops-age/secret.sops-3.11.0-decrypted.env",
    ),
    (
        "fluxcd-kustomize-controller/envs-env.env",
        "fluxcd-kustomize-controller/envs-env.datakey.hex",
        "fluxcd-kustomize-controller/envs-env.sops-3.11.0-decrypted.env",
    ),
    (
        "fluxcd-kustomize-controller/component-env.env",
        "fluxcd-kustomize-controller/component-env.datakey.hex",
        "fluxcd-kustomize-controller/component-env.sops-3.11.0-decrypted.env",
    ),
    // PGP-wrapped, sops 3.7.3: metadata in random order, an encrypted comment, a `\n` value.
    (
        "Mic92-sops-nix/secrets.env",
        "Mic92-sops-nix/secrets.datakey.hex",
        "Mic92-sops-nix/secrets.env.sops-3.11.0-decrypted.env",
    ),
    // PGP-wrapped, sops 3.13.1: the key `foo ` has a trailing space, the value a leading one.
    (
        "getsops-sops/format.enc.env",
        "getsops-sops/format.enc.datakey.hex",
        "getsops-sops/format.sops-3.11.0-decrypted.env",
    ),
];

#[test]
fn age_vectors_decrypt_byte_exactly() {
    for (file, key, plain) in AGE_VECTORS {
        let d = load(file)
            .decrypt(&ids(key))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&d.plaintext_dotenv()),
            &read(plain)[..],
            "{file}"
        );
    }
}

#[test]
fn datakey_vectors_decrypt_byte_exactly_and_verify_the_mac() {
    for (file, key, plain) in DATAKEY_VECTORS {
        let d = load(file)
            .decrypt_with_data_key(datakey(key))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&d.plaintext_dotenv()),
            &read(plain)[..],
            "{file}"
        );
    }
}

#[test]
fn known_values_and_metadata_are_exposed() {
    let f = load("humphd-sops-age/secret.enc.env");
    assert_eq!(f.version(), "3.8.1");
    assert_eq!(f.recipients().len(), 3);
    assert_eq!(
        f.recipients()[0],
        "age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr"
    );
    let d = f.decrypt(&ids("humphd-sops-age/key.txt")).unwrap();
    assert_eq!(d.keys(), vec!["secret", "another_secret"]);
    assert_eq!(d.get("another_secret").unwrap().expose(), "7");
    assert!(d.get("missing").is_none());
    let m = load("Mic92-sops-nix/secrets.env")
        .decrypt_with_data_key(datakey("Mic92-sops-nix/secrets.datakey.hex"))
        .unwrap();
    assert_eq!(
        m.get("example_multiline").unwrap().expose(),
        "foo\nbar\nbaz"
    );
    let g = load("getsops-sops/format.enc.env")
        .decrypt_with_data_key(datakey("getsops-sops/format.enc.datakey.hex"))
        .unwrap();
    assert_eq!(g.get("foo ").unwrap().expose(), " bar");
}

#[test]
fn a_key_for_another_recipient_is_refused_naming_recipients_only() {
    let f = load("humphd-sops-age/secret.enc.env");
    let other = ids("fluxcd-kustomize-controller/age.txt");
    let e = f.decrypt(&other).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SopsError::NoMatchingIdentity { .. }), "{msg}");
    assert!(
        msg.contains("secret.enc.env") && msg.contains("age1je6kjhzuhdjy3"),
        "{msg}"
    );
    assert!(!msg.contains("AGE-SECRET-KEY"), "{msg}");
    // PGP-only file: no age entry at all.
    let e = load("Mic92-sops-nix/secrets.env")
        .decrypt(&other)
        .unwrap_err();
    assert!(e.to_string().contains("pgp"), "{e}");
}

fn tampered(rel: &str, edit: impl Fn(&str) -> String) -> Result<(), SopsError> {
    let text = String::from_utf8(read(rel)).unwrap();
    let f = SopsFile::parse(edit(&text).into_bytes(), rel)?;
    f.decrypt(&ids("humphd-sops-age/key.txt")).map(|_| ())
}

#[test]
fn tampered_copies_are_refused_like_sops_refuses_them() {
    let v = "humphd-sops-age/secret.enc.env";
    let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    // Swapping the two values: MAC mismatch (sops exit 51).
    let e = tampered(v, |t| {
        let mut l = lines(t);
        l.swap(0, 1);
        l.join("\n") + "\n"
    })
    .unwrap_err();
    assert!(
        e.is_integrity() && e.to_string().contains("MAC mismatch"),
        "{e}"
    );
    // Dropping a value: MAC mismatch.
    let e = tampered(v, |t| lines(t)[1..].join("\n") + "\n").unwrap_err();
    assert!(e.to_string().contains("MAC mismatch"), "{e}");
    // Renaming a key: GCM authentication fails (sops exit 25).
    let e = tampered(v, |t| t.replacen("another_secret=", "renamed=", 1)).unwrap_err();
    assert!(e.is_integrity() && e.to_string().contains("renamed"), "{e}");
    // A value replaced by clear text: not in sops' data format.
    let e = tampered(v, |t| {
        let mut l = lines(t);
        l[1] = "another_secret=hunter2".into();
        l.join("\n") + "\n"
    })
    .unwrap_err();
    assert!(e.to_string().contains("data format"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // Timestamp changed: the MAC's AAD no longer matches ("Cannot decrypt MAC").
    let e = tampered(v, |t| {
        t.replace("2024-03-26T00:43:54Z", "2024-03-26T00:43:55Z")
    })
    .unwrap_err();
    assert!(e.to_string().contains("sops_mac"), "{e}");
    // Fractional seconds are re-formatted away, as Go does: still valid.
    tampered(v, |t| {
        t.replace("2024-03-26T00:43:54Z", "2024-03-26T00:43:54.25Z")
    })
    .unwrap();
    tampered(v, |t| {
        t.replace("2024-03-26T00:43:54Z", "2024-03-26T00:43:54+00:00")
    })
    .unwrap();
    // No sops_version: refused (sops: "Version string empty").
    let e = tampered(v, |t| {
        lines(t)
            .into_iter()
            .filter(|l| !l.starts_with("sops_version"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
    .unwrap_err();
    assert!(e.to_string().contains("sops_version"), "{e}");
    // CRLF: a CR is data, as in sops, so the timestamp is what fails (naming its line and CRLF).
    let e = tampered(v, |t| t.replace('\n', "\r\n")).unwrap_err();
    assert!(
        e.to_string().contains("sops_lastmodified (line ") && e.to_string().contains("CRLF"),
        "{e}"
    );
    // Metadata moved to the top, blank lines added, final newline removed: still fine.
    tampered(v, |t| {
        let l = lines(t);
        let (data, meta) = l.split_at(2);
        format!("{}\n\n\n{}", meta.join("\n"), data.join("\n"))
    })
    .unwrap();
    // Changing the rule makes a clear value expected where there is ciphertext... and vice versa.
    let e = tampered(v, |t| {
        t.replace(
            "sops_unencrypted_suffix=_unencrypted",
            "sops_unencrypted_suffix=secret",
        )
    })
    .unwrap_err();
    assert!(e.is_integrity() || e.to_string().contains("MAC"), "{e}");
    // Removing the rule line: the default is assumed, file still fine.
    tampered(v, |t| {
        t.replace("sops_unencrypted_suffix=_unencrypted\n", "")
    })
    .unwrap();
    // Key groups and Shamir are refused, naming the feature.
    let e = tampered(v, |t| format!("{t}sops_shamir_threshold=2\n")).unwrap_err();
    assert!(e.to_string().contains("Shamir"), "{e}");
    let e = tampered(v, |t| {
        t.replace(
            "sops_age__list_2__",
            "sops_key_groups__list_0__map_age__list_0__",
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("key groups"), "{e}");
}

#[test]
fn set_keeps_every_other_line_and_reverifies() {
    let v = "humphd-sops-age/secret.enc.env";
    let f = load(v);
    let k = ids("humphd-sops-age/key.txt");
    let new = Secret::new("n3w-value with = and # and \"quotes\"".into());
    let out = f.with_values(&k, &[("secret", &new)]).unwrap();
    let before = String::from_utf8(read(v)).unwrap();
    let after = String::from_utf8(out.clone()).unwrap();
    let (b, a): (Vec<_>, Vec<_>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(b.len(), a.len());
    for (x, y) in b.iter().zip(&a) {
        let changes = x.starts_with("secret=")
            || x.starts_with("sops_mac=")
            || x.starts_with("sops_lastmodified=");
        assert_eq!(x != y, changes, "line {x:.40} vs {y:.40}");
    }
    assert!(!after.contains("n3w-value"));
    let d = SopsFile::parse(out, "edited").unwrap().decrypt(&k).unwrap();
    assert_eq!(d.get("secret").unwrap().expose(), new.expose());
    assert_eq!(d.get("another_secret").unwrap().expose(), "7");
}

#[test]
fn set_adds_a_missing_key_after_the_data_and_handles_empty_and_clear_values() {
    let f = load("fluxcd-kustomize-controller/envs-env.env");
    let k = ids("fluxcd-kustomize-controller/age.txt");
    let empty = Secret::new(String::new());
    let tz = Secret::new("Etc/UTC".into());
    let multi = Secret::new("line1\nline2".into());
    let out = f
        .with_values(
            &k,
            &[
                ("NEW_EMPTY", &empty),
                ("TZ_unencrypted", &tz),
                ("MULTI", &multi),
            ],
        )
        .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    let l: Vec<_> = text.lines().collect();
    assert!(l[0].starts_with("key=ENC["));
    assert_eq!(l[1], "NEW_EMPTY=");
    assert_eq!(l[2], "TZ_unencrypted=Etc/UTC");
    assert!(l[3].starts_with("MULTI=ENC[") && !l[3].contains('\n'));
    assert!(l[4].starts_with("sops_age__list_0__map_enc="));
    let d = SopsFile::parse(out, "x").unwrap().decrypt(&k).unwrap();
    assert_eq!(d.get("MULTI").unwrap().expose(), "line1\nline2");
    assert_eq!(d.get("NEW_EMPTY").unwrap().expose(), "");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&d.plaintext_dotenv()),
        b"key=value\nNEW_EMPTY=\nTZ_unencrypted=Etc/UTC\nMULTI=line1\\nline2\n"
    );
}

#[test]
fn bad_edits_are_refused_without_echoing_values() {
    let f = load("fluxcd-kustomize-controller/envs-env.env");
    let k = ids("fluxcd-kustomize-controller/age.txt");
    let s = Secret::new("hunter2\\nx".into());
    for name in ["", "A=B", "#C", "sops_mac", "X\nY"] {
        let e = f.with_values(&k, &[(name, &s)]).unwrap_err();
        assert!(e.is_usage(), "{name:?}: {e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let e = f.with_values(&k, &[("TZ_unencrypted", &s)]).unwrap_err();
    assert!(e.is_usage() && !e.to_string().contains("hunter2"), "{e}");
    // The same value is fine when it is encrypted (sops stores it verbatim).
    let out = f.with_values(&k, &[("key", &s)]).unwrap();
    let d = SopsFile::parse(out, "x").unwrap().decrypt(&k).unwrap();
    assert_eq!(d.get("key").unwrap().expose(), "hunter2\\nx");
}

#[test]
fn rotating_the_data_key_rewraps_for_every_recipient() {
    let v = "fluxcd-kustomize-controller/component-env.env";
    let f = load(v);
    let k = ids("fluxcd-kustomize-controller/age.txt");
    let out = f.rotate_data_key(&k).unwrap();
    let before = String::from_utf8(read(v)).unwrap();
    let after = String::from_utf8(out.clone()).unwrap();
    let line = |t: &str, p: &str| t.lines().find(|l| l.starts_with(p)).unwrap().to_string();
    assert_ne!(
        line(&before, "sops_age__list_0__map_enc="),
        line(&after, "sops_age__list_0__map_enc=")
    );
    assert_ne!(line(&before, "key="), line(&after, "key="));
    assert_eq!(
        line(&before, "sops_age__list_0__map_recipient="),
        line(&after, "sops_age__list_0__map_recipient=")
    );
    let g = SopsFile::parse(out, "rotated").unwrap();
    let d = g.decrypt(&k).unwrap();
    assert_eq!(d.get("key").unwrap().expose(), "value");
    // The old data key no longer opens it.
    let e = g
        .decrypt_with_data_key(datakey(
            "fluxcd-kustomize-controller/component-env.datakey.hex",
        ))
        .unwrap_err();
    assert!(e.is_integrity(), "{e}");
    // Rotating a file that also has PGP keys would lock them out: refused.
    let humphd = load("humphd-sops-age/secret.enc.env");
    let text = String::from_utf8(humphd.bytes().to_vec()).unwrap()
        + "sops_pgp__list_0__map_fp=7FB89715AADA920D65D25E63F9BA9DEBD03F57C0\n";
    let e = SopsFile::parse(text.into_bytes(), "mixed")
        .unwrap()
        .rotate_data_key(&ids("humphd-sops-age/key.txt"))
        .unwrap_err();
    assert!(e.to_string().contains("pgp"), "{e}");
}

#[test]
fn encrypt_new_round_trips_and_writes_sops_metadata_order() {
    let id = age::x25519::Identity::generate();
    let sk = secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    let pk = id.to_public().to_string();
    let plain = b"# a comment\nA=1\n\nB=\n C = spaced \nTZ_unencrypted=UTC\nM=x\\ny\n#\n";
    let out = komodo_rotate::sops::encrypt_new(plain, std::slice::from_ref(&pk)).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    let keys: Vec<_> = text
        .lines()
        .map(|l| {
            if l.starts_with("#ENC[AES256_GCM,data:") && l.ends_with(",type:comment]") {
                "#ENC"
            } else {
                l.split('=').next().unwrap()
            }
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            "#ENC",
            "A",
            "B",
            " C ",
            "TZ_unencrypted",
            "M",
            "#",
            "sops_age__list_0__map_enc",
            "sops_age__list_0__map_recipient",
            "sops_lastmodified",
            "sops_mac",
            "sops_unencrypted_suffix",
            "sops_version"
        ]
    );
    assert!(text.contains("TZ_unencrypted=UTC\n") && text.contains("\nB=\n"));
    let f = SopsFile::parse(out, "new").unwrap();
    assert_eq!(f.recipients(), vec![pk]);
    let d = f
        .decrypt(&Identities::from_key_text(&sk, "t").unwrap())
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&d.plaintext_dotenv()),
        b"# a comment\nA=1\nB=\n C = spaced \nTZ_unencrypted=UTC\nM=x\\ny\n#\n"
    );
    let e =
        komodo_rotate::sops::encrypt_new(b"sops_x=1\n", &[f.recipients()[0].clone()]).unwrap_err();
    assert!(e.to_string().contains("sops_"), "{e}");
    assert!(komodo_rotate::sops::encrypt_new(b"A=1\n", &[])
        .unwrap_err()
        .is_usage());
}

#[test]
fn write_verified_replaces_atomically_and_refuses_unverifiable_bytes() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("compose.env");
    std::fs::write(&p, read("fluxcd-kustomize-controller/envs-env.env")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let k = ids("fluxcd-kustomize-controller/age.txt");
    let f = SopsFile::load(&p).unwrap();
    let v = Secret::new("rotated".into());
    let out = f.with_values(&k, &[("key", &v)]).unwrap();
    let dec = komodo_rotate::sops::write_verified(&p, &out, &k).unwrap();
    assert_eq!(dec.get("key").unwrap().expose(), "rotated");
    assert_eq!(std::fs::read(&p).unwrap(), out);
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Bytes that do not verify never reach the disk.
    let mut bad = out.clone();
    let pos = bad.windows(5).position(|w| w == b"data:").unwrap() + 5;
    bad[pos] = if bad[pos] == b'A' { b'B' } else { b'A' };
    assert!(komodo_rotate::sops::write_verified(&p, &bad, &k).is_err());
    assert_eq!(std::fs::read(&p).unwrap(), out);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}
