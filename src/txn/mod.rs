//! The transaction: steps, the runner that applies and undoes them, the journal that makes a run
//! resumable by another process, and the run lock.

pub mod failpoint;
pub mod journal;
mod layout;
pub mod lock;
pub mod runner;
pub mod sealed;
pub mod step;

pub use journal::{Journal, StepRecord, StepStatus};
pub use runner::{Outcome, Planes, Progress, Runner};
pub use step::Step;

/// Builds a fresh journal for `steps`, all pending. `guarded` is the file the run changes (the
/// host-wide lock's key); `context` is the planes' own non-secret data.
pub fn new_journal(
    command: &str,
    secret: &str,
    guarded: &std::path::Path,
    context: serde_json::Value,
    steps: Vec<Step>,
) -> Journal {
    Journal {
        version: journal::FORMAT_VERSION,
        run_id: journal::new_run_id(),
        command: command.into(),
        secret: secret.into(),
        started_at: journal::now_rfc3339(),
        guarded: guarded.to_path_buf(),
        context,
        steps: steps
            .into_iter()
            .map(|step| StepRecord {
                step,
                status: StepStatus::Pending,
                error: None,
                millis: None,
            })
            .collect(),
        sealed_secrets: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    /// Records the order of applies and undos; fails where told.
    #[derive(Default)]
    struct Script {
        log: Vec<String>,
        fail_apply: Option<String>,
        fail_undo: Option<String>,
        dir: std::path::PathBuf,
        journal_seen_in_flight: Vec<bool>,
        /// After applying this step, the journal dir stops being writable (a full disk).
        break_journal_after: Option<String>,
        /// This step fails proving it changed nothing (its server could not be reached).
        untouched_apply: Option<String>,
    }

    /// Makes `dir` unwritable for the journal the way a failed disk would: the directory (and
    /// the journal in it) moves to `dir.kept`, and a plain file takes its place.
    fn break_journal_dir(dir: &std::path::Path) {
        std::fs::rename(dir, kept(dir)).unwrap();
        std::fs::write(dir, b"not a directory").unwrap();
    }

    fn kept(dir: &std::path::Path) -> std::path::PathBuf {
        dir.with_extension("kept")
    }

    impl Planes for Script {
        async fn apply(&mut self, step: &Step, _j: &Journal) -> Result<()> {
            // The journal on disk must already say this step is in flight (write-ahead).
            let on_disk = Journal::load_pending(&self.dir).unwrap().unwrap();
            self.journal_seen_in_flight
                .push(on_disk.status_of(step) == Some(StepStatus::InFlight));
            self.log.push(format!("apply {step}"));
            if self.fail_apply.as_deref() == Some(&step.name()) {
                return Err(crate::Error::Precondition(format!("boom in {step}")));
            }
            if self.untouched_apply.as_deref() == Some(&step.name()) {
                return Err(crate::Error::untouched(crate::Error::Precondition(
                    format!("unreachable in {step}"),
                )));
            }
            if self.break_journal_after.as_deref() == Some(&step.name()) {
                break_journal_dir(&self.dir);
            }
            Ok(())
        }
        async fn undo(&mut self, step: &Step, _j: &Journal) -> Result<()> {
            self.log.push(format!("undo {step}"));
            if self.fail_undo.as_deref() == Some(&step.name()) {
                return Err(crate::Error::Precondition(format!("undo boom in {step}")));
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Lines(Vec<String>);
    impl Progress for Lines {
        fn step_started(&mut self, i: usize, n: usize, name: &str) {
            self.0.push(format!("[{}/{}] {name} ...", i + 1, n));
        }
        fn step_finished(&mut self, _: usize, _: usize, name: &str, r: &str, _: u64) {
            self.0.push(format!("{name} {r}"));
        }
    }

    fn plan() -> Vec<Step> {
        vec![
            Step::new("snapshot"),
            Step::new("change-db"),
            Step::new("write-env"),
            Step::new("recreate").on("core"),
            Step::new("recreate").on("periphery"),
            Step::new("commit"),
        ]
    }

    fn a_journal() -> Journal {
        new_journal(
            "rotate",
            "db-password",
            std::path::Path::new(""),
            serde_json::Value::Null,
            plan(),
        )
    }

    fn run(fail_apply: Option<&str>, fail_undo: Option<&str>) -> (Outcome, Script, Journal) {
        let planes = Script {
            fail_apply: fail_apply.map(Into::into),
            fail_undo: fail_undo.map(Into::into),
            ..Default::default()
        };
        run_from(a_journal(), planes)
    }

    /// Runs `j` (persisted first) on `planes` in a fresh dir; returns the outcome, the planes and
    /// the journal on disk.
    fn run_from(j: Journal, mut planes: Script) -> (Outcome, Script, Journal) {
        let d = tempfile::tempdir().unwrap();
        planes.dir = d.path().to_path_buf();
        j.persist(d.path()).unwrap();
        let mut lines = Lines::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut runner = Runner::new(d.path().to_path_buf(), j, &mut planes, &mut lines);
        let out = rt.block_on(runner.run()).unwrap();
        let on_disk = Journal::load_pending(d.path()).unwrap().unwrap();
        (out, planes, on_disk)
    }

    #[test]
    fn all_steps_in_order_and_journal_is_write_ahead() {
        let (out, p, j) = run(None, None);
        assert!(matches!(out, Outcome::Committed));
        assert_eq!(
            p.log,
            [
                "apply snapshot",
                "apply change-db",
                "apply write-env",
                "apply recreate:core",
                "apply recreate:periphery",
                "apply commit"
            ]
        );
        assert!(p.journal_seen_in_flight.iter().all(|b| *b));
        assert!(j.steps.iter().all(|r| r.status == StepStatus::Done));
    }

    #[test]
    fn failure_undoes_completed_steps_newest_first_including_the_failed_one() {
        let (out, p, j) = run(Some("recreate:core"), None);
        match out {
            Outcome::RolledBack { step, cause } => {
                assert_eq!(step, "recreate:core");
                assert!(cause.contains("boom"));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            &p.log[4..],
            [
                "undo recreate:core",
                "undo write-env",
                "undo change-db",
                "undo snapshot"
            ]
        );
        assert_eq!(
            j.status_of(&Step::new("change-db")),
            Some(StepStatus::Undone)
        );
        assert_eq!(
            j.status_of(&Step::new("recreate").on("periphery")),
            Some(StepStatus::Pending)
        );
    }

    #[test]
    fn failed_undo_stops_the_rollback_and_keeps_the_journal() {
        let (out, p, j) = run(Some("recreate:periphery"), Some("write-env"));
        match out {
            Outcome::RollbackIncomplete {
                undo_step,
                undo_failure,
                ..
            } => {
                assert_eq!(undo_step, "write-env");
                assert!(undo_failure.contains("undo boom"));
            }
            o => panic!("{o:?}"),
        }
        // change-db must NOT be undone past a failed env restore: that would split the planes.
        assert!(!p.log.contains(&"undo change-db".to_string()));
        assert_eq!(
            j.status_of(&Step::new("write-env")),
            Some(StepStatus::UndoFailed)
        );
        assert_eq!(j.status_of(&Step::new("change-db")), Some(StepStatus::Done));
        let e = Outcome::RollbackIncomplete {
            step: "a".into(),
            cause: "b".into(),
            undo_step: "c".into(),
            undo_failure: "d".into(),
        }
        .into_result("runbooks/interrupted-run.md")
        .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::ROLLBACK_INCOMPLETE);
        assert!(e.to_string().contains("runbooks/interrupted-run.md"));
    }

    #[test]
    fn resumed_journal_skips_done_steps() {
        let d = tempfile::tempdir().unwrap();
        let mut j = a_journal();
        j.steps[0].status = StepStatus::Done;
        j.steps[1].status = StepStatus::Done;
        j.persist(d.path()).unwrap();
        let mut planes = Script {
            dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let mut lines = Lines::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut runner = Runner::new(d.path().to_path_buf(), j, &mut planes, &mut lines);
        assert!(matches!(
            rt.block_on(runner.run()).unwrap(),
            Outcome::Committed
        ));
        assert_eq!(planes.log[0], "apply write-env");
        assert_eq!(lines.0[0], "[3/6] write-env ...");
    }

    /// Runs the plan from `j` with `step` failing untouched.
    fn run_untouched(j: Journal, step: &str) -> (Outcome, Script, Journal) {
        let planes = Script {
            untouched_apply: Some(step.into()),
            ..Default::default()
        };
        run_from(j, planes)
    }

    #[test]
    fn a_step_proven_untouched_on_its_first_attempt_is_left_out_of_the_rollback() {
        let (out, p, j) = run_untouched(a_journal(), "change-db");
        assert_eq!(
            p.log,
            ["apply snapshot", "apply change-db", "undo snapshot"],
            "an untouched step has nothing to undo"
        );
        match &out {
            Outcome::RolledBack { step, cause } => {
                assert_eq!(step, "change-db");
                assert!(cause.contains("unreachable"), "{cause}");
            }
            o => panic!("{o:?}"),
        }
        let r = &j.steps[1];
        assert_eq!(r.status, StepStatus::Pending);
        assert!(r.error.as_deref().unwrap_or("").contains("unreachable"));
    }

    #[test]
    fn a_step_an_earlier_process_started_is_undone_whatever_this_attempt_proves() {
        // An earlier process died with change-db in flight: it may have changed Mongo then.
        let mut j = a_journal();
        j.steps[0].status = StepStatus::Done;
        j.steps[1].status = StepStatus::InFlight;
        let (out, p, j) = run_untouched(j, "change-db");
        assert_eq!(
            p.log,
            ["apply change-db", "undo change-db", "undo snapshot"]
        );
        assert!(matches!(out, Outcome::RolledBack { .. }), "{out:?}");
        assert_eq!(
            j.status_of(&Step::new("change-db")),
            Some(StepStatus::Undone)
        );
    }

    /// Runs the plan with the journal dir breaking after `break_after` (or, with `None`, before
    /// the run starts), from a journal whose first `done` steps are already done. Returns the
    /// outcome, the planes and the journal left on disk (in the moved-away dir).
    fn run_with_broken_journal(
        break_after: Option<&str>,
        done: usize,
    ) -> (Result<Outcome>, Script, Journal) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("journal");
        let mut j = a_journal();
        for r in j.steps.iter_mut().take(done) {
            r.status = StepStatus::Done;
        }
        j.persist(&dir).unwrap();
        if break_after.is_none() {
            break_journal_dir(&dir);
        }
        let mut planes = Script {
            dir: dir.clone(),
            break_journal_after: break_after.map(Into::into),
            ..Default::default()
        };
        let mut lines = Lines::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut runner = Runner::new(dir.clone(), j, &mut planes, &mut lines);
        let out = rt.block_on(runner.run());
        let on_disk = Journal::load_pending(&kept(&dir)).unwrap().unwrap();
        (out, planes, on_disk)
    }

    #[test]
    fn journal_write_failure_after_a_step_rolls_back_from_memory_and_exits_5() {
        let (out, p, on_disk) = run_with_broken_journal(Some("change-db"), 0);
        let out = out.expect("a journal failure after a change is an outcome, not exit 3");
        assert_eq!(
            &p.log[2..],
            ["undo change-db", "undo snapshot"],
            "the rollback must run from the in-memory journal"
        );
        match &out {
            Outcome::RollbackIncomplete {
                undo_step,
                undo_failure,
                ..
            } => {
                assert_eq!(undo_step, "journal-write");
                assert!(undo_failure.contains("stale"), "{undo_failure}");
            }
            o => panic!("{o:?}"),
        }
        // Whatever was on disk is kept, as it was when the disk failed.
        assert_eq!(
            on_disk.status_of(&Step::new("change-db")),
            Some(StepStatus::InFlight)
        );
        let e = out.into_result("runbooks/interrupted-run.md").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::ROLLBACK_INCOMPLETE);
        assert!(e.to_string().contains("runbooks/interrupted-run.md"), "{e}");
    }

    #[test]
    fn journal_write_failure_before_anything_changed_is_exit_3() {
        let (out, p, on_disk) = run_with_broken_journal(None, 0);
        let e = out.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::PRECONDITION);
        assert!(p.log.is_empty(), "{:?}", p.log);
        assert!(on_disk
            .steps
            .iter()
            .all(|r| r.status == StepStatus::Pending));
    }

    #[test]
    fn journal_write_failure_on_a_resumed_run_is_never_exit_3() {
        // An earlier process completed snapshot and change-db: even though this process fails
        // before starting any step, something has changed, so it rolls back and exits 5.
        let (out, p, _) = run_with_broken_journal(None, 2);
        let out = out.expect("not exit 3 once something may have changed");
        assert_eq!(p.log, ["undo change-db", "undo snapshot"]);
        assert!(
            matches!(out, Outcome::RollbackIncomplete { ref undo_step, .. } if undo_step == "journal-write"),
            "{out:?}"
        );
    }

    #[test]
    fn journal_write_failure_after_commit_is_still_committed() {
        let (out, p, on_disk) = run_with_broken_journal(Some("commit"), 0);
        assert!(matches!(out.unwrap(), Outcome::Committed));
        assert!(!p.log.iter().any(|l| l.starts_with("undo")), "{:?}", p.log);
        assert_eq!(
            on_disk.status_of(&Step::new("commit")),
            Some(StepStatus::InFlight)
        );
    }

    #[test]
    fn clear_removes_the_journal_last_and_committed_is_all_done() {
        let d = tempfile::tempdir().unwrap();
        let mut j = a_journal();
        assert!(!j.is_committed());
        for r in &mut j.steps {
            r.status = StepStatus::Done;
        }
        assert!(j.is_committed());
        j.persist(d.path()).unwrap();
        std::fs::write(d.path().join("snapshot-core.age"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        Journal::clear(d.path()).unwrap();
        assert!(Journal::load_pending(d.path()).unwrap().is_none());
        assert!(!d.path().join("snapshot-core.age").exists());
    }

    #[test]
    fn journal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let j = a_journal();
        j.persist(&d.path().join("journal")).unwrap();
        let md = std::fs::metadata(Journal::path(&d.path().join("journal"))).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let dmd = std::fs::metadata(d.path().join("journal")).unwrap();
        assert_eq!(dmd.permissions().mode() & 0o777, 0o700);
    }
}
