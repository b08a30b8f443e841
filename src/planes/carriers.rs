//! The carrier side of the steps: how a container key in `uri` or `file` form holds a value,
//! and the `write-file` step that rewrites a carrier file on the host.
//!
//! write-file: reads the file, keeps its previous bytes SEALED in the journal dir (age, to the
//! compose.env recipients like the snapshots: never plaintext), records the SHA-256 of what it
//! writes, then replaces the file atomically keeping owner, group and mode. Its undo restores
//! the previous bytes only over exactly what it wrote (an edit made meanwhile is kept and the
//! undo fails, naming the file), then restarts every running reader so none keeps the value it
//! read at start.

use super::context::LivePlanes;
use super::layout::{carrier_prev as prev_path, carrier_written as written_path, sha256_hex};
use super::run::{CarrierFile, RunContext};
use crate::docker::carrier;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::secret::Secret;
use crate::sops::Identities;
use crate::txn::{sealed, Step};
use secrecy::ExposeSecret;
use std::path::Path;

/// The password the host file of `f` holds now (trimmed as Komodo reads it).
pub fn file_value(f: &CarrierFile) -> std::result::Result<Secret, String> {
    let bytes = fsutil::read_small(&f.host_path)
        .map_err(|e| format!("{} ({}): {e}", f.host_path.display(), f.key))?;
    carrier::file_password(&f.key, f.content(), &bytes)
        .map_err(|e| format!("{}: {e}", f.host_path.display()))
}

fn the_file<'c>(step: &Step, ctx: &'c RunContext) -> Result<&'c CarrierFile> {
    let target = step.target.as_deref().unwrap_or_default();
    ctx.file(target).ok_or_else(|| {
        Error::Precondition(format!(
            "write-file {target}: the journal's context names no such carrier file"
        ))
    })
}

impl LivePlanes<'_> {
    /// write-file: the file to NEW. Already NEW: done (so resume can replay it).
    pub(super) fn write_file(&self, step: &Step, ctx: &RunContext) -> Result<()> {
        let f = the_file(step, ctx)?;
        write_file_at(
            f,
            &self.journal_dir,
            &self.recipients(ctx)?,
            &self.staged.new,
        )
    }

    /// write-file's undo: the sealed previous bytes back, only over what write-file wrote; then
    /// each running reader is restarted so it reads them.
    pub(super) async fn undo_write_file(&self, step: &Step, ctx: &RunContext) -> Result<()> {
        let f = the_file(step, ctx)?;
        if !restore_file_at(f, &self.journal_dir, self.ids)? {
            return Ok(());
        }
        for name in &f.readers {
            // A reader started while the file held NEW keeps it in memory; a restart makes it
            // read the restored value (it may restart-loop until change-db is undone too).
            if let Some(c) = self.engine.try_inspect(name).await? {
                if c.state.and_then(|s| s.running).unwrap_or(false) {
                    self.engine.stop(name, 10).await?;
                    self.engine.start(name).await?;
                }
            }
        }
        Ok(())
    }
}

/// Replaces the carrier file of `f` so it holds `new`: the previous bytes sealed to
/// `recipients` in `journal_dir` first (once: a replay keeps the original), the hash of the new
/// bytes recorded, then the atomic replace keeping owner, group and mode.
pub(super) fn write_file_at(
    f: &CarrierFile,
    journal_dir: &Path,
    recipients: &[String],
    new: &Secret,
) -> Result<()> {
    let path = &f.host_path;
    let now = fsutil::read_small(path).map_err(|e| Error::io(path, e))?;
    if carrier::file_password(&f.key, f.content(), &now).is_ok_and(|v| v.ct_eq(new)) {
        return Ok(());
    }
    let target = path.display().to_string();
    let prev = prev_path(journal_dir, &target);
    let armored = sealed::seal(&now, recipients).map_err(|e| Error::Precondition(e.to_string()))?;
    let saved_now = match fsutil::write_new(&prev, armored.as_bytes(), 0o600) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io(&prev, e)),
    };
    let bytes = carrier::file_with_password(&f.key, f.content(), &now, new)
        .map_err(|e| Error::Precondition(format!("{target}: {e}")))?;
    // Recorded before the write, so an undo after a crash in between still knows.
    let w = written_path(journal_dir, &target);
    fsutil::write_atomic(&w, sha256_hex(&bytes).as_bytes(), Mode::Exactly(0o600))
        .map_err(|e| Error::io(&w, e))?;
    // As write-env: only over the bytes read above (and a failpoint in the window, for tests).
    let mut changed = false;
    let r = fsutil::write_atomic_checked(path, &bytes, Mode::KeepOr0600, &mut |at| {
        crate::txn::failpoint::failpoint("write-file:before-rename")
            .map_err(std::io::Error::other)?;
        if fsutil::read_small(at)?[..] != now[..] {
            changed = true;
            return Err(std::io::Error::other(
                "changed since write-file read it: not replaced, the edit is kept",
            ));
        }
        Ok(())
    });
    if r.is_err() && changed {
        // Nothing of ours reached the file: its undo has nothing to put back.
        let _ = std::fs::remove_file(&w);
        if saved_now {
            let _ = std::fs::remove_file(&prev);
        }
    }
    r.map_err(|e| Error::io(path, e))
}

/// Puts the sealed previous bytes of `f` back, only over exactly what write-file wrote. Returns
/// whether write-file had started on it (a previous copy exists). An edit made meanwhile is
/// kept and named in the error.
pub(super) fn restore_file_at(
    f: &CarrierFile,
    journal_dir: &Path,
    ids: &Identities,
) -> Result<bool> {
    let path = &f.host_path;
    let target = path.display().to_string();
    let prev = prev_path(journal_dir, &target);
    let armored = match std::fs::read_to_string(&prev) {
        Ok(a) => a,
        // write-file never saved the old bytes, so it never wrote either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&prev, e)),
    };
    let old = sealed::open(&armored, ids)
        .map_err(|e| Error::Precondition(format!("{}: {e}", prev.display())))?;
    let now = fsutil::read_small(path).map_err(|e| Error::io(path, e))?;
    if now[..] == *old.expose_secret() {
        return Ok(true);
    }
    let w = written_path(journal_dir, &target);
    let written = match std::fs::read_to_string(&w) {
        Ok(h) => Some(h),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&w, e)),
    };
    if written.is_none_or(|h| h.trim() != sha256_hex(&now)) {
        return Err(Error::Precondition(format!(
            "{target} ({}) changed under the run (it holds neither the original bytes nor what write-file wrote): not restored, so the edit made meanwhile is kept; the original is sealed in {}",
            f.key,
            prev.display()
        )));
    }
    fsutil::write_atomic(path, old.expose_secret(), Mode::KeepOr0600)
        .map_err(|e| Error::io(path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Fx {
        _d: tempfile::TempDir,
        jd: PathBuf,
        file: CarrierFile,
        ids: Identities,
        recipients: Vec<String>,
    }

    fn fx(body: &[u8]) -> Fx {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let jd = d.path().join("journal");
        std::fs::create_dir(&jd).unwrap();
        let id = age::x25519::Identity::generate();
        let key = d.path().join("age.key");
        std::fs::write(&key, id.to_string().expose_secret().as_bytes()).unwrap();
        let host = d.path().join("db_password");
        std::fs::write(&host, body).unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o640)).unwrap();
        Fx {
            jd,
            file: CarrierFile {
                key: "KOMODO_DATABASE_PASSWORD_FILE".into(),
                host_path: host,
                content: "password".into(),
                readers: vec!["core".into()],
            },
            ids: Identities::from_key_file(&key).unwrap(),
            recipients: vec![id.to_public().to_string()],
            _d: d,
        }
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn write_file_seals_the_old_bytes_and_its_undo_restores_them() {
        let x = fx(b"OLD-pw-0123456789\n");
        let new = Secret::new("NEW-pw-9876543210".into());
        write_file_at(&x.file, &x.jd, &x.recipients, &new).unwrap();
        assert_eq!(
            std::fs::read(&x.file.host_path).unwrap(),
            b"NEW-pw-9876543210\n"
        );
        assert_eq!(mode(&x.file.host_path), 0o640);
        // Replayed (resume): nothing changes, the sealed original stays the original.
        write_file_at(&x.file, &x.jd, &x.recipients, &new).unwrap();
        // Never plaintext in the journal dir.
        for e in std::fs::read_dir(&x.jd).unwrap() {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            assert!(!b.windows(6).any(|w| w == b"OLD-pw"), "{}", p.display());
            assert!(!b.windows(6).any(|w| w == b"NEW-pw"), "{}", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        assert!(restore_file_at(&x.file, &x.jd, &x.ids).unwrap());
        assert_eq!(
            std::fs::read(&x.file.host_path).unwrap(),
            b"OLD-pw-0123456789\n"
        );
        assert_eq!(mode(&x.file.host_path), 0o640);
        // Idempotent.
        assert!(restore_file_at(&x.file, &x.jd, &x.ids).unwrap());
        assert_eq!(
            std::fs::read(&x.file.host_path).unwrap(),
            b"OLD-pw-0123456789\n"
        );
    }

    #[test]
    fn write_file_undo_never_clobbers_an_edit_made_meanwhile() {
        let x = fx(b"OLD-pw-0123456789\n");
        let new = Secret::new("NEW-pw-9876543210".into());
        write_file_at(&x.file, &x.jd, &x.recipients, &new).unwrap();
        std::fs::write(&x.file.host_path, b"edited by the operator\n").unwrap();
        let e = restore_file_at(&x.file, &x.jd, &x.ids)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&x.file.host_path.display().to_string()), "{e}");
        assert!(e.contains("changed under the run"), "{e}");
        assert!(!e.contains("OLD-pw") && !e.contains("NEW-pw"), "{e}");
        assert_eq!(
            std::fs::read(&x.file.host_path).unwrap(),
            b"edited by the operator\n"
        );
    }

    #[test]
    fn write_file_on_a_file_already_new_or_never_started_changes_nothing() {
        let x = fx(b"NEW-pw-9876543210\n");
        let new = Secret::new("NEW-pw-9876543210".into());
        write_file_at(&x.file, &x.jd, &x.recipients, &new).unwrap();
        assert_eq!(std::fs::read_dir(&x.jd).unwrap().count(), 0);
        assert!(!restore_file_at(&x.file, &x.jd, &x.ids).unwrap());
        assert_eq!(
            std::fs::read(&x.file.host_path).unwrap(),
            b"NEW-pw-9876543210\n"
        );
    }
}
