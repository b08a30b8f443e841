//! The `write-env` step and the compose.env backups: compose.env's keys set with a
//! compare-and-swap (the bytes read are the bytes replaced, checked right before the rename),
//! the replaced bytes kept in the journal dir (one file per phase) and as a ciphertext backup in
//! `state_dir/backups/<deployment>`, pruned to `[backups] keep`; the undo restores only over
//! exactly the bytes write-env wrote.

use super::context::{sha256_hex, written_file, LivePlanes, PREV_ENV_FILE};
use super::run::RunContext;
use super::value::eval_set;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::sops::{write_verified_checked, SopsFile};
use crate::txn::failpoint::failpoint;
use crate::txn::Step;
use std::path::{Path, PathBuf};

impl LivePlanes<'_> {
    /// Sets the step's keys (no `set`: the run's key to NEW) in compose.env. Already there: done.
    pub(super) fn write_env(&self, step: &Step, ctx: &RunContext, run_id: &str) -> Result<()> {
        let path = &ctx.compose_env;
        let values = if step.set.is_empty() {
            vec![(ctx.env_key.clone(), self.staged.new.clone())]
        } else {
            eval_set(&step.set, &self.staged)?
        };
        let _lock = env_lock(path)?;
        let file = SopsFile::load(path)?;
        let plain = file.decrypt(self.ids)?;
        if values
            .iter()
            .all(|(k, v)| plain.get(k).is_some_and(|now| now.ct_eq(v)))
        {
            return Ok(());
        }
        let prev = self.journal_dir.join(prev_file(step));
        let saved_now = keep_previous(&prev, file.bytes())?;
        keep_backup(self.cfg, run_id, file.bytes())?;
        let pairs: Vec<(&str, &crate::secret::Secret)> =
            values.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let bytes = file.with_values(self.ids, &pairs)?;
        // Recorded before the write, so an undo after a crash in between still knows.
        let w = self.journal_dir.join(written_file(step));
        fsutil::write_atomic(&w, sha256_hex(&bytes).as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&w, e))?;
        // Compare-and-swap: the file must still hold the bytes read above, right before the
        // rename. `sops set` takes no lock of ours; its edit made meanwhile is never replaced.
        let mut changed = false;
        let r = write_verified_checked(path, &bytes, self.ids, &mut |at| {
            failpoint("write-env:before-rename").map_err(std::io::Error::other)?;
            if std::fs::read(at)? != file.bytes() {
                changed = true;
                return Err(std::io::Error::other(
                    "changed since write-env read it (an edit made meanwhile, e.g. `sops set`): not replaced, the edit is kept",
                ));
            }
            Ok(())
        });
        if let Err(e) = r {
            if changed {
                // Nothing of ours reached the file: its undo has nothing to put back.
                let _ = std::fs::remove_file(&w);
                if saved_now {
                    let _ = std::fs::remove_file(&prev);
                }
            }
            return Err(e.into());
        }
        prune_backups(self.cfg);
        Ok(())
    }
}

/// Where write-env keeps the bytes it replaced: one file per phase, so each phase's undo
/// returns to the state before that phase.
pub(super) fn prev_file(step: &Step) -> String {
    match &step.phase {
        Some(p) => format!("{PREV_ENV_FILE}.{p}"),
        None => PREV_ENV_FILE.into(),
    }
}

fn env_lock(path: &Path) -> Result<fsutil::EnvLock> {
    fsutil::EnvLock::acquire(path, fsutil::ENV_LOCK_WAIT).map_err(|e| Error::io(path, e))
}

/// Puts compose.env's previous bytes back, but only over exactly the bytes write-env wrote: an
/// edit made meanwhile (another key changed with `sops set`) is never clobbered; the undo fails
/// instead, naming the file, and the rollback stops (exit 5).
pub fn undo_write_env(prev: &Path, w: &Path, path: &Path) -> Result<()> {
    let old = match std::fs::read(prev) {
        Ok(b) => b,
        // write-env never saved the old bytes, so it never wrote either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(prev, e)),
    };
    let _lock = env_lock(path)?;
    let now = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if now == old {
        return Ok(());
    }
    let written = match std::fs::read_to_string(w) {
        Ok(h) => Some(h),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(w, e)),
    };
    if written.is_some_and(|h| h.trim() == sha256_hex(&now)) {
        return fsutil::write_atomic(path, &old, Mode::KeepOr0600).map_err(|e| Error::io(path, e));
    }
    Err(Error::Precondition(format!(
        "{} changed under the run (it holds neither the original bytes nor what write-env wrote): not restored, so the edit made meanwhile is kept; the original is in {}",
        path.display(),
        prev.display()
    )))
}

/// Saves the bytes write-env replaces, once: on a replay the first copy is the original.
/// Whether this call saved them.
fn keep_previous(path: &Path, bytes: &[u8]) -> Result<bool> {
    match fsutil::write_new(path, bytes, 0o600) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The backups in `state_dir/backups/`, oldest first (their names sort by run id, i.e. by time).
pub fn backups(cfg: &Config) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cfg.backup_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("compose.env."))
        })
        .collect();
    v.sort();
    v
}

/// Keeps the newest `[backups] keep` backups and deletes the rest: each one holds an old
/// password readable by every recipient ever listed. Cleanup only: a failure is a warning.
pub fn prune_backups(cfg: &Config) {
    let all = backups(cfg);
    let excess = all.len().saturating_sub(cfg.backups.keep);
    for p in &all[..excess] {
        if let Err(e) = std::fs::remove_file(p) {
            eprintln!(
                "komodo-rotate: warning: cannot remove old backup {}: {e}",
                p.display()
            );
        }
    }
}

/// A copy of the replaced ciphertext in `state_dir/backups/`, for the rescue ladder. It is
/// ciphertext, so keeping it does not widen who can read the secret.
fn keep_backup(cfg: &Config, run_id: &str, bytes: &[u8]) -> Result<()> {
    let dir = cfg.backup_dir();
    crate::txn::lock::ensure_private_dir(&dir)?;
    let p = dir.join(format!("compose.env.{run_id}"));
    match fsutil::write_new(&p, bytes, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planes::context::WRITTEN_ENV_FILE;
    use crate::planes::steps;

    /// A journal dir and a compose.env where write-env replaced `ORIG` with `WROTE`.
    fn after_write_env() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let jd = d.path().join("journal");
        std::fs::create_dir(&jd).unwrap();
        let env = d.path().join("compose.env");
        keep_previous(&jd.join(PREV_ENV_FILE), b"ORIG").unwrap();
        std::fs::write(jd.join(WRITTEN_ENV_FILE), sha256_hex(b"WROTE")).unwrap();
        std::fs::write(&env, b"WROTE").unwrap();
        (d, jd, env)
    }

    #[test]
    fn undo_restores_over_exactly_what_write_env_wrote() {
        let (_d, jd, env) = after_write_env();
        undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
        // Idempotent: a replayed undo finds the original and changes nothing.
        undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
    }

    #[test]
    fn undo_never_clobbers_an_edit_made_meanwhile() {
        let (_d, jd, env) = after_write_env();
        std::fs::write(&env, b"WROTE+another key set by sops").unwrap();
        let e =
            undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).unwrap_err();
        assert!(e.to_string().contains(&env.display().to_string()), "{e}");
        assert!(e.to_string().contains("changed under the run"), "{e}");
        assert_eq!(
            std::fs::read(&env).unwrap(),
            b"WROTE+another key set by sops"
        );
        // Without a record of what was written, a difference is an edit too.
        std::fs::remove_file(jd.join(WRITTEN_ENV_FILE)).unwrap();
        std::fs::write(&env, b"WROTE").unwrap();
        assert!(undo_write_env(&jd.join(PREV_ENV_FILE), &jd.join(WRITTEN_ENV_FILE), &env).is_err());
        assert_eq!(std::fs::read(&env).unwrap(), b"WROTE");
    }

    /// A two-phase plan writes compose.env twice; each phase keeps its own saved bytes, so undoing
    /// the newer phase returns to the older phase's file, and undoing that one to the original.
    #[test]
    fn each_phase_undoes_to_the_state_before_it() {
        let d = tempfile::tempdir().unwrap();
        let jd = d.path();
        let env = d.path().join("compose.env");
        let one = Step::new(steps::WRITE_ENV).in_phase(Some("one"));
        let two = Step::new(steps::WRITE_ENV).in_phase(Some("two"));
        assert_ne!(prev_file(&one), prev_file(&two));
        assert_eq!(prev_file(&steps::write_env()), PREV_ENV_FILE);
        for (step, before, after) in [(&one, "ORIG", "P1"), (&two, "P1", "P2")] {
            keep_previous(&jd.join(prev_file(step)), before.as_bytes()).unwrap();
            std::fs::write(jd.join(written_file(step)), sha256_hex(after.as_bytes())).unwrap();
        }
        std::fs::write(&env, b"P2").unwrap();
        let undo =
            |s: &Step| undo_write_env(&jd.join(prev_file(s)), &jd.join(written_file(s)), &env);
        undo(&two).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"P1");
        undo(&one).unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"ORIG");
    }

    #[test]
    fn undo_without_saved_bytes_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("compose.env");
        std::fs::write(&env, b"SOMETHING").unwrap();
        undo_write_env(
            &d.path().join(PREV_ENV_FILE),
            &d.path().join(WRITTEN_ENV_FILE),
            &env,
        )
        .unwrap();
        assert_eq!(std::fs::read(&env).unwrap(), b"SOMETHING");
    }

    #[test]
    fn prune_keeps_the_newest_backups_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("compose.env"), b"x").unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(
            &p,
            "compose_env = \"compose.env\"\nstate_dir = \"state\"\n[backups]\nkeep = 2\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&p)).unwrap();
        let dir = cfg.backup_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for id in [
            "20260101T000000Z-aa",
            "20260301T000000Z-cc",
            "20260201T000000Z-bb",
        ] {
            std::fs::write(dir.join(format!("compose.env.{id}")), b"old").unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"not a backup").unwrap();
        prune_backups(&cfg);
        let left: Vec<String> = backups(&cfg)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                "compose.env.20260201T000000Z-bb",
                "compose.env.20260301T000000Z-cc"
            ]
        );
        assert!(dir.join("notes.txt").exists());
    }
}
