//! The health gate: a replacement must run, stay up and (if it has one) pass its healthcheck
//! for `stable_for` before the original is removed; and [`settle`], the same look at a container
//! that is not our replacement (a concurrent `docker compose up`'s, or an original an undo
//! restarted), which waits for it to settle instead of failing on its first restart.

use super::super::inspect::{ContainerInfo, RunState};
use super::super::{DockerError, Engine};
use super::Recreate;
use bollard::models::HealthConfig;
use std::time::{Duration, Instant};

/// The health gate's parameters (DESIGN.md `[health]`).
#[derive(Debug, Clone, Copy)]
pub struct HealthGate {
    /// Give up after this long.
    pub timeout: Duration,
    /// Running, not restarting, restart count unchanged (and healthy, if it has a healthcheck)
    /// for this long.
    pub stable_for: Duration,
    pub poll: Duration,
}

impl Default for HealthGate {
    fn default() -> Self {
        HealthGate {
            timeout: Duration::from_secs(90),
            stable_for: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// Docker's defaults for a healthcheck's interval and probe timeout when unset (0).
const DEFAULT_PROBE: Duration = Duration::from_secs(30);

impl HealthGate {
    /// The gate's timeout for a container with healthcheck `hc`: never shorter than the
    /// container's own start period (probe failures do not count during it), one interval and
    /// one probe timeout (the first probe after it), then `stable_for`.
    pub fn timeout_for(&self, hc: Option<&HealthConfig>) -> Duration {
        let Some(hc) = hc.filter(|h| {
            h.test
                .as_ref()
                .and_then(|t| t.first())
                .is_some_and(|t| t != "NONE")
        }) else {
            return self.timeout;
        };
        let ns = |v: Option<i64>| Duration::from_nanos(u64::try_from(v.unwrap_or(0)).unwrap_or(0));
        let or_default = |d: Duration| if d.is_zero() { DEFAULT_PROBE } else { d };
        let needed = ns(hc.start_period)
            + or_default(ns(hc.interval))
            + or_default(ns(hc.timeout))
            + self.stable_for;
        self.timeout.max(needed)
    }
}

impl Recreate {
    /// Waits until `<name>` is the replacement, running, not restarting, with an unchanged
    /// restart count and (if it has a healthcheck) healthy, for `stable_for`. Fails at once when
    /// it exits or has ever restarted: a replacement that crashed once is not trusted.
    pub async fn health_gate(&self, gate: &HealthGate) -> Result<(), DockerError> {
        let name = self.name();
        let unhealthy = |msg: String| DockerError::Unhealthy {
            name: name.to_string(),
            msg,
        };
        if !self.snapshot.should_run {
            // The original was stopped on purpose: its replacement must be there and stopped.
            let info = ContainerInfo::load(&self.engine, name).await?;
            return if info.id == self.snapshot.original_id {
                Err(unhealthy(
                    "the original, not the replacement, holds the name".into(),
                ))
            } else if matches!(info.state, RunState::Created | RunState::Exited) {
                Ok(())
            } else {
                Err(unhealthy(format!(
                    "the original was stopped, but its replacement is {}",
                    info.state.as_str()
                )))
            };
        }
        let timeout = gate.timeout_for(
            self.snapshot
                .inspect
                .config
                .as_ref()
                .and_then(|c| c.healthcheck.as_ref()),
        );
        let start = Instant::now();
        let mut baseline: Option<(String, i64)> = None;
        let mut stable_since: Option<Instant> = None;
        loop {
            let info = ContainerInfo::load(&self.engine, name).await?;
            if info.id == self.snapshot.original_id {
                return Err(unhealthy(
                    "the original, not the replacement, holds the name".into(),
                ));
            }
            // A fresh replacement starts at 0 restarts; any restart means it crashed, even one
            // that happened before this gate began watching.
            let (id, restarts) = baseline.get_or_insert((info.id.clone(), 0));
            if *id != info.id {
                return Err(unhealthy(
                    "the container was replaced during the health gate".into(),
                ));
            }
            if info.restart_count != *restarts
                || matches!(
                    info.state,
                    RunState::Restarting | RunState::Exited | RunState::Dead
                )
            {
                let logs = self.engine.logs_tail(name, 50).await.unwrap_or_default();
                let why = super::super::crashloop::match_signature(&logs)
                    .map(|s| format!(": {}", s.describe()))
                    .unwrap_or_default();
                return Err(unhealthy(format!(
                    "{} (exit code {}, {} restarts since start){why}",
                    info.state.as_str(),
                    info.exit_code,
                    info.restart_count - *restarts
                )));
            }
            let ready = info.state == RunState::Running
                && matches!(info.health.as_deref(), None | Some("healthy"));
            if ready {
                let since = *stable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= gate.stable_for {
                    return Ok(());
                }
            } else {
                stable_since = None;
            }
            if start.elapsed() >= timeout {
                return Err(unhealthy(format!(
                    "not stable after {:?}: {}{}",
                    timeout,
                    info.state.as_str(),
                    info.health.map(|h| format!(", {h}")).unwrap_or_default()
                )));
            }
            tokio::time::sleep(gate.poll).await;
        }
    }
}

/// Waits for `name` (whatever container holds the name now) to settle: running, not
/// restarting, healthy if it has a healthcheck, with the same container ID and an unchanged
/// restart count for `stable_for`. Unlike the replacement's gate, a restart only resets the
/// window (an original an undo restarted may loop until Mongo is back on its password); it gives
/// up at the gate's timeout (at least the container's healthcheck start period, see
/// [`HealthGate::timeout_for`]), saying what it saw. Returns the last inspect.
pub async fn settle(
    engine: &Engine,
    name: &str,
    gate: &HealthGate,
) -> Result<ContainerInfo, DockerError> {
    let hc = engine
        .try_inspect(name)
        .await?
        .and_then(|r| r.config)
        .and_then(|c| c.healthcheck);
    let timeout = gate.timeout_for(hc.as_ref());
    let start = Instant::now();
    let mut window: Option<(Instant, String, i64)> = None;
    let mut restarts_seen = 0i64;
    let mut first_restarts: Option<i64> = None;
    loop {
        let info = ContainerInfo::load(engine, name).await?;
        let base = *first_restarts.get_or_insert(info.restart_count);
        restarts_seen = restarts_seen.max(info.restart_count - base);
        let ready = info.state == RunState::Running
            && matches!(info.health.as_deref(), None | Some("healthy"));
        let same = window
            .as_ref()
            .is_some_and(|(_, id, r)| *id == info.id && *r == info.restart_count);
        if !ready {
            window = None;
        } else if !same {
            window = Some((Instant::now(), info.id.clone(), info.restart_count));
        }
        if let Some((since, _, _)) = &window {
            if since.elapsed() >= gate.stable_for {
                return Ok(info);
            }
        }
        if start.elapsed() >= timeout {
            return Err(DockerError::Unhealthy {
                name: name.to_string(),
                msg: format!(
                    "did not settle within {:?}: last seen {}{} (exit code {}), {} restarts while waiting",
                    timeout,
                    info.state.as_str(),
                    info.health.map(|h| format!(", {h}")).unwrap_or_default(),
                    info.exit_code,
                    restarts_seen
                ),
            });
        }
        tokio::time::sleep(gate.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_honours_the_containers_own_start_period() {
        let gate = HealthGate {
            timeout: Duration::from_secs(90),
            stable_for: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        };
        let s = |n: u64| Some(i64::try_from(Duration::from_secs(n).as_nanos()).unwrap());
        let hc = |start: Option<i64>, interval: Option<i64>, timeout: Option<i64>| HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            start_period: start,
            interval,
            timeout,
            ..Default::default()
        };
        assert_eq!(gate.timeout_for(None), gate.timeout);
        // Short probes, no start period: the configured timeout stands.
        assert_eq!(gate.timeout_for(Some(&hc(None, s(2), s(1)))), gate.timeout);
        // A 5-minute start period: 300 + 2 + 1 + 10 s.
        assert_eq!(
            gate.timeout_for(Some(&hc(s(300), s(2), s(1)))),
            Duration::from_secs(313)
        );
        // Unset interval and timeout are Docker's 30 s each.
        assert_eq!(
            gate.timeout_for(Some(&hc(s(120), None, Some(0)))),
            Duration::from_secs(190)
        );
        // A disabled healthcheck has no start period to honour.
        let mut none = hc(s(300), None, None);
        none.test = Some(vec!["NONE".into()]);
        assert_eq!(gate.timeout_for(Some(&none)), gate.timeout);
    }
}
