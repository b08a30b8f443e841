//! The FerretDB rescue's own step kinds (issue 21), applied and undone on the live planes:
//!
//! - `set-pg-verifier:<postgres container>`: the role's SCRAM verifier set to one the tool builds
//!   for NEW, through psql over the container's local socket (trusted: no password needed,
//!   PostgreSQL keeps running). The stored secret it replaces is sealed in the journal dir first
//!   (`pg-verifier-prev-<container>.age`, to compose.env's recipients); the undo sets it back
//!   verbatim (PostgreSQL stores a pre-hashed secret as is), so no old plaintext is needed.
//! - `prove-ferret:<postgres container>`: no change; the role's verifier accepts NEW and refuses
//!   OLD (when known and different), and a fresh SCRAM login through ferretdb with NEW runs a
//!   command (which borrows a new connection from ferretdb's pool: its URL is proven too) while
//!   OLD is refused with code 18. Runs after the recreates, before commit.
//!
//! The role is the postgres container's `POSTGRES_USER` (the bootstrap superuser, which Komodo's
//! file makes the same role as `KOMODO_DATABASE_USERNAME`; rescue refuses a deployment where
//! they differ), read again at every apply so a replay by `resume` needs nothing else.

use super::context::LivePlanes;
use super::ferret::ContainerPsql;
use super::ferret_read::{admin_of, role_state};
use crate::docker::ContainerInfo;
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::mongo::{login_works, LoginOutcome};
use crate::postgres::{Role, Stored, Verifier};
use crate::secret::Secret;
use crate::txn::failpoint::failpoint;
use crate::txn::{sealed, Step};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const SET_PG_VERIFIER: &str = "set-pg-verifier";
pub const PROVE_FERRET: &str = "prove-ferret";

pub fn set_pg_verifier(postgres: &str) -> Step {
    Step::new(SET_PG_VERIFIER).on(postgres)
}
pub fn prove_ferret(postgres: &str) -> Step {
    Step::new(PROVE_FERRET).on(postgres)
}

/// Is `kind` one of these?
pub fn knows(kind: &str) -> bool {
    kind == SET_PG_VERIFIER || kind == PROVE_FERRET
}

pub fn describe(step: &Step) -> String {
    let target = step.target.as_deref().unwrap_or("?");
    match step.kind.as_str() {
        SET_PG_VERIFIER => format!(
            "seal the role's stored secret, then ALTER ROLE ... PASSWORD '<SCRAM-SHA-256 verifier of NEW>' through psql on {target}'s local socket (no password, PostgreSQL keeps running)"
        ),
        _ => "prove the role's verifier takes NEW (not OLD) and a fresh login through ferretdb with NEW runs a command (OLD refused)".into(),
    }
}

pub fn describe_undo(step: &Step) -> String {
    let target = step.target.as_deref().unwrap_or("?");
    match step.kind.as_str() {
        SET_PG_VERIFIER => format!(
            "set the sealed previous stored secret back on {target}, byte for byte (no old plaintext needed)"
        ),
        _ => "nothing to undo (a check)".into(),
    }
}

fn prev_path(p: &LivePlanes<'_>, postgres: &str) -> PathBuf {
    p.journal_dir
        .join(format!("pg-verifier-prev-{postgres}.age"))
}

/// The stored state as sealed: `set:<secret>` or `none`.
fn encode(stored: &Stored) -> Option<Secret> {
    match stored {
        Stored::Secret(s) => Some(Secret::new(format!("set:{}", s.expose()))),
        Stored::NoPassword => Some(Secret::new("none".into())),
        Stored::NoRole => None,
    }
}

fn decode(text: &str) -> Option<Option<Secret>> {
    match text.strip_prefix("set:") {
        Some(s) => Some(Some(Secret::new(s.to_string()))),
        None => (text == "none").then_some(None),
    }
}

/// The postgres container of the step, and the role (its `POSTGRES_USER`).
async fn role_of(p: &LivePlanes<'_>, step: &Step) -> Result<(String, String)> {
    let container = step.target.clone().unwrap_or_default();
    let info = ContainerInfo::load(&p.engine, &container).await?;
    let admin = admin_of(&info, "");
    if admin.is_empty() {
        return Err(Error::Precondition(format!(
            "{container} has no POSTGRES_USER: cannot tell the role FerretDB checks"
        )));
    }
    Ok((container, admin))
}

pub(super) async fn apply(p: &LivePlanes<'_>, step: &Step) -> Result<()> {
    match step.kind.as_str() {
        SET_PG_VERIFIER => set(p, step).await,
        _ => prove(p, step).await,
    }
}

pub(super) async fn undo(p: &LivePlanes<'_>, step: &Step) -> Result<()> {
    if step.kind != SET_PG_VERIFIER {
        return Ok(());
    }
    let (container, admin) = role_of(p, step).await?;
    let path = prev_path(p, &container);
    let armored = match std::fs::read_to_string(&path) {
        Ok(a) => a,
        // Sealed before any change: without it, the apply changed nothing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bytes = sealed::open(&armored, p.ids)
        .map_err(|e| Error::Precondition(format!("{}: {e}", path.display())))?;
    let text = std::str::from_utf8(bytes.expose_secret())
        .ok()
        .and_then(decode)
        .ok_or_else(|| {
            Error::Precondition(format!("{}: not a saved role secret", path.display()))
        })?;
    let psql = ContainerPsql {
        engine: &p.engine,
        container: &container,
    };
    let role = Role {
        psql: &psql,
        admin: &admin,
        name: &admin,
    };
    let now = role.stored().await.map_err(pg)?;
    let same = match (&now, &text) {
        (Stored::Secret(a), Some(b)) => a.ct_eq(b),
        (Stored::NoPassword, None) => true,
        _ => false,
    };
    if same {
        return Ok(());
    }
    failpoint("ferret:restore-verifier")?;
    role.set_stored(text.as_ref()).await.map_err(pg)
}

async fn set(p: &LivePlanes<'_>, step: &Step) -> Result<()> {
    let (container, admin) = role_of(p, step).await?;
    let psql = ContainerPsql {
        engine: &p.engine,
        container: &container,
    };
    let (stored, v) = role_state(&psql, &admin, &admin).await.map_err(pg)?;
    if v.as_ref().is_some_and(|v| v.accepts(&p.staged.new)) {
        return Ok(());
    }
    let path = prev_path(p, &container);
    if !path.exists() {
        let body = encode(&stored).ok_or_else(|| {
            Error::Precondition(format!("no role {admin} in {container}'s pg_authid"))
        })?;
        let recipients = crate::sops::SopsFile::load(&p.cfg.compose_env)?.recipients();
        let armored = sealed::seal(body.expose().as_bytes(), &recipients)
            .map_err(|e| Error::Precondition(e.to_string()))?;
        fsutil::write_atomic(&path, armored.as_bytes(), Mode::Exactly(0o600))
            .map_err(|e| Error::io(&path, e))?;
    }
    let built = Verifier::build(&p.staged.new).map_err(pg)?;
    let role = Role {
        psql: &psql,
        admin: &admin,
        name: &admin,
    };
    role.set_verifier(&built).await.map_err(pg)
}

async fn prove(p: &LivePlanes<'_>, step: &Step) -> Result<()> {
    let (container, admin) = role_of(p, step).await?;
    let psql = ContainerPsql {
        engine: &p.engine,
        container: &container,
    };
    let (_, v) = role_state(&psql, &admin, &admin).await.map_err(pg)?;
    let (old, new) = (&p.staged.old, &p.staged.new);
    let proof = |what: String| Error::Precondition(format!("FerretDB proof: {what}"));
    match v {
        Some(v) if v.accepts(new) => {
            if !old.ct_eq(new) && v.accepts(old) {
                return Err(proof(format!(
                    "role {admin}'s verifier still takes the old password"
                )));
            }
        }
        _ => {
            return Err(proof(format!(
                "role {admin}'s verifier in {container} does not take the new password"
            )))
        }
    }
    // The role is the user FerretDB checks (a resume's target carries no user of its own).
    let mut target = p.target.clone();
    target.user = admin.clone();
    // ferretdb was just recreated: give it the health timeout to answer.
    let deadline = Instant::now() + p.cfg.health.timeout;
    loop {
        match login_works(&target, new).await {
            LoginOutcome::Accepted => break,
            r if Instant::now() >= deadline => {
                return Err(proof(match r {
                    LoginOutcome::Rejected => "ferretdb refuses the new password (code 18)".into(),
                    LoginOutcome::Unreachable(why) => why,
                    LoginOutcome::Accepted => unreachable!(),
                }))
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    if !old.ct_eq(new) {
        match login_works(&target, old).await {
            LoginOutcome::Rejected => {}
            LoginOutcome::Accepted => {
                return Err(proof("ferretdb still accepts the old password".into()))
            }
            LoginOutcome::Unreachable(why) => return Err(proof(why)),
        }
    }
    Ok(())
}

fn pg(e: crate::postgres::PgError) -> Error {
    Error::Precondition(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_state_round_trips_and_nothing_else_reads_as_one() {
        let s = Secret::new("SCRAM-SHA-256$4096:c2FsdA==$a:b".into());
        let e = encode(&Stored::Secret(s.clone())).unwrap();
        assert_eq!(decode(e.expose()), Some(Some(s)));
        let none = encode(&Stored::NoPassword).unwrap();
        assert_eq!(decode(none.expose()), Some(None));
        assert!(encode(&Stored::NoRole).is_none());
        assert_eq!(decode("garbage"), None);
        assert!(knows(SET_PG_VERIFIER) && knows(PROVE_FERRET) && !knows("change-db"));
        assert!(!describe(&set_pg_verifier("pg")).contains("NEW'"));
    }
}
