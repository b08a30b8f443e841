//! `core-standin [--healthcheck]`: behaves like komodo-core where komodo-rotate can see it.
//!
//! At start it reads the DB address and credentials the way core does (always the
//! `KOMODO_DATABASE_*` names, `_FILE` winning, `KOMODO_DATABASE_URI[_FILE]` winning over
//! address and credentials; a v1 compose maps `KOMODO_DB_*` onto them), logs in
//! with the official driver, and on failure prints core's fatal line (research/komodo.md §2.2)
//! and exits 1, so `restart: unless-stopped` turns a wrong password into a crash loop. Then it
//! calls periphery once with `KOMODO_PASSKEY` and logs the answer, and serves `GET /health` on
//! :9120. Fault control: if `$CORE_CONTROL_DIR/fail-next-start` (default dir `/control`) exists,
//! it is deleted and the process exits 1 before anything else.

use komodo_testcontainers::stack::http::{env_or_file, get, read_request, respond};
use mongodb::bson::doc;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

fn fatal(msg: &str) -> ExitCode {
    println!("ERROR CoreStartup: FATAL: {msg} | Exiting...");
    ExitCode::from(1)
}

async fn healthcheck() -> ExitCode {
    let port = std::env::var("KOMODO_PORT").unwrap_or_else(|_| "9120".into());
    match get(&format!("127.0.0.1:{port}"), "/health", &[]).await {
        Ok(200) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

async fn login() -> Result<(), String> {
    let timeout: u64 = std::env::var("CORE_STANDIN_SELECTION_TIMEOUT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // As real core (research/komodo.md §2.1): a URI (`KOMODO_DATABASE_URI[_FILE]`) is used as
    // given and wins over address, username and password.
    let opts = if let Some(uri) = env_or_file("KOMODO_DATABASE_URI")? {
        let mut opts = ClientOptions::parse(&uri)
            .await
            .map_err(|_| "invalid KOMODO_DATABASE_URI (the value is not shown)".to_string())?;
        opts.app_name = Some("komodo_core".to_string());
        opts.server_selection_timeout = Some(Duration::from_secs(timeout));
        opts
    } else {
        plain_options(timeout)?
    };
    let client = mongodb::Client::with_options(opts).map_err(|e| format!("{e}"))?;
    // Core's first round-trip creates an index; any authenticated command surfaces the same
    // driver error, so the log line has the same shape.
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| format!("failed to create index | index: enabled | error: {e:?}"))?;
    Ok(())
}

fn plain_options(timeout: u64) -> Result<ClientOptions, String> {
    let address = env_or_file("KOMODO_DATABASE_ADDRESS")?.unwrap_or_else(|| "mongo:27017".into());
    let username = env_or_file("KOMODO_DATABASE_USERNAME")?;
    let password = env_or_file("KOMODO_DATABASE_PASSWORD")?;
    let host = ServerAddress::parse(&address)
        .map_err(|e| format!("invalid server address {address:?}: {e}"))?;
    let mut opts = ClientOptions::builder()
        .hosts(vec![host])
        .app_name("komodo_core".to_string())
        .server_selection_timeout(Duration::from_secs(timeout))
        .build();
    if let (Some(u), Some(p)) = (username, password) {
        // Credentials go in the Credential struct, never into a URI that could reach a log.
        opts.credential = Some(
            Credential::builder()
                .username(u)
                .password(p)
                .source("admin".to_string())
                .build(),
        );
    }
    Ok(opts)
}

async fn check_periphery() -> String {
    let addr = std::env::var("CORE_STANDIN_PERIPHERY").unwrap_or_else(|_| "periphery:8120".into());
    let passkey = match env_or_file("KOMODO_PASSKEY") {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return format!("passkey unreadable: {e}"),
    };
    let headers: Vec<(&str, &str)> = if passkey.is_empty() {
        vec![]
    } else {
        vec![("authorization", passkey.as_str())]
    };
    match get(&addr, "/", &headers).await {
        Ok(200) => format!("periphery {addr}: passkey accepted"),
        Ok(401) => format!("periphery {addr}: passkey rejected (401)"),
        Ok(code) => format!("periphery {addr}: status {code}"),
        Err(e) => format!("periphery {addr}: unreachable: {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        return healthcheck().await;
    }
    let control = std::env::var("CORE_CONTROL_DIR").unwrap_or_else(|_| "/control".into());
    let flag = std::path::Path::new(&control).join("fail-next-start");
    if flag.exists() {
        let _ = std::fs::remove_file(&flag);
        return fatal("fault injected: fail-next-start");
    }
    println!("INFO CoreStartup: Komodo Core stand-in starting");
    if let Err(e) = login().await {
        return fatal(&format!(
            "Failed to initialize database::Client | failed to initialize database client: {e}"
        ));
    }
    println!("INFO CoreStartup: connected to the database");
    let port = std::env::var("KOMODO_PORT").unwrap_or_else(|_| "9120".into());
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")).await {
        Ok(l) => l,
        Err(e) => return fatal(&format!("cannot listen on :{port}: {e}")),
    };
    println!("INFO Komodo Core listening on 0.0.0.0:{port}");
    println!("INFO {}", check_periphery().await);
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fatal(&format!("signal handler: {e}")),
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                println!("INFO shutting down");
                return ExitCode::SUCCESS;
            }
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            conn = listener.accept() => {
                if let Ok((mut s, _)) = conn {
                    tokio::spawn(async move {
                        if let Ok(req) = read_request(&mut s).await {
                            match req.path.as_str() {
                                "/health" => respond(&mut s, 200, "ok").await,
                                _ => respond(&mut s, 404, "not found").await,
                            }
                        }
                    });
                }
            }
        }
    }
}
