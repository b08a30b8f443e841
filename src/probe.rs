//! HTTP probe of Komodo core: "running" is not "serving". Core's one unauthenticated endpoint is
//! `GET /version` (plain-text version, 200); `GET /` on a core without its UI is 404, so only a
//! 200 from `/version` counts ([`ProbeUrl::version`], [`core_serves`]). A plain HTTP/1.1 `GET` over a tokio
//! socket, reading the status line only. Hand-written on purpose: no HTTP client crate is a
//! direct dependency (bollard's hyper is internal to it), and core's API is plain HTTP on the
//! compose network or loopback. https is refused as a config error, not half-supported.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An `http://host[:port][/path]` URL, parsed. Credentials in the URL are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl ProbeUrl {
    pub fn parse(url: &str) -> Result<ProbeUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("core_url must start with http://")?;
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err("core_url must not hold user:password@".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("core_url has an unclosed [")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("core_url has no host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("core_url has a bad port")?,
            None => 80,
        };
        let path = match tail.split('#').next().unwrap_or_default() {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("core_url path has spaces or control characters".into());
        }
        Ok(ProbeUrl { host, port, path })
    }

    /// Core's `/version` under this base URL (`http://core:9120/` → `http://core:9120/version`;
    /// a path prefix, as behind a reverse proxy, is kept; a query is dropped).
    pub fn version(&self) -> ProbeUrl {
        let base = self.path.split(['?', '#']).next().unwrap_or_default();
        ProbeUrl {
            host: self.host.clone(),
            port: self.port,
            path: format!("{}/version", base.trim_end_matches('/')),
        }
    }

    pub fn display(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// `GET url`: the status code, or why there was none within `timeout`.
pub async fn get_status(u: &ProbeUrl, timeout: Duration) -> Result<u16, String> {
    tokio::time::timeout(timeout, exchange(u))
        .await
        .map_err(|_| format!("{}: no answer within {timeout:?}", u.display()))?
        .map_err(|e| format!("{}: {e}", u.display()))
}

/// One probe of core at base URL `u`: `Ok` only when `GET /version` answers 200 within
/// `timeout`; otherwise what was seen, naming the URL.
pub async fn core_serves(u: &ProbeUrl, timeout: Duration) -> Result<(), String> {
    let v = u.version();
    match get_status(&v, timeout).await? {
        200 => Ok(()),
        code => Err(format!("{} answered HTTP {code}, not 200", v.display())),
    }
}

async fn exchange(u: &ProbeUrl) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: komodo-rotate\r\nConnection: close\r\n\r\n",
        u.path, u.port
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 1024 {
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
    let mut parts = line.lines().next().unwrap_or_default().split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err("the answer is not HTTP/1.x".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn urls_parse_or_are_refused_with_a_reason() {
        let u = ProbeUrl::parse("http://127.0.0.1:9120").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9120, "/")
        );
        let u = ProbeUrl::parse("http://[::1]:81/x?y").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 81, "/x?y")
        );
        assert_eq!(ProbeUrl::parse("http://core").unwrap().port, 80);
        for bad in [
            "https://core:9120",
            "core:9120",
            "http://u:p@core/",
            "http://:9120/",
            "http://core:0/",
            "http://core:99999/",
            "http://core/a b",
        ] {
            assert!(ProbeUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_health_endpoint_is_version_under_the_base() {
        for (base, want) in [
            ("http://127.0.0.1:9120", "http://127.0.0.1:9120/version"),
            ("http://core:9120/", "http://core:9120/version"),
            (
                "http://core:9120/komodo/",
                "http://core:9120/komodo/version",
            ),
            (
                "http://core:9120/komodo?x=1",
                "http://core:9120/komodo/version",
            ),
        ] {
            assert_eq!(ProbeUrl::parse(base).unwrap().version().display(), want);
        }
    }

    /// A server answering each path with its own status, recording the paths asked for.
    async fn http_server(
        answer: impl Fn(&str) -> u16 + Send + 'static,
    ) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 512];
                let n = s.read(&mut b).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&b[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let code = answer(&path);
                log.lock().unwrap().push(path);
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn core_serves_only_on_a_200_from_version() {
        // A real core without its UI: `/` is 404, `/version` is 200.
        let (port, seen) = http_server(|p| if p == "/version" { 200 } else { 404 }).await;
        let u = ProbeUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert_eq!(core_serves(&u, Duration::from_secs(5)).await, Ok(()));
        assert_eq!(*seen.lock().unwrap(), ["/version"]);
        // A 404 (or any non-200 below 500) on /version is not serving.
        for code in [404u16, 302, 401, 503] {
            let (port, _) = http_server(move |_| code).await;
            let u = ProbeUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
            let e = core_serves(&u, Duration::from_secs(5)).await.unwrap_err();
            assert!(
                e.contains(&format!("/version answered HTTP {code}, not 200")),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn reads_the_status_and_reports_a_silent_or_closed_server() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .await
                .unwrap();
        });
        let u = ProbeUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert_eq!(get_status(&u, Duration::from_secs(5)).await, Ok(503));

        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let u = ProbeUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = get_status(&u, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
        drop(silent);
        let e = get_status(&u, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }
}
