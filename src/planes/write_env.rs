//! The `write-env` step and the compose.env backups: compose.env's keys set with a
//! compare-and-swap (the bytes read are the bytes replaced, checked right before the rename),
//! the replaced bytes kept in the journal dir (one file per phase) and as a ciphertext backup in
//! `state_dir/backups/<deployment>`, pruned to `[backups] keep`. The undo puts the saved bytes
//! back over exactly the bytes write-env wrote; over anything else (an edit made since) it sets
//! only the step's keys back to their old values on top of the file as it is (`inverse`).

use super::context::LivePlanes;
use super::inverse;
#[cfg(test)]
use super::layout::PREV_ENV_FILE;
use super::layout::{prev_file, sha256_hex, written_file};
use super::run::RunContext;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::sops::{write_verified_checked, Identities, SopsFile};
use crate::txn::failpoint::failpoint;
use crate::txn::Step;
use std::path::{Path, PathBuf};

impl LivePlanes<'_> {
    /// Sets the step's keys (no `set`: the run's key to NEW) in compose.env. Already there: done.
    pub(super) fn write_env(&self, step: &Step, ctx: &RunContext, run_id: &str) -> Result<()> {
        let path = &ctx.compose_env;
        let values = inverse::step_values(step, ctx, &self.staged)?;
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

fn env_lock(path: &Path) -> Result<fsutil::EnvLock> {
    fsutil::EnvLock::acquire(path, fsutil::ENV_LOCK_WAIT).map_err(|e| Error::io(path, e))
}

/// The undo of write-env `step`. compose.env holding the bytes write-env replaced: done. Holding
/// exactly what it wrote: those bytes are put back. Holding anything else (an edit made since:
/// another key set with `sops set`, committed or not): the step's keys are set back to their old
/// values on top of the file as it is, every other edit kept; a run key someone else changed is a
/// conflict, the undo fails naming the file and the key (exit 5), the edit kept. A set-back is
/// told to the operator and kept for the audit record (`kept`).
pub fn undo_write_env(
    step: &Step,
    ctx: &RunContext,
    staged: &super::value::Staged,
    ids: &Identities,
    journal_dir: &Path,
    kept: &inverse::KeptEdits,
) -> Result<()> {
    let prev = journal_dir.join(prev_file(step));
    let path = &ctx.compose_env;
    let old = match std::fs::read(&prev) {
        Ok(b) => b,
        // write-env never saved the old bytes, so it never wrote either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&prev, e)),
    };
    let _lock = env_lock(path)?;
    let now = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if now == old {
        return Ok(());
    }
    if super::context::wrote_exactly(journal_dir, step, &now)? {
        return fsutil::write_atomic(path, &old, Mode::KeepOr0600).map_err(|e| Error::io(path, e));
    }
    let Some(edit) = inverse::of_step(step, ctx, staged, ids, &prev)? else {
        return Ok(());
    };
    inverse::set_back(path, ids, &edit)
        .map(|done| {
            if let Some(e) = done {
                kept.note(e);
            }
        })
        .map_err(|e| match e {
            Error::Precondition(m) => {
                Error::Precondition(format!("{m}; the original is in {}", prev.display()))
            }
            e => e,
        })
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

    use crate::planes::value::Staged;
    use crate::secret::Secret;
    use crate::sops::encrypt_new;
    use secrecy::ExposeSecret;

    struct Fix {
        _d: tempfile::TempDir,
        jd: PathBuf,
        ctx: RunContext,
        ids: Identities,
        recipient: String,
        staged: Staged,
        kept: inverse::KeptEdits,
    }

    impl Fix {
        fn new() -> Fix {
            let d = tempfile::tempdir().unwrap();
            let jd = d.path().join("journal");
            std::fs::create_dir(&jd).unwrap();
            let id = age::x25519::Identity::generate();
            let recipient = id.to_public().to_string();
            let ids = Identities::from_key_text(id.to_string().expose_secret(), "t").unwrap();
            let ctx = RunContext {
                compose_env: d.path().join("compose.env"),
                env_key: "KOMODO_JWT_SECRET".into(),
                ..RunContext::default()
            };
            let staged = Staged {
                old: Secret::new("OLD-jwt".into()),
                new: Secret::new("NEW-jwt".into()),
            };
            Fix {
                _d: d,
                jd,
                ctx,
                ids,
                recipient,
                staged,
                kept: Default::default(),
            }
        }
        fn enc(&self, plain: &str) -> Vec<u8> {
            encrypt_new(plain.as_bytes(), std::slice::from_ref(&self.recipient)).unwrap()
        }
        /// write-env replaced `before` with `wrote` (as write-env records it).
        fn wrote(&self, before: &[u8], wrote: &[u8]) {
            keep_previous(&self.jd.join(PREV_ENV_FILE), before).unwrap();
            std::fs::write(self.jd.join(WRITTEN_ENV_FILE), sha256_hex(wrote)).unwrap();
            std::fs::write(&self.ctx.compose_env, wrote).unwrap();
        }
        fn undo(&self) -> Result<()> {
            undo_write_env(
                &steps::write_env(),
                &self.ctx,
                &self.staged,
                &self.ids,
                &self.jd,
                &self.kept,
            )
        }
        fn get(&self, k: &str) -> Option<String> {
            SopsFile::load(&self.ctx.compose_env)
                .unwrap()
                .decrypt(&self.ids)
                .unwrap()
                .get(k)
                .map(|v| v.expose().to_string())
        }
    }

    #[test]
    fn undo_restores_over_exactly_what_write_env_wrote() {
        let f = Fix::new();
        f.wrote(b"ORIG", b"WROTE");
        f.undo().unwrap();
        assert_eq!(std::fs::read(&f.ctx.compose_env).unwrap(), b"ORIG");
        // Idempotent: a replayed undo finds the original and changes nothing.
        f.undo().unwrap();
        assert_eq!(std::fs::read(&f.ctx.compose_env).unwrap(), b"ORIG");
    }

    /// Issue 18: a colleague's `sops set` of another key landed after write-env (committed or
    /// not). The undo sets only the run's key back on top of their edit, which stays.
    #[test]
    fn undo_sets_the_run_key_back_over_an_edit_made_meanwhile_and_keeps_it() {
        let f = Fix::new();
        let orig = f.enc("KOMODO_TITLE=t0\nKOMODO_JWT_SECRET=OLD-jwt\n");
        let wrote = f.enc("KOMODO_TITLE=t0\nKOMODO_JWT_SECRET=NEW-jwt\n");
        f.wrote(&orig, &wrote);
        let theirs = f.enc("KOMODO_TITLE=theirs\nKOMODO_JWT_SECRET=NEW-jwt\nADDED=x\n");
        std::fs::write(&f.ctx.compose_env, &theirs).unwrap();
        f.undo().unwrap();
        assert_eq!(f.get("KOMODO_JWT_SECRET").as_deref(), Some("OLD-jwt"));
        assert_eq!(f.get("KOMODO_TITLE").as_deref(), Some("theirs"));
        assert_eq!(f.get("ADDED").as_deref(), Some("x"));
        let bytes = std::fs::read(&f.ctx.compose_env).unwrap();
        f.undo().unwrap();
        assert_eq!(
            std::fs::read(&f.ctx.compose_env).unwrap(),
            bytes,
            "a replay is a no-op"
        );
    }

    /// Someone else changed the run's own key: a real conflict, named; their edit stays.
    #[test]
    fn undo_refuses_when_the_run_key_itself_was_changed_by_someone_else() {
        let f = Fix::new();
        let orig = f.enc("KOMODO_JWT_SECRET=OLD-jwt\n");
        let wrote = f.enc("KOMODO_JWT_SECRET=NEW-jwt\n");
        f.wrote(&orig, &wrote);
        let theirs = f.enc("KOMODO_JWT_SECRET=THIRD\n");
        std::fs::write(&f.ctx.compose_env, &theirs).unwrap();
        let e = f.undo().unwrap_err().to_string();
        let shown = f.ctx.compose_env.display().to_string();
        assert!(
            e.contains(&shown) && e.contains("KOMODO_JWT_SECRET") && e.contains("conflict"),
            "{e}"
        );
        assert_eq!(std::fs::read(&f.ctx.compose_env).unwrap(), theirs);
    }

    /// A two-phase plan writes compose.env twice; each phase keeps its own saved bytes, so undoing
    /// the newer phase returns to the older phase's file, and undoing that one to the original.
    #[test]
    fn each_phase_undoes_to_the_state_before_it() {
        let f = Fix::new();
        let jd = &f.jd;
        let env = &f.ctx.compose_env;
        let one = Step::new(steps::WRITE_ENV).in_phase(Some("one"));
        let two = Step::new(steps::WRITE_ENV).in_phase(Some("two"));
        assert_ne!(prev_file(&one), prev_file(&two));
        assert_eq!(prev_file(&steps::write_env()), PREV_ENV_FILE);
        for (step, before, after) in [(&one, "ORIG", "P1"), (&two, "P1", "P2")] {
            keep_previous(&jd.join(prev_file(step)), before.as_bytes()).unwrap();
            std::fs::write(jd.join(written_file(step)), sha256_hex(after.as_bytes())).unwrap();
        }
        std::fs::write(env, b"P2").unwrap();
        let undo = |s: &Step| undo_write_env(s, &f.ctx, &f.staged, &f.ids, jd, &f.kept);
        undo(&two).unwrap();
        assert_eq!(std::fs::read(env).unwrap(), b"P1");
        undo(&one).unwrap();
        assert_eq!(std::fs::read(env).unwrap(), b"ORIG");
    }

    #[test]
    fn undo_without_saved_bytes_changes_nothing() {
        let f = Fix::new();
        std::fs::write(&f.ctx.compose_env, b"SOMETHING").unwrap();
        f.undo().unwrap();
        assert_eq!(std::fs::read(&f.ctx.compose_env).unwrap(), b"SOMETHING");
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
