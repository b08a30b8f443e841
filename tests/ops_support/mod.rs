//! Helpers of the ops tests: a strict parser of the Prometheus text format (what node_exporter's
//! textfile collector accepts), the runbooks' fenced `sh` blocks, and a webhook listener.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One sample: family name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text exposition format strictly: HELP/TYPE before a family's samples, one TYPE per
/// family, families contiguous, valid names, escaped label values, float values, no duplicate
/// series, a trailing newline.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no trailing newline".into());
    }
    let valid_name = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap_or_default();
            let name = parts.next().ok_or_else(|| at("comment without a name"))?;
            if kw != "HELP" && kw != "TYPE" {
                continue;
            }
            if !valid_name(name) {
                return Err(at("bad metric name"));
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                if closed.contains(name) {
                    return Err(at("family split in two"));
                }
                current = Some(name.to_string());
            }
            if kw == "TYPE" {
                let t = parts.next().ok_or_else(|| at("TYPE without a type"))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(at("unknown type"));
                }
                if typed.insert(name.to_string(), t.to_string()).is_some() {
                    return Err(at("second TYPE"));
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').ok_or_else(|| at("unclosed {"))?;
                (&line[..close + 1], line[close + 1..].trim_start())
            }
            None => line.split_once(' ').ok_or_else(|| at("no value"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(&l[..l.len() - 1]).map_err(|e| at(&e))?),
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(at("bad metric name"));
        }
        if current.as_deref() != Some(name) {
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            if closed.contains(name) {
                return Err(at("family split in two"));
            }
            current = Some(name.to_string());
        }
        if !typed.contains_key(name) {
            return Err(at("sample before its TYPE"));
        }
        let mut vparts = value.split(' ');
        let v = vparts.next().unwrap_or_default();
        let value: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => v.parse().map_err(|_| at("value is not a float"))?,
        };
        if let Some(ts) = vparts.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp"))?;
        }
        if vparts.next().is_some() {
            return Err(at("trailing garbage"));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series"));
        }
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            if chars.peek().is_none() {
                return Ok(out);
            }
            return Err("empty label name".into());
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("bad label name {name:?}"));
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut v = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => v.push('\\'),
                    Some('"') => v.push('"'),
                    Some('n') => v.push('\n'),
                    _ => return Err("bad escape".into()),
                },
                Some('"') => break,
                Some('\n') | None => return Err("unterminated label value".into()),
                Some(c) => v.push(c),
            }
        }
        if out.insert(name.clone(), v).is_some() {
            return Err(format!("label {name} twice"));
        }
        match chars.next() {
            Some(',') => continue,
            None => return Ok(out),
            Some(c) => return Err(format!("unexpected {c:?} after a label")),
        }
    }
}

pub fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name && label.is_none_or(|(k, v)| s.labels.get(k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
}

/// A fenced block of a runbook.
#[derive(Debug, Clone)]
pub struct Block {
    pub file: String,
    pub line: usize,
    pub info: String,
    pub text: String,
}

impl Block {
    pub fn is_sh(&self) -> bool {
        self.info.split_whitespace().next() == Some("sh")
    }
    pub fn no_test(&self) -> bool {
        self.info.split_whitespace().any(|w| w == "no-test")
    }
    pub fn expected_exit(&self) -> Option<i32> {
        self.info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("exit="))
            .and_then(|n| n.parse().ok())
    }
    /// The command lines (continuations joined).
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for l in self.text.lines() {
            if let Some(head) = l.strip_suffix('\\') {
                cur.push_str(head);
                cur.push(' ');
            } else {
                cur.push_str(l);
                out.push(std::mem::take(&mut cur));
            }
        }
        out
    }
}

pub fn runbook_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    open = Some(Block {
                        file: path.file_name().unwrap().to_string_lossy().into_owned(),
                        line: i + 1,
                        info: info.trim().to_string(),
                        text: String::new(),
                    })
                }
            }
        } else if let Some(b) = open.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    assert!(open.is_none(), "{}: unclosed fence", path.display());
    out
}

pub fn runbook(name: &str) -> Vec<Block> {
    runbook_blocks(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("runbooks")
            .join(name),
    )
}

/// Each request received: its head (request line and headers) and its body.
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1: records every request's head and body, answers `status`.
pub struct Listener {
    pub port: u16,
    pub got: Received,
}

impl Listener {
    pub fn start(status: u16) -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = match s.read(&mut chunk) {
                        Ok(0) | Err(_) => {
                            break (String::from_utf8_lossy(&buf).into_owned(), vec![])
                        }
                        Ok(n) => n,
                    };
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
                            break (head, buf[p + 4..p + 4 + len].to_vec());
                        }
                    }
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                g.lock().unwrap().push((head, body));
            }
        });
        Listener { port, got }
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).expect("alert body is JSON"))
            .collect()
    }

    /// Waits up to 10 s for `n` requests.
    pub fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..100 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.bodies()
    }
}
