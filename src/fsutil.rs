//! Atomic, durable file replacement. Every file the tool writes goes through here: a temp file in
//! the same directory (so `rename` is atomic), fsync, rename, fsync the directory (so the rename
//! itself survives a power cut). The temp file is created 0600 before any byte is written, so
//! secrets are never readable by others even for an instant.
//!
//! Replacing is faithful to the file it replaces: a symlink is followed and its target is
//! replaced (the link stays a link), the owner, group and mode are kept; where that is impossible
//! (a dangling link, an owner this process may not give away, several hard links) nothing is
//! written and the error says why.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How the final file's mode is chosen.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Keep the mode of the file being replaced; 0600 when it does not exist yet.
    KeepOr0600,
    /// Exactly this mode.
    Exactly(u32),
}

/// Replaces `path` with `contents` atomically (through a symlink: its target is replaced). On
/// error the original file is untouched and the temp file is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    write_atomic_checked(path, contents, mode, &mut |_| Ok(()))
}

/// [`write_atomic`], with `check` called on the file being replaced (the link's target) once the
/// temp file is complete and synced, right before the rename: its error stops the write (the
/// temp file removed, the file untouched). A writer uses it to refuse replacing bytes it did
/// not read (compare-and-swap), and tests to stop a run in the window.
pub fn write_atomic_checked(
    path: &Path,
    contents: &[u8],
    mode: Mode,
    check: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let target = resolve_link(path)?;
    let path = target.as_path();
    let dir = parent_dir(path);
    let existing = match fs::metadata(path) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(md) = &existing {
        if md.nlink() > 1 {
            return Err(io::Error::other(format!(
                "has {} hard links; replacing it would leave the other links with the old content",
                md.nlink()
            )));
        }
    }
    let final_mode = match (mode, &existing) {
        (Mode::Exactly(m), _) => m,
        (Mode::KeepOr0600, Some(md)) => md.permissions().mode() & 0o7777,
        (Mode::KeepOr0600, None) => 0o600,
    };
    let tmp = temp_path(path);
    let result = (|| {
        let f = new_temp(&tmp, contents)?;
        if let Some(md) = &existing {
            keep_owner(&f, md)?;
        }
        // After the chown, which may clear set-id bits.
        f.set_permissions(fs::Permissions::from_mode(final_mode))?;
        f.sync_all()?;
        drop(f);
        check(path)?;
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The file a write to `path` must replace: `path` itself, or the final target when `path` is a
/// symlink. A dangling symlink is refused (replacing it would turn the link into a plain file).
pub fn resolve_link(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => fs::canonicalize(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("is a symlink whose target cannot be resolved ({e}); refusing to replace the link"),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// Gives the temp file the owner and group of the file it replaces. Refused (not silently
/// dropped) when this process may not: the replaced file would change hands otherwise.
fn keep_owner(f: &File, md: &fs::Metadata) -> io::Result<()> {
    let (uid, gid) = (md.uid(), md.gid());
    let mine = f.metadata()?;
    if mine.uid() == uid && mine.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot keep its owner {uid}:{gid} ({e}); run as that user or as root, nothing was written"
            ),
        )
    })
}

/// Our processes' advisory lock on one compose.env: an exclusive `flock` on the directory that
/// holds its real file (symlink resolved). The file itself is replaced by rename on every write,
/// so its inode cannot carry a lock across a write; its directory's inode can. Held by write-env
/// (and its undo) and by `komodo-rotate sops set|encrypt -i|rotate-data-key`, so two of our
/// processes never interleave on the file. Released on drop (or by the kernel on death).
#[derive(Debug)]
pub struct EnvLock {
    dir: File,
}

/// How long [`EnvLock::acquire`] waits for another of our processes to finish its write.
pub const ENV_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl EnvLock {
    pub fn acquire(path: &Path, wait: std::time::Duration) -> io::Result<EnvLock> {
        let dir = parent_dir(&resolve_link(path)?);
        let f = File::open(&dir)?;
        let t0 = std::time::Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(EnvLock { dir: f }),
                Err(fs::TryLockError::WouldBlock) if t0.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "another komodo-rotate process is writing here (lock on {} held for over {} s)",
                            dir.display(),
                            wait.as_secs()
                        ),
                    ))
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        let _ = self.dir.unlock();
    }
}

/// The largest carrier file [`read_small`] reads (a password or a connection URI, not data).
pub const MAX_SMALL_FILE: u64 = 64 * 1024;

/// Reads a small file that may hold a secret into a zeroing buffer (no stale copy: the buffer is
/// sized from the file's length once). A file over [`MAX_SMALL_FILE`] or not a regular file is
/// refused.
pub fn read_small(path: &Path) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    if md.len() > MAX_SMALL_FILE {
        return Err(io::Error::other(format!(
            "is larger than {MAX_SMALL_FILE} bytes; not a secret file"
        )));
    }
    let mut buf = zeroize::Zeroizing::new(vec![0u8; md.len() as usize + 1]);
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if n == buf.len() {
        return Err(io::Error::other("grew while it was read"));
    }
    buf.truncate(n);
    Ok(buf)
}

/// A new 0600 temp file at `tmp` holding `contents` (never an existing file).
fn new_temp(tmp: &Path, contents: &[u8]) -> io::Result<fs::File> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(contents)?;
    Ok(f)
}

/// Creates `path` with `contents`, refusing to overwrite anything that exists (also atomically:
/// a reader never sees a half-written file).
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path(path);
    let result = (|| {
        let f = new_temp(&tmp, contents)?;
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
    let refuse = |m: String| crate::Error::Precondition(format!("{}: {m}", path.display()));
    let target = resolve_link(path).map_err(|e| refuse(e.to_string()))?;
    let existing = match fs::metadata(&target) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(refuse(e.to_string())),
    };
    if let Some(md) = existing.as_ref().filter(|md| md.nlink() > 1) {
        return Err(refuse(format!(
            "has {} hard links; replacing it would leave the other links with the old content",
            md.nlink()
        )));
    }
    let tmp = temp_path(&target);
    let r = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| {
            crate::Error::Precondition(format!(
                "{} is not writable: {e}",
                parent_dir(&target).display()
            ))
        })
        .and_then(|f| match &existing {
            Some(md) => keep_owner(&f, md).map_err(|e| refuse(e.to_string())),
            None => Ok(()),
        });
    let _ = fs::remove_file(&tmp);
    r
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
    let mut rnd = [0u8; TEMP_RANDOM_BYTES];
    let _ = getrandom::fill(&mut rnd);
    parent_dir(path).join(format!(".{}.{}.tmp", file_name(path), hex::encode(rnd)))
}

const TEMP_RANDOM_BYTES: usize = 6;

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The temp files a write to `path` (through its link) left beside it when it was killed before
/// its rename (`.<name>.<12 hex>.tmp`). Each holds what was being written: for a secret file,
/// the secret in plaintext. None when the directory cannot be read.
pub fn leftover_temps(path: &Path) -> Vec<PathBuf> {
    let target = resolve_link(path).unwrap_or_else(|_| path.to_path_buf());
    let prefix = format!(".{}.", file_name(&target));
    let mut out: Vec<PathBuf> = fs::read_dir(parent_dir(&target))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|h| {
                    h.len() == 2 * TEMP_RANDOM_BYTES && h.bytes().all(|b| b.is_ascii_hexdigit())
                })
                && e.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
#[path = "fsutil_tests.rs"]
mod tests;
