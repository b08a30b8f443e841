//! Helpers of the ops tests: a strict parser of the Prometheus text format (what node_exporter's
//! textfile collector accepts), the runbooks' fenced `sh` blocks, and a webhook listener.

#![allow(dead_code)]

// One file, included by each support module a test binary may combine.
#[allow(clippy::duplicate_mod)]
#[path = "../common/ci.rs"]
pub mod ci;

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

/// The fenced blocks of the markdown file at `path`, column 0 or indented (a block inside a list
/// item): the fence's indentation is removed from the block's lines.
pub fn runbook_blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    blocks_of(&path.file_name().unwrap().to_string_lossy(), &text)
}

/// The fenced blocks of `text` (named `file` in messages); see `runbook_blocks`.
pub fn blocks_of(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let fence = line.trim_start_matches(' ').strip_prefix("```");
        match (fence, open.take()) {
            (Some(_), Some((b, _))) => out.push(b),
            (Some(info), None) => {
                open = Some((
                    Block {
                        file: file.to_string(),
                        line: i + 1,
                        info: info.trim().to_string(),
                        text: String::new(),
                    },
                    indent,
                ))
            }
            (None, Some((mut b, ind))) => {
                let cut = ind.min(indent);
                b.text.push_str(&line[cut..]);
                b.text.push('\n');
                open = Some((b, ind));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: unclosed fence");
    out
}

/// The simple commands of one shell command line: split at `|`, `||`, `&&`, `;` and `&`
/// outside quotes, with the contents of every `$(...)` and backquoted command as commands of
/// their own, and the words that only lead into a command (`if`, `then`, `!`, `exec`, `sudo`,
/// `env`, `time`, `VAR=value`, ...) removed from their start. Comments are dropped.
pub fn simple_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    split_commands(line, &mut out);
    out.into_iter()
        .map(|c| strip_lead_words(&c))
        .filter(|c| !c.is_empty())
        .collect()
}

fn split_commands(line: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = line.chars().collect();
    let mut cur = String::new();
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if single {
            single = c != '\'';
            cur.push(c);
        } else if c == '\\' && i + 1 < chars.len() {
            cur.push(c);
            cur.push(chars[i + 1]);
            i += 1;
        } else if c == '\'' && !double {
            single = true;
            cur.push(c);
        } else if c == '"' {
            double = !double;
            cur.push(c);
        } else if c == '$' && chars.get(i + 1) == Some(&'(') {
            // A command substitution: its inside is a command line of its own; a placeholder
            // word stands for its output here.
            let mut depth = 0;
            let mut j = i + 1;
            let mut inner = String::new();
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                if depth > 1 || chars[j] != '(' {
                    inner.push(chars[j]);
                }
                j += 1;
            }
            split_commands(&inner, out);
            cur.push_str("$SUBST");
            i = j;
        } else if c == '`' {
            let end = chars[i + 1..].iter().position(|&x| x == '`');
            let end = end.map_or(chars.len(), |e| i + 1 + e);
            split_commands(&chars[i + 1..end].iter().collect::<String>(), out);
            cur.push_str("$SUBST");
            i = end;
        } else if !double && c == '#' && (cur.is_empty() || cur.ends_with(char::is_whitespace)) {
            break;
        } else if !double && matches!(c, '|' | '&' | ';') {
            out.push(std::mem::take(&mut cur));
            if chars.get(i + 1) == Some(&c) {
                i += 1;
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    out.push(cur);
}

fn strip_lead_words(cmd: &str) -> String {
    let mut words: Vec<&str> = cmd.split_whitespace().collect();
    while let Some(first) = words.first() {
        let assignment = first.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        let lead = [
            "if", "then", "else", "elif", "do", "while", "until", "!", "exec", "sudo", "env",
            "time", "command", "{", "(",
        ];
        if assignment || lead.contains(first) {
            words.remove(0);
        } else {
            break;
        }
    }
    words.join(" ")
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
