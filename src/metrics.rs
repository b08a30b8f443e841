//! Run metrics in node_exporter's textfile-collector format, and the age of each secret (from
//! the audit log), which also drives `rotate --if-older-than`.
//!
//! Give each command its own file (`verify.prom`, `rotate.prom`): the collector merges every
//! `*.prom` of its directory, and a metric family must not be split across two files. So every
//! family but one carries a `command` label; the one without (each secret's last rotation, a
//! fact of the deployment, not of a run) is written by `rotate` alone.

mod age;

use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::error::Result;
use crate::report::escape_label;
use age::unix_of;
pub use age::{last_rotation, now_unix, rotation_due, secret_names};
use std::fmt::Write as _;
use std::path::Path;

/// What one run reports.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    pub command: String,
    pub exit_code: i32,
    pub now: u64,
    /// Newest successful run of this command (this one, the previous file, or the audit log).
    pub last_success: Option<u64>,
    /// (secret, Unix time of its last rotation); absent when never rotated by the tool.
    /// Rendered only into `rotate`'s file.
    pub last_rotations: Vec<(String, u64)>,
    /// (step, seconds) of this run's steps, from its audit record.
    pub steps: Vec<(String, f64)>,
}

impl RunMetrics {
    /// Gathers everything but the steps: the previous file (for `last_success`) and the audit log.
    pub fn gather(
        cfg: Option<&Config>,
        previous_file: Option<&Path>,
        command: &str,
        exit_code: i32,
        this_run: Option<&AuditRecord>,
    ) -> RunMetrics {
        let now = now_unix();
        let records = cfg
            .and_then(|c| audit::read_for(c).ok())
            .unwrap_or_default();
        let from_file = previous_file
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| {
                previous_value(&t, "komodo_rotate_last_success_timestamp_seconds", command)
            });
        let from_audit = records
            .iter()
            .filter(|r| r.command == command && r.exit_code == 0)
            .filter_map(unix_of)
            .max();
        let this = (exit_code == 0).then_some(now);
        let last_success = [from_file, from_audit, this].into_iter().flatten().max();
        let last_rotations = secret_names(&records)
            .into_iter()
            .filter_map(|s| last_rotation(&records, &s).map(|t| (s, t)))
            .collect();
        let steps = this_run
            .map(|r| {
                r.steps
                    .iter()
                    .filter_map(|s| s.millis.map(|m| (s.name.clone(), m as f64 / 1000.0)))
                    .collect()
            })
            .unwrap_or_default();
        RunMetrics {
            command: command.to_string(),
            exit_code,
            now,
            last_success,
            last_rotations,
            steps,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = escape_label(&self.command);
        let mut family = |name: &str, help: &str, samples: &[(String, String)]| {
            if samples.is_empty() {
                return;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        let cl = format!("command=\"{c}\"");
        family(
            "komodo_rotate_last_run_timestamp_seconds",
            "Unix time the last run of the command ended.",
            &[(cl.clone(), self.now.to_string())],
        );
        family(
            "komodo_rotate_last_exit_code",
            "Exit code of the last run (0 ok, 1 drift, 2 usage, 3 refused, 4 rolled back, 5 rollback incomplete, 6 locked).",
            &[(cl.clone(), self.exit_code.to_string())],
        );
        family(
            "komodo_rotate_last_run_success",
            "1 when the last run of the command exited 0.",
            &[(cl.clone(), u8::from(self.exit_code == 0).to_string())],
        );
        let success: Vec<_> = self
            .last_success
            .map(|t| (cl.clone(), t.to_string()))
            .into_iter()
            .collect();
        family(
            "komodo_rotate_last_success_timestamp_seconds",
            "Unix time of the last run of the command that exited 0.",
            &success,
        );
        // One file only: node_exporter drops a family whose samples repeat across files.
        let rotations: Vec<_> = self
            .last_rotations
            .iter()
            .filter(|_| self.command == "rotate")
            .map(|(s, t)| (format!("secret=\"{}\"", escape_label(s)), t.to_string()))
            .collect();
        family(
            "komodo_rotate_last_rotation_timestamp_seconds",
            "Unix time the secret was last rotated (committed rotate in the audit log).",
            &rotations,
        );
        let steps: Vec<_> = self
            .steps
            .iter()
            .map(|(s, d)| {
                (
                    format!("{cl},step=\"{}\"", escape_label(s)),
                    format!("{d:.3}"),
                )
            })
            .collect();
        family(
            "komodo_rotate_step_duration_seconds",
            "Duration of each step of the last run that ran steps.",
            &steps,
        );
        out
    }
}

/// `name{command="…"} V` from a previous textfile.
pub fn previous_value(text: &str, name: &str, command: &str) -> Option<u64> {
    let prefix = format!("{name}{{command=\"{}\"}} ", escape_label(command));
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

/// Writes `text` atomically, world-readable (node_exporter often runs as its own user; the file
/// holds no secret).
pub fn write(path: &Path, text: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, text.as_bytes(), crate::fsutil::Mode::Exactly(0o644))
        .map_err(|e| crate::Error::io(path, e))
}

/// verify's file: the matrix gauges plus the run gauges.
pub fn verify_file(cfg: &Config, matrix: &crate::report::Matrix, path: &Path) -> String {
    let now = now_unix();
    let run = RunMetrics::gather(Some(cfg), Some(path), "verify", matrix.exit_code(), None);
    let mut s = matrix.to_prometheus(now);
    s.push_str(&run.render());
    s
}

/// verify's gauge naming the deployment's database variant (issue 21): 1 for FerretDB on
/// PostgreSQL, 0 for MongoDB; no sample when the variant cannot be told.
pub fn variant_gauge(ferretdb: bool) -> crate::report::Gauge {
    crate::report::Gauge {
        name: "komodo_rotate_variant_ferretdb",
        help: "1 when the deployment's database is FerretDB on PostgreSQL (Komodo's ferretdb.compose.yaml), 0 for MongoDB.",
        value: f64::from(u8::from(ferretdb)),
    }
}

/// What verify learned about the git plane (src/commands/verify_git.rs), as numbers.
#[derive(Debug, Clone, Default)]
pub struct GitFacts {
    /// compose.env in the work tree equals HEAD's.
    pub env_committed: Option<bool>,
    /// The last fetch of the upstream succeeded (0: the counts below are from an older fetch).
    pub fetch_ok: Option<bool>,
    pub ahead: Option<u32>,
    pub behind: Option<u32>,
    pub pull_blocked: Option<bool>,
    pub untracked_collisions: Option<usize>,
    /// Gitignored files a pull would overwrite or that sit inside a blocking directory.
    pub ignored_at_risk: Option<usize>,
}

/// The git gauges of verify's file; a fact that could not be learned has no sample.
pub fn git_gauges(f: &GitFacts) -> Vec<crate::report::Gauge> {
    use crate::report::Gauge;
    let b = |v: bool| f64::from(u8::from(v));
    let candidates = [
        (
            "komodo_rotate_git_compose_env_committed",
            "1 when compose.env in the host checkout equals the committed HEAD version.",
            f.env_committed.map(b),
        ),
        (
            "komodo_rotate_git_fetch_ok",
            "1 when verify could fetch the upstream (0: offline, counts from the last fetch).",
            f.fetch_ok.map(b),
        ),
        (
            "komodo_rotate_git_ahead_commits",
            "Commits of the host checkout's HEAD not on its upstream.",
            f.ahead.map(f64::from),
        ),
        (
            "komodo_rotate_git_behind_commits",
            "Upstream commits the host checkout's HEAD does not have.",
            f.behind.map(f64::from),
        ),
        (
            "komodo_rotate_git_pull_blocked",
            "1 when a fast-forward pull of the host checkout would fail.",
            f.pull_blocked.map(b),
        ),
        (
            "komodo_rotate_git_untracked_collisions",
            "Untracked files in the way of incoming paths (they block the pull).",
            f.untracked_collisions.map(|n| n as f64),
        ),
        (
            "komodo_rotate_git_ignored_files_at_risk",
            "Gitignored files a pull would overwrite or that live in a blocking directory.",
            f.ignored_at_risk.map(|n| n as f64),
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(name, help, v)| v.map(|value| Gauge { name, help, value }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditStep;
    use std::time::Duration;

    fn rec(command: &str, outcome: &str, time: &str) -> AuditRecord {
        AuditRecord {
            time: time.into(),
            run_id: "r".into(),
            command: command.into(),
            secrets: vec!["db-password".into()],
            outcome: outcome.into(),
            exit_code: if outcome == "committed" { 0 } else { 4 },
            steps: vec![AuditStep {
                name: "change-db".into(),
                status: "done".into(),
                millis: Some(1250),
            }],
            error: None,
            deployment: None,
            kept_edits: Vec::new(),
        }
    }

    #[test]
    fn last_rotation_counts_committed_rotates_only() {
        let rs = vec![
            rec("rotate", "committed", "2026-01-01T00:00:00Z"),
            rec("rotate", "rolled-back", "2026-02-01T00:00:00Z"),
            rec("rescue", "committed", "2026-03-01T00:00:00Z"),
        ];
        assert_eq!(last_rotation(&rs, "db-password"), Some(1_767_225_600));
        assert_eq!(last_rotation(&rs, "passkey"), None);
        assert_eq!(last_rotation(&rs[1..], "db-password"), None);
    }

    #[test]
    fn the_variant_gauge_names_ferretdb() {
        let mut m = crate::report::Matrix::default();
        m.gauges.push(variant_gauge(true));
        let text = m.to_prometheus(0);
        assert!(
            text.contains("\nkomodo_rotate_variant_ferretdb 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE komodo_rotate_variant_ferretdb gauge"),
            "{text}"
        );
        assert_eq!(variant_gauge(false).value, 0.0);
    }

    #[test]
    fn git_gauges_only_for_known_facts() {
        assert!(git_gauges(&GitFacts::default()).is_empty());
        let g = git_gauges(&GitFacts {
            behind: Some(3),
            pull_blocked: Some(true),
            untracked_collisions: Some(1),
            ..Default::default()
        });
        let names: Vec<_> = g.iter().map(|g| (g.name, g.value)).collect();
        assert_eq!(
            names,
            vec![
                ("komodo_rotate_git_behind_commits", 3.0),
                ("komodo_rotate_git_pull_blocked", 1.0),
                ("komodo_rotate_git_untracked_collisions", 1.0),
            ]
        );
        let m = crate::report::Matrix {
            gauges: g,
            ..Default::default()
        };
        let p = m.to_prometheus(1);
        assert!(p.contains("# TYPE komodo_rotate_git_behind_commits gauge\nkomodo_rotate_git_behind_commits 3\n"), "{p}");
    }

    #[test]
    fn render_and_carry_over() {
        let m = RunMetrics {
            command: "rotate".into(),
            exit_code: 4,
            now: 100,
            last_success: Some(50),
            last_rotations: vec![("db-password".into(), 7)],
            steps: vec![("change-db".into(), 1.25)],
        };
        let t = m.render();
        assert!(
            t.contains("komodo_rotate_last_exit_code{command=\"rotate\"} 4\n"),
            "{t}"
        );
        assert!(t.contains(
            "komodo_rotate_step_duration_seconds{command=\"rotate\",step=\"change-db\"} 1.250\n"
        ));
        assert_eq!(
            previous_value(&t, "komodo_rotate_last_success_timestamp_seconds", "rotate"),
            Some(50)
        );
        assert_eq!(
            previous_value(&t, "komodo_rotate_last_success_timestamp_seconds", "verify"),
            None
        );
        let none = RunMetrics {
            command: "resume".into(),
            ..Default::default()
        }
        .render();
        assert!(
            !none.contains("last_rotation"),
            "no record, no sample: {none}"
        );
        assert!(
            t.contains("komodo_rotate_last_rotation_timestamp_seconds{secret=\"db-password\"} 7\n")
        );
    }

    #[test]
    fn only_one_file_carries_a_family_without_a_command_label() {
        // Every command's file as the scheduled units write them, side by side in one
        // collector directory: no sample (name and labels) may appear in two of them.
        let mut seen = std::collections::BTreeMap::new();
        for command in ["rotate", "verify", "rescue", "resume"] {
            let t = RunMetrics {
                command: command.into(),
                now: 100,
                last_success: Some(50),
                last_rotations: vec![("db-password".into(), 7)],
                steps: vec![("change-db".into(), 1.0)],
                ..Default::default()
            }
            .render();
            for line in t.lines().filter(|l| !l.starts_with('#')) {
                let series = line.rsplit_once(' ').unwrap().0.to_owned();
                if let Some(other) = seen.insert(series.clone(), command) {
                    panic!("{series} in both {other}'s and {command}'s file");
                }
            }
        }
        assert!(seen
            .keys()
            .any(|k| k.starts_with("komodo_rotate_last_rotation_timestamp")));
    }

    #[test]
    fn if_older_than_counts_only_its_own_deployment() {
        let d = tempfile::tempdir().unwrap();
        let cfg_for = |name: &str| {
            let dir = d.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("compose.env"), "X=1\n").unwrap();
            let p = dir.join("komodo-rotate.toml");
            // Both share one state_dir (the default before init wrote one per deployment).
            std::fs::write(
                &p,
                format!(
                    "compose_env = \"compose.env\"\nstate_dir = \"{}\"\n",
                    d.path().join("shared-state").display()
                ),
            )
            .unwrap();
            Config::load(Some(&p)).unwrap()
        };
        let (a, b) = (cfg_for("a"), cfg_for("b"));
        let j = crate::txn::new_journal(
            "rotate",
            "db-password",
            &a.compose_env,
            serde_json::Value::Null,
            vec![],
        );
        audit::append(
            &a.audit_log(),
            &AuditRecord::from_journal(&j, "committed", 0, None),
        )
        .unwrap();
        let day = Duration::from_secs(86_400);
        assert!(
            !rotation_due(&a, "db-password", day, true).unwrap(),
            "A just rotated"
        );
        assert!(
            rotation_due(&b, "db-password", day, true).unwrap(),
            "B never rotated: A's record must not count for it"
        );
    }
}
