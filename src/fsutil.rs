//! Atomic, durable file replacement. Every file the tool writes goes through here: a temp file in
//! the same directory (so `rename` is atomic), fsync, rename, fsync the directory (so the rename
//! itself survives a power cut). The temp file is created 0600 before any byte is written, so
//! secrets are never readable by others even for an instant.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How the final file's mode is chosen.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Keep the mode of the file being replaced; 0600 when it does not exist yet.
    KeepOr0600,
    /// Exactly this mode.
    Exactly(u32),
}

/// Replaces `path` with `contents` atomically. On error the original file is untouched and the
/// temp file is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    let dir = parent_dir(path);
    let final_mode = match mode {
        Mode::Exactly(m) => m,
        Mode::KeepOr0600 => match fs::metadata(path) {
            Ok(md) => md.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0o600,
            Err(e) => return Err(e),
        },
    };
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(fs::Permissions::from_mode(final_mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` with `contents`, refusing to overwrite anything that exists (also atomically:
/// a reader never sees a half-written file).
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        // hard_link fails with AlreadyExists instead of replacing: no check-then-rename race.
        fs::hard_link(&tmp, path)?;
        fs::remove_file(&tmp)?;
        sync_dir(&dir)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Proves that a file can be replaced next to `path` (a temp file is created and removed), so a
/// read-only directory fails the pre-flight instead of the middle of a run.
pub fn check_dir_writable(path: &Path) -> crate::Result<()> {
    let tmp = temp_path(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|_| fs::remove_file(&tmp))
        .map_err(|e| {
            crate::Error::Precondition(format!(
                "{} is not writable: {e}",
                parent_dir(path).display()
            ))
        })
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    parent_dir(path).join(format!(".{name}.{}.tmp", hex::encode(rnd)))
}

#[cfg(test)]
mod tests {
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
}
