//! Waiting for the stack's containers: a port that accepts, a healthy core, a crash loop.

use komodo_rotate::docker::{ContainerInfo, Engine, RunState};
use std::time::{Duration, Instant};

pub(crate) async fn wait_tcp(port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "127.0.0.1:{port} did not accept connections in {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `name` reports healthy (its healthcheck passes).
pub async fn wait_healthy(engine: &Engine, name: &str, timeout: Duration) -> Result<(), String> {
    let healthy =
        |i: &ContainerInfo| i.state == RunState::Running && i.health.as_deref() == Some("healthy");
    let Err(info) = watch(engine, name, timeout, healthy).await? else {
        return Ok(());
    };
    let logs = engine.logs_tail(name, 5).await.unwrap_or_default();
    Err(format!(
        "{name} not healthy after {timeout:?}: {} (restarts {}, health {:?}); last log: {}",
        info.state.as_str(),
        info.restart_count,
        info.health,
        logs.last().map(String::as_str).unwrap_or("")
    ))
}

/// Waits until `name` has restarted at least twice after failing.
pub async fn wait_crash_loop(engine: &Engine, name: &str, timeout: Duration) -> Result<(), String> {
    let looping = |i: &ContainerInfo| i.restart_count >= 2 && i.exit_code != 0;
    let Err(info) = watch(engine, name, timeout, looping).await? else {
        return Ok(());
    };
    Err(format!(
        "{name} did not crash-loop within {timeout:?} ({}, {} restarts)",
        info.state.as_str(),
        info.restart_count
    ))
}

/// Inspects `name` every 300 ms until `done` holds (`Ok(Ok(()))`) or `timeout` passes
/// (`Ok(Err(last inspect))`); an inspect that fails ends the wait.
async fn watch(
    engine: &Engine,
    name: &str,
    timeout: Duration,
    done: impl Fn(&ContainerInfo) -> bool,
) -> Result<Result<(), ContainerInfo>, String> {
    let start = Instant::now();
    loop {
        let info = ContainerInfo::load(engine, name)
            .await
            .map_err(|e| e.to_string())?;
        if done(&info) {
            return Ok(Ok(()));
        }
        if start.elapsed() > timeout {
            return Ok(Err(info));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
