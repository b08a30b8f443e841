//! The FerretDB variant's part of the proofs (issue 21), beside `proof.rs`'s login checks
//! through ferretdb and its holder checks:
//! - new state: the role's verifier in PostgreSQL accepts NEW and not OLD (offline, through the
//!   postgres container's local socket), and a fresh client logs in through ferretdb with NEW
//!   and runs an authenticated command (`listDatabases`): FerretDB checks the proof and serves
//!   the command on its pool's connections, so a new login proves its URL too;
//! - old state: the role's verifier accepts OLD and not NEW.
//!
//! Each returns one line naming what failed, never a value.

use super::context::LivePlanes;
use super::pg_step::role_takes;
use super::run::RunContext;
use crate::mongo::{MongoAdmin, MongoError};
use crate::secret::Secret;
use std::time::{Duration, Instant};

type Proof = std::result::Result<(), String>;

pub(super) async fn new_state(p: &LivePlanes<'_>, ctx: &RunContext) -> Proof {
    let Some(pg) = &ctx.pg else { return Ok(()) };
    role_takes(&p.engine, pg, &p.staged.new, &p.staged.old, "new").await?;
    authenticated_command(p, &p.staged.new).await
}

pub(super) async fn old_state(p: &LivePlanes<'_>, ctx: &RunContext) -> Proof {
    let Some(pg) = &ctx.pg else { return Ok(()) };
    if ctx.is_rescue() {
        // A rescue's OLD may be unknown (no candidate matched: OLD is NEW) and its plan may not
        // change the role at all: "back" is the secret change-pg sealed, byte for byte.
        return super::pg_step::holds_saved(p, pg).await;
    }
    role_takes(&p.engine, pg, &p.staged.old, &p.staged.new, "old").await
}

/// A fresh SCRAM login through ferretdb with `pw`, then `listDatabases` on that session. A
/// rejection (code 18) fails at once; anything else (ferretdb still opening its pool) is
/// retried within the health timeout.
async fn authenticated_command(p: &LivePlanes<'_>, pw: &Secret) -> Proof {
    let t0 = Instant::now();
    let within = p.cfg.health.timeout;
    loop {
        let last = match MongoAdmin::connect(&p.target, pw).await {
            Ok(admin) => {
                let r = admin
                    .run_admin_command(mongodb::bson::doc! {"listDatabases": 1})
                    .await;
                admin.close().await;
                match r {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                }
            }
            Err(e @ MongoError::Rejected { .. }) => {
                return Err(format!("ferretdb does not log the new password in: {e}"))
            }
            Err(e) => e.to_string(),
        };
        if t0.elapsed() >= within {
            return Err(format!(
                "no authenticated command through ferretdb with the new password: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
