//! A pending run's recreates that a kill left half done (issue 19, the campaign's seed
//! 143024129): `<name>-next` and/or `<name>-prev` beside a container the run recreates. When
//! rescue takes such a run over, its own recreate of that container would refuse ("-prev
//! exists"), and the run's own resume may be unable to finish (a real conflict in git). So
//! before the take-over each one is put back to its original with the docker module's
//! recognise-and-repair code ([`Recreate::undo`] from the run's sealed snapshot, the undo a
//! rollback runs), and recorded in the audit log (names, never a value). Only the states the
//! recreate module names as partial are repaired; an unknown combination is left alone (the
//! caller's pre-flight then refuses as before).

use super::context::{load_sealed_snapshot, snapshot_key};
use super::layout::snapshot_file;
use crate::config::Config;
use crate::docker::{Engine, EnvPatch, Recreate, RecreateState};
use crate::error::{exit, Result};
use crate::sops::Identities;
use crate::txn::Journal;

/// One container of the pending run caught between two steps of its recreate.
pub struct PartialRecreate {
    rec: Recreate,
    state: RecreateState,
}

impl PartialRecreate {
    /// The container's name (without `-next`/`-prev`).
    pub fn name(&self) -> &str {
        self.rec.name()
    }

    /// One line for `--dry-run` and the audit record: the container and the state it is in.
    pub fn describe(&self) -> String {
        let what = match &self.state {
            RecreateState::NextCreated { .. } => "its replacement -next created",
            RecreateState::Parked => "its original parked as -prev, the replacement still -next",
            RecreateState::Swapped { .. } => {
                "its replacement promoted, the original parked as -prev"
            }
            _ => "only its original left, as -prev",
        };
        format!(
            "{} ({what}): the original is put back, the replacement removed",
            self.name()
        )
    }
}

/// Whether `state` is one a kill leaves inside a recreate (a `-next` or `-prev` of ours).
fn is_partial(state: &RecreateState) -> bool {
    matches!(
        state,
        RecreateState::NextCreated { .. }
            | RecreateState::Parked
            | RecreateState::Swapped { .. }
            | RecreateState::PrevOnly
    )
}

/// Every container `j` recreates that is in a partial recreate state now, read against the
/// run's sealed snapshot of it (the latest recreate step of the container whose snapshot reads
/// as partial). Read-only.
pub async fn find(
    cfg: &Config,
    ids: &Identities,
    engine: &Engine,
    j: &Journal,
) -> Result<Vec<PartialRecreate>> {
    // An env-only kind's run is finished by `resume::finish` before rescue acts, recreates
    // included: only a run with a store (db-password) is taken over as it stands.
    if !super::RunContext::of(j).is_ok_and(|c| c.has_store()) {
        return Ok(Vec::new());
    }
    let dir = cfg.journal_dir();
    let mut out: Vec<PartialRecreate> = Vec::new();
    for r in j.steps.iter().rev() {
        let step = &r.step;
        let Some(name) = step
            .target
            .as_deref()
            .filter(|_| step.is(super::steps::RECREATE))
        else {
            continue;
        };
        if out.iter().any(|p| p.name() == name) {
            continue;
        }
        let Some(snap) =
            load_sealed_snapshot(&dir.join(snapshot_file(&snapshot_key(step, j))), ids)?
        else {
            continue;
        };
        let state = RecreateState::classify(engine, name, &snap.original_id).await?;
        if is_partial(&state) {
            let rec = Recreate::from_snapshot(engine, snap, EnvPatch::new()).await?;
            out.push(PartialRecreate { rec, state });
        }
    }
    Ok(out)
}

/// Puts each of `partial` back to its original (the recreate's undo), each one recorded in the
/// audit log under `j`'s run and told on stderr. The first failure stops and is returned (the
/// pending journal is still where it was: `resume` or rescue again).
pub async fn repair(cfg: &Config, j: &Journal, partial: &[PartialRecreate]) -> Result<()> {
    for p in partial {
        p.rec.undo().await?;
        let line = p.describe();
        let rec = crate::audit::AuditRecord::from_journal(
            j,
            "recreate-undone-by-rescue",
            exit::ROLLBACK_INCOMPLETE,
            Some(line.clone()),
        );
        crate::audit::append(&cfg.audit_log(), &rec)?;
        eprintln!(
            "komodo-rotate: the pending {} run {} left a recreate half done: {line}",
            j.command, j.run_id
        );
    }
    Ok(())
}
