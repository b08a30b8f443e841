//! `periphery-standin [--healthcheck]`: holds `PERIPHERY_PASSKEYS` (or `_FILE`) and serves :8120
//! like komodo-periphery v1's passkey guard (research/komodo.md §2.3): an empty list accepts
//! everyone; otherwise a request without an `authorization` header, or with a value not in the
//! list, gets 401. List items are split on ',' and, only when read from a file, trimmed.

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::http::{get, read_request, respond};
use komodo_testcontainers::stack::passkeys;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

fn configured_passkeys() -> Result<Vec<Secret>, String> {
    if let Ok(path) = std::env::var("PERIPHERY_PASSKEYS_FILE") {
        if !path.is_empty() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("PERIPHERY_PASSKEYS_FILE {path}: {e}"))?;
            return Ok(passkeys::from_file_text(&text));
        }
    }
    Ok(passkeys::from_env_value(
        &std::env::var("PERIPHERY_PASSKEYS").unwrap_or_default(),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = std::env::var("PERIPHERY_PORT").unwrap_or_else(|_| "8120".into());
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        // Any HTTP answer (even 401) means the server is up.
        return match get(&format!("127.0.0.1:{port}"), "/health", &[]).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let keys = match configured_passkeys() {
        Ok(k) => Arc::new(k),
        Err(e) => {
            println!("ERROR periphery: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            println!("ERROR periphery: cannot listen on :{port}: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "INFO Komodo Periphery stand-in listening on 0.0.0.0:{port} ({} passkeys)",
        keys.len()
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return ExitCode::from(1),
    };
    loop {
        tokio::select! {
            _ = term.recv() => return ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            conn = listener.accept() => {
                let Ok((mut s, _)) = conn else { continue };
                let keys = keys.clone();
                tokio::spawn(async move {
                    let Ok(req) = read_request(&mut s).await else { return };
                    if keys.is_empty() {
                        return respond(&mut s, 200, "ok").await;
                    }
                    match req.header("authorization") {
                        None => {
                            println!("WARN request was not sent with passkey");
                            respond(&mut s, 401, "request was not sent with passkey").await
                        }
                        Some(given) => {
                            if passkeys::accepts(&keys, given) {
                                respond(&mut s, 200, "ok").await
                            } else {
                                println!("WARN request passkey invalid");
                                respond(&mut s, 401, "request passkey invalid").await
                            }
                        }
                    }
                });
            }
        }
    }
}
