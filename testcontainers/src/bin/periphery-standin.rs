//! `periphery-standin [--healthcheck]`: holds `PERIPHERY_PASSKEYS` (or `_FILE`) and serves :8120
//! like komodo-periphery v1's passkey guard (research/komodo.md §2.3): an empty list accepts
//! everyone; otherwise a request without an `authorization` header, or with a value not in the
//! list, gets 401. List items are split on ',' and, only when read from a file, trimmed.

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::http::{get, read_request, respond};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

fn passkeys() -> Result<Vec<Secret>, String> {
    if let Ok(path) = std::env::var("PERIPHERY_PASSKEYS_FILE") {
        if !path.is_empty() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("PERIPHERY_PASSKEYS_FILE {path}: {e}"))?;
            return Ok(text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.to_string()))
                .collect());
        }
    }
    Ok(std::env::var("PERIPHERY_PASSKEYS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.to_string()))
        .collect())
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
    let keys = match passkeys() {
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
                            let given = Secret::new(given.to_string());
                            if keys.iter().any(|k| k.ct_eq(&given)) {
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
