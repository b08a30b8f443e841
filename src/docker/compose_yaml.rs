//! Compose files as compose reads them, for finding a service's `env_file` entries (`init`):
//! YAML merge keys (`<<: *anchor`), top-level `include:`, a service's `extends:` (same file or
//! another), and `${...}` interpolation from the environment and the project's `.env`
//! (the shell's value wins, as in compose). Nothing here writes anything.

use serde_norway::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A variable's value: the environment compose would interpolate from.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How deep `include:` and `extends:` may nest (compose refuses cycles; we stop here).
const MAX_DEPTH: usize = 8;

/// The `env_file` entries of `service` in the compose file `path` and the files it includes,
/// resolved (relative entries against `base`, the project's working dir; an included file's
/// against its own dir, as compose does).
pub fn env_files_in_file(
    path: &Path,
    service: &str,
    base: &Path,
    lookup: Lookup,
) -> Result<Vec<PathBuf>, String> {
    in_file(path, service, base, lookup, 0)
}

fn in_file(
    path: &Path,
    service: &str,
    base: &Path,
    lookup: Lookup,
    depth: usize,
) -> Result<Vec<PathBuf>, String> {
    let name = path.display().to_string();
    if depth > MAX_DEPTH {
        return Err(format!(
            "{name}: include/extends nest deeper than {MAX_DEPTH}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("compose file {name}: {e}"))?;
    let doc = parse(&text, &name)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for inc in includes(&doc, &name, dir, lookup)? {
        let inc_base = inc.parent().unwrap_or(Path::new(".")).to_path_buf();
        out.extend(in_file(&inc, service, &inc_base, lookup, depth + 1)?);
    }
    out.extend(of_service(&doc, path, service, base, lookup, depth)?.unwrap_or_default());
    Ok(out)
}

/// The `env_file` entries of `service` in one compose file's text (no includes: there is no
/// file to resolve them against), following `extends:` within it.
pub fn env_files(
    compose_text: &str,
    file_name: &str,
    service: &str,
    base: &Path,
    lookup: Lookup,
) -> Result<Vec<PathBuf>, String> {
    let doc = parse(compose_text, file_name)?;
    Ok(of_service(&doc, Path::new(file_name), service, base, lookup, 0)?.unwrap_or_default())
}

fn parse(text: &str, name: &str) -> Result<Value, String> {
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| format!("{name}: {e}"))?;
    doc.apply_merge().map_err(|e| format!("{name}: {e}"))?;
    // Merge keys inside services (`<<: *defaults` in a service) are applied one level down too.
    if let Some(Value::Mapping(services)) = doc.get_mut("services") {
        for (_, svc) in services.iter_mut() {
            svc.apply_merge().map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(doc)
}

/// The files of a top-level `include:` (short form, `path:` string or list), resolved.
fn includes(doc: &Value, name: &str, dir: &Path, lookup: Lookup) -> Result<Vec<PathBuf>, String> {
    let Some(inc) = doc.get("include") else {
        return Ok(Vec::new());
    };
    let Value::Sequence(items) = inc else {
        return Err(format!("{name}: include is not a list"));
    };
    let mut out = Vec::new();
    for item in items {
        let paths: Vec<&str> = match item {
            Value::String(s) => vec![s],
            other => match other.get("path") {
                Some(Value::String(s)) => vec![s],
                Some(Value::Sequence(v)) => v.iter().filter_map(Value::as_str).collect(),
                _ => return Err(format!("{name}: an include entry has no path")),
            },
        };
        for p in paths {
            out.push(resolve(dir, &expand(p, name, "include", lookup)?));
        }
    }
    Ok(out)
}

/// `None` when the file has no such service.
fn of_service(
    doc: &Value,
    file: &Path,
    service: &str,
    base: &Path,
    lookup: Lookup,
    depth: usize,
) -> Result<Option<Vec<PathBuf>>, String> {
    let name = file.display().to_string();
    let Some(svc) = doc.get("services").and_then(|s| s.get(service)) else {
        return Ok(None);
    };
    if depth > MAX_DEPTH {
        return Err(format!("{name}: extends nests deeper than {MAX_DEPTH}"));
    }
    let mut out = Vec::new();
    if let Some(ext) = svc.get("extends") {
        let (parent, other_file) = match ext {
            Value::String(s) => (s.as_str(), None),
            m => (
                m.get("service").and_then(Value::as_str).ok_or_else(|| {
                    format!("{name}: services.{service}.extends names no service")
                })?,
                m.get("file").and_then(Value::as_str),
            ),
        };
        let inherited = match other_file {
            None => of_service(doc, file, parent, base, lookup, depth + 1)?,
            Some(f) => {
                let dir = file.parent().unwrap_or(Path::new("."));
                let p = resolve(dir, &expand(f, &name, "extends.file", lookup)?);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("compose file {}: {e}", p.display()))?;
                let other = parse(&text, &p.display().to_string())?;
                let other_base = p.parent().unwrap_or(Path::new(".")).to_path_buf();
                of_service(&other, &p, parent, &other_base, lookup, depth + 1)?
            }
        };
        out.extend(inherited.ok_or_else(|| {
            format!("{name}: services.{service} extends {parent:?}, which does not exist")
        })?);
    }
    let entries: Vec<String> = match svc.get("env_file") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                // compose v2's long form: { path: ..., required: ... }
                other => other.get("path").and_then(|p| p.as_str()).map(String::from),
            })
            .collect(),
        Some(_) => {
            return Err(format!(
                "{name}: services.{service}.env_file is neither a path nor a list"
            ))
        }
    };
    for e in entries {
        let what = format!("env_file {e:?} of service {service:?}");
        let p = resolve(base, &expand(&e, &name, &what, lookup)?);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

fn expand(s: &str, file: &str, what: &str, lookup: Lookup) -> Result<String, String> {
    interpolate(s, lookup).map_err(|v| format!("{file}: {what} needs ${v}, which is not set"))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
/// `${VAR:?msg}` and `${VAR?msg}` as compose does (`$$` is a `$`; defaults and alternatives may
/// nest). The error is the name of the variable that must be set and is not.
pub fn interpolate(s: &str, lookup: Lookup) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| s.to_string())?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            out.push_str(&braced(inner, lookup)?);
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            rest = &rest[len..];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The byte index of the `}` closing a `${`, counting nested `${...}`.
fn closing_brace(r: &str) -> Option<usize> {
    let mut depth = 0usize;
    let b = r.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'{' if i > 0 && b[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn braced(inner: &str, lookup: Lookup) -> Result<String, String> {
    let len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, op) = inner.split_at(len);
    let v = lookup(name);
    let set_nonempty = v.as_deref().is_some_and(|v| !v.is_empty());
    let (op, arg) = match op.strip_prefix(':') {
        Some(o) => (
            format!(":{}", o.get(..1).unwrap_or("")),
            o.get(1..).unwrap_or(""),
        ),
        None => (
            op.get(..1).unwrap_or("").to_string(),
            op.get(1..).unwrap_or(""),
        ),
    };
    match op.as_str() {
        "" if name.is_empty() => Err(inner.to_string()),
        "" => v.ok_or_else(|| name.to_string()),
        ":-" if set_nonempty => Ok(v.unwrap_or_default()),
        ":-" => interpolate(arg, lookup),
        "-" => v.map_or_else(|| interpolate(arg, lookup), Ok),
        ":+" if set_nonempty => interpolate(arg, lookup),
        ":+" => Ok(String::new()),
        "+" if v.is_some() => interpolate(arg, lookup),
        "+" => Ok(String::new()),
        ":?" if set_nonempty => Ok(v.unwrap_or_default()),
        "?" if v.is_some() => Ok(v.unwrap_or_default()),
        _ => Err(name.to_string()),
    }
}

/// The project's `.env` (in its working dir), as compose reads it for interpolation: `KEY=VALUE`
/// lines, `#` comments, an optional `export `, single quotes literal, double quotes with `\n`,
/// `\"` and `\\`, unquoted values cut at ` #`. A missing or unreadable file is empty.
pub fn project_dotenv(dir: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join(".env")).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim_start();
        let value = if let Some(q) = v.strip_prefix('\'') {
            q.split_once('\'').map_or(q, |(a, _)| a).to_string()
        } else if let Some(q) = v.strip_prefix('"') {
            let mut s = String::new();
            let mut it = q.chars();
            while let Some(c) = it.next() {
                match c {
                    '"' => break,
                    '\\' => match it.next() {
                        Some('n') => s.push('\n'),
                        Some(o) => s.push(o),
                        None => {}
                    },
                    c => s.push(c),
                }
            }
            s
        } else {
            v.split(" #").next().unwrap_or("").trim_end().to_string()
        };
        out.insert(k.trim().to_string(), value);
    }
    out
}

#[cfg(test)]
#[path = "compose_yaml_tests.rs"]
mod tests;
