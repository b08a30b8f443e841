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
    let (stored, v) = role.verifier().await.map_err(pg_err)?;
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
    let text = String::from_utf8(bytes.expose_secret().to_vec()).map_err(|_| {
        Error::Precondition(format!(
            "{}: not a stored PostgreSQL secret",
            path.display()
        ))
    })?;
    Ok(Some(Secret::new(text)))
}

pub(super) async fn undo(p: &LivePlanes<'_>, ctx: &RunContext) -> Result<()> {
    let pg = pg_of(ctx)?;
    let psql = psql(&p.engine, pg);
    let role = role(&psql, pg);
    let now = role.stored().await.map_err(pg_err)?;
    let accepts = |pw: &Secret| match &now {
        Stored::Secret(s) => Verifier::parse(s.expose()).is_ok_and(|v| v.accepts(pw)),
        _ => false,
    };
    let Some(prev) = saved(&p.journal_dir, p.ids)? else {
        // Nothing was saved, so nothing was set: the step died before it changed the role.
        if accepts(&p.staged.new) && !accepts(&p.staged.old) {
            return Err(Error::Precondition(format!(
                "role {} in {} takes the new password but the journal dir has no saved previous secret ({PREV_FILE}); set it back by hand (runbooks/interrupted-run.md)",
                pg.role, pg.postgres
            )));
        }
        return Ok(());
    };
    if matches!(&now, Stored::Secret(s) if s.ct_eq(&prev)) {
        return Ok(());
    }
    if accepts(&p.staged.new) {
        return role.set_stored(Some(&prev)).await.map_err(pg_err);
    }
    if accepts(&p.staged.old) {
        // Somebody set OLD again meanwhile (another verifier of the same password): the old
        // state is back; their bytes are kept.
        return Ok(());
    }
    Err(Error::Precondition(format!(
        "role {} in {} holds a secret that takes neither the old nor the new password: somebody else changed it during the run; not overwritten",
        pg.role, pg.postgres
    )))
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
