//! The steps of a run. Like rustup's `ChangedItem`, each step is plain data; the planes that apply
//! it say what it means and how it is undone. Being plain data, a step can be written to the
//! journal and undone by a different process after a crash. This module knows no step kinds: a
//! kind is a name (`write-env`), an optional target (a container, a file), an optional phase of a
//! multi-phase plan, and what the step sets (names to value expressions, never a value).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub kind: String,
    /// What the step acts on. (`container` is the name journals of format 1 used.)
    #[serde(default, alias = "container", skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Names the step sets, each to an expression its planes evaluate (never a secret).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

impl Step {
    pub fn new(kind: &str) -> Step {
        Step {
            kind: kind.into(),
            ..Step::default()
        }
    }

    pub fn on(mut self, target: &str) -> Step {
        self.target = Some(target.into());
        self
    }

    pub fn in_phase(mut self, phase: Option<&str>) -> Step {
        self.phase = phase.map(Into::into);
        self
    }

    pub fn with(mut self, name: &str, expr: &str) -> Step {
        self.set.insert(name.into(), expr.into());
        self
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }

    /// Stable name, used in progress lines, the journal, failpoints (`before:NAME`, `after:NAME`)
    /// and the audit log: `[phase/]kind[:target]`.
    pub fn name(&self) -> String {
        let mut n = String::new();
        if let Some(p) = &self.phase {
            n.push_str(p);
            n.push('/');
        }
        n.push_str(&self.kind);
        if let Some(t) = &self.target {
            n.push(':');
            n.push_str(t);
        }
        n
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_phase_kind_and_target() {
        assert_eq!(Step::new("commit").name(), "commit");
        assert_eq!(Step::new("recreate").on("core").name(), "recreate:core");
        let s = Step::new("write-env")
            .in_phase(Some("phase-1"))
            .with("SOME_LIST", "old,new");
        assert_eq!(s.name(), "phase-1/write-env");
    }

    #[test]
    fn format_1_journal_steps_still_read() {
        let s: Step = serde_json::from_str(r#"{"kind":"recreate","container":"core"}"#).unwrap();
        assert_eq!(s, Step::new("recreate").on("core"));
        let s: Step = serde_json::from_str(r#"{"kind":"change-db"}"#).unwrap();
        assert_eq!(s.name(), "change-db");
        let back: Step = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
