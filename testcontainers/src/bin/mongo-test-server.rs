//! `mongo-test-server [mongod options]`
//!
//! The MongoDB wire-protocol test server as a process (and as the ENTRYPOINT of a FROM scratch
//! image): defaults are the container's, `0.0.0.0:27017` and `/data/db`. It takes mongod's
//! command line (`mongo::options`): `--port`, `--bind_ip`, `--bind_ip_all`, `--dbpath`,
//! `--auth`, `--noauth`, `--quiet`, plus its own `--bind ADDR:PORT`, `--data-dir DIR` and
//! `--test-controls`; tuning and logging options are accepted and named once in its log; the
//! options it does not implement (`--replSet`, ...) are refused as mongod refuses an unknown
//! one (exit 2). The first stdout line is `listening on ADDR` (useful with port 0). Root
//! credentials come from the official image's `MONGO_INITDB_ROOT_USERNAME`/`_PASSWORD` (or
//! `_FILE`) and are applied only to an empty DIR.

use komodo_testcontainers::mongo::{options, root_from_env, serve, Server, ServerConfig};
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: mongo-test-server [--bind ADDR:PORT | --bind_ip IP | --bind_ip_all] [--port N] [--data-dir|--dbpath DIR] [--test-controls] [--auth|--noauth] [--quiet] [mongod tuning/logging options]";

fn main() -> ExitCode {
    let mut base = ServerConfig::new("/data/db");
    base.bind = SocketAddr::from(([0, 0, 0, 0], 27017));
    base.log = true;
    base.test_controls = std::env::var("MONGO_TEST_CONTROLS").is_ok_and(|v| v == "1");
    let parsed = match options::parse(base, std::env::args().skip(1)) {
        Ok(p) => p,
        Err(msg) => {
            // mongod's exit code for bad options (EXIT_BADOPTIONS).
            eprintln!("mongo-test-server: {msg}");
            return ExitCode::from(2);
        }
    };
    if parsed.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !parsed.ignored.is_empty() {
        eprintln!(
            "mongo-test-server: accepted without effect here: {}",
            parsed.ignored.join(", ")
        );
    }
    let mut cfg = parsed.cfg;
    cfg.root = match root_from_env(|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mongo-test-server: {e}");
            return ExitCode::from(1);
        }
    };
    serve::run_until_signal("mongo-test-server", Server::start(cfg))
}
