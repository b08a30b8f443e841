//! Rendering of a `verify` truth matrix: a text table for people, JSON for scripts, and the
//! node_exporter textfile format for Prometheus. A matrix holds names and verdicts only; it has no
//! field a secret could be put into.

use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Consistent.
    Ok,
    /// Worth knowing, not drift (e.g. mongo's stale `MONGO_INITDB_ROOT_PASSWORD`).
    Info,
    /// Drift or unhealthy: the scheduler should act (exit 1).
    Drift,
    /// Could not be checked (exit 3 unless drift was found elsewhere).
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Drift => "DRIFT",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    /// The secret kind the row is about (`db-password`, `jwt-secret`, ...); none for rows about
    /// the deployment as a whole (compose.env, containers, git, journal, lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub status: Status,
    pub detail: String,
}

/// A number a check measured (e.g. commits behind upstream). Name and help are fixed strings
/// of the code, so a gauge cannot carry a secret either.
#[derive(Debug, Clone, Serialize)]
pub struct Gauge {
    pub name: &'static str,
    #[serde(skip)]
    pub help: &'static str,
    pub value: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Matrix {
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gauges: Vec<Gauge>,
}

impl Matrix {
    pub fn push(&mut self, name: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            kind: None,
            status,
            detail: detail.into(),
        });
    }

    /// Appends `other`'s rows and gauges after this matrix's own.
    pub fn append(&mut self, other: Matrix) {
        self.checks.extend(other.checks);
        self.gauges.extend(other.gauges);
    }

    /// [`Self::push`] for a row about one secret kind (JSON `kind`, Prometheus label `kind`).
    pub fn push_kind(
        &mut self,
        kind: &str,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) {
        self.push(name, status, detail);
        if let Some(c) = self.checks.last_mut() {
            c.kind = Some(kind.to_string());
        }
    }

    pub fn has(&self, s: Status) -> bool {
        self.checks.iter().any(|c| c.status == s)
    }

    /// 1 when anything drifted, else 3 when something could not be checked, else 0.
    pub fn exit_code(&self) -> i32 {
        use crate::error::exit;
        if self.has(Status::Drift) {
            exit::DRIFT
        } else if self.has(Status::Unknown) {
            exit::PRECONDITION
        } else {
            exit::OK
        }
    }

    pub fn to_text(&self) -> String {
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(out, "{:<w$}  {:<7}  detail", "check", "status");
        for c in &self.checks {
            let _ = writeln!(out, "{:<w$}  {:<7}  {}", c.name, c.status.label(), c.detail);
        }
        let verdict = match self.exit_code() {
            0 => "consistent",
            1 => "drift found",
            _ => "incomplete: some checks could not run",
        };
        let _ = writeln!(out, "verdict: {verdict}");
        out
    }

    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            verdict: &'a str,
            exit_code: i32,
            checks: &'a [Check],
            #[serde(skip_serializing_if = "<[Gauge]>::is_empty")]
            gauges: &'a [Gauge],
        }
        let code = self.exit_code();
        let verdict = match code {
            0 => "consistent",
            1 => "drift",
            _ => "incomplete",
        };
        serde_json::to_string_pretty(&Out {
            verdict,
            exit_code: code,
            checks: &self.checks,
            gauges: &self.gauges,
        })
        .unwrap_or_default()
    }

    /// node_exporter textfile collector format.
    pub fn to_prometheus(&self, now_unix: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP komodo_rotate_check Verify check result: 0 ok or info, 1 drift, 2 could not be checked.\n");
        out.push_str("# TYPE komodo_rotate_check gauge\n");
        for c in &self.checks {
            let v = match c.status {
                Status::Ok | Status::Info => 0,
                Status::Drift => 1,
                Status::Unknown => 2,
            };
            let kind = c
                .kind
                .as_deref()
                .map(|k| format!(",kind=\"{}\"", escape_label(k)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "komodo_rotate_check{{check=\"{}\"{kind}}} {v}",
                escape_label(&c.name)
            );
        }
        out.push_str("# HELP komodo_rotate_drift 1 when the last verify found drift.\n");
        out.push_str("# TYPE komodo_rotate_drift gauge\n");
        let _ = writeln!(
            out,
            "komodo_rotate_drift {}",
            u8::from(self.has(Status::Drift))
        );
        out.push_str("# HELP komodo_rotate_verify_timestamp_seconds When the last verify ran.\n");
        out.push_str("# TYPE komodo_rotate_verify_timestamp_seconds gauge\n");
        let _ = writeln!(out, "komodo_rotate_verify_timestamp_seconds {now_unix}");
        for g in &self.gauges {
            let _ = writeln!(out, "# HELP {} {}", g.name, g.help);
            let _ = writeln!(out, "# TYPE {} gauge", g.name);
            let _ = writeln!(out, "{} {}", g.name, g.value);
        }
        out
    }
}

/// A Prometheus label value, escaped as the text exposition format wants (`\\`, `\"`, `\n`).
pub(crate) fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matrix {
        let mut m = Matrix::default();
        m.push("compose-env", Status::Ok, "decrypts, MAC ok");
        m.push("mongo-init-env", Status::Info, "stale-init-env");
        m
    }

    #[test]
    fn exit_codes_follow_the_worst_check() {
        let mut a = m();
        assert_eq!(a.exit_code(), 0);
        a.push("db-login", Status::Unknown, "mongo unreachable");
        assert_eq!(a.exit_code(), 3);
        a.push("core-env", Status::Drift, "differs");
        assert_eq!(a.exit_code(), 1);
    }

    #[test]
    fn renderings() {
        let mut a = m();
        a.push("core \"x\"", Status::Drift, "differs");
        let t = a.to_text();
        assert!(
            t.contains("DRIFT") && t.ends_with("verdict: drift found\n"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(j["exit_code"], 1);
        assert_eq!(j["checks"][2]["status"], "drift");
        let p = a.to_prometheus(42);
        assert!(
            p.contains("komodo_rotate_check{check=\"core \\\"x\\\"\"} 1"),
            "{p}"
        );
        assert!(p.contains("komodo_rotate_drift 1\n"));
    }

    #[test]
    fn kind_rows_carry_the_kind_in_json_and_prometheus_only_when_set() {
        let mut a = m();
        a.push_kind("jwt-secret", "jwt-secret", Status::Drift, "core differs");
        let j: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(j["checks"][2]["kind"], "jwt-secret");
        assert!(j["checks"][0].get("kind").is_none(), "{j}");
        let p = a.to_prometheus(1);
        assert!(
            p.contains("komodo_rotate_check{check=\"jwt-secret\",kind=\"jwt-secret\"} 1\n"),
            "{p}"
        );
        assert!(
            p.contains("komodo_rotate_check{check=\"compose-env\"} 0\n"),
            "{p}"
        );
        assert!(
            a.to_text()
                .contains("jwt-secret      DRIFT    core differs\n"),
            "{}",
            a.to_text()
        );
    }
}
