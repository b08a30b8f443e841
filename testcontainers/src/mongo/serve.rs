//! The test server as a process (`mongo-test-server`, `ferretdb-standin`): a two-worker
//! runtime, `listening on ADDR` as the first stdout line, and a clean shutdown on SIGTERM (PID 1
//! in a container gets no default handling of it) or SIGINT.

use super::Server;
use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

/// Runs the server `start` makes until SIGTERM/SIGINT; exit 1 (with `name: reason` on stderr)
/// when the runtime or the server cannot start.
pub fn run_until_signal<F, E>(name: &str, start: F) -> ExitCode
where
    F: Future<Output = Result<Server, E>>,
    E: Display,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let server = match start.await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(1);
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.addr());
        let _ = out.flush();
        drop(out);
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
