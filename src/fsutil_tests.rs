//! Unit tests of `fsutil`: atomic writes, modes, symlinks, the env lock.

use super::*;

#[test]
fn new_file_is_0600_and_existing_mode_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.env");
    write_atomic(&p, b"one", Mode::KeepOr0600).unwrap();
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&p, b"two", Mode::KeepOr0600).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // no temp files left behind
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn small_secret_files_are_read_whole_and_others_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("db.pw");
    fs::write(&p, b"pw\n").unwrap();
    assert_eq!(&read_small(&p).unwrap()[..], b"pw\n");
    fs::write(&p, b"").unwrap();
    assert!(read_small(&p).unwrap().is_empty());
    fs::write(&p, vec![b'x'; MAX_SMALL_FILE as usize + 1]).unwrap();
    assert!(read_small(&p).unwrap_err().to_string().contains("larger"));
    assert!(read_small(d.path())
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));
    assert_eq!(
        read_small(&d.path().join("missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn symlink_stays_a_link_and_its_target_gets_the_bytes() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("checkout")).unwrap();
    let real = d.path().join("checkout/compose.env");
    fs::write(&real, b"old").unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
    let link = d.path().join("compose.env");
    std::os::unix::fs::symlink("checkout/compose.env", &link).unwrap();
    write_atomic(&link, b"new", Mode::KeepOr0600).unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("checkout/compose.env")
    );
    assert_eq!(fs::read(&real).unwrap(), b"new");
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // No temp file left beside the link or the target.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    assert_eq!(fs::read_dir(d.path().join("checkout")).unwrap().count(), 1);
}

#[test]
fn dangling_symlink_and_hard_links_are_refused_without_writing() {
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("compose.env");
    std::os::unix::fs::symlink("missing.env", &link).unwrap();
    let e = write_atomic(&link, b"new", Mode::KeepOr0600).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!d.path().join("missing.env").exists());

    let a = d.path().join("a.env");
    fs::write(&a, b"old").unwrap();
    fs::hard_link(&a, d.path().join("b.env")).unwrap();
    let e = write_atomic(&a, b"new", Mode::KeepOr0600).unwrap_err();
    assert!(e.to_string().contains("hard links"), "{e}");
    assert_eq!(fs::read(d.path().join("b.env")).unwrap(), b"old");
    assert_eq!(fs::read(&a).unwrap(), b"old");
}

#[test]
fn preflight_check_follows_the_link_and_refuses_what_a_write_would() {
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("compose.env");
    std::os::unix::fs::symlink("missing.env", &link).unwrap();
    let e = check_dir_writable(&link).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::PRECONDITION);
    assert!(e.to_string().contains("symlink"), "{e}");
    let a = d.path().join("a.env");
    fs::write(&a, b"x").unwrap();
    fs::hard_link(&a, d.path().join("b.env")).unwrap();
    assert!(check_dir_writable(&a)
        .unwrap_err()
        .to_string()
        .contains("hard links"));
    fs::remove_file(d.path().join("b.env")).unwrap();
    check_dir_writable(&a).unwrap();
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2, "temp file left");
}

/// Needs root to give the file away (the test environment runs as root; anywhere else this
/// fails instead of skipping).
#[test]
fn owner_and_group_of_another_user_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("compose.env");
    fs::write(&p, b"old").unwrap();
    std::os::unix::fs::chown(&p, Some(4321), Some(8765))
        .expect("this test needs root to chown a file to another uid/gid");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&p, b"new", Mode::KeepOr0600).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (4321, 8765));
    assert_eq!(md.permissions().mode() & 0o777, 0o640);
    assert_eq!(fs::read(&p).unwrap(), b"new");
}

#[test]
fn env_lock_excludes_a_second_holder_through_a_symlink_until_dropped() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("real")).unwrap();
    fs::write(d.path().join("real/compose.env"), b"x").unwrap();
    let link = d.path().join("compose.env");
    std::os::unix::fs::symlink("real/compose.env", &link).unwrap();
    let first = EnvLock::acquire(&link, ENV_LOCK_WAIT).unwrap();
    // A rename under the lock does not free it (the lock is on the directory).
    write_atomic(&link, b"y", Mode::KeepOr0600).unwrap();
    let e = EnvLock::acquire(
        &d.path().join("real/compose.env"),
        std::time::Duration::ZERO,
    )
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert!(
        e.to_string().contains("another komodo-rotate process"),
        "{e}"
    );
    drop(first);
    EnvLock::acquire(&link, std::time::Duration::ZERO).unwrap();
}

#[test]
fn write_new_refuses_to_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x");
    write_new(&p, b"first", 0o600).unwrap();
    let e = write_new(&p, b"second", 0o600).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&p).unwrap(), b"first");
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn a_refusing_check_stops_the_write_and_a_killed_writes_temp_is_found() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("db_password");
    fs::write(&p, b"old").unwrap();
    let e = write_atomic_checked(&p, b"new", Mode::KeepOr0600, &mut |at| {
        assert_eq!(at, p.as_path());
        Err(io::Error::other("changed meanwhile"))
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "changed meanwhile");
    assert_eq!(fs::read(&p).unwrap(), b"old");
    assert!(leftover_temps(&p).is_empty());
    // A write killed before its rename leaves its temp file: found, and only it.
    let tmp = temp_path(&p);
    fs::write(&tmp, b"new").unwrap();
    fs::write(d.path().join(".db_password.zz.tmp"), b"not ours").unwrap();
    fs::write(d.path().join(".other.0123456789ab.tmp"), b"another file's").unwrap();
    assert_eq!(leftover_temps(&p), vec![tmp]);
}

#[test]
fn failed_write_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    // A directory where the file should be: rename fails after the temp file was written.
    let p = d.path().join("taken");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("inside"), b"keep").unwrap();
    assert!(write_atomic(&p, b"new", Mode::Exactly(0o600)).is_err());
    assert_eq!(fs::read(p.join("inside")).unwrap(), b"keep");
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        1,
        "temp file left behind"
    );
}
