//! Runs a staged journal against the live planes and closes the run: audit record, journal
//! cleared or kept, the exit the scheduler sees. Shared by `rotate`, `rescue` and `resume`.

use super::live::{LivePlanes, Staged};
use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::docker::Engine;
use crate::error::{exit, Error, Result};
use crate::mongo::{login_works, LoginOutcome, Target};
use crate::sops::{Identities, SopsFile};
use crate::txn::{Journal, Outcome, Progress, Runner, StepStatus};
use std::io::IsTerminal;

pub const RUNBOOK_INTERRUPTED: &str = "runbooks/interrupted-run.md";

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
    };
    let mut progress = StderrProgress::new(crate::commands::quiet());
    let mut runner = Runner {
        dir: dir.clone(),
        journal,
        planes: &mut planes,
        progress: &mut progress,
    };
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
        Outcome::RolledBack { step, cause } => match old_state_is_back(&planes, &journal).await {
            Ok(()) => Outcome::RolledBack { step, cause },
            Err(why) => Outcome::RollbackIncomplete {
                step,
                cause,
                undo_step: "verify-old-state".into(),
                undo_failure: why,
            },
        },
        o => o,
    };
    let (label, code) = match &outcome {
        Outcome::Committed => ("committed", exit::OK),
        Outcome::RolledBack { .. } => ("rolled-back", exit::ROLLED_BACK),
        Outcome::RollbackIncomplete { .. } => ("rollback-incomplete", exit::ROLLBACK_INCOMPLETE),
    };
    let result = outcome.into_result(RUNBOOK_INTERRUPTED);
    let err_line = result.as_ref().err().map(ToString::to_string);
    if let Err(e) = audit::append(
        &live.cfg.audit_log(),
        &AuditRecord::from_journal(&journal, label, code, err_line),
    ) {
        eprintln!("komodo-rotate: warning: audit log: {e}");
    }
    if code != exit::ROLLBACK_INCOMPLETE {
        Journal::clear(&dir)?;
    }
    result.map(|()| code)
}

/// The invariant after a rollback: Mongo accepts OLD, compose.env holds OLD.
async fn old_state_is_back(p: &LivePlanes<'_>, j: &Journal) -> std::result::Result<(), String> {
    match login_works(&p.target, &p.staged.old).await {
        LoginOutcome::Accepted => {}
        LoginOutcome::Rejected => return Err("Mongo does not accept the old password".into()),
        LoginOutcome::Unreachable(r) => return Err(r),
    }
    let env = SopsFile::load(&j.context.compose_env)
        .and_then(|f| f.decrypt(p.ids))
        .map_err(|e| e.to_string())?;
    let holds_old = env
        .get(&j.context.env_key)
        .is_some_and(|v| v.ct_eq(&p.staged.old));
    if !holds_old && !j.context.env_already_new {
        return Err(format!(
            "compose.env's {} is not the old value",
            j.context.env_key
        ));
    }
    super::git_steps::old_state_is_back(j, p.cfg)?;
    Ok(())
}

/// Refuses to start while an interrupted run's journal is pending (exit 3).
pub fn refuse_if_pending(cfg: &Config) -> Result<()> {
    if let Some(j) = Journal::load_pending(&cfg.journal_dir())? {
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
    Ok(())
}
