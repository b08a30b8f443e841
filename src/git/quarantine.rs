//! Moving untracked files out of a pull's way without deleting anything: each file goes to
//! `<root>/<relative path>` (every directory created 0700), by `rename` when on the same
//! filesystem, else by copy + fsync + byte comparison + removal of the original. `restore` puts
//! them back when the pull that needed the room fails after all.

use super::GitError;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One file moved: where it was, where it is now.
#[derive(Debug, Clone)]
pub struct Moved {
    pub from: PathBuf,
    pub to: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates every missing directory from `base` down to `dir`, each 0700.
fn private_dirs(dir: &Path) -> Result<(), GitError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        fs::DirBuilder::new().mode(0o700).create(d).map_err(io(d))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(io(d))?;
    }
    Ok(())
}

/// Moves `worktree/rel` to `root/rel`. Refuses to overwrite anything at the destination.
pub fn move_one(worktree: &Path, rel: &str, root: &Path) -> Result<Moved, GitError> {
    let from = worktree.join(rel);
    let to = root.join(rel);
    if to.symlink_metadata().is_ok() {
        return Err(GitError::Refused(format!(
            "{} already exists; nothing moved over it",
            to.display()
        )));
    }
    private_dirs(to.parent().unwrap_or(root))?;
    match fs::rename(&from, &to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_then_remove(&from, &to)?,
        Err(e) => return Err(io(&from)(e)),
    }
    if let Some(p) = to.parent() {
        crate::fsutil::sync_dir(p).map_err(io(p))?;
    }
    if let Some(p) = from.parent() {
        crate::fsutil::sync_dir(p).map_err(io(p))?;
    }
    Ok(Moved { from, to })
}

fn copy_then_remove(from: &Path, to: &Path) -> Result<(), GitError> {
    let bytes = fs::read(from).map_err(io(from))?;
    let mode = fs::symlink_metadata(from)
        .map_err(io(from))?
        .permissions()
        .mode()
        & 0o7777;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(to))?;
    f.write_all(&bytes).map_err(io(to))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(to))?;
    f.sync_all().map_err(io(to))?;
    drop(f);
    if fs::read(to).map_err(io(to))? != bytes {
        let _ = fs::remove_file(to);
        return Err(GitError::Refused(format!(
            "copy of {} to {} did not read back identical; original kept",
            from.display(),
            to.display()
        )));
    }
    fs::remove_file(from).map_err(io(from))
}

/// Puts moved files back where they were (directories are recreated as needed). Returns the
/// files that could not be restored, with the reason.
pub fn restore(moved: &[Moved]) -> Vec<(PathBuf, String)> {
    let mut failed = Vec::new();
    for m in moved.iter().rev() {
        let r = (|| -> Result<(), GitError> {
            if m.from.symlink_metadata().is_ok() {
                return Err(GitError::Refused(format!(
                    "{} exists again; quarantined copy left at {}",
                    m.from.display(),
                    m.to.display()
                )));
            }
            if let Some(p) = m.from.parent() {
                fs::create_dir_all(p).map_err(io(p))?;
            }
            match fs::rename(&m.to, &m.from) {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_then_remove(&m.to, &m.from),
                Err(e) => Err(io(&m.to)(e)),
            }
        })();
        if let Err(e) = r {
            failed.push((m.from.clone(), e.to_string()));
        }
    }
    failed
}
