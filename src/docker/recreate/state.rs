//! Where a recreate stands, read from the engine by container names alone (the module table of
//! [`super`]).

use super::super::inspect::{ContainerInfo, RunState};
use super::super::{DockerError, Engine};
use super::{NEXT_SUFFIX, PREV_SUFFIX};

/// Where a recreate stands, read from the engine by name (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecreateState {
    /// Only `<name>` exists and it is the original.
    Untouched { original_running: bool },
    /// `<name>-next` exists beside the original `<name>` (after create-next or stop-original).
    NextCreated { original_running: bool },
    /// The original is `<name>-prev`, the replacement still `<name>-next`, no `<name>`.
    Parked,
    /// The replacement is `<name>`, the original `<name>-prev`.
    Swapped { replacement_running: bool },
    /// Only `<name>-prev` exists: an undo removed the replacement and stopped there.
    PrevOnly,
    /// Only `<name>` exists and it is not the original: the recreate is done.
    Committed,
    /// A combination no step sequence produces; the text lists what exists.
    Inconsistent(String),
}

impl RecreateState {
    /// Classifies the names `<name>`, `<name>-next`, `<name>-prev` against the original's ID.
    pub async fn classify(
        engine: &Engine,
        name: &str,
        original_id: &str,
    ) -> Result<RecreateState, DockerError> {
        let main = load_opt(engine, name).await?;
        let next = load_opt(engine, &format!("{name}{NEXT_SUFFIX}")).await?;
        let prev = load_opt(engine, &format!("{name}{PREV_SUFFIX}")).await?;
        let is_orig = |c: &ContainerInfo| c.id == original_id;
        let active =
            |c: &ContainerInfo| matches!(c.state, RunState::Running | RunState::Restarting);
        Ok(match (&main, &next, &prev) {
            (Some(m), None, None) if is_orig(m) => RecreateState::Untouched {
                original_running: active(m),
            },
            (Some(_), None, None) => RecreateState::Committed,
            (Some(m), Some(n), None) if is_orig(m) && !is_orig(n) => RecreateState::NextCreated {
                original_running: active(m),
            },
            (None, Some(n), Some(p)) if is_orig(p) && !is_orig(n) => RecreateState::Parked,
            (Some(m), None, Some(p)) if is_orig(p) && !is_orig(m) => RecreateState::Swapped {
                replacement_running: active(m),
            },
            (None, None, Some(p)) if is_orig(p) => RecreateState::PrevOnly,
            _ => {
                let desc = |c: &Option<ContainerInfo>, n: String| match c {
                    Some(c) if is_orig(c) => format!("{n} (original)"),
                    Some(_) => format!("{n} (other)"),
                    None => format!("{n} (absent)"),
                };
                RecreateState::Inconsistent(format!(
                    "{}, {}, {}",
                    desc(&main, name.to_string()),
                    desc(&next, format!("{name}{NEXT_SUFFIX}")),
                    desc(&prev, format!("{name}{PREV_SUFFIX}"))
                ))
            }
        })
    }
}

async fn load_opt(engine: &Engine, name: &str) -> Result<Option<ContainerInfo>, DockerError> {
    Ok(engine
        .try_inspect(name)
        .await?
        .map(|r| ContainerInfo::from_inspect(&r)))
}
