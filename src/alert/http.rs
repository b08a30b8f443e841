//! The POST itself, through reqwest: proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`), up to 5 redirects, chunked replies, HTTP/1.1. TLS is rustls with the
//! ring provider, trusting the webpki roots and the system store (so a webhook behind a private
//! CA works once that CA is installed, or named by `SSL_CERT_FILE`/`SSL_CERT_DIR`).
//!
//! One try (reqwest's protocol-level retries are switched off), bounded by the timeout from
//! connect to the last byte. Errors are built from the error's kind and the I/O or TLS cause
//! only: reqwest's own messages carry the URL (and a proxy URL may carry a password).

use super::{request, Event, Format};
use std::sync::Arc;
use std::time::Duration;

/// How long a webhook may take, connect to answer, before it is given up.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Redirects followed before giving up (a webhook normally answers directly).
const MAX_REDIRECTS: usize = 5;

/// The URL checked for use as a webhook; the error never repeats it.
fn parse(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("webhook URL is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("webhook URL must start with http:// or https://".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("webhook URL with user:password@ is not supported".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("webhook URL has no host".into());
    }
    Ok(u)
}

/// For messages: scheme, host and a non-default port; never the path or query (they often are
/// the token).
pub fn webhook_display(url: &str) -> Result<String, String> {
    parse(url).map(|u| display(&u))
}

fn display(u: &reqwest::Url) -> String {
    // `host_str` keeps an IPv6 address in brackets.
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    }
}

/// webpki roots plus every certificate the system store yields (unreadable entries skipped:
/// the webpki roots still stand).
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        // No Referer on a redirect: the previous URL is the webhook's, token and all.
        .referer(false)
        .retry(reqwest::retry::never())
        .user_agent(concat!("komodo-rotate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client setup: {}", describe(&e)))
}

/// What went wrong, from the error's kind and its I/O or TLS cause: never its URL.
fn describe(e: &reqwest::Error) -> String {
    let mut cause: Option<String> = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            cause = Some(io_cause(io));
        } else if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            cause = Some(format!("TLS: {tls}"));
        }
        cur = err.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_builder() {
        "bad request"
    } else {
        "request failed"
    };
    match cause {
        Some(c) => format!("{what}: {c}"),
        None => what.to_string(),
    }
}

/// An I/O error's innermost cause: a TLS error in words, else the I/O kind (never a message
/// another layer wrote, which might hold an address).
fn io_cause(io: &std::io::Error) -> String {
    let mut cur = io;
    while let Some(inner) = cur.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return format!("TLS: {tls}");
        }
        match inner.downcast_ref::<std::io::Error>() {
            Some(next) => cur = next,
            None => break,
        }
    }
    cur.kind().to_string()
}

/// One POST of `ev` to `url`, bounded by `timeout`. The error names the scheme and host only.
pub async fn send(url: &str, ev: &Event, format: Format, timeout: Duration) -> Result<u16, String> {
    let u = parse(url)?;
    let who = display(&u);
    let (ctype, headers, body) = request(ev, format);
    let mut req = client(timeout)?
        .post(u)
        .header(reqwest::header::CONTENT_TYPE, ctype)
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("webhook {who} did not answer within {timeout:?}")
        } else {
            format!("webhook {who}: {}", describe(&e))
        }
    })?;
    let status = resp.status().as_u16();
    // Read the reply to its end (chunked or not) so the exchange completes; its content is
    // not used and a failure to read it does not undo a 2xx.
    let _ = tokio::time::timeout(timeout, resp.bytes()).await;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("webhook {who} answered HTTP {status}"))
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
