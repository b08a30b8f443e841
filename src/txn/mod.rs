//! The transaction: steps, the runner that applies and undoes them, the journal that makes a run
//! resumable by another process, and the run lock.

pub mod journal;
pub mod lock;
pub mod runner;
pub mod sealed;
pub mod step;

pub use journal::{Journal, StepRecord, StepStatus};
pub use runner::{Outcome, Planes, Progress, Runner};
pub use step::{GitTarget, RunContext, Step};

/// Builds a fresh journal for `steps`, all pending.
pub fn new_journal(command: &str, secret: &str, context: RunContext, steps: Vec<Step>) -> Journal {
    Journal {
        version: journal::FORMAT_VERSION,
        run_id: journal::new_run_id(),
        command: command.into(),
        secret: secret.into(),
        started_at: journal::now_rfc3339(),
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
            Step::Snapshot,
            Step::ChangeDb,
            Step::WriteEnv,
            Step::Recreate {
                container: "core".into(),
            },
            Step::Recreate {
                container: "periphery".into(),
            },
            Step::Commit,
        ]
    }

    fn run(fail_apply: Option<&str>, fail_undo: Option<&str>) -> (Outcome, Script, Journal) {
        let d = tempfile::tempdir().unwrap();
        let mut planes = Script {
            fail_apply: fail_apply.map(Into::into),
            fail_undo: fail_undo.map(Into::into),
            dir: d.path().to_path_buf(),
            ..Default::default()
        };
        let j = new_journal("rotate", "db-password", RunContext::default(), plan());
        j.persist(d.path()).unwrap();
        let mut lines = Lines::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut runner = Runner {
            dir: d.path().to_path_buf(),
            journal: j,
            planes: &mut planes,
            progress: &mut lines,
        };
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
        assert_eq!(j.status_of(&Step::ChangeDb), Some(StepStatus::Undone));
        assert_eq!(
            j.status_of(&Step::Recreate {
                container: "periphery".into()
            }),
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
        assert_eq!(j.status_of(&Step::WriteEnv), Some(StepStatus::UndoFailed));
        assert_eq!(j.status_of(&Step::ChangeDb), Some(StepStatus::Done));
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
        let mut j = new_journal("rotate", "db-password", RunContext::default(), plan());
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
        let mut runner = Runner {
            dir: d.path().to_path_buf(),
            journal: j,
            planes: &mut planes,
            progress: &mut lines,
        };
        assert!(matches!(
            rt.block_on(runner.run()).unwrap(),
            Outcome::Committed
        ));
        assert_eq!(planes.log[0], "apply write-env");
        assert_eq!(lines.0[0], "[3/6] write-env ...");
    }

    #[test]
    fn journal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let j = new_journal("rotate", "db-password", RunContext::default(), plan());
        j.persist(&d.path().join("journal")).unwrap();
        let md = std::fs::metadata(Journal::path(&d.path().join("journal"))).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        let dmd = std::fs::metadata(d.path().join("journal")).unwrap();
        assert_eq!(dmd.permissions().mode() & 0o777, 0o700);
    }
}
