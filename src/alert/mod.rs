//! The `[alert] webhook`: one short message per run that needs a human (a failed rotate, rescue
//! or resume; drift found by verify) and, with `on_success = true`, per run that changed
//! something. The message carries only the command, the outcome, the exit code, step names and
//! the host name: it is built from those fields alone, never from an error message, so no secret
//! can reach it.
//!
//! One try with a short timeout; any failure is a warning on stderr and never changes the exit
//! code. The webhook URL itself often holds a token (Slack, Discord), so warnings name only its
//! scheme and host.
//!
//! Plain HTTP goes over a tokio socket; https through tokio-rustls with the webpki root store
//! (both already in the tree through the mongodb driver): a one-shot POST needs no HTTP client.

use crate::config::Config;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a webhook may take, connect to answer, before it is given up.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The body shape; `[alert] format` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON with both `text` (Slack, Mattermost) and `content` (Discord), plus the fields.
    #[default]
    Json,
    /// `{"text": …}` only.
    Slack,
    /// `{"content": …}` only.
    Discord,
    /// A plain-text body with ntfy's `Title`, `Priority` and `Tags` headers.
    Ntfy,
}

/// What happened, in fields that cannot hold a secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub host: String,
    pub command: String,
    pub outcome: String,
    pub exit_code: i32,
    /// `name: status` of the steps that ran, or the names of the checks that drifted.
    pub steps: Vec<String>,
}

impl Event {
    pub fn new(command: &str, exit_code: i32, steps: Vec<String>) -> Event {
        Event {
            host: hostname(),
            command: command.to_string(),
            outcome: outcome_word(exit_code).to_string(),
            exit_code,
            steps,
        }
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "komodo-rotate on {}: {} {} (exit {})",
            self.host, self.command, self.outcome, self.exit_code
        );
        if !self.steps.is_empty() {
            s.push_str(": ");
            s.push_str(&self.steps.join(", "));
        }
        s
    }

    pub fn is_failure(&self) -> bool {
        self.exit_code != 0
    }
}

/// The exit-code contract in one word each (DESIGN.md "Exit codes").
pub fn outcome_word(code: i32) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "found drift",
        2 => "usage or config error",
        3 => "refused, nothing changed",
        4 => "failed and rolled back",
        5 => "ROLLBACK INCOMPLETE, operator action needed",
        6 => "locked by another run",
        _ => "failed",
    }
}

/// Whether a run of `command` that ended with `exit_code` is worth a message. `changed` says
/// whether it changed something (a committed audit record), so that a daily "not due" rotate
/// stays quiet even with `on_success`.
pub fn wanted(on_success: bool, command: &str, exit_code: i32, changed: bool) -> bool {
    match (command, exit_code) {
        ("verify", 0) => on_success,
        (_, 0) => on_success && changed,
        ("verify", 1) => true,
        (_, code) => code >= 3,
    }
}

/// The request for `format`: content type, extra headers, body.
pub fn request(ev: &Event, format: Format) -> (&'static str, Vec<(&'static str, String)>, Vec<u8>) {
    let text = ev.summary();
    match format {
        Format::Ntfy => {
            let title = format!("komodo-rotate {} on {}", ev.command, ev.host);
            let (prio, tag) = if ev.is_failure() {
                ("high", "warning")
            } else {
                ("default", "white_check_mark")
            };
            (
                "text/plain; charset=utf-8",
                vec![
                    ("Title", header_safe(&title)),
                    ("Priority", prio.into()),
                    ("Tags", tag.into()),
                ],
                text.into_bytes(),
            )
        }
        Format::Slack => json(&serde_json::json!({ "text": text })),
        Format::Discord => json(&serde_json::json!({ "content": text })),
        Format::Json => json(&serde_json::json!({
            "text": text,
            "content": text,
            "host": ev.host,
            "command": ev.command,
            "outcome": ev.outcome,
            "exit_code": ev.exit_code,
            "steps": ev.steps,
        })),
    }
}

fn json(v: &serde_json::Value) -> (&'static str, Vec<(&'static str, String)>, Vec<u8>) {
    ("application/json", vec![], v.to_string().into_bytes())
}

fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Sends `ev` if the config asks for it. Blocking; warnings only.
pub fn notify(cfg: &Config, ev: &Event, changed: bool) {
    let a = &cfg.alert;
    if a.webhook.trim().is_empty() || !wanted(a.on_success, &ev.command, ev.exit_code, changed) {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("komodo-rotate: warning: alert not sent: no async runtime: {e}");
            return;
        }
    };
    if let Err(e) = rt.block_on(send(a.webhook.trim(), ev, a.format, TIMEOUT)) {
        eprintln!("komodo-rotate: warning: alert not sent: {e}");
    }
}

/// One POST of `ev` to `url`, bounded by `timeout`. The error names the scheme and host only.
pub async fn send(url: &str, ev: &Event, format: Format, timeout: Duration) -> Result<u16, String> {
    let u = WebhookUrl::parse(url)?;
    let (ctype, headers, body) = request(ev, format);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: komodo-rotate/{}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        u.path,
        u.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&body);
    let who = u.display();
    let status = tokio::time::timeout(timeout, exchange_url(&u, &msg))
        .await
        .map_err(|_| format!("webhook {who} did not answer within {timeout:?}"))?
        .map_err(|e| format!("webhook {who}: {e}"))?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("webhook {who} answered HTTP {status}"))
    }
}

async fn exchange_url(u: &WebhookUrl, msg: &[u8]) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    if !u.tls {
        return exchange(tcp, msg).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(u.host.clone())
        .map_err(|_| "the host is not a valid TLS server name".to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    exchange(tls, msg).await
}

/// Writes the request and reads the status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, msg: &[u8]) -> Result<u16, String> {
    s.write_all(msg)
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    s.flush().await.map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err("the answer is not HTTP/1.x".into()),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl WebhookUrl {
    pub fn parse(url: &str) -> Result<WebhookUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("webhook URL must start with http:// or https://".into());
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err("webhook URL with user:password@ is not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("webhook URL has an unclosed [IPv6] host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("webhook URL has no host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| "webhook URL has a bad port".to_string())?,
            None if tls => 443,
            None => 80,
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let path = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("webhook URL path has spaces or control characters".into());
        }
        Ok(WebhookUrl {
            tls,
            host,
            port,
            path,
        })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }

    /// For messages: scheme and host, never the path (it often is the token).
    pub fn display(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.host_header()
        )
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or the
    // result is cut at the length, which the search below handles.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn ev(code: i32) -> Event {
        Event::new(
            "rotate",
            code,
            vec!["snapshot: done".into(), "change-db: failed".into()],
        )
    }

    #[test]
    fn urls() {
        let u = WebhookUrl::parse("https://ntfy.example.org/komodo?x=1").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/komodo?x=1"));
        assert_eq!(u.display(), "https://ntfy.example.org");
        let u = WebhookUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/")
        );
        let u = WebhookUrl::parse("http://[::1]:9/h").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        for bad in [
            "ftp://x",
            "https://u:p@host/",
            "http://:80/",
            "http://h:99999/",
            "http://h/a b",
        ] {
            let e = WebhookUrl::parse(bad).unwrap_err();
            assert!(!e.contains("u:p"), "{e}");
        }
    }

    #[test]
    fn when_to_send() {
        assert!(wanted(false, "rotate", 4, true));
        assert!(wanted(false, "rescue", 3, false));
        assert!(wanted(false, "resume", 5, true));
        assert!(
            !wanted(false, "rotate", 2, false),
            "usage errors are for the shell"
        );
        assert!(!wanted(false, "rotate", 0, true));
        assert!(wanted(true, "rotate", 0, true));
        assert!(
            !wanted(true, "rotate", 0, false),
            "a not-due rotate changed nothing"
        );
        assert!(wanted(false, "verify", 1, false));
        assert!(!wanted(false, "verify", 0, false));
        assert!(
            wanted(false, "verify", 3, false),
            "a verify that could not check needs a look"
        );
    }

    #[test]
    fn bodies() {
        let e = ev(4);
        let (ct, h, b) = request(&e, Format::Json);
        assert_eq!(ct, "application/json");
        assert!(h.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["text"], v["content"]);
        assert_eq!(v["exit_code"], 4);
        assert!(v["text"].as_str().unwrap().contains("rolled back"));
        let (_, _, b) = request(&e, Format::Slack);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&b)
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            1
        );
        let (ct, h, b) = request(&e, Format::Ntfy);
        assert!(ct.starts_with("text/plain"));
        assert!(h.iter().any(|(k, v)| *k == "Priority" && v == "high"));
        assert!(String::from_utf8(b).unwrap().contains("change-db: failed"));
    }

    #[tokio::test]
    async fn posts_once_and_reads_the_status() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        break;
                    }
                }
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let url = format!("http://127.0.0.1:{port}/hook/secret-token");
        let code = send(&url, &ev(4), Format::Json, TIMEOUT).await.unwrap();
        assert_eq!(code, 204);
        let req = server.await.unwrap();
        assert!(
            req.starts_with("POST /hook/secret-token HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(req.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
    }

    #[tokio::test]
    async fn failures_name_the_host_not_the_token() {
        // Nothing listens on this port once the listener is dropped.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/T0KEN");
        let e = send(&url, &ev(4), Format::Json, TIMEOUT).await.unwrap_err();
        assert!(e.contains("127.0.0.1") && !e.contains("T0KEN"), "{e}");

        // A listener that never answers: the timeout ends it.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let t0 = std::time::Instant::now();
        let e = send(
            &format!("http://127.0.0.1:{port}/T0KEN"),
            &ev(4),
            Format::Json,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert!(e.contains("did not answer") && !e.contains("T0KEN"), "{e}");
        drop(l);
    }
}
