//! The read commands over documents: `find` (filter, sort, skip, limit, projection), `count`
//! (what `estimated_document_count` sends), `aggregate` with the stages the Rust driver's
//! `count_documents` sends (`$match`, `$skip`, `$limit`, `$group` counting with `$sum`) plus
//! `$sort`, `$project` and `$count`, and `distinct`. The whole result goes in the first batch with
//! cursor id 0 (every document fits: stores here are small), so `getMore` finds no cursor (43).
//! Anything else that would change a result is refused with 238.

use super::catalog::{SYSTEM_USERS, SYSTEM_VERSION};
use super::controls::as_i64;
use super::filter::Filter;
use super::queries::collection_name;
use super::reply::{bad_value, err, lock, not_implemented, CmdError, Reply};
use super::shape::{Projection, Sort};
use super::store::User;
use super::values::{candidates, equal};
use super::Shared;
use bson::{doc, Bson, Document};

fn cursor(ns: String, batch: Vec<Document>) -> Document {
    let batch: Vec<Bson> = batch.into_iter().map(Bson::Document).collect();
    doc! {"cursor": {"firstBatch": batch, "id": 0i64, "ns": ns}}
}

/// The documents of (db, name) now: the system collections from the user store.
fn source(
    shared: &Shared,
    authed: &[User],
    db: &str,
    name: &str,
    command: &str,
) -> Result<Vec<Document>, CmdError> {
    Ok(match (db, name) {
        SYSTEM_USERS => {
            if shared.auth && !authed.iter().any(|u| u.may_manage_users_on("admin")) {
                return Err(err(
                    13,
                    "Unauthorized",
                    format!(
                        "not authorized on {db} to execute command {{ {command}: \"{name}\" }}"
                    ),
                ));
            }
            lock(&shared.store)
                .users()
                .map(|u| u.to_document(true))
                .collect()
        }
        SYSTEM_VERSION => {
            let mut v = vec![doc! {"_id": "featureCompatibilityVersion", "version": "7.0"}];
            if !lock(&shared.store).is_empty() {
                v.push(doc! {"_id": "authSchema", "currentVersion": 5i32});
            }
            v
        }
        _ => lock(&shared.docs).get(db, name).to_vec(),
    })
}

/// Options that change a result and are not evaluated here: refused when set.
fn refuse_set(cmd: &Document, command: &str, fields: &[&str]) -> Result<(), CmdError> {
    for f in fields {
        let set = match cmd.get(*f) {
            None | Some(Bson::Null) | Some(Bson::Boolean(false)) => false,
            Some(Bson::Document(d)) => !d.is_empty(),
            Some(Bson::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(not_implemented(format!(
                "{command}.{f} is not supported by the test server"
            )));
        }
    }
    Ok(())
}

fn non_negative(cmd: &Document, field: &str) -> Result<usize, CmdError> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(0),
        Some(v) => match as_i64(v).or(match v {
            Bson::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            _ => None,
        }) {
            Some(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(n) => Err(err(
                51024,
                "Location51024",
                format!("BSON field '{field}' value must be >= 0, actual value '{n}'"),
            )),
            None => Err(err(
                14,
                "TypeMismatch",
                format!("BSON field '{field}' is the wrong type"),
            )),
        },
    }
}

fn window(docs: Vec<Document>, skip: usize, limit: usize) -> Vec<Document> {
    let it = docs.into_iter().skip(skip);
    if limit == 0 {
        it.collect()
    } else {
        it.take(limit).collect()
    }
}

pub fn find(shared: &Shared, authed: &[User], cmd: &Document, db: &str) -> Reply {
    let name = collection_name(cmd, "find")?;
    refuse_set(
        cmd,
        "find",
        &[
            "hint",
            "min",
            "max",
            "collation",
            "let",
            "returnKey",
            "showRecordId",
            "tailable",
            "awaitData",
        ],
    )?;
    let filter = Filter::parse_opt(cmd.get("filter"), "find.filter")?;
    let sort = Sort::parse(cmd.get("sort"))?;
    let projection = Projection::parse(cmd.get("projection"))?;
    let (skip, limit) = (non_negative(cmd, "skip")?, non_negative(cmd, "limit")?);
    let mut docs: Vec<Document> = source(shared, authed, db, name, "find")?
        .into_iter()
        .filter(|d| filter.matches(d))
        .collect();
    sort.apply(&mut docs);
    let mut out = window(docs, skip, limit);
    if let Some(p) = projection {
        out = out.iter().map(|d| p.apply(d)).collect();
    }
    Ok(cursor(format!("{db}.{name}"), out))
}

/// `count`: `estimated_document_count` sends it bare, old clients with a query.
pub fn count(shared: &Shared, authed: &[User], cmd: &Document, db: &str) -> Reply {
    let name = collection_name(cmd, "count")?;
    refuse_set(cmd, "count", &["hint", "collation"])?;
    let filter = Filter::parse_opt(cmd.get("query"), "count.query")?;
    let skip = non_negative(cmd, "skip")?;
    let limit = match cmd.get("limit").and_then(as_i64) {
        Some(n) => usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX),
        None => 0,
    };
    let docs: Vec<Document> = source(shared, authed, db, name, "count")?
        .into_iter()
        .filter(|d| filter.matches(d))
        .collect();
    Ok(doc! {"n": window(docs, skip, limit).len() as i32})
}

/// `distinct`: each value once (array values by element), in first-seen order.
pub fn distinct(shared: &Shared, authed: &[User], cmd: &Document, db: &str) -> Reply {
    let name = collection_name(cmd, "distinct")?;
    refuse_set(cmd, "distinct", &["hint", "collation"])?;
    let key = cmd.get_str("key").map_err(|_| {
        err(
            40414,
            "Location40414",
            "BSON field 'distinct.key' is missing but a required field",
        )
    })?;
    let filter = Filter::parse_opt(cmd.get("query"), "distinct.query")?;
    let mut values: Vec<Bson> = Vec::new();
    for d in source(shared, authed, db, name, "distinct")? {
        if !filter.matches(&d) {
            continue;
        }
        for v in candidates(&d, key).into_iter().flatten() {
            if matches!(v, Bson::Array(_)) || values.iter().any(|have| equal(have, v)) {
                continue;
            }
            values.push(v.clone());
        }
    }
    Ok(doc! {"values": values})
}

/// One `$group` stage counting documents: `{_id: <constant>, <field>: {$sum: <number>}, ...}`.
fn group(spec: &Document, docs: Vec<Document>) -> Result<Vec<Document>, CmdError> {
    let id = spec.get("_id").ok_or_else(|| {
        err(
            15955,
            "Location15955",
            "a group specification must include an _id",
        )
    })?;
    if matches!(id, Bson::String(s) if s.starts_with('$')) || matches!(id, Bson::Document(_)) {
        return Err(not_implemented(
            "$group by a field or an expression is not supported by the test server",
        ));
    }
    let mut out = doc! {"_id": id.clone()};
    for (field, acc) in spec.iter().filter(|(k, _)| *k != "_id") {
        let by = match acc {
            Bson::Document(a) if a.len() == 1 => match a.get("$sum") {
                Some(v @ (Bson::Int32(_) | Bson::Int64(_))) => as_i64(v).unwrap_or(0),
                _ => return Err(not_implemented(format!("$group accumulator {field}: only {{$sum: <whole number>}} is supported by the test server"))),
            },
            _ => return Err(not_implemented(format!("$group accumulator {field}: only {{$sum: <whole number>}} is supported by the test server"))),
        };
        let total = by * docs.len() as i64;
        match i32::try_from(total) {
            Ok(t) => out.insert(field.clone(), t),
            Err(_) => out.insert(field.clone(), total),
        };
    }
    Ok(if docs.is_empty() {
        Vec::new()
    } else {
        vec![out]
    })
}

pub fn aggregate(shared: &Shared, authed: &[User], cmd: &Document, db: &str) -> Reply {
    let name = match cmd.get("aggregate") {
        Some(Bson::String(_)) => collection_name(cmd, "aggregate")?,
        _ => {
            return Err(not_implemented(
                "database-level aggregate is not supported by the test server",
            ))
        }
    };
    refuse_set(cmd, "aggregate", &["explain", "hint", "collation", "let"])?;
    if !matches!(cmd.get("cursor"), Some(Bson::Document(_))) {
        return Err(err(
            9,
            "FailedToParse",
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let pipeline = cmd.get_array("pipeline").map_err(|_| {
        err(
            40414,
            "Location40414",
            "BSON field 'aggregate.pipeline' is missing but a required field",
        )
    })?;
    let mut docs = source(shared, authed, db, name, "aggregate")?;
    for stage in pipeline {
        let Some(stage) = stage.as_document().filter(|s| s.len() == 1) else {
            return Err(err(
                40323,
                "Location40323",
                "A pipeline stage specification object must contain exactly one field.",
            ));
        };
        let (op, arg) = stage.iter().next().expect("one field");
        docs = match (op.as_str(), arg) {
            ("$match", Bson::Document(f)) => {
                let f = Filter::parse(f)?;
                docs.into_iter().filter(|d| f.matches(d)).collect()
            }
            ("$sort", v) => {
                let s = Sort::parse(Some(v))?;
                s.apply(&mut docs);
                docs
            }
            ("$skip", v) => window(docs, non_negative(&doc! {"$skip": v.clone()}, "$skip")?, 0),
            ("$limit", v) => match non_negative(&doc! {"$limit": v.clone()}, "$limit")? {
                0 => return Err(err(15958, "Location15958", "the limit must be positive")),
                n => window(docs, 0, n),
            },
            ("$project", v) => match Projection::parse(Some(v))? {
                Some(p) => docs.iter().map(|d| p.apply(d)).collect(),
                None => {
                    return Err(err(
                        51272,
                        "Location51272",
                        "projection specification must have at least one field",
                    ))
                }
            },
            ("$count", Bson::String(f)) if !f.is_empty() && !f.starts_with('$') => {
                if docs.is_empty() {
                    Vec::new()
                } else {
                    vec![doc! {f.clone(): docs.len() as i32}]
                }
            }
            ("$group", Bson::Document(g)) => group(g, docs)?,
            ("$match" | "$group" | "$count", _) => {
                return Err(bad_value(format!("the {op} stage has a bad argument")))
            }
            (other, _) => {
                return Err(not_implemented(format!(
                    "the aggregation stage {other} is not supported by the test server"
                )))
            }
        };
    }
    Ok(cursor(format!("{db}.{name}"), docs))
}

/// No cursor is ever left open (every reply has cursor id 0).
pub fn get_more(cmd: &Document) -> Reply {
    let id = cmd.get("getMore").and_then(as_i64).unwrap_or(0);
    Err(err(
        43,
        "CursorNotFound",
        format!("cursor id {id} not found"),
    ))
}

pub fn kill_cursors(cmd: &Document) -> Reply {
    let ids = cmd.get_array("cursors").cloned().unwrap_or_default();
    Ok(doc! {"cursorsKilled": [], "cursorsNotFound": ids, "cursorsAlive": [], "cursorsUnknown": []})
}
