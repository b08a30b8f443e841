//! `core-standin [--healthcheck]`: behaves like komodo-core where komodo-rotate can see it.
//!
//! At start it reads the DB address and credentials the way core does (always the
//! `KOMODO_DATABASE_*` names, `_FILE` winning, `KOMODO_DATABASE_URI[_FILE]` winning over
//! address and credentials; a v1 compose maps `KOMODO_DB_*` onto them), logs in
//! with the official driver, and on failure prints core's fatal line (research/komodo.md §2.2)
//! and exits 1, so `restart: unless-stopped` turns a wrong password into a crash loop. Then it
//! serves :9120 and calls periphery with `KOMODO_PASSKEY` in the `authorization` header (v1,
//! research/komodo.md §2.3) every `CORE_STANDIN_POLL_MS` (default 1000), as Komodo polls each
//! Server's status, logging each change of the answer.
//!
//! Routes (no route ever answers with the passkey):
//! - `GET /version`: 200 with the version as plain text, as Komodo core answers it (its one
//!   unauthenticated endpoint, which komodo-rotate's probe uses); `GET /` is 404 as on a core
//!   without its UI.
//! - `GET /health`: 200 once the DB login worked (the container's healthcheck).
//! - `GET /periphery`: checks periphery NOW: 200 `ok` when it accepts core's passkey, else 502
//!   with periphery's reason (`401 request passkey invalid`, `unreachable: ...`).
//! - `GET /periphery/polls`: what the background polls saw since this process started,
//!   `accepted=N rejected=N unreachable=N` (rejected = periphery answered 401).
//!
//! Fault control: if `$CORE_CONTROL_DIR/fail-next-start` (default dir `/control`) exists, it is
//! deleted and the process exits 1 before anything else.

use komodo_rotate::text::one_line;
use komodo_testcontainers::stack::http::{env_or_file, get, get_with_body, read_request, respond};
use mongodb::bson::doc;
use mongodb::options::{ClientOptions, Credential, ServerAddress};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// The Komodo core release the stand-in answers for (plain text, as core's `/version`).
const VERSION: &str = "2.3.2";

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

/// One answer of periphery to core's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    Accepted,
    /// 401, with periphery's reason (never the passkey: periphery does not echo it).
    Rejected(String),
    /// Any other status, or no answer.
    Unreachable(String),
}

impl Reach {
    fn describe(&self, addr: &str) -> String {
        match self {
            Reach::Accepted => format!("periphery {addr}: passkey accepted"),
            Reach::Rejected(why) => format!("periphery {addr}: passkey rejected (401 {why})"),
            Reach::Unreachable(why) => format!("periphery {addr}: unreachable: {why}"),
        }
    }
}

fn periphery_addr() -> String {
    std::env::var("CORE_STANDIN_PERIPHERY").unwrap_or_else(|_| "periphery:8120".into())
}

/// One call to periphery with core's passkey, read afresh each time (core reads its env once;
/// the env of a container never changes, so this is the same value).
async fn check_periphery(addr: &str) -> Reach {
    let passkey = match env_or_file("KOMODO_PASSKEY") {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return Reach::Unreachable(format!("passkey unreadable: {e}")),
    };
    let headers: Vec<(&str, &str)> = if passkey.is_empty() {
        vec![]
    } else {
        vec![("authorization", passkey.as_str())]
    };
    match get_with_body(addr, "/", &headers).await {
        Ok((200, _)) => Reach::Accepted,
        Ok((401, body)) => Reach::Rejected(one_line(&body)),
        Ok((code, _)) => Reach::Unreachable(format!("status {code}")),
        Err(e) => Reach::Unreachable(e),
    }
}

/// What the background polls saw.
#[derive(Debug, Default)]
struct Polls {
    last: Option<Reach>,
    accepted: u64,
    rejected: u64,
    unreachable: u64,
}

impl Polls {
    fn record(&mut self, r: Reach) -> bool {
        match r {
            Reach::Accepted => self.accepted += 1,
            Reach::Rejected(_) => self.rejected += 1,
            Reach::Unreachable(_) => self.unreachable += 1,
        }
        let changed = self.last.as_ref() != Some(&r);
        self.last = Some(r);
        changed
    }

    fn summary(&self) -> String {
        format!(
            "accepted={} rejected={} unreachable={}",
            self.accepted, self.rejected, self.unreachable
        )
    }
}

/// Polls periphery forever, logging each change of its answer.
async fn poll_periphery(polls: Arc<Mutex<Polls>>) {
    let every = std::env::var("CORE_STANDIN_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000u64)
        .max(50);
    let addr = periphery_addr();
    loop {
        let r = check_periphery(&addr).await;
        let line = r.describe(&addr);
        let changed = polls.lock().map(|mut p| p.record(r)).unwrap_or(false);
        if changed {
            println!("INFO {line}");
        }
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
}

async fn serve(mut s: tokio::net::TcpStream, polls: Arc<Mutex<Polls>>) {
    let Ok(req) = read_request(&mut s).await else {
        return;
    };
    match req.path.as_str() {
        "/version" => respond(&mut s, 200, VERSION).await,
        "/health" => respond(&mut s, 200, "ok").await,
        "/periphery" => match check_periphery(&periphery_addr()).await {
            Reach::Accepted => respond(&mut s, 200, "ok").await,
            Reach::Rejected(why) => respond(&mut s, 502, &format!("401 {why}")).await,
            Reach::Unreachable(why) => respond(&mut s, 502, &format!("unreachable: {why}")).await,
        },
        "/periphery/polls" => {
            let text = polls
                .lock()
                .map(|p| p.summary())
                .unwrap_or_else(|_| "poisoned".into());
            respond(&mut s, 200, &text).await
        }
        _ => respond(&mut s, 404, "not found").await,
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
    let polls = Arc::new(Mutex::new(Polls::default()));
    tokio::spawn(poll_periphery(polls.clone()));
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
                if let Ok((s, _)) = conn {
                    tokio::spawn(serve(s, polls.clone()));
                }
            }
        }
    }
}
