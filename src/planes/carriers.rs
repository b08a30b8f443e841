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
use super::run::{CarrierFile, RunContext, FORM_FILE, FORM_URI};
use crate::docker::carrier;
use crate::docker::uri;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::secret::Secret;
use crate::txn::{sealed, Step};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

/// Whether `value` (a container's env value of `key`) holds `want` in the key's form. A
/// `file`-form key holds a path; its file is checked by [`file_holds`].
pub fn holds(form: &str, key: &str, value: &Secret, want: &Secret) -> bool {
    match form {
        FORM_URI => uri::password(key, value).is_ok_and(|p| p.ct_eq(want)),
        FORM_FILE => true,
        _ => value.ct_eq(want),
    }
}

/// The password the host file of `f` holds now (trimmed as Komodo reads it).
pub fn file_value(f: &CarrierFile) -> std::result::Result<Secret, String> {
    let bytes = fsutil::read_small(&f.host_path)
        .map_err(|e| format!("{} ({}): {e}", f.host_path.display(), f.key))?;
    carrier::file_password(&f.key, f.content(), &bytes)
        .map_err(|e| format!("{}: {e}", f.host_path.display()))
}

/// Every carrier file of the run holds `want`; else one line naming each file that does not.
pub fn files_hold(ctx: &RunContext, want: &Secret, which: &str) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for f in &ctx.files {
        match file_value(f) {
            Ok(v) if v.ct_eq(want) => {}
            Ok(_) => problems.push(format!(
                "{} ({}) is not on the {which} value",
                f.host_path.display(),
                f.key
            )),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn stem(target: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(target.as_bytes()));
    format!("file-{}", &h[..16])
}

fn prev_path(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{}.prev.age", stem(target)))
}

fn written_path(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{}.written", stem(target)))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
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
        let path = &f.host_path;
        let now = fsutil::read_small(path).map_err(|e| Error::io(path, e))?;
        let holds_new = carrier::file_password(&f.key, f.content(), &now)
            .is_ok_and(|v| v.ct_eq(&self.staged.new));
        if holds_new {
            return Ok(());
        }
        let target = path.display().to_string();
        let prev = prev_path(&self.journal_dir, &target);
        let armored = sealed::seal(&now, &self.recipients(ctx)?)
            .map_err(|e| Error::Precondition(e.to_string()))?;
        // Once: on a replay the first copy is the original.
        match fsutil::write_new(&prev, armored.as_bytes(), 0o600) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&prev, e)),
        }
        let bytes = carrier::file_with_password(&f.key, f.content(), &now, &self.staged.new)
            .map_err(|e| Error::Precondition(format!("{target}: {e}")))?;
        // Recorded before the write, so an undo after a crash in between still knows.
        let w = written_path(&self.journal_dir, &target);
        fsutil::write_atomic(&w, sha256_hex(&bytes).as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&w, e))?;
        fsutil::write_atomic(path, &bytes, Mode::KeepOr0600).map_err(|e| Error::io(path, e))
    }

    /// write-file's undo: the sealed previous bytes back, only over what write-file wrote; then
    /// each running reader is restarted so it reads them.
    pub(super) async fn undo_write_file(&self, step: &Step, ctx: &RunContext) -> Result<()> {
        let f = the_file(step, ctx)?;
        let path = &f.host_path;
        let target = path.display().to_string();
        let prev = prev_path(&self.journal_dir, &target);
        let armored = match std::fs::read_to_string(&prev) {
            Ok(a) => a,
            // write-file never saved the old bytes, so it never wrote either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&prev, e)),
        };
        let old = sealed::open(&armored, self.ids)
            .map_err(|e| Error::Precondition(format!("{}: {e}", prev.display())))?;
        let now = fsutil::read_small(path).map_err(|e| Error::io(path, e))?;
        if now[..] != *old.expose_secret() {
            let w = written_path(&self.journal_dir, &target);
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
        }
        for name in &f.readers {
            // A reader started while the file held NEW keeps it in memory; a restart makes it
            // read the restored value (it may restart-loop until change-db is undone too).
            if let Some(c) = self.engine.try_inspect(name).await? {
                let running = c.state.and_then(|s| s.running).unwrap_or(false);
                if running {
                    self.engine.stop(name, 10).await?;
                    self.engine.start(name).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_compared_in_their_form() {
        let new = Secret::new("N3w".into());
        let k = "KOMODO_DATABASE_URI";
        let uri = Secret::new("mongodb://a:N3w@h/?x=1".into());
        assert!(holds(FORM_URI, k, &uri, &new));
        assert!(!holds("plain", k, &uri, &new));
        assert!(!holds(
            FORM_URI,
            k,
            &Secret::new("mongodb://a:old@h".into()),
            &new
        ));
        assert!(!holds(
            FORM_URI,
            k,
            &Secret::new("mongodb://h".into()),
            &new
        ));
        assert!(holds("plain", "P", &new, &new));
        assert!(holds(
            FORM_FILE,
            "P_FILE",
            &Secret::new("/run/x".into()),
            &new
        ));
    }

    #[test]
    fn files_hold_names_each_file_not_on_the_value() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, b"N3w\n").unwrap();
        let b = d.path().join("b");
        std::fs::write(&b, b"mongodb://u:old@h\n").unwrap();
        let file = |p: &Path, content: &str| CarrierFile {
            key: "K_FILE".into(),
            host_path: p.to_path_buf(),
            content: content.into(),
            readers: vec![],
        };
        let ctx = RunContext {
            files: vec![file(&a, "password"), file(&b, "uri")],
            ..Default::default()
        };
        let e = files_hold(&ctx, &Secret::new("N3w".into()), "new").unwrap_err();
        assert!(
            e.contains(&b.display().to_string()) && !e.contains(&a.display().to_string()),
            "{e}"
        );
        assert!(!e.contains("old@"), "{e}");
        std::fs::write(&b, b"mongodb://u:N3w@h\n").unwrap();
        files_hold(&ctx, &Secret::new("N3w".into()), "new").unwrap();
        std::fs::remove_file(&a).unwrap();
        assert!(files_hold(&ctx, &Secret::new("N3w".into()), "new").is_err());
    }
}
