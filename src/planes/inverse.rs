//! The inverse edit (issue 18): an undo that finds compose.env changed after the run wrote it
//! (a colleague's `sops set` of another key, committed or not, or their commits on top of ours)
//! does not restore bytes; it sets only the run's own keys back to their old values on top of the
//! file as it is now, in memory (decrypt, set, re-encrypt under the same data key and recipients,
//! new MAC), written atomically with a compare-and-swap. Every other key's edit is kept.
//!
//! It sets a key back only while the key still holds what the run wrote (or already the old
//! value). A run key that holds a third value was changed by someone else: a real conflict, the
//! undo fails naming the file and the key (exit 5), their edit kept.
//!
//! Used by write-env's undo (the work tree file) and git's undo (a new commit on top of HEAD that
//! sets the keys back: a revert by value, where `git revert` would conflict on the MAC lines).

use super::run::RunContext;
use super::steps;
use super::value::{eval_set, Staged};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sops::{write_verified_checked, Decrypted, Identities, SopsFile};
use crate::txn::{Journal, Step};
use std::path::Path;

/// One key a run's write-env set: the value it had before (None: the run added it) and the
/// value the run wrote.
pub struct RunKey {
    pub key: String,
    pub old: Option<Secret>,
    pub new: Secret,
}

/// What write-env `step` sets: its `set` evaluated, or (no `set`) the run's key to NEW.
pub fn step_values(
    step: &Step,
    ctx: &RunContext,
    staged: &Staged,
) -> Result<Vec<(String, Secret)>> {
    if step.set.is_empty() {
        Ok(vec![(ctx.env_key.clone(), staged.new.clone())])
    } else {
        eval_set(&step.set, staged)
    }
}

/// The names of the keys write-env `step` sets (no value needed).
pub fn step_key_names(step: &Step, ctx: &RunContext) -> Vec<String> {
    if step.set.is_empty() {
        vec![ctx.env_key.clone()]
    } else {
        step.set.keys().cloned().collect()
    }
}

/// compose.env as write-env `step` found it (the bytes it saved in `prev`), decrypted; None when
/// it saved nothing (it never wrote).
fn before(prev: &Path, ids: &Identities) -> Result<Option<Decrypted>> {
    let bytes = match std::fs::read(prev) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(prev, e)),
    };
    let f = SopsFile::parse(bytes, &prev.display().to_string())?;
    Ok(Some(f.decrypt(ids)?))
}

/// The keys write-env `step` set, old values from the bytes it saved in `prev`. None: it never wrote.
pub fn of_step(
    step: &Step,
    ctx: &RunContext,
    staged: &Staged,
    ids: &Identities,
    prev: &Path,
) -> Result<Option<Vec<RunKey>>> {
    let Some(was) = before(prev, ids)? else {
        return Ok(None);
    };
    Ok(Some(
        step_values(step, ctx, staged)?
            .into_iter()
            .map(|(key, new)| RunKey {
                old: was.get(&key),
                key,
                new,
            })
            .collect(),
    ))
}

/// The keys the whole run set in compose.env: each key's old value from the first write-env that
/// saved the file before setting it, its new value from the last write-env setting it. None: no
/// write-env wrote.
pub fn of_run(
    journal_dir: &Path,
    ids: &Identities,
    staged: &Staged,
    j: &Journal,
    ctx: &RunContext,
) -> Result<Option<Vec<RunKey>>> {
    let mut out: Vec<RunKey> = Vec::new();
    let mut wrote = false;
    for r in j.steps.iter().filter(|r| r.step.is(steps::WRITE_ENV)) {
        let prev = journal_dir.join(super::layout::prev_file(&r.step));
        let was = before(&prev, ids)?;
        wrote |= was.is_some();
        for (key, new) in step_values(&r.step, ctx, staged)? {
            match out.iter_mut().find(|k| k.key == key) {
                Some(k) => k.new = new,
                None => out.push(RunKey {
                    old: was.as_ref().and_then(|w| w.get(&key)),
                    key,
                    new,
                }),
            }
        }
    }
    Ok(wrote.then_some(out))
}

/// Whether `now` needs the set-back: false when every run key holds its old value already. A
/// key holding neither its old value nor what the run wrote is someone else's edit of the run's
/// own key: an error naming `file` and the key (the edit is kept).
pub fn needs_set_back(file: &str, now: &Decrypted, keys: &[RunKey]) -> Result<bool> {
    let mut needed = false;
    for k in keys {
        let is = now.get(&k.key);
        let is_old = match (&is, &k.old) {
            (Some(a), Some(b)) => a.ct_eq(b),
            (None, None) => true,
            _ => false,
        };
        if is_old {
            continue;
        }
        if !is.as_ref().is_some_and(|v| v.ct_eq(&k.new)) {
            return Err(Error::Precondition(format!(
                "{file}: {} was changed by someone else after this run wrote it (it holds neither the run's value nor the old one): a real conflict, not set back; their edit is kept. Decide which value {} must hold, set it with sops, then run `komodo-rotate rescue` (runbooks/interrupted-run.md)",
                k.key, k.key
            )));
        }
        if k.old.is_none() {
            return Err(Error::Precondition(format!(
                "{file}: {} was added by this run and a sops edit cannot remove it while other edits are kept; remove it with `sops unset`, then run `komodo-rotate resume`",
                k.key
            )));
        }
        needed = true;
    }
    Ok(needed)
}

/// `file`'s bytes with every run key set back to its old value (same data key and recipients,
/// new MAC), or None when they all hold it already.
pub fn set_back_bytes(
    file: &SopsFile,
    ids: &Identities,
    keys: &[RunKey],
) -> Result<Option<Vec<u8>>> {
    let now = file.decrypt(ids)?;
    if !needs_set_back(file.name(), &now, keys)? {
        return Ok(None);
    }
    let pairs: Vec<(&str, &Secret)> = keys
        .iter()
        .filter_map(|k| k.old.as_ref().map(|o| (k.key.as_str(), o)))
        .collect();
    Ok(Some(file.with_values(ids, &pairs)?))
}

/// Sets the run's keys back in the file at `path` as it is now (the caller holds compose.env's
/// lock). Compare-and-swap: the file must still hold the bytes read, right before the rename.
/// Whether it wrote.
pub fn set_back(path: &Path, ids: &Identities, keys: &[RunKey]) -> Result<bool> {
    let file = SopsFile::load(path)?;
    let Some(bytes) = set_back_bytes(&file, ids, keys)? else {
        return Ok(false);
    };
    write_verified_checked(path, &bytes, ids, &mut |at| {
        if std::fs::read(at)? != file.bytes() {
            return Err(std::io::Error::other(
                "changed while its run keys were being set back: not replaced, the edit is kept",
            ));
        }
        Ok(())
    })?;
    Ok(true)
}

/// `a` and `b` (two decryptions of compose.env) hold the same value under each of `keys`.
pub fn same_values(a: &Decrypted, b: &Decrypted, keys: &[String]) -> bool {
    keys.iter().all(|k| match (a.get(k), b.get(k)) {
        (Some(x), Some(y)) => x.ct_eq(&y),
        (None, None) => true,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::encrypt_new;
    use secrecy::ExposeSecret;

    pub(crate) fn ids_and_recipient() -> (Identities, String) {
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        let ids = Identities::from_key_text(id.to_string().expose_secret(), "test").unwrap();
        (ids, r)
    }

    fn key(k: &str, old: Option<&str>, new: &str) -> RunKey {
        RunKey {
            key: k.into(),
            old: old.map(|o| Secret::new(o.into())),
            new: Secret::new(new.into()),
        }
    }

    fn get(path: &Path, ids: &Identities, k: &str) -> Option<String> {
        SopsFile::load(path)
            .unwrap()
            .decrypt(ids)
            .unwrap()
            .get(k)
            .map(|v| v.expose().to_string())
    }

    /// Seeded: the file after a run wrote NEW and a colleague set other keys. The set-back keeps
    /// every other key's edit, puts OLD back, keeps the recipients, and a second call is a no-op;
    /// a run key changed by someone else is refused by name, nothing written.
    #[test]
    fn run_keys_go_back_other_edits_stay_and_a_foreign_run_key_is_a_conflict() {
        let (ids, r) = ids_and_recipient();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("compose.env");
        let mut seed: u64 = 0x5eed_1818;
        for case in 0..6 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let others = 1 + (seed >> 33) as usize % 4;
            let mut plain = String::from("KOMODO_TITLE=before\nKOMODO_JWT_SECRET=NEW-jwt\n");
            for i in 0..others {
                plain.push_str(&format!("K{i}=colleague-{case}-{i}\n"));
            }
            std::fs::write(
                &path,
                encrypt_new(plain.as_bytes(), std::slice::from_ref(&r)).unwrap(),
            )
            .unwrap();
            let keys = [key("KOMODO_JWT_SECRET", Some("OLD-jwt"), "NEW-jwt")];
            assert!(set_back(&path, &ids, &keys).unwrap());
            assert_eq!(
                get(&path, &ids, "KOMODO_JWT_SECRET").as_deref(),
                Some("OLD-jwt")
            );
            for i in 0..others {
                assert_eq!(
                    get(&path, &ids, &format!("K{i}")),
                    Some(format!("colleague-{case}-{i}"))
                );
            }
            assert_eq!(SopsFile::load(&path).unwrap().recipients(), vec![r.clone()]);
            let bytes = std::fs::read(&path).unwrap();
            assert!(!set_back(&path, &ids, &keys).unwrap(), "already old: no-op");
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        let plain = "KOMODO_JWT_SECRET=THIRD\n";
        std::fs::write(
            &path,
            encrypt_new(plain.as_bytes(), std::slice::from_ref(&r)).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let e = set_back(&path, &ids, &[key("KOMODO_JWT_SECRET", Some("O"), "N")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("compose.env") && e.contains("KOMODO_JWT_SECRET") && e.contains("conflict"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing written");
    }
}
