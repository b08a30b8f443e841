//! The age of each secret, from the audit log: its last committed rotation, and whether it is
//! due (`rotate --if-older-than`).

use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::error::Result;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Every secret a committed `rotate` renewed, by name, in the order first seen (kinds such as
/// `env:KEY` are open-ended, so the audit log is the list).
pub fn secret_names(records: &[AuditRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.command == "rotate" && r.outcome == "committed")
    {
        for s in &r.secrets {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn unix_of(rec: &AuditRecord) -> Option<u64> {
    OffsetDateTime::parse(&rec.time, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
}

/// When `secret` last got a new value: the newest committed `rotate` record naming it. (A
/// rescue moves Mongo to compose.env's existing value, so it does not renew the secret; a
/// `resume` that rolls a rotate forward is recorded as that rotate.)
pub fn last_rotation(records: &[AuditRecord], secret: &str) -> Option<u64> {
    records
        .iter()
        .filter(|r| {
            r.command == "rotate"
                && r.outcome == "committed"
                && r.secrets.iter().any(|s| s == secret)
        })
        .filter_map(unix_of)
        .max()
}

/// Whether `rotate --if-older-than min_age` should run now. Prints the "not due" line when not.
pub fn rotation_due(cfg: &Config, secret: &str, min_age: Duration, quiet: bool) -> Result<bool> {
    let records = audit::read_for(cfg)?;
    let Some(last) = last_rotation(&records, secret) else {
        return Ok(true);
    };
    let age = now_unix().saturating_sub(last);
    if age >= min_age.as_secs() {
        return Ok(true);
    }
    if !quiet {
        println!(
            "not due: {secret} was last rotated {} ago (rotate when older than {}); nothing changed",
            human(age),
            human(min_age.as_secs())
        );
    }
    Ok(false)
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
