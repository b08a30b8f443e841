//! `mongo set-password --no-auth`: the step of the last-resort runbook that needs MongoDB. It
//! talks to a throw-away mongod started on the real data volume without access control
//! (research/komodo.md §4.5), runs `updateUser {pwd}` there, and proves nothing else: the proof
//! is the real container accepting the password after it is started again (`verify`).
//!
//! URI checks (loopback only, no credentials) and error masking are `mongo.rs`'s own. Refused
//! while any run of ours has a journal pending: that run's `resume` decides by which password
//! Mongo accepts, and a password set behind its back would make it decide wrongly.

use crate::error::{Error, Result};
use crate::mongo::{MongoAdmin, Target};
use crate::secret::Secret;

pub fn run(uri: &str, user: &str, new: Secret) -> Result<i32> {
    let usage = |m: String| Error::Usage(format!("mongo set-password: --uri {m}"));
    let target = Target::loopback_no_auth(uri, user).map_err(|e| match e {
        crate::mongo::MongoError::InvalidTarget(m) => usage(m),
        e => e.into(),
    })?;
    if let Some(p) = crate::txn::lock::any_pending()? {
        return Err(Error::Precondition(format!(
            "mongo set-password: a run's journal is pending in {}: run `komodo-rotate resume` (or follow runbooks/interrupted-run.md) first",
            p.display()
        )));
    }
    super::runtime()?.block_on(async {
        let admin = MongoAdmin::connect_no_auth(&target).await?;
        let r = admin.update_password(user, &new).await;
        admin.close().await;
        r.map_err(|e| {
            Error::Precondition(format!(
                "{e} (is this mongod running without --auth, and does {user} exist in {}?)",
                target.auth_source
            ))
        })?;
        eprintln!(
            "komodo-rotate: {user}@{} on {} has the new password; stop this mongod and start the real one",
            target.auth_source,
            target.server()
        );
        Ok(0)
    })
}
