//! `ferretdb-standin`: the FerretDB-shaped front end of the rehearsal stack's FerretDB variant
//! (`komodo_testcontainers::ferret`), as the ENTRYPOINT of a FROM scratch image. FerretDB's own
//! code is not exercised. Reads FerretDB's variables once at start:
//! `FERRETDB_POSTGRESQL_URL` (required; never printed), `FERRETDB_LISTEN_ADDR` (default
//! `:27017`), `FERRETDB_STATE_DIR` (default `/state`, where the CRUD store lives), and
//! `FERRETDB_STANDIN_TEST_CONTROLS=1` for the test server's `komodoTestControl`. Like FerretDB it
//! starts without connecting to PostgreSQL: a wrong URL password shows on first use. The first
//! stdout line is `listening on ADDR`; SIGTERM/SIGINT stop it. Exit 1 on a bad configuration.

use komodo_testcontainers::ferret::{self, FerretConfig};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match FerretConfig::from_env(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferretdb-standin: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(url) = std::env::var(ferret::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("ferretdb-standin: {} is not set", ferret::URL_VAR);
        return ExitCode::from(1);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferretdb-standin: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let server = match ferret::start(&cfg, &url).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ferretdb-standin: {e}");
                return ExitCode::from(1);
            }
        };
        drop(url);
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
