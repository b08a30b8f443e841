//! Just enough HTTP/1.1 for the stand-ins: one request per connection, headers only. The
//! stand-ins answer health probes and passkey checks; they never need bodies or keep-alive.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const MAX_HEAD: usize = 16 * 1024;

/// Reads a request head from `stream` (bounded in size and time).
pub async fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the request head".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(buf[..end].to_vec());
            }
            if buf.len() > MAX_HEAD {
                return Err("request head too large".to_string());
            }
        }
    })
    .await
    .map_err(|_| "timed out reading the request".to_string())??;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Request {
        method,
        path,
        headers,
    })
}

pub async fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(msg.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// `GET path` on `addr` with extra headers; returns the status code.
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
    get_with_body(addr, path, headers)
        .await
        .map(|(code, _)| code)
}

/// The longest body [`get_with_body`] returns (the stand-ins answer one short line).
const MAX_BODY: usize = 4096;

/// `GET path` on `addr` with extra headers; returns the status code and the body (lossy UTF-8,
/// at most 4 KiB).
pub async fn get_with_body(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out);
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "malformed response".to_string())?;
        let body: String = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default()
            .chars()
            .take(MAX_BODY)
            .collect();
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("{addr}: timed out"))?
}

/// Reads `NAME` from the environment, with Komodo's `NAME_FILE` convention: the file wins, and
/// its contents are whitespace-trimmed (research/komodo.md §1.4). Empty counts as unset.
pub fn env_or_file(name: &str) -> Result<Option<String>, String> {
    if let Ok(path) = std::env::var(format!("{name}_FILE")) {
        if !path.is_empty() {
            let v =
                std::fs::read_to_string(&path).map_err(|e| format!("{name}_FILE {path}: {e}"))?;
            return Ok(Some(v.trim().to_string()));
        }
    }
    Ok(std::env::var(name).ok().filter(|v| !v.is_empty()))
}
