//! Is core crash-looping, and why. A crash loop is a container that keeps dying with a non-zero
//! exit code while its restart policy brings it back (so the restart count rises between two
//! looks); the log signature (research/komodo.md §2.2) names the cause.

use super::engine::Engine;
use super::inspect::{ContainerInfo, RunState};
use super::DockerError;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Known causes, matched in core's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signature {
    /// Wrong password or user missing (Mongo code 18 / "SCRAM failure: Authentication failed").
    AuthFailed,
    /// FerretDB v2: code 1 InternalError "password authentication failed": PostgreSQL refused
    /// FerretDB's own pool login (its `FERRETDB_POSTGRESQL_URL`), not core's password (that is
    /// code 18, [`Signature::AuthFailed`]).
    FerretAuthFailed,
    /// Connected without credentials (code 13, "requires authentication"): the env names
    /// probably belong to another Komodo generation.
    NoCredentials,
    /// Mongo unreachable ("Server selection timeout").
    Unreachable,
    /// A malformed database address.
    BadAddress,
}

impl Signature {
    pub fn describe(self) -> &'static str {
        match self {
            Signature::AuthFailed => {
                "MongoDB rejected core's password (SCRAM authentication failed)"
            }
            Signature::FerretAuthFailed => {
                "FerretDB cannot log in to PostgreSQL: its own FERRETDB_POSTGRESQL_URL is stale (code 1), not core's password"
            }
            Signature::NoCredentials => {
                "core reached MongoDB without credentials (env names of another Komodo generation?)"
            }
            Signature::Unreachable => "core cannot reach MongoDB (server selection timeout)",
            Signature::BadAddress => "core's database address is malformed",
        }
    }
}

/// The most specific signature found in `lines`, newest line first.
pub fn match_signature<S: AsRef<str>>(lines: &[S]) -> Option<Signature> {
    lines.iter().rev().find_map(|l| match_line(l.as_ref()))
}

fn match_line(l: &str) -> Option<Signature> {
    if l.contains("SCRAM failure: password authentication failed for user") {
        Some(Signature::FerretAuthFailed)
    } else if l.contains("SCRAM failure: Authentication failed")
        || l.contains("AuthenticationFailed")
    {
        Some(Signature::AuthFailed)
    } else if l.contains("requires authentication") {
        Some(Signature::NoCredentials)
    } else if l.contains("Server selection timeout") {
        Some(Signature::Unreachable)
    } else if l.contains("invalid server address") {
        Some(Signature::BadAddress)
    } else {
        None
    }
}

/// The verdict on one container from one or two observations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrashLoop {
    pub looping: bool,
    pub state: String,
    pub restart_count: i64,
    pub exit_code: i64,
    pub signature: Option<Signature>,
    /// How many inspections the verdict took (see [`looks_needed`]).
    pub looks: u8,
}

/// Whether one inspection settles the question. A restart always resets `State.StartedAt`, so a
/// container that is running and started at least `interval` ago has not restarted during the
/// last `interval`: its restart count was stable over exactly the window a second look would
/// watch, only in the past instead of the future. That window is enough only for a container
/// that never restarted: one that has restarted before must have been up past
/// [`SETTLE_AFTER_RESTART`] (a failing core can take longer than `interval` to die on a slow
/// host, so "up 2 s, restarts 12" is a quiet spell between two crashes, not a verdict). Two
/// looks are kept when it is not running (restarting, exited, created), has not been up that
/// long, or its start time is unreadable or in the future (clock skew with a remote engine):
/// then only watching can tell.
pub fn looks_needed(first: &ContainerInfo, now: OffsetDateTime, interval: Duration) -> u8 {
    if first.state != RunState::Running {
        return 2;
    }
    let Ok(started) = OffsetDateTime::parse(&first.started_at, &Rfc3339) else {
        return 2;
    };
    let needed = if first.restart_count == 0 {
        interval
    } else {
        interval.max(SETTLE_AFTER_RESTART)
    };
    match u64::try_from((now - started).whole_milliseconds()) {
        Ok(up_ms) if up_ms >= u64::try_from(needed.as_millis()).unwrap_or(u64::MAX) => 1,
        _ => 2,
    }
}

/// Pure verdict: `first` and `second` are two inspections of the same container, `logs` its
/// recent log lines. Crash-looping means the restart policy keeps bringing back a process that
/// fails: the restart count rose between the looks (same container) with a failure on record
/// (a non-zero exit code or a known signature), or the engine is holding it in `restarting`
/// (waiting out the back-off, which grows to about a minute and can outlast the look).
/// A process caught running between two crashes reports exit code 0, hence both looks count.
pub fn assess<S: AsRef<str>>(
    first: &ContainerInfo,
    second: &ContainerInfo,
    logs: &[S],
) -> CrashLoop {
    let rising = first.id == second.id && second.restart_count > first.restart_count;
    let exit_code = if second.exit_code != 0 {
        second.exit_code
    } else {
        first.exit_code
    };
    let signature = match_signature(logs);
    let held = second.state == RunState::Restarting && second.restart_count > 0;
    let looping = (rising && (exit_code != 0 || signature.is_some())) || held;
    CrashLoop {
        looping,
        state: second.state.as_str().to_string(),
        restart_count: second.restart_count,
        exit_code,
        signature,
        looks: 2,
    }
}

/// How long a container that has restarted before must stay up before two quiet looks count as
/// "not looping": on a slow host a failing core can take longer than one look interval to die
/// (a login that times out), and the restart back-off spaces the deaths further apart.
pub const SETTLE_AFTER_RESTART: Duration = Duration::from_secs(6);

/// After two looks that saw no restart: keep watching while the container has restarted before
/// and has been up less than [`SETTLE_AFTER_RESTART`] (a quiet spell between two crashes).
pub fn keep_watching(last: &ContainerInfo, now: OffsetDateTime) -> bool {
    if last.state != RunState::Running || last.restart_count == 0 {
        return false;
    }
    let Ok(started) = OffsetDateTime::parse(&last.started_at, &Rfc3339) else {
        return false;
    };
    (now - started) < SETTLE_AFTER_RESTART
}

/// Inspects `name` once, and a second time `interval` later unless [`looks_needed`] says the
/// first look settles it; while [`keep_watching`] says a quiet spell is too short to trust, once
/// more every `interval`. Reads its last `log_lines` lines.
pub async fn observe(
    engine: &Engine,
    name: &str,
    interval: Duration,
    log_lines: usize,
) -> Result<CrashLoop, DockerError> {
    let first = ContainerInfo::load(engine, name).await?;
    observe_from(engine, first, interval, log_lines).await
}

/// [`observe`] with its first look already taken (an inspect made just before, e.g. by the
/// discovery of the deployment). When that look settles it (a container running for longer than
/// `interval` is not looping), no log is read: a signature only explains a loop.
pub async fn observe_from(
    engine: &Engine,
    first: ContainerInfo,
    interval: Duration,
    log_lines: usize,
) -> Result<CrashLoop, DockerError> {
    let name = first.name.clone();
    let name = name.as_str();
    let mut looks = looks_needed(&first, OffsetDateTime::now_utc(), interval);
    let mut second = first.clone();
    if looks == 2 {
        tokio::time::sleep(interval).await;
        second = ContainerInfo::load(engine, name).await?;
        let deadline = std::time::Instant::now() + SETTLE_AFTER_RESTART;
        while !assess(&first, &second, &[] as &[&str]).looping
            && second.id == first.id
            && second.restart_count == first.restart_count
            && keep_watching(&second, OffsetDateTime::now_utc())
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(interval).await;
            second = ContainerInfo::load(engine, name).await?;
            looks = looks.saturating_add(1);
        }
    }
    // No log readable (`logging: driver: none`): the verdict stands on the state alone, without
    // a signature.
    let logs = if looks == 1 {
        Vec::new()
    } else {
        engine
            .logs_tail_if_readable(name, log_lines)
            .await?
            .unwrap_or_default()
    };
    Ok(CrashLoop {
        looks,
        ..assess(&first, &second, &logs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: RunState, restarts: i64, exit: i64) -> ContainerInfo {
        ContainerInfo {
            id: "id1".into(),
            name: "komodo-core-1".into(),
            image: String::new(),
            image_id: String::new(),
            state,
            restart_count: restarts,
            exit_code: exit,
            health: None,
            started_at: String::new(),
            env: Vec::new(),
            labels: Default::default(),
            ip_addresses: Default::default(),
            ports: Vec::new(),
            mounts: Vec::new(),
        }
    }

    const V1_LINE: &str = r#"Error: task 9 panicked with message "called `Result::unwrap()` on an `Err` value: failed to initialize database client | failed to create index | index: enabled | error: Error { kind: Authentication { message: \"SCRAM failure: Authentication failed.\" }, labels: {}, source: Some(Error { kind: Command(CommandError { code: 18, code_name: \"AuthenticationFailed\" }) }) }""#;
    const V2_NOCRED: &str = "ERROR CoreStartup: FATAL: Failed to initialize database::Client | failed to create index | error: Command failed: code 13 (Unauthorized): Command createIndexes requires authentication | Exiting...";

    #[test]
    fn a_quiet_spell_right_after_a_restart_is_watched_longer() {
        let now = OffsetDateTime::now_utc();
        let at = |ago: Duration| (now - ago).format(&Rfc3339).unwrap();
        let mut c = info(RunState::Running, 4, 0);
        c.started_at = at(Duration::from_secs(2));
        assert!(keep_watching(&c, now), "restarted 4 times, up 2 s: not yet");
        c.started_at = at(SETTLE_AFTER_RESTART + Duration::from_secs(1));
        assert!(!keep_watching(&c, now), "up past the settle window");
        let mut fresh = info(RunState::Running, 0, 0);
        fresh.started_at = at(Duration::from_secs(1));
        assert!(
            !keep_watching(&fresh, now),
            "never restarted: two looks suffice"
        );
        let mut dead = info(RunState::Exited, 4, 1);
        dead.started_at = at(Duration::from_secs(1));
        assert!(!keep_watching(&dead, now), "not running: assess decides");
    }

    #[test]
    fn signatures_from_komodo_logs() {
        assert_eq!(match_signature(&[V1_LINE]), Some(Signature::AuthFailed));
        assert_eq!(
            match_signature(&[V2_NOCRED]),
            Some(Signature::NoCredentials)
        );
        assert_eq!(
            match_signature(&[
                "Server selection timeout: No available servers. Connection refused"
            ]),
            Some(Signature::Unreachable)
        );
        assert_eq!(
            match_signature(&[r#"SCRAM failure: password authentication failed for user "admin""#]),
            Some(Signature::FerretAuthFailed)
        );
        // Code 1 names FerretDB's own URL, never core's password (code 18 does).
        let ferret = Signature::FerretAuthFailed.describe();
        assert!(ferret.contains("FERRETDB_POSTGRESQL_URL"), "{ferret}");
        assert!(!ferret.contains("rejected core's password"), "{ferret}");
        assert!(Signature::AuthFailed.describe().contains("core's password"));
        assert_eq!(match_signature(&["INFO listening on 0.0.0.0:9120"]), None);
        // The newest line decides.
        assert_eq!(
            match_signature(&[V2_NOCRED, V1_LINE]),
            Some(Signature::AuthFailed)
        );
    }

    #[test]
    fn rising_restarts_with_failure_is_a_loop() {
        let v = assess(
            &info(RunState::Restarting, 3, 1),
            &info(RunState::Exited, 5, 1),
            &[V1_LINE],
        );
        assert!(v.looping);
        assert_eq!(v.signature, Some(Signature::AuthFailed));
        // Restarting with a signature counts even when the count did not move during the look.
        assert!(
            assess(
                &info(RunState::Restarting, 4, 1),
                &info(RunState::Restarting, 4, 1),
                &[V1_LINE]
            )
            .looping
        );
    }

    #[test]
    fn caught_running_between_crashes_is_a_loop() {
        // The engine resets ExitCode to 0 on every restart: the first look still has the 1.
        let v = assess(
            &info(RunState::Exited, 3, 1),
            &info(RunState::Running, 4, 0),
            &[V1_LINE],
        );
        assert!(v.looping);
        assert_eq!(v.exit_code, 1);
        // Running both times, count rising, only the log tells: still a loop.
        assert!(
            assess(
                &info(RunState::Running, 3, 0),
                &info(RunState::Running, 5, 0),
                &[V1_LINE]
            )
            .looping
        );
        // A different container (recreated in between) is not a rise.
        let mut other = info(RunState::Running, 5, 0);
        other.id = "id2".into();
        assert!(!assess(&info(RunState::Running, 0, 0), &other, &[V1_LINE]).looping);
    }

    fn started(state: RunState, restarts: i64, at: &str) -> ContainerInfo {
        ContainerInfo {
            started_at: at.into(),
            ..info(state, restarts, 0)
        }
    }

    #[test]
    fn one_look_only_for_a_container_running_longer_than_the_interval() {
        let now = OffsetDateTime::parse("2026-12-02T13:00:10Z", &Rfc3339).unwrap();
        let look = Duration::from_millis(1500);
        // Up 10 s (the engine writes nanoseconds): no restart during the last look interval.
        let long = started(RunState::Running, 3, "2026-12-02T13:00:00.123456789Z");
        assert_eq!(looks_needed(&long, now, look), 1);
        // Exactly the interval is enough; a millisecond less is not.
        let edge = started(RunState::Running, 0, "2026-12-02T13:00:08.5Z");
        assert_eq!(looks_needed(&edge, now, look), 1);
        let recent = started(RunState::Running, 0, "2026-12-02T13:00:08.501Z");
        assert_eq!(looks_needed(&recent, now, look), 2);
        // Restarted before: up past the interval is not enough, only past the settle time
        // (issue 24 item 6: "running, restarts 12 (1 look)" on a core that dies every 2-5 s).
        let settle_ms = SETTLE_AFTER_RESTART.as_millis() as i64;
        for (restarts, up_ms, want) in [
            (12, 2_000, 2),
            (1, 1_500, 2),
            (12, settle_ms - 1, 2),
            (12, settle_ms, 1),
            (12, settle_ms + 60_000, 1),
            (0, 2_000, 1),
        ] {
            let at = (now - time::Duration::milliseconds(up_ms))
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(
                looks_needed(&started(RunState::Running, restarts, &at), now, look),
                want,
                "restarts {restarts}, up {up_ms} ms"
            );
        }
        // Not running, unreadable or future start times: watch.
        for (state, at) in [
            (RunState::Restarting, "2026-12-02T12:00:00Z"),
            (RunState::Exited, "2026-12-02T12:00:00Z"),
            (RunState::Running, ""),
            (RunState::Running, "0001-01-01T00:00:00Z-garbage"),
            (RunState::Running, "2026-12-02T13:05:00Z"),
        ] {
            assert_eq!(
                looks_needed(&started(state, 1, at), now, look),
                2,
                "{state:?} {at}"
            );
        }
    }

    #[test]
    fn healthy_or_cleanly_stopped_is_not_a_loop() {
        assert!(
            !assess(
                &info(RunState::Running, 0, 0),
                &info(RunState::Running, 0, 0),
                &[V1_LINE]
            )
            .looping
        );
        assert!(
            !assess(
                &info(RunState::Exited, 0, 0),
                &info(RunState::Exited, 0, 0),
                &[""]
            )
            .looping
        );
        // One old failure, not restarting, count steady: not a loop.
        assert!(
            !assess(
                &info(RunState::Exited, 2, 1),
                &info(RunState::Exited, 2, 1),
                &[V1_LINE]
            )
            .looping
        );
    }
}
