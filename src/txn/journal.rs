//! The write-ahead journal of a run (Vault's WAL, AWS's AWSPENDING). It is written and fsynced
//! before and after every step, so that a different process (`resume`) can tell exactly which
//! step was in flight when a run died, and finish or undo it. Secrets in it are sealed with age to
//! compose.env's recipients; everything else is plain JSON so an operator can read it.

use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::txn::lock::ensure_private_dir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use super::layout::JOURNAL_FILE;
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    InFlight,
    Done,
    Failed,
    UndoInFlight,
    Undone,
    UndoFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: super::Step,
    pub status: StepStatus,
    /// One line, never a secret (errors are built without values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub run_id: String,
    pub command: String,
    pub secret: String,
    pub started_at: String,
    /// The file the run guards (host-wide lock and pending pointer are keyed by it).
    #[serde(default)]
    pub guarded: PathBuf,
    /// Non-secret facts the steps need after a crash, as their planes define them (this module
    /// does not look inside).
    #[serde(default)]
    pub context: serde_json::Value,
    pub steps: Vec<StepRecord>,
    /// age-armored JSON `{ "old": ..., "new": ... }`; removed at commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secrets: Option<String>,
}

impl Journal {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(JOURNAL_FILE)
    }

    /// A journal left by an interrupted run, if any.
    pub fn load_pending(dir: &Path) -> Result<Option<Journal>> {
        let p = Self::path(dir);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&p, e)),
        };
        let j: Journal = serde_json::from_str(&text).map_err(|e| {
            Error::Precondition(format!(
                "journal {} is unreadable ({e}); move it aside only after checking the runbook 'interrupted run'",
                p.display()
            ))
        })?;
        if j.version != FORMAT_VERSION {
            return Err(Error::Precondition(format!(
                "journal {} has format version {}, this build reads {FORMAT_VERSION}",
                p.display(),
                j.version
            )));
        }
        Ok(Some(j))
    }

    /// Writes the journal durably (temp file, fsync, rename, fsync dir), 0600.
    /// Failpoint `journal:persist` (e.g. `journal:persist=5*off->return`) fails the Nth write.
    pub fn persist(&self, dir: &Path) -> Result<()> {
        super::failpoint::failpoint("journal:persist")?;
        ensure_private_dir(dir)?;
        let p = Self::path(dir);
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Precondition(format!("cannot serialise the journal: {e}")))?;
        fsutil::write_atomic(&p, &body, Mode::Exactly(0o600)).map_err(|e| Error::io(&p, e))?;
        // Host-wide pointer, so runs of other configs on the same file see this journal.
        let guarded = &self.guarded;
        if !guarded.as_os_str().is_empty() {
            let canon = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
            super::lock::mark_pending(guarded, &canon)?;
        }
        Ok(())
    }

    /// Removes the journal and everything the run kept beside it (snapshots, previous env bytes).
    /// The journal goes last: a clear that fails half-way leaves the journal in place (and with
    /// it the files it explains), never stray files a later run could mistake for its own.
    /// Failpoint `journal:clear`.
    pub fn clear(dir: &Path) -> Result<()> {
        super::failpoint::failpoint("journal:clear")?;
        // The host-wide pointer goes with the journal (best effort: a pointer whose journal
        // is gone is ignored by every reader).
        let guarded = Self::load_pending(dir)
            .ok()
            .flatten()
            .map(|j| j.guarded)
            .filter(|p| !p.as_os_str().is_empty());
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let journal = Self::path(dir);
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_file() && p != journal {
                        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                    }
                }
                match std::fs::remove_file(&journal) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&journal, e)),
                }
                if let (Some(g), Ok(canon)) = (guarded, std::fs::canonicalize(dir)) {
                    let _ = super::lock::clear_pending(&g, &canon);
                }
                fsutil::sync_dir(dir).map_err(|e| Error::io(dir, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(dir, e)),
        }
    }

    /// Every step is done, the commit included: the run committed and only the clear of its
    /// journal is missing. `resume` treats such a journal as a no-op (it just clears it).
    pub fn is_committed(&self) -> bool {
        self.steps.iter().all(|r| r.status == StepStatus::Done)
    }

    pub fn record_mut(&mut self, step: &super::Step) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|r| &r.step == step)
    }

    pub fn status_of(&self, step: &super::Step) -> Option<StepStatus> {
        self.steps
            .iter()
            .find(|r| &r.step == step)
            .map(|r| r.status)
    }
}

/// A run id that sorts by time and is unique enough for one host: `YYYYmmddTHHMMSSZ-<6 hex>`.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut rnd = [0u8; 3];
    let _ = getrandom::fill(&mut rnd);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        hex::encode(rnd)
    )
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
