//! The inverse edit (issue 18): an undo that finds compose.env changed after the run wrote it
//! (a colleague's `sops set` of another key, committed or not, or their commits on top of ours)
//! does not restore bytes; it sets only the run's own keys back to their old values on top of the
//! file as it is now, in memory (decrypt, set, re-encrypt under the same data key and recipients,
//! new MAC), written atomically with a compare-and-swap. Every other key's edit is kept.
//!
//! It sets a key back only while the key still holds what the run wrote (or already the old
//! value); a key the run added is removed (the file as it is, minus that key). A run key that
//! holds a third value was changed by someone else: a real conflict, the undo fails naming the
//! file and the key (exit 5), their edit kept.
//!
//! Used by write-env's undo (the work tree file) and git's undo (a new commit on top of HEAD that
//! sets the keys back: a revert by value, where `git revert` would conflict on the MAC lines).

use super::run::RunContext;
use super::steps;
use super::value::{eval_set, Staged};
pub use crate::audit::KeptEdit;
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

/// What a run (or one write-env step) did to compose.env: its keys, and the file as it was
/// before (decrypted), against which every other key's later edit is told apart.
pub struct RunEdit {
    pub keys: Vec<RunKey>,
    before: Decrypted,
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
) -> Result<Option<RunEdit>> {
    let Some(was) = before(prev, ids)? else {
        return Ok(None);
    };
    let keys = step_values(step, ctx, staged)?
        .into_iter()
        .map(|(key, new)| RunKey {
            old: was.get(&key),
            key,
            new,
        })
        .collect();
    Ok(Some(RunEdit { keys, before: was }))
}

/// The keys the whole run set in compose.env: each key's old value from the first write-env that
/// saved the file before setting it, its new value from the last write-env setting it; the file
/// before the run from the first write-env that saved it. None: no write-env wrote.
pub fn of_run(
    journal_dir: &Path,
    ids: &Identities,
    staged: &Staged,
    j: &Journal,
    ctx: &RunContext,
) -> Result<Option<RunEdit>> {
    let mut out: Vec<RunKey> = Vec::new();
    let mut first: Option<Decrypted> = None;
    for r in j.steps.iter().filter(|r| r.step.is(steps::WRITE_ENV)) {
        let prev = journal_dir.join(super::layout::prev_file(&r.step));
        let was = before(&prev, ids)?;
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
        if first.is_none() {
            first = was;
        }
    }
    Ok(first.map(|before| RunEdit { keys: out, before }))
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
                "{file}: {} was changed by someone else after this run wrote it (it holds neither the run's value nor the old one): a real conflict, not set back; their edit is kept. Set {} with sops (a db-password run: the value it must hold, then `komodo-rotate rescue`; another kind: the run's old value, then `komodo-rotate resume`), see runbooks/interrupted-run.md",
                k.key, k.key
            )));
        }
        needed = true;
    }
    Ok(needed)
}

/// The keys other than the run's whose value in `now` differs from the file before the run
/// (added, changed or removed since: what the run wrote held their old values). Names only.
fn others_changed(edit: &RunEdit, now: &Decrypted) -> Vec<String> {
    let mut names: Vec<String> = now.keys();
    names.extend(edit.before.keys());
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if out.contains(&n) || edit.keys.iter().any(|k| k.key == n) {
            continue;
        }
        let same = match (now.get(&n), edit.before.get(&n)) {
            (Some(a), Some(b)) => a.ct_eq(&b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            out.push(n);
        }
    }
    out
}

/// `file`'s bytes with every run key set back to its old value, a key the run added removed
/// (same data key and recipients, new MAC), and what the set-back kept; None when they all
/// hold their old values (or, added, are absent) already.
pub fn set_back_bytes(
    file: &SopsFile,
    ids: &Identities,
    edit: &RunEdit,
) -> Result<Option<(Vec<u8>, KeptEdit)>> {
    let now = file.decrypt(ids)?;
    if !needs_set_back(file.name(), &now, &edit.keys)? {
        return Ok(None);
    }
    let pairs: Vec<(&str, &Secret)> = edit
        .keys
        .iter()
        .filter_map(|k| k.old.as_ref().map(|o| (k.key.as_str(), o)))
        .collect();
    // A key the run added (absent before it) and holding the run's value: removed.
    let removes: Vec<&str> = edit
        .keys
        .iter()
        .filter(|k| k.old.is_none() && now.get(&k.key).is_some())
        .map(|k| k.key.as_str())
        .collect();
    let kept = KeptEdit {
        file: file.name().to_string(),
        commit: None,
        set_back: pairs.iter().map(|(k, _)| k.to_string()).collect(),
        removed: removes.iter().map(|k| k.to_string()).collect(),
        kept: others_changed(edit, &now),
    };
    Ok(Some((
        file.with_values_removing(ids, &pairs, &removes)?,
        kept,
    )))
}

/// Sets the run's keys back in the file at `path` as it is now (the caller holds compose.env's
/// lock). Compare-and-swap: the file must still hold the bytes read, right before the rename.
/// What it kept when it wrote; None when the keys held their old values already.
pub fn set_back(path: &Path, ids: &Identities, edit: &RunEdit) -> Result<Option<KeptEdit>> {
    let file = SopsFile::load(path)?;
    let Some((bytes, kept)) = set_back_bytes(&file, ids, edit)? else {
        return Ok(None);
    };
    write_verified_checked(path, &bytes, ids, &mut |at| {
        if std::fs::read(at)? != file.bytes() {
            return Err(std::io::Error::other(
                "changed while its run keys were being set back: not replaced, the edit is kept",
            ));
        }
        Ok(())
    })?;
    Ok(Some(KeptEdit {
        file: path.display().to_string(),
        ..kept
    }))
}

/// The operator's line for an undo by value (stderr, beside the audit record's `kept_edits`):
/// the file, the run's keys set back, and the other keys whose edits were kept. Names only.
pub fn kept_line(e: &KeptEdit) -> String {
    let mut s = format!(
        "{} was edited after this run wrote it: the undo set only this run's keys back to their old values, on top of that edit",
        e.file
    );
    if let Some(c) = &e.commit {
        s.push_str(&format!(" (git commit {c})"));
    }
    if !e.set_back.is_empty() {
        s.push_str(&format!("; set back: {}", e.set_back.join(", ")));
    }
    if !e.removed.is_empty() {
        s.push_str(&format!(
            "; removed (this run had added them): {}",
            e.removed.join(", ")
        ));
    }
    if e.kept.is_empty() {
        s.push_str("; the other changes were kept (no other key differs from what the run wrote: the file was re-encrypted or rewritten)");
    } else {
        s.push_str(&format!(
            "; the other changes were kept, these keys differ from what the run wrote: {}",
            e.kept.join(", ")
        ));
    }
    s
}

/// The undos by value of one run, each told on stderr as it happens and kept for the audit
/// record.
#[derive(Default)]
pub struct KeptEdits(std::sync::Mutex<Vec<KeptEdit>>);

impl KeptEdits {
    pub fn note(&self, e: KeptEdit) {
        eprintln!("komodo-rotate: warning: {}", kept_line(&e));
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    pub fn take(&self) -> Vec<KeptEdit> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
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
#[path = "inverse_tests.rs"]
mod tests;
