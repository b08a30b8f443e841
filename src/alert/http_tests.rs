//! The webhook POST against local listeners: status, redirects, chunked replies, timeouts,
//! environment proxies and a private CA. Tests that need another process environment (proxy
//! variables, `SSL_CERT_FILE`) re-run this test binary as a child with that environment, so
//! the parent never mutates its own.

use super::*;
use std::process::Command;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "T0KEN-in-path";
/// Set in a child run: which side of a two-process test this is.
const CHILD: &str = "KOMODO_ROTATE_ALERT_TEST_CHILD";

fn ev(code: i32) -> Event {
    Event::new("rotate", code, vec!["change-db: failed".into()])
}

/// The test event POSTed to `url` as JSON, with the default timeout.
async fn post(url: &str) -> Result<u16, String> {
    send(url, &ev(4), Format::Json, TIMEOUT).await
}

/// Reads one request (head and Content-Length body); returns its head.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return String::from_utf8_lossy(&buf).into_owned();
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= p + 4 + len {
                return head;
            }
        }
    }
}

/// Answers each accepted connection with the next of `answers`; returns the request heads.
async fn serve(answers: Vec<String>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut heads = Vec::new();
        for a in answers {
            let (mut s, _) = l.accept().await.unwrap();
            heads.push(read_request(&mut s).await);
            answer(&mut s, &a).await;
        }
        heads
    });
    (port, task)
}

async fn answer<S: AsyncWrite + Unpin>(s: &mut S, a: &str) {
    s.write_all(a.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let _ = s.shutdown().await;
}

const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

#[test]
fn displays_scheme_and_host_only() {
    let show = |u: &str| webhook_display(u).unwrap();
    assert_eq!(
        show("https://ntfy.example.org/komodo?x=1"),
        "https://ntfy.example.org"
    );
    assert_eq!(show("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    assert_eq!(show("http://[::1]:9/h"), "http://[::1]:9");
    assert_eq!(show("https://h.example:443/T0KEN"), "https://h.example");
    for bad in [
        "ftp://x",
        "https://u:p@host/",
        "http://:80/",
        "http://h:99999/",
        "not a url",
    ] {
        let e = webhook_display(bad).unwrap_err();
        assert!(!e.contains("u:p") && !e.contains("host/"), "{e}");
    }
}

#[tokio::test]
async fn posts_once_and_reads_the_status() {
    let (port, server) = serve(vec![NO_CONTENT.into()]).await;
    let url = format!("http://127.0.0.1:{port}/hook/{TOKEN}");
    let code = post(&url).await.unwrap();
    assert_eq!(code, 204);
    let heads = server.await.unwrap();
    assert_eq!(heads.len(), 1);
    let req = heads[0].to_ascii_lowercase();
    assert!(
        req.starts_with(&format!(
            "post /hook/{} http/1.1\r\n",
            TOKEN.to_ascii_lowercase()
        )),
        "{req}"
    );
    assert!(
        req.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{req}"
    );
    assert!(req.contains("content-type: application/json"), "{req}");
}

#[tokio::test]
async fn follows_a_redirect_and_reads_a_chunked_reply() {
    let (port, server) = serve(vec![
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: /moved\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n".into(),
    ])
    .await;
    let url = format!("http://127.0.0.1:{port}/hook/{TOKEN}");
    let code = send(&url, &ev(4), Format::Ntfy, TIMEOUT).await.unwrap();
    assert_eq!(code, 200);
    let heads = server.await.unwrap();
    assert!(heads[1].starts_with("POST /moved HTTP/1.1"), "{heads:?}");
    assert!(
        heads[1].to_ascii_lowercase().contains("priority: high"),
        "a 307 keeps the method and headers: {heads:?}"
    );
    // The redirect target must not learn the webhook's path (its token) from a Referer.
    let second = heads[1].to_ascii_lowercase();
    assert!(!second.contains("referer:"), "{heads:?}");
    assert!(!heads[1].contains(TOKEN), "{heads:?}");
}

#[tokio::test]
async fn a_non_2xx_answer_is_a_failure_naming_the_host() {
    let (port, server) = serve(vec![
        "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    ])
    .await;
    let url = format!("http://127.0.0.1:{port}/hook/{TOKEN}");
    let e = post(&url).await.unwrap_err();
    assert_eq!(
        e,
        format!("webhook http://127.0.0.1:{port} answered HTTP 500")
    );
    assert_eq!(server.await.unwrap().len(), 1, "one try only");
}

#[tokio::test]
async fn failures_name_the_host_not_the_token() {
    // Nothing listens on this port once the listener is dropped.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = format!("http://127.0.0.1:{port}/{TOKEN}");
    let e = post(&url).await.unwrap_err();
    assert!(
        e.contains("127.0.0.1") && e.contains("cannot connect") && !e.contains(TOKEN),
        "{e}"
    );

    // A listener that never answers: the timeout ends it.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let t0 = std::time::Instant::now();
    let e = send(
        &format!("http://127.0.0.1:{port}/{TOKEN}"),
        &ev(4),
        Format::Json,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(e.contains("did not answer") && !e.contains(TOKEN), "{e}");
    drop(l);
}

/// Re-runs `test` in a child process with `env` (proxy variables cleared first).
fn run_child(test: &str, role: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for v in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"] {
        c.env_remove(v).env_remove(v.to_ascii_lowercase());
    }
    c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    c.env(CHILD, role);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "child {test} ({role}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn proxies_from_the_environment() {
    if std::env::var(CHILD).as_deref() == Ok("proxy") {
        // Only the proxy can reach a name under .invalid.
        let code = post(&format!("http://webhook.invalid/hook/{TOKEN}"))
            .await
            .unwrap();
        assert_eq!(code, 204);
        // https goes through CONNECT; this proxy refuses it.
        let e = post(&format!("https://webhook.invalid/{TOKEN}"))
            .await
            .unwrap_err();
        assert!(
            e.starts_with("webhook https://webhook.invalid") && !e.contains(TOKEN),
            "{e}"
        );
        // NO_PROXY: sent directly, so the name does not resolve.
        let e = post(&format!("http://direct.invalid/{TOKEN}"))
            .await
            .unwrap_err();
        assert!(!e.contains(TOKEN), "{e}");
        return;
    }
    let (port, proxy) = serve(vec![
        NO_CONTENT.into(),
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".into(),
    ])
    .await;
    let at = format!("http://127.0.0.1:{port}");
    let child = tokio::task::spawn_blocking(move || {
        run_child(
            "alert::http::tests::proxies_from_the_environment",
            "proxy",
            &[
                ("HTTP_PROXY", at.clone()),
                ("HTTPS_PROXY", at),
                ("NO_PROXY", "direct.invalid".into()),
            ],
        )
    });
    child.await.unwrap();
    let heads = proxy.await.unwrap();
    assert!(
        heads[0].starts_with(&format!(
            "POST http://webhook.invalid/hook/{TOKEN} HTTP/1.1"
        )),
        "{heads:?}"
    );
    assert!(
        heads[1].starts_with("CONNECT webhook.invalid:443 HTTP/1.1"),
        "{heads:?}"
    );
}

/// openssl output: a CA and a server certificate for localhost/127.0.0.1 signed by it.
fn private_ca(dir: &std::path::Path) -> Result<(), String> {
    let sh = format!(
        "set -e; cd '{}'
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=komodo-rotate-test-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf",
        dir.display()
    );
    let out = Command::new("sh")
        .args(["-c", &sh])
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn tls_server(dir: &std::path::Path, answers: usize) -> (u16, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        for _ in 0..answers {
            let (s, _) = l.accept().await.unwrap();
            // A client that does not trust the CA aborts the handshake: go on to the next.
            if let Ok(mut tls) = acceptor.accept(s).await {
                read_request(&mut tls).await;
                answer(&mut tls, NO_CONTENT).await;
            }
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_private_ca_from_the_system_store_is_trusted() {
    let role = std::env::var(CHILD).unwrap_or_default();
    if let Some(port) = role.strip_prefix("tls:") {
        let code = post(&format!("https://localhost:{port}/{TOKEN}"))
            .await
            .unwrap();
        assert_eq!(code, 204);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if let Err(e) = private_ca(dir.path()) {
        assert!(
            !matches!(std::env::var("CI").map(|v| v.trim().to_ascii_lowercase()).as_deref(), Ok(v) if !["", "false", "0", "no", "off"].contains(&v)),
            "CI=true but openssl cannot make a test CA: {e}"
        );
        eprintln!("SKIPPED: openssl cannot make a test CA ({e}); set CI=true to fail instead");
        return;
    }
    let (port, server) = tls_server(dir.path(), 2).await;
    // Not in the system store: refused, and the message says why without the token.
    let e = post(&format!("https://localhost:{port}/{TOKEN}"))
        .await
        .unwrap_err();
    assert!(
        e.contains("TLS") && e.contains(&format!("https://localhost:{port}")) && !e.contains(TOKEN),
        "{e}"
    );
    // Named by SSL_CERT_FILE (as an installed CA would be found): trusted.
    let ca = dir.path().join("ca.pem").display().to_string();
    tokio::task::spawn_blocking(move || {
        run_child(
            "alert::http::tests::a_private_ca_from_the_system_store_is_trusted",
            &format!("tls:{port}"),
            &[("SSL_CERT_FILE", ca)],
        )
    })
    .await
    .unwrap();
    server.await.unwrap();
}
