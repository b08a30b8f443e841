//! Runs a staged journal against the live planes and closes the run: audit record, journal
//! cleared or kept, the exit the scheduler sees. Shared by `rotate`, `rescue` and `resume`.

use super::live::{LivePlanes, Staged};
use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::docker::Engine;
use crate::error::{exit, Changed, Error, Result};
use crate::mongo::Target;
use crate::sops::Identities;
use crate::txn::{Journal, Outcome, Progress, Runner, StepStatus};
use std::io::IsTerminal;

pub const RUNBOOK_INTERRUPTED: &str = "runbooks/interrupted-run.md";
pub const RUNBOOK_CRASH_LOOP: &str = "runbooks/crash-loop-rescue.md";

/// Progress lines on stderr: `[3/6] change-db ... ok (120 ms)`. On a terminal the line is
/// opened when the step starts; elsewhere (journald, CI logs) it is written whole at the end.
pub struct StderrProgress {
    tty: bool,
    quiet: bool,
}

impl StderrProgress {
    pub fn new(quiet: bool) -> Self {
        StderrProgress {
            tty: std::io::stderr().is_terminal(),
            quiet,
        }
    }
}

impl Progress for StderrProgress {
    fn step_started(&mut self, i: usize, n: usize, name: &str) {
        if self.tty && !self.quiet {
            eprint!("[{}/{}] {name} ... ", i + 1, n);
        }
    }
    fn step_finished(&mut self, i: usize, n: usize, name: &str, result: &str, ms: u64) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprintln!("{result} ({ms} ms)");
        } else {
            eprintln!("[{}/{}] {name} ... {result} ({ms} ms)", i + 1, n);
        }
    }
}

pub struct Live<'a> {
    pub cfg: &'a Config,
    pub ids: &'a Identities,
    pub engine: Engine,
    pub target: Target,
}

pub enum Direction {
    Forward,
    /// Undo everything that may have changed, newest first.
    Back {
        reason: String,
    },
}

/// Runs `journal` (already persisted) in `direction`, then writes the audit record and clears or
/// keeps the journal. Returns the process exit code for a clean end, or the error to report.
pub async fn execute(
    live: Live<'_>,
    journal: Journal,
    staged: Staged,
    direction: Direction,
) -> Result<i32> {
    let dir = live.cfg.journal_dir();
    let mut planes = LivePlanes {
        cfg: live.cfg,
        ids: live.ids,
        engine: live.engine,
        target: live.target,
        staged,
        journal_dir: dir.clone(),
        outside: Default::default(),
        kept: Default::default(),
    };
    let mut progress = StderrProgress::new(crate::output::quiet());
    let mut runner = Runner::new(dir.clone(), journal, &mut planes, &mut progress);
    let outcome = match direction {
        Direction::Forward => runner.run().await?,
        Direction::Back { reason } => {
            let upto = runner
                .journal
                .steps
                .iter()
                .rposition(|r| r.status != StepStatus::Pending)
                .unwrap_or(0);
            runner.roll_back(upto, "resume".into(), reason).await?
        }
    };
    let journal = runner.journal.clone();
    drop(runner);
    // After a rollback, prove the old state is back before calling it clean.
    let outcome = match outcome {
        Outcome::RolledBack { step, cause } => {
            match super::proof::old_state_is_back(&planes, &journal).await {
                Ok(outside) => {
                    for (container, sig) in outside {
                        planes.note_outside(&container, sig);
                    }
                    Outcome::RolledBack { step, cause }
                }
                Err(why) => Outcome::RollbackIncomplete {
                    step,
                    cause,
                    undo_step: "verify-old-state".into(),
                    undo_failure: why,
                },
            }
        }
        o => o,
    };
    let outside = planes
        .outside
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let (label, code) = match &outcome {
        Outcome::Committed if !outside.is_empty() => {
            ("committed-unhealthy-elsewhere", exit::UNHEALTHY_ELSEWHERE)
        }
        Outcome::RolledBack { .. } if !outside.is_empty() => {
            ("rolled-back-unhealthy-elsewhere", exit::UNHEALTHY_ELSEWHERE)
        }
        Outcome::Committed => ("committed", exit::OK),
        Outcome::RolledBack { .. } => ("rolled-back", exit::ROLLED_BACK),
        Outcome::RollbackIncomplete { .. } => ("rollback-incomplete", exit::ROLLBACK_INCOMPLETE),
    };
    let (result, err_line) = if code == exit::UNHEALTHY_ELSEWHERE {
        let line = elsewhere_line(&journal, &outcome, &outside);
        eprintln!("komodo-rotate: {line}");
        (Ok(()), Some(line))
    } else {
        let result = outcome.into_result(RUNBOOK_INTERRUPTED);
        let err_line = result.as_ref().err().map(ToString::to_string);
        (result, err_line)
    };
    if let Err(e) = audit::append(
        &live.cfg.audit_log(),
        &AuditRecord::from_journal(&journal, label, code, err_line)
            .with_kept_edits(planes.kept.take()),
    ) {
        eprintln!("komodo-rotate: warning: audit log: {e}");
    }
    if code != exit::ROLLBACK_INCOMPLETE {
        // The rollback happened (and was proven): a journal left behind does not undo that.
        clear_after(&dir, code, &journal).map_err(|e| {
            e.with_change_note(
                Changed::Yes,
                "; the run was rolled back (proven) but its journal is kept: `komodo-rotate resume` clears it",
            )
        })?;
    }
    result.map(|()| code)
}

/// The one line of exit 7: what the run did with its own secret, and the other problem.
fn elsewhere_line(journal: &Journal, outcome: &Outcome, outside: &[String]) -> String {
    let own = match outcome {
        Outcome::RolledBack { step, cause } => {
            format!(
                "rolled back after {step} failed ({cause}); its old value is back in every plane"
            )
        }
        _ => "committed: its new value is live in every plane".into(),
    };
    format!(
        "{} run {} {own}, but the deployment is unhealthy for a reason outside {}: {}. Run `komodo-rotate verify`, then `komodo-rotate rescue` ({RUNBOOK_CRASH_LOOP})",
        journal.command,
        journal.run_id,
        journal.secret,
        outside.join("; ")
    )
}

/// Clears the journal of a run that ended cleanly. After a commit a failed clear is only a
/// warning (the run did commit; the journal on disk says so and `resume` will clear it).
fn clear_after(dir: &std::path::Path, code: i32, journal: &Journal) -> Result<()> {
    match Journal::clear(dir) {
        Ok(()) => Ok(()),
        Err(e) if code == exit::OK => {
            if !journal.is_committed() || journal.persist(dir).is_err() {
                eprintln!("komodo-rotate: warning: the run committed, but its journal could not be marked so; `komodo-rotate resume` will replay the commit step (idempotent)");
            }
            eprintln!("komodo-rotate: warning: the run committed, but its journal could not be cleared ({e}); `komodo-rotate resume` clears it");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Refuses to start while an interrupted run's journal is pending (exit 3).
pub fn refuse_if_pending(cfg: &Config) -> Result<()> {
    if let Some(j) = Journal::load_pending(&cfg.journal_dir())? {
        if j.is_committed() && Journal::clear(&cfg.journal_dir()).is_ok() {
            // A committed run whose clear had failed (or whose process ended before it):
            // nothing is pending, but the operator is told what was removed.
            eprintln!(
                "komodo-rotate: note: the journal of {} run {} ({}) was left behind after it committed; nothing of it was pending, so it was cleared",
                j.command, j.run_id, j.secret
            );
            return Ok(());
        }
        let inflight = j
            .steps
            .iter()
            .find(|r| r.status != StepStatus::Done && r.status != StepStatus::Pending)
            .map(|r| r.step.name())
            .unwrap_or_else(|| "none".into());
        return Err(Error::Precondition(format!(
            "an interrupted {} run ({}, step in flight: {inflight}) has a journal in {}: run `komodo-rotate resume` first",
            j.command,
            j.run_id,
            cfg.journal_dir().display()
        )));
    }
    // Another config's run on the same compose.env.
    let own = std::fs::canonicalize(cfg.journal_dir()).unwrap_or_else(|_| cfg.journal_dir());
    if let Some(other) = crate::txn::lock::pending_elsewhere(&cfg.compose_env, &own)? {
        return Err(Error::Precondition(format!(
            "{} has an interrupted run's journal in {} (another config's state_dir): run `komodo-rotate resume` with that config first",
            cfg.compose_env.display(),
            other.display()
        )));
    }
    Ok(())
}
