//! `ferretdb-standin`: the FerretDB-shaped front end of the rehearsal stack's FerretDB variant
//! (`komodo_testcontainers::ferret`), as the ENTRYPOINT of a FROM scratch image. FerretDB's own
//! code is not exercised. Reads FerretDB's variables once at start:
//! `FERRETDB_POSTGRESQL_URL` (required; never printed), `FERRETDB_LISTEN_ADDR` (default
//! `:27017`), `FERRETDB_STATE_DIR` (default `/state`, where the CRUD store lives), and
//! `FERRETDB_STANDIN_TEST_CONTROLS=1` for the test server's `komodoTestControl`. Like FerretDB it
//! starts without connecting to PostgreSQL: a wrong URL password shows on first use. The first
//! stdout line is `listening on ADDR`; SIGTERM/SIGINT stop it. Exit 1 on a bad configuration.

use komodo_testcontainers::ferret::{self, FerretConfig};
use komodo_testcontainers::mongo::serve;
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
    serve::run_until_signal("ferretdb-standin", async move {
        let started = ferret::start(&cfg, &url).await;
        drop(url);
        started
    })
}
