//! Runs the steps of a journal in order and, when one fails, undoes the completed ones newest
//! first (rustup's transaction, made explicit because our undos are async and must also be
//! replayable by `resume`). The journal is persisted before and after every step and every undo.

pub use super::failpoint::failpoint;
use super::journal::{Journal, StepStatus};
use super::step::Step;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// What the steps act on. The real implementation composes the Mongo, SOPS and Docker planes;
/// unit tests of the ordering use an in-memory one.
#[allow(async_fn_in_trait)]
pub trait Planes {
    async fn apply(&mut self, step: &Step, journal: &Journal) -> Result<()>;
    /// Must be safe on a step that was only partly applied, or not at all (the step may have
    /// been in flight when it failed or when the process died).
    async fn undo(&mut self, step: &Step, journal: &Journal) -> Result<()>;
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Committed,
    RolledBack {
        step: String,
        cause: String,
    },
    RollbackIncomplete {
        step: String,
        cause: String,
        undo_step: String,
        undo_failure: String,
    },
}

impl Outcome {
    pub fn into_result(self, runbook: &str) -> Result<()> {
        match self {
            Outcome::Committed => Ok(()),
            Outcome::RolledBack { step, cause } => Err(Error::RolledBack { step, cause }),
            Outcome::RollbackIncomplete {
                step,
                cause,
                undo_step,
                undo_failure,
            } => Err(Error::RollbackIncomplete {
                step,
                cause,
                undo_failure: format!("undo of {undo_step} failed: {undo_failure}"),
                runbook: runbook.into(),
            }),
        }
    }
}

/// Receives a line per step start and end (the CLI prints them; tests collect them).
pub trait Progress {
    fn step_started(&mut self, index: usize, total: usize, name: &str);
    fn step_finished(&mut self, index: usize, total: usize, name: &str, result: &str, millis: u64);
}

pub struct Runner<'a, P: Planes, G: Progress> {
    pub dir: PathBuf,
    pub journal: Journal,
    pub planes: &'a mut P,
    pub progress: &'a mut G,
    /// The first failure to persist the journal once something may have changed. From then on
    /// the run goes on from the in-memory journal only, and can at best end in
    /// [`Outcome::RollbackIncomplete`]: the journal on disk is stale.
    journal_error: Option<String>,
}

impl<'a, P: Planes, G: Progress> Runner<'a, P, G> {
    pub fn new(dir: PathBuf, journal: Journal, planes: &'a mut P, progress: &'a mut G) -> Self {
        Runner {
            dir,
            journal,
            planes,
            progress,
            journal_error: None,
        }
    }

    /// Applies every step not yet done. Steps already `Done` (a resumed run) are skipped.
    ///
    /// Journal write failures: before any step of this run or an earlier one may have changed
    /// something, a failure to persist is an error (exit 3, truly nothing changed). After that,
    /// it means "outcome unknown": the run stops going forward, rolls back from the in-memory
    /// journal, keeps whatever journal is on disk, and ends in `RollbackIncomplete` (exit 5).
    pub async fn run(&mut self) -> Result<Outcome> {
        let total = self.journal.steps.len();
        for i in 0..total {
            if self.journal.steps[i].status == StepStatus::Done {
                continue;
            }
            let step = self.journal.steps[i].step.clone();
            let name = step.name();
            // A step no process has started yet: its failure can prove it changed nothing.
            let first_attempt = self.journal.steps[i].status == StepStatus::Pending;
            let changed_before = self.may_have_changed();
            if let Err(e) = self.set(i, StepStatus::InFlight, None, None) {
                if !changed_before {
                    return Err(e);
                }
                // This step never started: undo what came before it.
                self.journal.steps[i].status = StepStatus::Pending;
                let cause = format!("cannot persist the journal before {name}: {e}");
                self.journal_error = Some(cause.clone());
                return self.roll_back(i, name, cause).await;
            }
            self.progress.step_started(i, total, &name);
            let t0 = Instant::now();
            let result = match failpoint(&format!("before:{name}")) {
                Ok(()) => self.planes.apply(&step, &self.journal).await,
                Err(e) => Err(e),
            };
            let ms = t0.elapsed().as_millis() as u64;
            match result {
                Ok(()) => {
                    let persisted = self.set(i, StepStatus::Done, None, Some(ms));
                    self.progress.step_finished(i, total, &name, "ok", ms);
                    if let Err(e) = persisted {
                        if i + 1 == total {
                            // The last step of a plan is its commit.
                            // Past the point of no return: the run is committed; the stale
                            // journal only makes `resume` replay the (idempotent) commit.
                            eprintln!("komodo-rotate: warning: the run committed, but the journal could not be updated: {e}; `komodo-rotate resume` will finish clearing it");
                            return Ok(Outcome::Committed);
                        }
                        let cause = format!("cannot persist the journal after {name}: {e}");
                        self.journal_error = Some(cause.clone());
                        self.set_or_note(i, StepStatus::Failed, Some(cause.clone()), Some(ms));
                        return self.roll_back(i, name, cause).await;
                    }
                    if let Err(e) = failpoint(&format!("after:{name}")) {
                        // An injected failure right after a step counts as that step failing
                        // late: the step is complete, so its undo must run too.
                        let cause = e.to_string();
                        self.set_or_note(i, StepStatus::Failed, Some(cause.clone()), Some(ms));
                        return self.roll_back(i, name, cause).await;
                    }
                }
                Err(e) => {
                    let cause = e.to_string();
                    // Proven untouched on its first attempt: the step stays pending and the
                    // rollback leaves it out. A step an earlier process started may have changed
                    // something then, whatever this attempt proves, so its undo still runs.
                    let status = if first_attempt && e.proves_untouched() {
                        StepStatus::Pending
                    } else {
                        StepStatus::Failed
                    };
                    self.set_or_note(i, status, Some(cause.clone()), Some(ms));
                    self.progress.step_finished(i, total, &name, "FAILED", ms);
                    return self.roll_back(i, name, cause).await;
                }
            }
        }
        Ok(Outcome::Committed)
    }

    /// True once any step of this journal is past `Pending` (applied now or by an earlier,
    /// interrupted process): from then on "nothing changed" can no longer be claimed.
    fn may_have_changed(&self) -> bool {
        self.journal
            .steps
            .iter()
            .any(|r| r.status != StepStatus::Pending)
    }

    /// Undoes steps `0..=upto` that may have changed something, newest first. Stops at the first
    /// undo that fails: undoing older steps past a failed undo would split the planes (say, Mongo
    /// back to OLD while core still runs with NEW).
    pub async fn roll_back(&mut self, upto: usize, step: String, cause: String) -> Result<Outcome> {
        let total = self.journal.steps.len();
        for j in (0..=upto).rev() {
            let status = self.journal.steps[j].status;
            if !matches!(
                status,
                StepStatus::Done
                    | StepStatus::InFlight
                    | StepStatus::Failed
                    | StepStatus::UndoInFlight
                    | StepStatus::UndoFailed
            ) {
                continue;
            }
            let s = self.journal.steps[j].step.clone();
            let uname = format!("undo:{}", s.name());
            self.set_or_note(j, StepStatus::UndoInFlight, None, None);
            self.progress.step_started(j, total, &uname);
            let t0 = Instant::now();
            let r = match failpoint(&format!("before:{uname}")) {
                Ok(()) => self.planes.undo(&s, &self.journal).await,
                Err(e) => Err(e),
            };
            let ms = t0.elapsed().as_millis() as u64;
            match r {
                Ok(()) => {
                    self.set_or_note(j, StepStatus::Undone, None, Some(ms));
                    self.progress.step_finished(j, total, &uname, "ok", ms);
                }
                Err(e) => {
                    let f = e.to_string();
                    self.set_or_note(j, StepStatus::UndoFailed, Some(f.clone()), Some(ms));
                    self.progress.step_finished(j, total, &uname, "FAILED", ms);
                    let undo_failure = match &self.journal_error {
                        Some(je) => format!("{f}; also {je}"),
                        None => f,
                    };
                    return Ok(Outcome::RollbackIncomplete {
                        step,
                        cause,
                        undo_step: s.name(),
                        undo_failure,
                    });
                }
            }
        }
        if let Some(je) = self.journal_error.take() {
            // Every undo ran, but the journal on disk does not say so: it is kept for `resume`
            // (whose undos are idempotent), and the run cannot call itself cleanly rolled back.
            return Ok(Outcome::RollbackIncomplete {
                step,
                cause,
                undo_step: "journal-write".into(),
                undo_failure: format!(
                    "{je}; every undo ran from the in-memory journal, but the journal on disk is stale (kept for `resume`)"
                ),
            });
        }
        Ok(Outcome::RolledBack { step, cause })
    }

    /// Persists like [`Self::set`], but once the run may have changed something a failure is
    /// remembered (the first one) instead of returned: the rollback must go on regardless.
    fn set_or_note(&mut self, i: usize, st: StepStatus, err: Option<String>, ms: Option<u64>) {
        if let Err(e) = self.set(i, st, err, ms) {
            if self.journal_error.is_none() {
                self.journal_error = Some(format!("the journal could not be written: {e}"));
            }
        }
    }

    fn set(
        &mut self,
        i: usize,
        st: StepStatus,
        err: Option<String>,
        ms: Option<u64>,
    ) -> Result<()> {
        let r = &mut self.journal.steps[i];
        r.status = st;
        if err.is_some() || st == StepStatus::Done || st == StepStatus::Undone {
            r.error = err;
        }
        if ms.is_some() {
            r.millis = ms;
        }
        self.journal.persist(&self.dir)
    }
}
