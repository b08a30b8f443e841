//! The run lock: a `flock` on `state_dir/lock` and, when the run guards a file (compose.env), a
//! second one keyed by that file's canonical path in a host-wide directory ([`global_dir`]), so
//! two configs with different state dirs for the same file never run blind to each other. The
//! kernel drops both when the process dies, so a SIGKILLed run never leaves a stale lock behind
//! (the journal, not the lock, records that a run was interrupted).
//!
//! `<key>.pending` points to the journal dir of a run on that file that has not ended cleanly:
//! written with the journal, removed when it is cleared. It lets a run from another config (and
//! `mongo set-password`, which has no config) see that journal. Unlike the locks it must outlive
//! the crash it exists for, so it lives on persistent storage ([`pending_dir`]), not in the
//! lock dir (`/run/lock` is a tmpfs a reboot empties).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Host-wide directory of the per-file locks: `$KOMODO_ROTATE_LOCK_DIR`, else
/// `/run/lock/komodo-rotate`. Flocks only: nothing here needs to survive a reboot.
pub fn global_dir() -> PathBuf {
    env_dir("KOMODO_ROTATE_LOCK_DIR").unwrap_or_else(|| PathBuf::from("/run/lock/komodo-rotate"))
}

/// Host-wide directory of the pending pointers, on persistent storage:
/// `$KOMODO_ROTATE_PENDING_DIR`, else `$KOMODO_ROTATE_LOCK_DIR/pending` when only the lock dir is
/// moved (tests, containers: both move together), else `/var/lib/komodo-rotate/pending`.
pub fn pending_dir() -> PathBuf {
    env_dir("KOMODO_ROTATE_PENDING_DIR")
        .or_else(|| env_dir("KOMODO_ROTATE_LOCK_DIR").map(|d| d.join("pending")))
        .unwrap_or_else(|| PathBuf::from("/var/lib/komodo-rotate/pending"))
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The key of a guarded file: hex SHA-256 of its canonical path (symlinks resolved), so every
/// spelling of the path, and every link to it, maps to the same lock.
fn file_key(guarded: &Path) -> Result<String> {
    use sha2::Digest;
    let canon = std::fs::canonicalize(guarded).map_err(|e| Error::io(guarded, e))?;
    Ok(hex::encode(sha2::Sha256::digest(canon.as_os_str().as_encoded_bytes()))[..32].to_owned())
}

/// True when `a` and `b` are the same file (canonical paths equal; as spelled when either
/// cannot be resolved).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Where the pending pointers are: the persistent dir (written and read) and the lock dir
/// (read only: pointers an older build left there, until a reboot empties it).
struct Dirs {
    pending: PathBuf,
    legacy: PathBuf,
}

impl Dirs {
    fn from_env() -> Dirs {
        Dirs {
            pending: pending_dir(),
            legacy: global_dir(),
        }
    }
    fn pointer(&self, guarded: &Path) -> Result<PathBuf> {
        Ok(self.pending.join(format!("{}.pending", file_key(guarded)?)))
    }
    fn legacy_pointer(&self, guarded: &Path) -> Result<PathBuf> {
        Ok(self.legacy.join(format!("{}.pending", file_key(guarded)?)))
    }
}

/// Records that `journal_dir` holds a journal for `guarded` (idempotent).
pub fn mark_pending(guarded: &Path, journal_dir: &Path) -> Result<()> {
    mark_in(&Dirs::from_env(), guarded, journal_dir)
}

fn mark_in(dirs: &Dirs, guarded: &Path, journal_dir: &Path) -> Result<()> {
    let p = dirs.pointer(guarded)?;
    let body = journal_dir.as_os_str().as_encoded_bytes();
    if std::fs::read(&p).is_ok_and(|b| b == body) {
        return Ok(());
    }
    ensure_private_dir(&dirs.pending)?;
    crate::fsutil::write_atomic(&p, body, crate::fsutil::Mode::Exactly(0o600))
        .map_err(|e| Error::io(&p, e))
}

/// Drops the pointer of `guarded` if it names `journal_dir`.
pub fn clear_pending(guarded: &Path, journal_dir: &Path) -> Result<()> {
    clear_in(&Dirs::from_env(), guarded, journal_dir)
}

fn clear_in(dirs: &Dirs, guarded: &Path, journal_dir: &Path) -> Result<()> {
    for p in [dirs.pointer(guarded)?, dirs.legacy_pointer(guarded)?] {
        match std::fs::read(&p) {
            Ok(b) if b == journal_dir.as_os_str().as_encoded_bytes() => {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(())
}

/// The journal dir of another run on `guarded` whose journal is still there, if any (a pointer
/// whose journal is gone is stale and ignored). `own` is the caller's journal dir.
pub fn pending_elsewhere(guarded: &Path, own: &Path) -> Result<Option<PathBuf>> {
    elsewhere_in(&Dirs::from_env(), guarded, own)
}

fn elsewhere_in(dirs: &Dirs, guarded: &Path, own: &Path) -> Result<Option<PathBuf>> {
    for p in [dirs.pointer(guarded)?, dirs.legacy_pointer(guarded)?] {
        if let Some(dir) = read_pointer(&p)?.filter(|dir| dir != own) {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// Any journal dir of ours on this host that still holds a journal.
pub fn any_pending() -> Result<Option<PathBuf>> {
    any_in(&Dirs::from_env())
}

fn any_in(dirs: &Dirs) -> Result<Option<PathBuf>> {
    for dir in [&dirs.pending, &dirs.legacy] {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(dir, e)),
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pending") {
                if let Some(j) = read_pointer(&p)? {
                    return Ok(Some(j));
                }
            }
        }
    }
    Ok(None)
}

fn read_pointer(p: &Path) -> Result<Option<PathBuf>> {
    let body = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(p, e)),
    };
    let dir =
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(body));
    let journal = dir.join(super::layout::JOURNAL_FILE);
    Ok(journal.exists().then_some(dir))
}

#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The lock keyed by the guarded file's canonical path, when there is one.
    keyed: Option<File>,
}

impl RunLock {
    /// Takes `path` and the host-wide lock of `guarded` (exit 6 if either is held).
    pub fn acquire_guarding(path: &Path, guarded: &Path) -> Result<RunLock> {
        let mut lock = Self::acquire(path)?;
        let keyed = global_dir().join(format!("{}.lock", file_key(guarded)?));
        lock.keyed = Some(lock_file(&keyed).map_err(|e| match e {
            Error::Locked { .. } => Error::Locked {
                path: PathBuf::from(format!(
                    "{} (a run of another config on {})",
                    keyed.display(),
                    guarded.display()
                )),
            },
            e => e,
        })?);
        Ok(lock)
    }

    /// Takes the lock or fails at once with [`Error::Locked`] (exit 6): a scheduler should not
    /// queue a second rotation behind a first.
    pub fn acquire(path: &Path) -> Result<RunLock> {
        Ok(RunLock {
            file: lock_file(path)?,
            path: path.to_path_buf(),
            keyed: None,
        })
    }

    /// True when some process holds the lock now (for `verify`; takes and drops it at once).
    pub fn is_held(path: &Path) -> Result<bool> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(path, e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(k) = &self.keyed {
            let _ = k.unlock();
        }
        let _ = self.file.unlock();
    }
}

/// Opens (creating 0600) and flocks `path`, or fails at once with [`Error::Locked`].
fn lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            })
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
    }
    // The holder's pid, for an operator looking at a lock: information only.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// Creates `dir` (and parents) 0700 when missing; the state dir holds the journal and backups.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_gets_exit_6_and_release_frees_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/lock");
        assert!(!RunLock::is_held(&p).unwrap());
        let first = RunLock::acquire(&p).unwrap();
        assert!(RunLock::is_held(&p).unwrap());
        let e = RunLock::acquire(&p).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::LOCKED);
        assert!(e.to_string().contains("lock"), "{e}");
        drop(first);
        assert!(!RunLock::is_held(&p).unwrap());
        RunLock::acquire(&p).unwrap();
    }

    /// A journal dir holding a journal, its pointer marked for `guarded` in `dirs`.
    /// A temp dir with a guarded compose.env and the pending/legacy dirs inside it.
    fn a_host() -> (tempfile::TempDir, PathBuf, Dirs) {
        let d = tempfile::tempdir().unwrap();
        let guarded = d.path().join("compose.env");
        std::fs::write(&guarded, b"X=1\n").unwrap();
        let dirs = Dirs {
            pending: d.path().join("var-lib/pending"),
            legacy: d.path().join("run-lock"),
        };
        (d, guarded, dirs)
    }

    fn pending_journal(root: &Path, dirs: &Dirs, guarded: &Path) -> PathBuf {
        let jd = root.join("state-a/journal");
        std::fs::create_dir_all(&jd).unwrap();
        std::fs::write(jd.join(super::super::layout::JOURNAL_FILE), b"{}").unwrap();
        mark_in(dirs, guarded, &jd).unwrap();
        jd
    }

    #[test]
    fn a_reboot_that_empties_the_lock_dir_keeps_the_pending_pointer() {
        let (d, guarded, dirs) = a_host();
        // The run also held its flocks in the lock dir.
        let _ = RunLock::acquire(&dirs.legacy.join("k.lock")).unwrap();
        let jd = pending_journal(d.path(), &dirs, &guarded);
        // Reboot: /run/lock is a tmpfs.
        std::fs::remove_dir_all(&dirs.legacy).unwrap();
        let other_config = d.path().join("state-b/journal");
        assert_eq!(
            elsewhere_in(&dirs, &guarded, &other_config).unwrap(),
            Some(jd.clone()),
            "another config on the same compose.env must still see the journal"
        );
        assert_eq!(
            any_in(&dirs).unwrap(),
            Some(jd.clone()),
            "mongo set-password must still see it"
        );
        // Cleared with the journal: nothing is pending any more.
        clear_in(&dirs, &guarded, &jd).unwrap();
        assert_eq!(any_in(&dirs).unwrap(), None);
    }

    #[test]
    fn pointers_an_older_build_left_in_the_lock_dir_are_still_read_and_cleared() {
        let (d, guarded, dirs) = a_host();
        let old_build = Dirs {
            pending: dirs.legacy.clone(),
            legacy: dirs.legacy.clone(),
        };
        let jd = pending_journal(d.path(), &old_build, &guarded);
        let other = d.path().join("state-b/journal");
        assert_eq!(
            elsewhere_in(&dirs, &guarded, &other).unwrap(),
            Some(jd.clone())
        );
        assert_eq!(any_in(&dirs).unwrap(), Some(jd.clone()));
        clear_in(&dirs, &guarded, &jd).unwrap();
        assert_eq!(any_in(&dirs).unwrap(), None);
    }

    #[test]
    fn the_pending_dir_is_persistent_by_default_and_follows_the_env() {
        // Only the defaults' shape: the env is process-wide, so no variable is set here.
        if std::env::var_os("KOMODO_ROTATE_PENDING_DIR").is_none()
            && std::env::var_os("KOMODO_ROTATE_LOCK_DIR").is_none()
        {
            assert_eq!(
                pending_dir(),
                PathBuf::from("/var/lib/komodo-rotate/pending")
            );
        }
        assert!(
            !pending_dir().starts_with("/run"),
            "{}",
            pending_dir().display()
        );
    }
}
