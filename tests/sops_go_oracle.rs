//! Our SOPS store against the real Go sops 3.11.0 on freshly generated files: same plaintext on
//! decrypt, sops can read and still *edit* what we write (the 12-byte-IV trap), and tampered
//! copies are refused by us exactly where sops refuses them.

#[path = "common/sops_oracle.rs"]
mod sops_oracle;

use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{encrypt_new, Identities, SopsFile};
use secrecy::ExposeSecret;
use sops_oracle::{ours, required, Oracle};
use std::ffi::OsStr;
use std::path::Path;

/// Plaintexts that exercise sops' dotenv dialect.
const EDGE: &str = "# leading comment\n\
KOMODO_DB_USERNAME=admin\n\
KOMODO_DB_PASSWORD=p@ss=word#not-a-comment\n\
\n\
QUOTED=\"double quoted\" 'single'\n\
SPACES=  inner  spaces  \n\
EMPTY=\n\
 LEADING_SPACE_KEY=x\n\
TRAILING_SPACE_KEY =y\n\
DUP=first\n\
DUP=second\n\
MULTI=line1\\nline2\n\
UNICODE=päßwörd ✓ 鍵\n\
TZ_unencrypted=Etc/UTC\n\
#\n\
# trailing comment with = and #\n";

fn ids(o: &Oracle) -> Identities {
    Identities::from_key_file(&o.key_file).unwrap()
}

fn our_decrypt(bytes: &[u8], ids: &Identities) -> Result<Vec<u8>, String> {
    SopsFile::parse(bytes.to_vec(), "f.env")
        .and_then(|f| f.decrypt(ids))
        .map(|d| d.plaintext_dotenv().expose_secret().to_vec())
        .map_err(|e| e.to_string())
}

#[test]
fn our_decrypt_equals_sops_decrypt_for_every_rule() {
    let Some(o) = Oracle::get() else { return };
    let pk = o.age_public.clone();
    let rules: &[&[&str]] = &[
        &[],
        &["--unencrypted-suffix", "_PLAIN"],
        &["--encrypted-suffix", "_PASSWORD"],
        &["--unencrypted-regex", "^(KOMODO_DB_USERNAME|TZ)"],
        &["--encrypted-regex", "PASS|DUP"],
        // sops 3.11 has no flag for it: mac_only_encrypted comes from a creation rule.
        &["mac_only_encrypted: true"],
        &["mac_only_encrypted: true", "encrypted_regex: PASS"],
    ];
    for rule in rules {
        let mut extra = vec![];
        let config = o.path(".sops.yaml");
        let _ = std::fs::remove_file(&config);
        if rule.first().is_some_and(|r| r.starts_with("mac_only")) {
            let mut y = format!("creation_rules:\n  - age: {pk}\n");
            for r in rule.iter() {
                y.push_str(&format!("    {r}\n"));
            }
            std::fs::write(&config, y).unwrap();
        } else {
            extra = vec!["--age", pk.as_str()];
            extra.extend_from_slice(rule);
        }
        let enc = o.encrypt("edge.env", EDGE.as_bytes(), &extra);
        if rule.first().is_some_and(|r| r.starts_with("mac_only")) {
            assert!(
                String::from_utf8_lossy(&enc).contains("sops_mac_only_encrypted=true"),
                "{rule:?}"
            );
        }
        let p = o.write("edge.enc.env", &enc);
        let theirs = o.decrypt(&p).expect("sops decrypts its own file");
        let mine = our_decrypt(&enc, &ids(&o)).unwrap_or_else(|e| panic!("{rule:?}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&mine),
            String::from_utf8_lossy(&theirs),
            "{rule:?}"
        );
        // And what we write after an edit, sops reads and edits in turn.
        check_our_edits_stay_sops_compatible(&o, &enc, &format!("{rule:?}"));
    }
}

fn check_our_edits_stay_sops_compatible(o: &Oracle, enc: &[u8], what: &str) {
    let k = ids(o);
    let f = SopsFile::parse(enc.to_vec(), "f.env").unwrap();
    let new = Secret::new("N3w-Secret-Value-0123456789".into());
    let edited = f
        .with_values(&k, &[("KOMODO_DB_PASSWORD", &new), ("ADDED_KEY", &new)])
        .unwrap();
    let p = o.write("edited.env", &edited);
    let theirs = o
        .decrypt(&p)
        .unwrap_or_else(|e| panic!("{what}: sops refuses our set: {e:?}"));
    assert_eq!(theirs, our_decrypt(&edited, &k).unwrap(), "{what}");
    assert!(String::from_utf8_lossy(&theirs)
        .contains("KOMODO_DB_PASSWORD=N3w-Secret-Value-0123456789\n"));
    o.set(&p, "KOMODO_DB_USERNAME", "root")
        .unwrap_or_else(|e| panic!("{what}: sops set on our output: {e:?}"));
    let after = std::fs::read(&p).unwrap();
    let mine = our_decrypt(&after, &k).unwrap();
    assert!(
        String::from_utf8_lossy(&mine).contains("KOMODO_DB_USERNAME=root\n"),
        "{what}"
    );

    let rotated = SopsFile::parse(after, "f.env")
        .unwrap()
        .rotate_data_key(&k)
        .unwrap();
    let p2 = o.write("rotated.env", &rotated);
    let theirs = o
        .decrypt(&p2)
        .unwrap_or_else(|e| panic!("{what}: sops refuses our rotation: {e:?}"));
    assert_eq!(theirs, mine, "{what}: rotation changed the plaintext");
    o.set(&p2, "DUP", "third")
        .unwrap_or_else(|e| panic!("{what}: sops set after rotation: {e:?}"));
    our_decrypt(&std::fs::read(&p2).unwrap(), &k).unwrap();
}

#[test]
fn our_encrypt_is_read_by_sops() {
    let Some(o) = Oracle::get() else { return };
    let second = age::x25519::Identity::generate().to_public().to_string();
    let enc = encrypt_new(EDGE.as_bytes(), &[o.age_public.clone(), second]).unwrap();
    let p = o.write("ours.env", &enc);
    let theirs = o.decrypt(&p).expect("sops decrypts our encrypt");
    // sops drops blank lines; everything else comes back as written.
    let want: String = EDGE
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&theirs), want);
    o.set(&p, "EMPTY", "now set").unwrap();
    assert!(
        String::from_utf8_lossy(&our_decrypt(&std::fs::read(&p).unwrap(), &ids(&o)).unwrap())
            .contains("EMPTY=now set\n")
    );
}

#[test]
fn ssh_ed25519_recipient_works_both_ways() {
    let Some(o) = Oracle::get() else { return };
    let keygen = Path::new("/usr/bin/ssh-keygen");
    if !keygen.exists() {
        required(
            "ssh-keygen",
            "generates the ssh-ed25519 test identity (apt-get install openssh-client)",
        );
        return;
    }
    let key = o.path("id_ed25519");
    let st = std::process::Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(o.path("id_ed25519.pub")).unwrap();
    let public = public.trim();
    let enc = o.encrypt("ssh.env", b"A=1\nB=two\n", &["--age", public]);
    let ssh_ids = Identities::from_ssh_key_file(&key).unwrap();
    assert_eq!(our_decrypt(&enc, &ssh_ids).unwrap(), b"A=1\nB=two\n");
    // Rotating re-wraps to the ssh recipient; sops opens it with the same ssh key.
    let rotated = SopsFile::parse(enc, "ssh.env")
        .unwrap()
        .rotate_data_key(&ssh_ids)
        .unwrap();
    let p = o.write("ssh-rotated.env", &rotated);
    let out = o.run_env(
        [OsStr::new("decrypt"), p.as_os_str()],
        None,
        &[
            ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", key.as_os_str()),
            ("SOPS_AGE_KEY_FILE", OsStr::new("/nonexistent")),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"A=1\nB=two\n");
    // Our encrypt to an ssh recipient, read by sops.
    let ours_enc = encrypt_new(b"C=3\n", &[public.to_string()]).unwrap();
    let p = o.write("ssh-ours.env", &ours_enc);
    let out = o.run_env(
        [OsStr::new("decrypt"), p.as_os_str()],
        None,
        &[
            ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", key.as_os_str()),
            ("SOPS_AGE_KEY_FILE", OsStr::new("/nonexistent")),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"C=3\n");
}

#[test]
fn key_groups_are_refused_clearly() {
    let Some(o) = Oracle::get() else { return };
    let other = age::x25519::Identity::generate().to_public().to_string();
    o.write(
        ".sops.yaml",
        format!(
            "creation_rules:\n  - path_regex: .*\n    shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n",
            o.age_public, other
        )
        .as_bytes(),
    );
    let p = o.write("groups.env", b"A=1\n");
    let out = o.run([OsStr::new("encrypt"), p.as_os_str()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = SopsFile::parse(out.stdout, "groups.env").unwrap_err();
    assert!(
        e.to_string().contains("key groups") || e.to_string().contains("Shamir"),
        "{e}"
    );
}

/// Tampered copies of a sops-made file: we refuse exactly those sops refuses.
#[test]
fn tampering_is_refused_where_sops_refuses() {
    let Some(o) = Oracle::get() else { return };
    let plain = "KOMODO_DB_USERNAME=admin\nKOMODO_DB_PASSWORD=admin\nKOMODO_PASSKEY=a_random_passkey\n# comment\nEMPTY=\nTZ_unencrypted=Etc/UTC\n";
    let enc =
        String::from_utf8(o.encrypt("c.env", plain.as_bytes(), &["--age", &o.age_public])).unwrap();
    let lines: Vec<String> = enc.lines().map(str::to_string).collect();
    let join = |l: &[String]| l.join("\n") + "\n";
    let find = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
    let (user, pass, key) = (
        find("KOMODO_DB_USERNAME="),
        find("KOMODO_DB_PASSWORD="),
        find("KOMODO_PASSKEY="),
    );
    let value_of = |i: usize| lines[i].split_once('=').unwrap().1.to_string();

    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push(("untouched", enc.clone()));
    let mut l = lines.clone();
    l.swap(pass, key);
    cases.push(("swapped lines", join(&l)));
    let mut l = lines.clone();
    l.remove(key);
    cases.push(("dropped line", join(&l)));
    cases.push((
        "clear value edited",
        enc.replace("TZ_unencrypted=Etc/UTC", "TZ_unencrypted=Europe/Paris"),
    ));
    cases.push((
        "key renamed",
        enc.replace("KOMODO_PASSKEY=", "KOMODO_PASSKEY2="),
    ));
    let mut l = lines.clone();
    l[user] = format!("KOMODO_DB_USERNAME={}", value_of(pass));
    cases.push(("ciphertext moved", join(&l)));
    cases.push((
        "no version",
        join(
            &lines
                .iter()
                .filter(|x| !x.starts_with("sops_version="))
                .cloned()
                .collect::<Vec<_>>(),
        ),
    ));
    cases.push((
        "garbage version",
        enc.replace("sops_version=3.11.0", "sops_version=garbage"),
    ));
    cases.push(("crlf", enc.replace('\n', "\r\n")));
    let mut l = lines.clone();
    let v = value_of(pass);
    let data_end = v.find(",iv:").unwrap();
    l[pass] = format!("KOMODO_DB_PASSWORD=ENC[AES256_GCM,data:{}", &v[data_end..]);
    cases.push(("empty data", join(&l)));
    let lm = find("sops_lastmodified=");
    let mut l = lines.clone();
    l[lm] = l[lm].replacen('Z', ".5Z", 1);
    cases.push(("fractional lastmodified", join(&l)));
    let mut l = lines.clone();
    l[lm] = l[lm].replacen('Z', "+00:00", 1);
    cases.push(("+00:00 lastmodified", join(&l)));
    let mut l = lines.clone();
    l[lm] = l[lm].replacen("=20", "=19", 1);
    cases.push(("lastmodified changed", join(&l)));
    cases.push((
        "suffix rule removed",
        join(
            &lines
                .iter()
                .filter(|x| !x.starts_with("sops_unencrypted_suffix="))
                .cloned()
                .collect::<Vec<_>>(),
        ),
    ));
    cases.push((
        "suffix rule changed",
        enc.replace(
            "sops_unencrypted_suffix=_unencrypted",
            "sops_unencrypted_suffix=_PLAIN",
        ),
    ));
    let comment = lines.iter().position(|x| x.starts_with("#ENC[")).unwrap();
    let mut l = lines.clone();
    l.remove(comment);
    cases.push(("encrypted comment removed", join(&l)));
    let mut l = lines.clone();
    l[comment] = "# a plain comment".into();
    cases.push(("comment replaced by plain one", join(&l)));
    let (data, meta): (Vec<String>, Vec<String>) =
        lines.iter().cloned().partition(|x| !x.starts_with("sops_"));
    cases.push((
        "metadata first",
        join(&[meta.clone(), data.clone()].concat()),
    ));
    cases.push((
        "blank lines, no final newline",
        format!("\n\n{}", lines.join("\n\n")),
    ));
    cases.push((
        "recipient line removed",
        join(
            &lines
                .iter()
                .filter(|x| !x.starts_with("sops_age__list_0__map_recipient="))
                .cloned()
                .collect::<Vec<_>>(),
        ),
    ));
    let mut l = lines.clone();
    let mac = find("sops_mac=");
    let mv = value_of(mac);
    let flip = mv.find("data:").unwrap() + 5;
    let mut b = mv.into_bytes();
    b[flip] = if b[flip] == b'A' { b'B' } else { b'A' };
    l[mac] = format!("sops_mac={}", String::from_utf8(b).unwrap());
    cases.push(("mac ciphertext flipped", join(&l)));

    let k = ids(&o);
    let mut report = Vec::new();
    for (name, text) in &cases {
        let p = o.write("t.env", text.as_bytes());
        let theirs = o.decrypt(&p);
        let mine = our_decrypt(text.as_bytes(), &k);
        if let (Ok(a), Ok(b)) = (&theirs, &mine) {
            assert_eq!(a, b, "{name}: both accept but plaintexts differ");
        }
        if let Err(e) = &mine {
            for secret in ["a_random_passkey", "Etc/UTC", "Europe/Paris"] {
                assert!(!e.contains(secret), "{name}: error leaks a value: {e}");
            }
        }
        report.push(format!(
            "{name}: sops {} / ours {}",
            match &theirs {
                Ok(_) => "ok".to_string(),
                Err((c, _)) => format!("exit {c}"),
            },
            match &mine {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("refused ({e})"),
            }
        ));
        assert_eq!(
            theirs.is_ok(),
            mine.is_ok(),
            "{name}: sops {theirs:?} vs ours {mine:?}"
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// A value written with a 12-byte IV (as `aes_gcm::Aes256Gcm` would): sops decrypts it but its
/// next `sops set` panics. Our `set` re-encrypts such values, after which sops can edit again.
#[test]
fn twelve_byte_iv_files_are_healed_by_our_set() {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let Some(o) = Oracle::get() else { return };
    let k = ids(&o);
    // Start from our own file so we hold the data key path: encrypt, then swap one value for a
    // 12-byte-IV encryption under the same key, recomputing nothing else (the MAC covers
    // plaintext, which is unchanged).
    let enc = o.encrypt("iv.env", b"A=alpha\nB=beta\n", &["--age", &o.age_public]);
    let f = SopsFile::parse(enc.clone(), "iv.env").unwrap();
    let data_key = data_key_via_rotation_free_path(&o, &enc);
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&data_key).unwrap();
    let nonce = [9u8; 12];
    let mut buf = b"alpha".to_vec();
    let tag = cipher
        .encrypt_in_place_detached(&nonce.into(), b"A:", &mut buf)
        .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let twelve = format!(
        "A=ENC[AES256_GCM,data:{},iv:{},tag:{},type:str]",
        b64.encode(&buf),
        b64.encode(nonce),
        b64.encode(tag)
    );
    let text = String::from_utf8(enc).unwrap();
    let a_line = text
        .lines()
        .find(|l| l.starts_with("A="))
        .unwrap()
        .to_string();
    let trap = text.replace(&a_line, &twelve);
    let p = o.write("trap.env", trap.as_bytes());
    assert!(o.decrypt(&p).is_ok(), "sops decrypts a 12-byte IV");
    let d = SopsFile::parse(trap.clone().into_bytes(), "trap.env")
        .unwrap()
        .decrypt(&k)
        .unwrap();
    assert_eq!(d.foreign_iv_count(), 1);
    let e = o.set(&p, "B", "gamma").unwrap_err();
    assert!(
        e.1.contains("nonce") || e.0 != 0,
        "expected sops set to fail on a 12-byte IV: {e:?}"
    );
    // Ours: set B, and A gets a 32-byte IV on the way.
    let healed = SopsFile::parse(trap.into_bytes(), "trap.env")
        .unwrap()
        .with_values(&k, &[("B", &Secret::new("gamma".into()))])
        .unwrap();
    let p = o.write("healed.env", &healed);
    o.set(&p, "B", "delta")
        .expect("sops set works after our set");
    assert_eq!(o.decrypt(&p).unwrap(), b"A=alpha\nB=delta\n");
    drop(f);
}

/// The data key of a file we just made, read with the age CLI-free path: our own unwrap through
/// a rotation would change it, so decrypt the envelope with the age crate directly.
fn data_key_via_rotation_free_path(o: &Oracle, enc: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(enc.to_vec()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("sops_age__list_0__map_enc="))
        .unwrap();
    let armored = line.split_once('=').unwrap().1.replace("\\n", "\n");
    let id: age::x25519::Identity = o.age_secret.parse().unwrap();
    let d = age::Decryptor::new(age::armor::ArmoredReader::new(armored.as_bytes())).unwrap();
    let mut r = d
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let mut key = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut key).unwrap();
    assert_eq!(key.len(), 32);
    key
}

/// The CLI: decrypt/check/set/rotate-data-key/encrypt through the binary, values only via stdin,
/// errors one line, no secret on stdout/stderr except `decrypt`'s own output.
#[test]
fn cli_round_trip_with_sops() {
    let Some(o) = Oracle::get() else { return };
    let secret = "Cli-Secret-4f7a9c";
    let plain = o.write("cli.plain.env", b"USER=admin\nPASSWORD=old\n");
    let key_env = [("SOPS_AGE_KEY_FILE", o.key_file.as_os_str())];
    let age_arg = format!("--age={}", o.age_public);
    let out = ours(
        &[
            OsStr::new("sops"),
            OsStr::new("encrypt"),
            OsStr::new(&age_arg),
            OsStr::new("--in-place"),
            plain.as_os_str(),
        ],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = plain;
    let out = ours(
        &[
            OsStr::new("sops"),
            OsStr::new("set"),
            file.as_os_str(),
            OsStr::new("PASSWORD"),
        ],
        Some(format!("{secret}\n").as_bytes()),
        &key_env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(secret));
    }
    assert_eq!(
        o.decrypt(&file).unwrap(),
        format!("USER=admin\nPASSWORD={secret}\n").as_bytes()
    );

    let out = ours(
        &[OsStr::new("sops"), OsStr::new("check"), file.as_os_str()],
        None,
        &key_env,
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MAC ok") && text.contains("encrypted PASSWORD"),
        "{text}"
    );
    assert!(!text.contains(secret) && !text.contains("admin"), "{text}");

    let out = ours(
        &[
            OsStr::new("sops"),
            OsStr::new("rotate-data-key"),
            file.as_os_str(),
        ],
        None,
        &key_env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ours(
        &[OsStr::new("sops"), OsStr::new("decrypt"), file.as_os_str()],
        None,
        &key_env,
    );
    assert_eq!(out.stdout, o.decrypt(&file).unwrap());

    // Refusals: tampered file → exit 3 and one line; no identity → exit 2.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("USER=", "USR=");
    let bad = o.write("bad.env", text.as_bytes());
    let out = ours(
        &[OsStr::new("sops"), OsStr::new("decrypt"), bad.as_os_str()],
        None,
        &key_env,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.env") && !err.contains(secret), "{err}");
    assert!(out.stdout.is_empty());
    let out = ours(
        &[OsStr::new("sops"), OsStr::new("decrypt"), file.as_os_str()],
        None,
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
