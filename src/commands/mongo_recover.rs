//! `mongo set-password --no-auth`: the step of the last-resort runbook that needs MongoDB. It
//! talks to a throw-away mongod started on the real data volume without access control
//! (research/komodo.md §4.5), runs `updateUser {pwd}` there, and proves nothing else: the proof
//! is the real container accepting the password after it is started again (`verify`).
//!
//! URI checks (loopback only, no credentials) and error masking are `mongo.rs`'s own. Refused
//! beside a pending journal of the same Mongo: that run's `resume` decides by which password
//! Mongo accepts, and a password set behind its back would make it decide wrongly. With
//! `--config` the Mongo is that deployment's (its compose.env), and another deployment's
//! pending run does not block this last resort; without it, any pending run on the host does.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::mongo::{MongoAdmin, Target};
use crate::secret::Secret;
use crate::txn::Journal;
use std::path::{Path, PathBuf};

pub fn run(uri: &str, user: &str, config: Option<&Path>, new: Secret) -> Result<i32> {
    let usage = |m: String| Error::Usage(format!("mongo set-password: --uri {m}"));
    let target = Target::loopback_no_auth(uri, user).map_err(|e| match e {
        crate::mongo::MongoError::InvalidTarget(m) => usage(m),
        e => e.into(),
    })?;
    let cfg = config.map(|p| Config::load(Some(p))).transpose()?;
    if let Some(p) = pending_beside(cfg.as_ref())? {
        return Err(Error::Precondition(format!(
            "mongo set-password: a run's journal is pending in {}: run `komodo-rotate resume` or `komodo-rotate rescue` (runbooks/interrupted-run.md) first; nothing was changed",
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

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The journal dir of a pending run on the same Mongo: of `cfg`'s deployment (its own journal
/// dir when the journal guards its compose.env, or another config's run on that compose.env),
/// or, with no config, of any run on this host.
fn pending_beside(cfg: Option<&Config>) -> Result<Option<PathBuf>> {
    let Some(cfg) = cfg else {
        return crate::txn::lock::any_pending();
    };
    let own = cfg.journal_dir();
    if let Some(j) = Journal::load_pending(&own)? {
        if !j.is_committed() && canonical(&j.guarded) == canonical(&cfg.compose_env) {
            return Ok(Some(own));
        }
    }
    crate::txn::lock::pending_elsewhere(&cfg.compose_env, &canonical(&own))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(root: &Path, name: &str) -> Config {
        let env = root.join(format!("{name}.env"));
        std::fs::write(&env, b"x").unwrap();
        let text = format!(
            "compose_env = {:?}\nstate_dir = {:?}\n",
            env.display().to_string(),
            root.join(format!("state-{name}")).display().to_string()
        );
        Config::parse(&text, &root.join(format!("{name}.toml"))).unwrap()
    }

    #[test]
    fn only_a_pending_run_of_the_same_deployment_blocks_set_password() {
        let d = tempfile::tempdir().unwrap();
        let a = deployment(d.path(), "a");
        let b = deployment(d.path(), "b");
        assert!(pending_beside(Some(&a)).unwrap().is_none());
        let j = crate::txn::new_journal(
            "rotate",
            "db-password",
            &a.compose_env,
            serde_json::Value::Null,
            vec![
                crate::planes::steps::snapshot(),
                crate::planes::steps::commit(),
            ],
        );
        j.persist(&a.journal_dir()).unwrap();
        // A's own Mongo: refused, naming A's journal dir.
        let got = pending_beside(Some(&a))
            .unwrap()
            .expect("A's run is pending");
        assert_eq!(canonical(&got), canonical(&a.journal_dir()));
        // B's Mongo: A's pending run does not block B's last resort.
        assert!(pending_beside(Some(&b)).unwrap().is_none());
        // A second config of A's deployment (another state_dir) sees A's run.
        let a2_text = format!(
            "compose_env = {:?}\nstate_dir = {:?}\n",
            a.compose_env.display().to_string(),
            d.path().join("state-a2").display().to_string()
        );
        let a2 = Config::parse(&a2_text, &d.path().join("a2.toml")).unwrap();
        assert!(pending_beside(Some(&a2)).unwrap().is_some());
        // No config: any pending run on the host refuses.
        assert!(pending_beside(None).unwrap().is_some());
        Journal::clear(&a.journal_dir()).unwrap();
        assert!(pending_beside(Some(&a)).unwrap().is_none());
    }
}
