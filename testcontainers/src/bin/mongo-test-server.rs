//! `mongo-test-server [--bind ADDR] [--data-dir DIR] [--test-controls] [--auth|--noauth] [--quiet]`
//!
//! The MongoDB wire-protocol test server as a process (and as the ENTRYPOINT of a FROM scratch
//! image): defaults are the container's, `0.0.0.0:27017` and `/data/db`. The first stdout line
//! is `listening on ADDR` (useful with port 0). Root credentials come from the official image's
//! `MONGO_INITDB_ROOT_USERNAME`/`_PASSWORD` (or `_FILE`) and are applied only to an empty DIR.

use komodo_testcontainers::mongo::{root_from_env, Server, ServerConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: mongo-test-server [--bind ADDR:PORT] [--data-dir DIR] [--test-controls] [--auth|--noauth] [--quiet]";

fn parse(args: impl Iterator<Item = String>) -> Result<ServerConfig, String> {
    let mut cfg = ServerConfig::new("/data/db");
    cfg.bind = SocketAddr::from(([0, 0, 0, 0], 27017));
    cfg.log = true;
    cfg.test_controls = std::env::var("MONGO_TEST_CONTROLS").is_ok_and(|v| v == "1");
    let mut args = args;
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--bind" => {
                let v = value("--bind")?;
                cfg.bind = v
                    .parse()
                    .map_err(|_| format!("--bind {v}: not an IP:PORT address"))?;
            }
            "--data-dir" | "--dbpath" => cfg.data_dir = PathBuf::from(value("--data-dir")?),
            "--test-controls" => cfg.test_controls = true,
            "--auth" => cfg.auth = Some(true),
            "--noauth" => cfg.auth = Some(false),
            "--quiet" => cfg.log = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let mut cfg = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("mongo-test-server: {msg}");
            return ExitCode::from(2);
        }
    };
    cfg.root = match root_from_env(|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mongo-test-server: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mongo-test-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let server = match Server::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mongo-test-server: {e}");
                return ExitCode::from(1);
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.addr());
        let _ = out.flush();
        drop(out);
        // PID 1 in a container gets no default SIGTERM handling: exit on it explicitly.
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
