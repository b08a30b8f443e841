//! Tests of write.rs: what a write does when the file is not what it wrote.

use super::*;
use crate::secret::Secret;
use secrecy::ExposeSecret;

fn ids() -> Identities {
    let id = age::x25519::Identity::generate();
    let text = format!("{}\n", id.to_string().expose_secret());
    Identities::from_key_text(&text, "test").unwrap()
}

fn get(bytes: &[u8], ids: &Identities, key: &str) -> String {
    let f = SopsFile::parse(bytes.to_vec(), "t").unwrap();
    let d = f.decrypt(ids).unwrap();
    d.get(key).unwrap().expose().to_string()
}

/// A `sops set` that lands between the rename and the read-back (here: the link compose.env
/// moved to the other writer's file in that window) is kept, never overwritten with the bytes
/// from before the write. Before: the "previous content" was put back over it.
#[test]
fn another_writers_file_found_at_read_back_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ids();
    let r = ids.public_recipients();
    let ours = dir.path().join("ours.env");
    let theirs = dir.path().join("theirs.env");
    let link = dir.path().join("compose.env");
    std::fs::write(&ours, encrypt_new(b"PW=old\nTITLE=a\n", &r).unwrap()).unwrap();
    let their_bytes = encrypt_new(b"PW=old\nTITLE=theirs\n", &r).unwrap();
    std::fs::write(&theirs, &their_bytes).unwrap();
    std::os::unix::fs::symlink("ours.env", &link).unwrap();

    let new = SopsFile::parse(std::fs::read(&ours).unwrap(), "compose.env")
        .unwrap()
        .with_values(&ids, &[("PW", &Secret::new("new".into()))])
        .unwrap();
    let e = write_verified_checked(&link, &new, &ids, &mut |_| {
        std::fs::remove_file(&link)?;
        std::os::unix::fs::symlink("theirs.env", &link)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("another writer's SOPS file"), "{e}");
    assert!(!e.contains("new"), "no value in the error: {e}");
    assert_eq!(std::fs::read(&theirs).unwrap(), their_bytes, "theirs kept");
    assert_eq!(get(&their_bytes, &ids, "TITLE"), "theirs");
    // Ours holds what was renamed in: the caller's undo sets the run's key back by value.
    assert_eq!(get(&std::fs::read(&ours).unwrap(), &ids, "PW"), "new");
}

/// What is there at read-back is no SOPS file (damage): the previous content is put back.
#[test]
fn damage_found_at_read_back_puts_the_previous_content_back() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ids();
    let r = ids.public_recipients();
    let ours = dir.path().join("ours.env");
    let junk = dir.path().join("junk.env");
    let link = dir.path().join("compose.env");
    let before = encrypt_new(b"PW=old\n", &r).unwrap();
    std::fs::write(&ours, &before).unwrap();
    std::fs::write(&junk, b"not a sops file\n").unwrap();
    std::os::unix::fs::symlink("ours.env", &link).unwrap();

    let new = SopsFile::parse(before.clone(), "compose.env")
        .unwrap()
        .with_values(&ids, &[("PW", &Secret::new("new".into()))])
        .unwrap();
    let e = write_verified_checked(&link, &new, &ids, &mut |_| {
        std::fs::remove_file(&link)?;
        std::os::unix::fs::symlink("junk.env", &link)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("read back different bytes"), "{e}");
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        before,
        "the previous content is back"
    );
}
