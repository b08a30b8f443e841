//! What happens around every run of `rotate`, `rescue` and `resume`, whatever its outcome: the
//! `--prometheus` textfile and the `[alert]` webhook. Both are side channels: a failure of
//! either is a warning on stderr and never changes the exit code.
//!
//! The run's own audit record (if it wrote one) supplies the step names and durations; it is
//! recognised as the record appended after the hook started.

use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::error::Result;
use std::path::{Path, PathBuf};

pub struct RunHook {
    command: &'static str,
    config: Option<PathBuf>,
    prometheus: Option<PathBuf>,
    audit_before: Option<usize>,
}

impl RunHook {
    pub fn start(
        command: &'static str,
        config: Option<&Path>,
        prometheus: Option<PathBuf>,
    ) -> Self {
        let audit_before = Config::load(config)
            .ok()
            .and_then(|c| audit::read_for(&c).ok())
            .map(|r| r.len());
        RunHook {
            command,
            config: config.map(Path::to_path_buf),
            prometheus,
            audit_before,
        }
    }

    /// Writes the metrics and sends the alert for `result`, then hands `result` back unchanged.
    pub fn finish(self, result: Result<i32>) -> Result<i32> {
        let code = match &result {
            Ok(c) => *c,
            Err(e) => e.exit_code(),
        };
        // An unreadable config is exit 2 and was already reported; metrics still record the run.
        let cfg = Config::load(self.config.as_deref()).ok();
        let this_run: Option<AuditRecord> = cfg.as_ref().and_then(|c| {
            let all = audit::read_for(c).ok()?;
            (all.len() > self.audit_before.unwrap_or(0))
                .then(|| all.last().cloned())
                .flatten()
        });
        if let Some(p) = &self.prometheus {
            let m = crate::metrics::RunMetrics::gather(
                cfg.as_ref(),
                Some(p),
                self.command,
                code,
                this_run.as_ref(),
            );
            if let Err(e) = crate::metrics::write(p, &m.render()) {
                eprintln!("komodo-rotate: warning: metrics not written: {e}");
            }
        }
        if let Some(cfg) = &cfg {
            let steps = this_run
                .as_ref()
                .map(|r| {
                    r.steps
                        .iter()
                        .filter(|s| s.status != "pending")
                        .map(|s| format!("{}: {}", s.name, s.status))
                        .collect()
                })
                .unwrap_or_default();
            let changed = this_run.as_ref().is_some_and(|r| r.outcome == "committed");
            crate::alert::notify(
                cfg,
                &crate::alert::Event::new(self.command, code, steps),
                changed,
            );
        }
        result
    }
}

/// verify's alert: the names of the checks that drifted.
pub fn after_verify(cfg: &Config, matrix: &crate::report::Matrix) {
    let drifted = matrix
        .checks
        .iter()
        .filter(|c| c.status == crate::report::Status::Drift)
        .map(|c| c.name.clone())
        .collect();
    crate::alert::notify(
        cfg,
        &crate::alert::Event::new("verify", matrix.exit_code(), drifted),
        false,
    );
}
