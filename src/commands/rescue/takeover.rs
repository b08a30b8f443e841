//! What rescue knows from the tool's own records (issue 20 item 4 a and c, issue 18 item 5):
//! a pending run's sealed OLD and NEW, and each kind's last committed value, newest first; and
//! the take-over of a pending run of this deployment, recorded in the audit log.

use super::Candidate;
use crate::config::Config;
use crate::error::{exit, Error, Result};
use crate::planes::last_value;
use crate::planes::live::Staged;
use crate::planes::partial::PartialRecreate;
use crate::sops::Identities;
use crate::txn::Journal;
use std::path::Path;

/// The kind rescue restores.
const KIND: &str = "db-password";

fn canonical(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The pending (uncommitted) journal in `cfg`'s own journal dir when it belongs to `cfg`'s
/// deployment (its guarded file is this compose.env) and no other config's run is pending on
/// the same file; `None` otherwise (the caller's usual refusal then applies).
pub(super) fn pending_of(cfg: &Config) -> Result<Option<Journal>> {
    let dir = cfg.journal_dir();
    let Some(j) = Journal::load_pending(&dir)? else {
        return Ok(None);
    };
    if j.is_committed() || canonical(&j.guarded) != canonical(&cfg.compose_env) {
        return Ok(None);
    }
    let own = canonical(&dir);
    if crate::txn::lock::pending_elsewhere(&cfg.compose_env, &own)?.is_some() {
        return Ok(None);
    }
    Ok(Some(j))
}

/// The tool's own candidates, newest first: the pending run's NEW and OLD, then the value the
/// tool last committed. A record that does not open is a warning naming it, never a value.
pub(super) fn tool_records(
    cfg: &Config,
    ids: &Identities,
    pending: Option<&Journal>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    // Another kind's values (a pending jwt-secret run's) are no DB password candidates.
    if let Some(j) = pending.filter(|j| j.secret == KIND) {
        let path = Journal::path(&cfg.journal_dir());
        match j.sealed_secrets.as_deref().map(|s| Staged::open(s, ids)) {
            Some(Ok(staged)) => {
                for (which, value) in [("NEW", staged.new), ("OLD", staged.old)] {
                    out.push(Candidate {
                        source: format!(
                            "pending {} run {}'s {which} ({})",
                            j.command,
                            j.run_id,
                            path.display()
                        ),
                        value,
                    });
                }
            }
            Some(Err(e)) => eprintln!("komodo-rotate: warning: {}: {e}", path.display()),
            None => {}
        }
    }
    match last_value::load(cfg, KIND, ids) {
        Ok(Some(value)) => out.push(Candidate {
            source: format!(
                "the last committed {KIND} ({})",
                last_value::path(cfg, KIND).display()
            ),
            value,
        }),
        Ok(None) => {}
        Err(e) => eprintln!("komodo-rotate: warning: {e}"),
    }
    out
}

/// Where a taken-over run's journal dir is kept (sealed, as it was): `state_dir/taken-over/<run id>`.
pub(super) fn archive_dir(cfg: &Config, j: &Journal) -> std::path::PathBuf {
    cfg.state_dir.join("taken-over").join(&j.run_id)
}

/// Ends the pending run `j` as taken over: its record goes to the audit log (names, never a
/// value), then its journal dir is moved, whole and still sealed, to [`archive_dir`] (never
/// deleted: it may hold the only copy of a value) and its host-wide pending pointer dropped, so
/// rescue's own journal, or `mongo set-password`, can follow. `why` goes to the audit record.
pub(super) fn take_over(cfg: &Config, j: &Journal, why: &str) -> Result<()> {
    let dir = cfg.journal_dir();
    let canon = canonical(&dir);
    let to = archive_dir(cfg, j);
    let parent = to.parent().unwrap_or(&cfg.state_dir);
    crate::txn::lock::ensure_private_dir(parent)?;
    let rec = crate::audit::AuditRecord::from_journal(
        j,
        "taken-over-by-rescue",
        exit::ROLLBACK_INCOMPLETE,
        Some(format!("{why}; the journal is kept in {}", to.display())),
    );
    crate::audit::append(&cfg.audit_log(), &rec)?;
    std::fs::rename(&dir, &to).map_err(|e| {
        Error::Precondition(format!(
            "cannot take over the pending run {}: moving {} to {}: {e}; nothing was changed",
            j.run_id,
            dir.display(),
            to.display()
        ))
    })?;
    if !j.guarded.as_os_str().is_empty() {
        crate::txn::lock::clear_pending(&j.guarded, &canon)?;
    }
    eprintln!(
        "komodo-rotate: took over the pending {} run {} (recorded in {}; its journal is kept in {})",
        j.command,
        j.run_id,
        cfg.audit_log().display(),
        to.display()
    );
    Ok(())
}

/// How rescue ends the pending run `j` once it is about to act (never on a refusal: exit 3
/// leaves the journal where it was). A run with a store (db-password: Mongo) is taken over
/// ([`take_over`]): its sealed values are rescue's candidates and rescue's own run makes Mongo,
/// compose.env and the holders agree. A recreate of it a kill left half done (`partial`, found
/// by `planes::partial::find`) is first put back to its original, each recorded in the audit
/// log (issue 19: rescue's own recreate would otherwise refuse on the `-prev`/`-next`). A run of an env-only kind (jwt-secret, webhook-secret,
/// passkey, `env:KEY`) splits keys no rescue step touches: it is finished first exactly as
/// `resume` finishes it (compose.env decides: forward when it holds the run's NEW, else back),
/// so rescue's exit 0 still means every plane agrees (the campaign's seed 275392833 saw rescue
/// exit 0 with the JWT split). `Ok(())`: the run is ended (committed, rolled back, or its kind
/// agreed beside the DB problem rescue is about to cure: resume's 0, 4 or 7); an `Err` is the
/// finish's own (exit 5: the journal is kept and the message names the split).
pub(super) async fn end_pending(
    cfg: &Config,
    j: &Journal,
    why: &str,
    partial: &[PartialRecreate],
) -> Result<()> {
    let ctx = crate::planes::RunContext::of(j)?;
    if ctx.has_store() {
        crate::planes::partial::repair(cfg, j, partial).await?;
        return take_over(cfg, j, why);
    }
    eprintln!(
        "komodo-rotate: the pending {} run {} is of an env-only kind ({}): finishing it first as `resume` does",
        j.command, j.run_id, j.secret
    );
    let code = crate::commands::resume::finish(cfg, j.clone()).await?;
    if ![exit::OK, exit::ROLLED_BACK, exit::UNHEALTHY_ELSEWHERE].contains(&code) {
        return Err(Error::RollbackIncomplete {
            step: "rescue".into(),
            cause: format!(
                "finishing the pending {} run {} ended with exit {code}",
                j.command, j.run_id
            ),
            undo_failure: "rescue did not act; the journal is kept".into(),
            runbook: crate::planes::execute::RUNBOOK_INTERRUPTED.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use secrecy::ExposeSecret;
    use std::path::PathBuf;

    struct Fixture {
        _d: tempfile::TempDir,
        cfg: Config,
        ids: Identities,
        recipients: Vec<String>,
    }

    fn fixture() -> Fixture {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("compose.env");
        std::fs::write(&env, b"x").unwrap();
        let text = format!(
            "compose_env = {:?}\nstate_dir = {:?}\n",
            env.display().to_string(),
            d.path().join("state").display().to_string()
        );
        let cfg = Config::parse(&text, &d.path().join("komodo-rotate.toml")).unwrap();
        let id = age::x25519::Identity::generate();
        let ids = Identities::from_key_text(id.to_string().expose_secret(), "test").unwrap();
        Fixture {
            _d: d,
            cfg,
            ids,
            recipients: vec![id.to_public().to_string()],
        }
    }

    fn pending_journal(f: &Fixture, guarded: &Path, old: &str, new: &str) -> Journal {
        let mut j = crate::txn::new_journal(
            "rotate",
            KIND,
            guarded,
            serde_json::Value::Null,
            vec![
                crate::planes::steps::snapshot(),
                crate::planes::steps::commit(),
            ],
        );
        let staged = Staged {
            old: Secret::new(old.into()),
            new: Secret::new(new.into()),
        };
        j.sealed_secrets = Some(staged.seal(&f.recipients).unwrap());
        j.persist(&f.cfg.journal_dir()).unwrap();
        j
    }

    #[test]
    fn the_tools_own_records_come_newest_first_and_never_name_a_value() {
        let f = fixture();
        assert!(tool_records(&f.cfg, &f.ids, None).is_empty());
        last_value::save(&f.cfg, KIND, &Secret::new("val-3".into()), &f.recipients).unwrap();
        let j = pending_journal(&f, &f.cfg.compose_env.clone(), "val-2", "val-1");
        let got = tool_records(&f.cfg, &f.ids, Some(&j));
        let values: Vec<&str> = got.iter().map(|c| c.value.expose()).collect();
        assert_eq!(values, ["val-1", "val-2", "val-3"]);
        for c in &got {
            for v in ["val-1", "val-2", "val-3"] {
                assert!(!c.source.contains(v), "{}", c.source);
            }
        }
        assert!(got[0].source.contains(&j.run_id), "{}", got[0].source);
        // Without the pending run: the last committed value alone.
        let got = tool_records(&f.cfg, &f.ids, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value.expose(), "val-3");
    }

    #[test]
    fn only_a_pending_run_of_this_deployment_is_taken_over_and_the_audit_log_says_so() {
        let f = fixture();
        assert!(pending_of(&f.cfg).unwrap().is_none());
        // Another deployment's journal in this state_dir: not ours to take over.
        let other = f.cfg.state_dir.parent().unwrap().join("other.env");
        std::fs::write(&other, b"y").unwrap();
        pending_journal(&f, &other, "a", "b");
        assert!(pending_of(&f.cfg).unwrap().is_none());
        Journal::clear(&f.cfg.journal_dir()).unwrap();
        let j = pending_journal(&f, &f.cfg.compose_env.clone(), "a", "b");
        let got = pending_of(&f.cfg)
            .unwrap()
            .expect("this deployment's pending run");
        assert_eq!(got.run_id, j.run_id);
        take_over(&f.cfg, &got, "test").unwrap();
        assert!(Journal::load_pending(&f.cfg.journal_dir())
            .unwrap()
            .is_none());
        // Kept whole and sealed beside, never deleted; the host-wide pointer is gone.
        let kept = Journal::load_pending(&archive_dir(&f.cfg, &got))
            .unwrap()
            .expect("the journal is kept");
        assert_eq!(kept.run_id, j.run_id);
        assert!(kept.sealed_secrets.is_some());
        let nowhere = PathBuf::from("/nowhere");
        assert!(
            crate::txn::lock::pending_elsewhere(&f.cfg.compose_env, &nowhere)
                .unwrap()
                .is_none()
        );
        let audit = crate::audit::read_all(&f.cfg.audit_log()).unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].run_id, j.run_id);
        assert_eq!(audit[0].outcome, "taken-over-by-rescue");
    }
}
