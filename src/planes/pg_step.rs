//! `change-pg`, the FerretDB variant's store step: the PostgreSQL role's SCRAM verifier, which
//! FerretDB checks every client proof against (issue 21). Reached through `planes::ferret`'s
//! `ContainerPsql` (the postgres container's local socket: no password travels).
//!
//! Apply: read the role's stored secret, seal it in the journal dir (it is secret material:
//! age-sealed to compose.env's recipients, never plaintext on disk), build a verifier for NEW
//! (4096 iterations, 28-byte salt) and set it, proven by the byte-for-byte read-back. Already
//! done when the role's verifier accepts NEW.
//!
//! Undo: set the sealed previous stored secret back verbatim (PostgreSQL stores a pre-hashed
//! secret as is), so no old plaintext is needed; only over a verifier that accepts NEW (ours),
//! never over one somebody else set. Safe on a partly applied step: nothing sealed, or the role
//! already holds the saved bytes, means nothing to undo.

use super::context::LivePlanes;
use super::ferret::ContainerPsql;
use super::run::{PgRole, RunContext};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::postgres::{Role, Stored, Verifier};
use crate::secret::Secret;
use crate::sops::Identities;
use crate::txn::sealed;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

/// The journal-dir file holding the role's stored secret before `change-pg`, sealed.
pub const PREV_FILE: &str = "pg-role.prev.age";

fn prev_path(journal_dir: &Path) -> PathBuf {
    journal_dir.join(PREV_FILE)
}

fn psql<'a>(engine: &'a Engine, pg: &'a PgRole) -> ContainerPsql<'a> {
    ContainerPsql {
        engine,
        container: &pg.postgres,
    }
}

fn role<'a>(psql: &'a ContainerPsql<'a>, pg: &'a PgRole) -> Role<'a, ContainerPsql<'a>> {
    Role {
        psql,
        admin: &pg.admin,
        name: &pg.role,
    }
}

fn pg_of(ctx: &RunContext) -> Result<&PgRole> {
    ctx.pg.as_ref().ok_or_else(|| {
        Error::Precondition(
            "the journal has a change-pg step but names no PostgreSQL role in its context".into(),
        )
    })
}

fn pg_err(e: crate::postgres::PgError) -> Error {
    Error::Precondition(e.to_string())
}

pub(super) async fn apply(p: &LivePlanes<'_>, ctx: &RunContext) -> Result<()> {
    let pg = pg_of(ctx)?;
    let psql = psql(&p.engine, pg);
    let role = role(&psql, pg);
    // A failed read changed nothing: the role is only written further down.
    let (stored, v) = role
        .verifier()
        .await
        .map_err(|e| Error::untouched(pg_err(e)))?;
    if v.accepts(&p.staged.new) {
        return Ok(());
    }
    // The exact bytes the undo restores, sealed before anything changes. A replay keeps the
    // first one: it is the role's secret before this run.
    let path = prev_path(&p.journal_dir);
    if !path.exists() {
        let armored = sealed::seal(stored.expose().as_bytes(), &p.recipients(ctx)?)
            .map_err(|e| Error::Precondition(e.to_string()))?;
        fsutil::write_atomic(&path, armored.as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&path, e))?;
    }
    let new = Verifier::build(&p.staged.new).map_err(pg_err)?;
    role.set_verifier(&new).await.map_err(pg_err)
}

/// The sealed stored secret of the role before the run, if `change-pg` saved one.
fn saved(journal_dir: &Path, ids: &Identities) -> Result<Option<Secret>> {
    let path = prev_path(journal_dir);
    let armored = match std::fs::read_to_string(&path) {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bytes = sealed::open(&armored, ids)
        .map_err(|e| Error::Precondition(format!("{}: {e}", path.display())))?;
    // `Secret::from_utf8` zeroizes the copy when it is not UTF-8 (the error holds the bytes).
    let text = Secret::from_utf8(bytes.expose_secret().to_vec()).map_err(|_| {
        Error::Precondition(format!(
            "{}: not a stored PostgreSQL secret",
            path.display()
        ))
    })?;
    Ok(Some(text))
}

pub(super) async fn undo(p: &LivePlanes<'_>, ctx: &RunContext) -> Result<()> {
    let pg = pg_of(ctx)?;
    let psql = psql(&p.engine, pg);
    let role = role(&psql, pg);
    let now = role.stored().await.map_err(pg_err)?;
    let prev = saved(&p.journal_dir, p.ids)?;
    match undo_action(&now, prev.as_ref(), &p.staged.old, &p.staged.new) {
        UndoAction::Nothing => Ok(()),
        UndoAction::Restore => match &prev {
            Some(prev) => role.set_stored(Some(prev)).await.map_err(pg_err),
            None => Ok(()),
        },
        UndoAction::NoSaved => Err(Error::Precondition(format!(
            "role {} in {} takes the new password but the journal dir has no saved previous secret ({PREV_FILE}); set it back by hand (runbooks/interrupted-run.md)",
            pg.role, pg.postgres
        ))),
        UndoAction::Foreign => Err(Error::Precondition(format!(
            "role {} in {} holds a secret that takes neither the old nor the new password: somebody else changed it during the run; not overwritten",
            pg.role, pg.postgres
        ))),
    }
}

/// A rescue's rollback proof: the role holds the stored secret `change-pg` sealed, byte for
/// byte (nothing sealed: the step never changed the role).
pub(super) async fn holds_saved(
    p: &LivePlanes<'_>,
    pg: &PgRole,
) -> std::result::Result<(), String> {
    let Some(prev) = saved(&p.journal_dir, p.ids).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let psql = psql(&p.engine, pg);
    match role(&psql, pg).stored().await.map_err(|e| e.to_string())? {
        Stored::Secret(now) if now.ct_eq(&prev) => Ok(()),
        _ => Err(format!(
            "role {} in {} does not hold its previous stored secret again",
            pg.role, pg.postgres
        )),
    }
}

/// What `change-pg`'s undo does, from what the role holds now and what apply sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UndoAction {
    /// The previous state is there (the saved bytes, or OLD set by someone else; or apply never
    /// saved, so never set).
    Nothing,
    /// Set the saved bytes back (the role holds our verifier of NEW).
    Restore,
    /// The role takes NEW only, and nothing was saved: cannot restore.
    NoSaved,
    /// The role holds something that takes neither: not ours to overwrite.
    Foreign,
}

fn undo_action(now: &Stored, prev: Option<&Secret>, old: &Secret, new: &Secret) -> UndoAction {
    let accepts = |pw: &Secret| match now {
        Stored::Secret(s) => Verifier::parse(s.expose()).is_ok_and(|v| v.accepts(pw)),
        _ => false,
    };
    let Some(prev) = prev else {
        // Nothing was saved, so nothing was set: the step died before it changed the role.
        return if accepts(new) && !accepts(old) {
            UndoAction::NoSaved
        } else {
            UndoAction::Nothing
        };
    };
    if matches!(now, Stored::Secret(s) if s.ct_eq(prev)) {
        UndoAction::Nothing
    } else if accepts(new) {
        UndoAction::Restore
    } else if accepts(old) {
        // Somebody set OLD again meanwhile (another verifier of the same password): the old
        // state is back; their bytes are kept.
        UndoAction::Nothing
    } else {
        UndoAction::Foreign
    }
}

/// Which staged value the role takes now (offline check against its verifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    New,
    Old,
    Neither,
}

/// `resume`'s question on the FerretDB variant: does the role's verifier accept NEW or OLD?
pub async fn which_is_live(
    engine: &Engine,
    pg: &PgRole,
    old: &Secret,
    new: &Secret,
) -> Result<Live> {
    let psql = psql(engine, pg);
    let (_, v) = role(&psql, pg).verifier().await.map_err(pg_err)?;
    Ok(if v.accepts(new) {
        Live::New
    } else if v.accepts(old) {
        Live::Old
    } else {
        Live::Neither
    })
}

/// The role's verifier, for the proofs: takes `want` and not `not` (both offline).
pub(super) async fn role_takes(
    engine: &Engine,
    pg: &PgRole,
    want: &Secret,
    not: &Secret,
    which: &str,
) -> std::result::Result<(), String> {
    let psql = psql(engine, pg);
    let (_, v) = role(&psql, pg)
        .verifier()
        .await
        .map_err(|e| e.to_string())?;
    if !v.accepts(want) {
        return Err(format!(
            "role {}'s verifier in {} does not accept the {which} password",
            pg.role, pg.postgres
        ));
    }
    if !want.ct_eq(not) && v.accepts(not) {
        return Err(format!(
            "role {}'s verifier in {} still accepts the other password",
            pg.role, pg.postgres
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(pw: &Secret, salt: u8) -> Secret {
        Verifier::build_with(pw, &[salt; 28], 4096).unwrap().text()
    }

    /// Every state the role can be found in by an undo (after a kill anywhere in apply, a
    /// replay, or a hand change), with and without the sealed previous secret.
    #[test]
    fn the_undo_restores_only_over_its_own_verifier_and_never_loses_the_old_state() {
        let old = Secret::new("old-Password-0123".into());
        let new = Secret::new("new-Password-4567".into());
        let third = Secret::new("third-Password-89".into());
        let initdb = verifier(&old, 1); // the role's secret before the run (the saved bytes)
        let ours = verifier(&new, 2);
        let old_again = verifier(&old, 3); // OLD set by somebody else meanwhile
        let foreign = verifier(&third, 4);
        let s = |x: &Secret| Stored::Secret(x.clone());
        use UndoAction::*;
        let cases: Vec<(Stored, Option<&Secret>, UndoAction)> = vec![
            (s(&initdb), Some(&initdb), Nothing),
            (s(&ours), Some(&initdb), Restore),
            (s(&old_again), Some(&initdb), Nothing),
            (s(&foreign), Some(&initdb), Foreign),
            (Stored::NoPassword, Some(&initdb), Foreign),
            (Stored::NoRole, Some(&initdb), Foreign),
            (s(&initdb), None, Nothing),
            (s(&ours), None, NoSaved),
            (s(&foreign), None, Nothing),
        ];
        for (i, (now, prev, want)) in cases.iter().enumerate() {
            assert_eq!(undo_action(now, *prev, &old, &new), *want, "case {i}");
        }
    }
}
