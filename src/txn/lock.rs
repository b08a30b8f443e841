//! The run lock: one `flock` on `state_dir/lock`. The kernel drops it when the process dies, so a
//! SIGKILLed run never leaves a stale lock behind (the journal, not the lock, records that a run
//! was interrupted).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once with [`Error::Locked`] (exit 6): a scheduler should not
    /// queue a second rotation behind a first.
    pub fn acquire(path: &Path) -> Result<RunLock> {
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
        Ok(RunLock {
            file,
            path: path.to_path_buf(),
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
        let _ = self.file.unlock();
    }
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
}
