//! The audit log: one JSON line per run in `state_dir/audit.log`: when, which command, which
//! secret names, the steps and how each ended, the outcome. Never a value. Appended with O_APPEND
//! and fsynced, so concurrent readers (a log shipper) never see half a line.
//!
//! Each record names its deployment (compose.env's canonical path): a state_dir shared by
//! several deployments holds all their records, and every reader takes only its own
//! ([`read_for`]).

use crate::error::{Error, Result};
use crate::txn::Journal;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub time: String,
    pub run_id: String,
    pub command: String,
    pub secrets: Vec<String>,
    pub outcome: String,
    pub exit_code: i32,
    pub steps: Vec<AuditStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// compose.env's canonical path; absent in records written before deployments were named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Each undo that set the run's keys back by value over a later edit of the file, keeping it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_edits: Vec<KeptEdit>,
}

/// An undo by value (`planes::inverse`): compose.env held an edit made after the run wrote it,
/// so the undo set only the run's keys back on top of it. Key names only, never a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct KeptEdit {
    /// The file set back (compose.env's path; for git's undo, the path in the work tree).
    pub file: String,
    /// git's undo: the commit that sets the keys back on top of HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The run's keys set back to their old values.
    pub set_back: Vec<String>,
    /// The run's keys removed: the run had added them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Other keys that differ from what the run wrote (added, changed or removed since): kept.
    pub kept: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditStep {
    pub name: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis: Option<u64>,
}

impl AuditRecord {
    pub fn from_journal(j: &Journal, outcome: &str, exit_code: i32, error: Option<String>) -> Self {
        AuditRecord {
            time: crate::txn::journal::now_rfc3339(),
            run_id: j.run_id.clone(),
            command: j.command.clone(),
            secrets: vec![j.secret.clone()],
            outcome: outcome.into(),
            exit_code,
            steps: j
                .steps
                .iter()
                .map(|r| AuditStep {
                    name: r.step.name(),
                    status: serde_json::to_value(r.status)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    millis: r.millis,
                })
                .collect(),
            error,
            deployment: (!j.guarded.as_os_str().is_empty())
                .then(|| crate::config::deployment_of(&j.guarded)),
            kept_edits: Vec::new(),
        }
    }

    /// The record with the undos by value the run made.
    pub fn with_kept_edits(mut self, kept: Vec<KeptEdit>) -> Self {
        self.kept_edits = kept;
        self
    }
}

pub fn append(path: &Path, rec: &AuditRecord) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::txn::lock::ensure_private_dir(dir)?;
    }
    let mut line = serde_json::to_vec(rec)
        .map_err(|e| Error::Precondition(format!("cannot serialise the audit record: {e}")))?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(&line).map_err(|e| Error::io(path, e))?;
    f.sync_data().map_err(|e| Error::io(path, e))
}

/// Every record, oldest first; unreadable lines are skipped (a torn tail after a power cut).
pub fn read_all(path: &Path) -> Result<Vec<AuditRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The records of `cfg`'s deployment, oldest first. Records older than the `deployment` field
/// count only while the log holds no record of another deployment (a state_dir that was never
/// shared); once it does, nobody can tell whose they were, and they count for none.
pub fn read_for(cfg: &crate::config::Config) -> Result<Vec<AuditRecord>> {
    Ok(of_deployment(
        read_all(&cfg.audit_log())?,
        &cfg.deployment(),
    ))
}

fn of_deployment(all: Vec<AuditRecord>, ours: &str) -> Vec<AuditRecord> {
    let shared = all
        .iter()
        .any(|r| r.deployment.as_deref().is_some_and(|d| d != ours));
    all.into_iter()
        .filter(|r| match r.deployment.as_deref() {
            Some(d) => d == ours,
            None => !shared,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{new_journal, Step};

    #[test]
    fn appends_lines_without_values_and_reads_them_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/audit.log");
        let mut j = new_journal(
            "rotate",
            "db-password",
            std::path::Path::new(""),
            serde_json::Value::Null,
            vec![Step::new("change-db")],
        );
        j.sealed_secrets = Some("-----BEGIN AGE ENCRYPTED FILE-----".into());
        append(&p, &AuditRecord::from_journal(&j, "committed", 0, None)).unwrap();
        append(
            &p,
            &AuditRecord::from_journal(&j, "rolled-back", 4, Some("x".into())),
        )
        .unwrap();
        let all = read_all(&p).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].exit_code, 4);
        assert_eq!(all[0].steps[0].name, "change-db");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("AGE ENCRYPTED"),
            "sealed secrets leaked into the audit log"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    fn rec(deployment: Option<&str>, run_id: &str) -> AuditRecord {
        let j = new_journal(
            "rotate",
            "db-password",
            std::path::Path::new(""),
            serde_json::Value::Null,
            vec![],
        );
        AuditRecord {
            run_id: run_id.into(),
            deployment: deployment.map(Into::into),
            ..AuditRecord::from_journal(&j, "committed", 0, None)
        }
    }

    #[test]
    fn records_carry_their_deployment_and_readers_take_only_their_own() {
        let d = tempfile::tempdir().unwrap();
        let env = d.path().join("a/compose.env");
        std::fs::create_dir_all(env.parent().unwrap()).unwrap();
        std::fs::write(&env, b"X=1\n").unwrap();
        // Spelled through a symlinked dir: the record names the canonical path.
        std::os::unix::fs::symlink(d.path().join("a"), d.path().join("link")).unwrap();
        let j = new_journal(
            "rotate",
            "db-password",
            &d.path().join("link/compose.env"),
            serde_json::Value::Null,
            vec![],
        );
        let r = AuditRecord::from_journal(&j, "committed", 0, None);
        let canon = std::fs::canonicalize(&env).unwrap();
        assert_eq!(r.deployment.as_deref(), canon.to_str());

        let a = canon.to_str().unwrap();
        let mixed = vec![
            rec(None, "legacy"),
            rec(Some(a), "a1"),
            rec(Some("/srv/b/compose.env"), "b1"),
        ];
        let ids = |v: Vec<AuditRecord>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        assert_eq!(ids(of_deployment(mixed.clone(), a)), ["a1"]);
        assert_eq!(ids(of_deployment(mixed, "/srv/b/compose.env")), ["b1"]);
        // A log only ever written for one deployment keeps its older records.
        let own = vec![rec(None, "legacy"), rec(Some(a), "a1")];
        assert_eq!(ids(of_deployment(own, a)), ["legacy", "a1"]);
    }

    /// An undo by value is in the record (`kept_edits`: file, keys set back, keys kept), names
    /// only; a record without one has no such field, and older lines still read.
    #[test]
    fn an_undo_by_value_is_recorded_by_key_names() {
        let plain = AuditRecord {
            outcome: "rolled-back".into(),
            exit_code: 4,
            ..rec(None, "r")
        };
        assert!(!serde_json::to_string(&plain)
            .unwrap()
            .contains("kept_edits"));
        let kept = KeptEdit {
            file: "/srv/komodo/compose.env".into(),
            commit: None,
            set_back: vec!["KOMODO_JWT_SECRET".into()],
            removed: vec![],
            kept: vec!["KOMODO_TITLE".into()],
        };
        let rec = plain.with_kept_edits(vec![kept.clone()]);
        let line = serde_json::to_string(&rec).unwrap();
        assert!(
            line.contains(r#""kept_edits":[{"file":"/srv/komodo/compose.env","set_back":["KOMODO_JWT_SECRET"],"kept":["KOMODO_TITLE"]}]"#),
            "{line}"
        );
        let back: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back.kept_edits, [kept]);
    }
}
