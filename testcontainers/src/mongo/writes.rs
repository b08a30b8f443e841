//! The write commands, `insert`, `update` and `delete`, with mongod's semantics: ordered and
//! unordered batches, per-statement `writeErrors` (E11000 on a unique index), upserts, `multi`,
//! delete `limit` 0/1. Each command works on a copy of the collection, writes the copy to disk,
//! and only then swaps it in and answers: a reply never counts a change that was not made.

use super::catalog::Catalog;
use super::filter::Filter;
use super::reply::{bad_value, err, lock, not_implemented, CmdError, Reply};
use super::store::User;
use super::unique::{self, DupKey, UniqueIndex};
use super::update::Update;
use super::values::set_path;
use super::Shared;
use bson::{doc, oid::ObjectId, Bson, Document};

/// Users holding these roles may write to `db`, as in mongod's built-in roles.
pub fn may_write(u: &User, db: &str) -> bool {
    u.roles.iter().any(|r| {
        (r.db == "admin" && matches!(r.role.as_str(), "root" | "readWriteAnyDatabase"))
            || (r.db == db && matches!(r.role.as_str(), "readWrite" | "dbOwner"))
    })
}

/// The namespace a write goes to; system collections and the internal databases are refused.
fn target<'a>(cmd: &'a Document, command: &str, db: &str) -> Result<&'a str, CmdError> {
    let name = super::queries::collection_name(cmd, command)?;
    if name.starts_with("system.") || matches!(db, "admin" | "local" | "config") {
        return Err(not_implemented(format!(
            "{command} on {db}.{name} is not supported by the test server"
        )));
    }
    Ok(name)
}

fn statements<'a>(
    cmd: &'a Document,
    command: &str,
    field: &str,
) -> Result<&'a Vec<Bson>, CmdError> {
    match cmd.get(field) {
        Some(Bson::Array(a)) if !a.is_empty() => Ok(a),
        Some(Bson::Array(_)) => Err(err(
            10413,
            "InvalidLength",
            "Write batch sizes must be between 1 and 100000. Got 0 operations.",
        )),
        Some(_) => Err(err(
            14,
            "TypeMismatch",
            format!("BSON field '{command}.{field}' is the wrong type, expected type 'array'"),
        )),
        None => Err(err(
            40414,
            "Location40414",
            format!("BSON field '{command}.{field}' is missing but a required field"),
        )),
    }
}

fn refuse_set(stmt: &Document, fields: &[&str]) -> Result<(), CmdError> {
    for f in fields {
        let set = match stmt.get(*f) {
            None | Some(Bson::Null) => false,
            Some(Bson::Document(d)) => !d.is_empty(),
            Some(Bson::Array(a)) => !a.is_empty(),
            Some(Bson::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(not_implemented(format!(
                "the write option {f} is not supported by the test server"
            )));
        }
    }
    Ok(())
}

fn write_error(i: usize, e: DupKey) -> Bson {
    let mut d = doc! {"index": i as i32, "code": e.error.code};
    if let Some(key) = e.key {
        let (pattern, value) = *key;
        d.insert("keyPattern", pattern);
        d.insert("keyValue", value);
    }
    d.insert("errmsg", e.error.errmsg);
    Bson::Document(d)
}

fn plain(e: CmdError) -> DupKey {
    DupKey {
        error: e,
        key: None,
    }
}

/// A collection's current documents and unique indexes, to be changed on a copy.
struct Work {
    ns: String,
    docs: Vec<Document>,
    indexes: Vec<UniqueIndex>,
    catalog: Option<Catalog>,
}

fn begin(shared: &Shared, db: &str, name: &str) -> Result<Work, CmdError> {
    let cat = lock(&shared.catalog);
    let (specs, catalog) = match cat.get(db, name) {
        Some(c) => (c.indexes.clone(), None),
        None => {
            let mut next = cat.clone();
            next.get_or_create(db, name);
            (Vec::new(), Some(next))
        }
    };
    Ok(Work {
        ns: format!("{db}.{name}"),
        docs: lock(&shared.docs).get(db, name).to_vec(),
        indexes: unique::unique_indexes(&specs)?,
        catalog,
    })
}

/// Persists the changed collection (and the catalog when the write created it), then swaps.
fn commit(shared: &Shared, db: &str, name: &str, w: Work) -> Result<(), CmdError> {
    let failed = |e: std::io::Error| {
        err(
            1,
            "InternalError",
            format!("could not persist {db}.{name}: {}", e.kind()),
        )
    };
    let mut cat = lock(&shared.catalog);
    let mut docs = lock(&shared.docs);
    if let Some(next) = w.catalog {
        if cat.get(db, name).is_none() {
            next.save(&shared.data_dir).map_err(failed)?;
            *cat = next;
        }
    }
    docs.replace(&shared.data_dir, db, name, w.docs)
        .map_err(failed)
}

fn ordered(cmd: &Document) -> bool {
    cmd.get_bool("ordered").unwrap_or(true)
}

fn finish(mut reply: Document, errors: Vec<Bson>) -> Document {
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply
}

/// `_id` first, generated when missing, as mongod stores an inserted document.
fn with_id(d: &Document) -> Result<Document, CmdError> {
    let id = match d.get("_id") {
        Some(Bson::Array(_)) => return Err(bad_value("can't use an array for _id")),
        Some(Bson::RegularExpression(_)) => return Err(bad_value("can't use a regex for _id")),
        Some(v) => v.clone(),
        None => Bson::ObjectId(ObjectId::new()),
    };
    let mut out = doc! {"_id": id};
    out.extend(
        d.iter()
            .filter(|(k, _)| *k != "_id")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(out)
}

pub fn insert(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = target(cmd, "insert", db)?;
    let _one_writer = lock(&shared.writes);
    let stmts = statements(cmd, "insert", "documents")?;
    let mut w = begin(shared, db, name)?;
    let (mut n, mut errors) = (0i32, Vec::new());
    for (i, s) in stmts.iter().enumerate() {
        let attempt = match s {
            Bson::Document(d) => with_id(d).map_err(plain).and_then(|d| {
                unique::check(&w.indexes, &w.ns, &w.docs, None, &d)?;
                Ok(d)
            }),
            _ => Err(plain(err(
                14,
                "TypeMismatch",
                "BSON field 'insert.documents' is the wrong type, expected type 'object'",
            ))),
        };
        match attempt {
            Ok(d) => {
                w.docs.push(d);
                n += 1;
            }
            Err(e) => {
                errors.push(write_error(i, e));
                if ordered(cmd) {
                    break;
                }
            }
        }
    }
    if n > 0 {
        commit(shared, db, name, w)?;
    }
    Ok(finish(doc! {"n": n}, errors))
}

struct UpdateStmt {
    filter: Filter,
    update: Update,
    upsert: bool,
    multi: bool,
}

fn parse_update(s: &Bson) -> Result<UpdateStmt, CmdError> {
    let Bson::Document(s) = s else {
        return Err(err(
            14,
            "TypeMismatch",
            "BSON field 'update.updates' is the wrong type, expected type 'object'",
        ));
    };
    refuse_set(s, &["arrayFilters", "hint", "collation", "c", "sort"])?;
    let filter = match s.get("q") {
        Some(Bson::Document(q)) => Filter::parse(q)?,
        _ => {
            return Err(err(
                40414,
                "Location40414",
                "BSON field 'update.updates.q' is missing but a required field",
            ))
        }
    };
    let update = Update::parse(s.get("u").ok_or_else(|| {
        err(
            40414,
            "Location40414",
            "BSON field 'update.updates.u' is missing but a required field",
        )
    })?)?;
    let multi = s.get_bool("multi").unwrap_or(false);
    if multi && update.is_replacement() {
        return Err(err(
            9,
            "FailedToParse",
            "multi update is not supported for replacement-style update",
        ));
    }
    Ok(UpdateStmt {
        filter,
        update,
        upsert: s.get_bool("upsert").unwrap_or(false),
        multi,
    })
}

/// The document an upsert inserts: the filter's equalities, then the update (with
/// `$setOnInsert`), `_id` generated when neither gave one.
fn upsert_doc(st: &UpdateStmt) -> Result<Document, CmdError> {
    let mut base = Document::new();
    let mut eqs = Vec::new();
    st.filter.equalities(&mut eqs);
    let from_filter = match &st.update {
        Update::Replace(_) => eqs.into_iter().filter(|(p, _)| p == "_id").collect(),
        Update::Modify(_) => eqs,
    };
    for (path, v) in from_filter {
        set_path(&mut base, &path, v)?;
    }
    with_id(&st.update.apply(&base, true)?)
}

/// One update statement on the working set: (matched, modified, upserted _id).
fn run_update(w: &mut Work, st: &UpdateStmt) -> Result<(i32, i32, Option<Bson>), DupKey> {
    let (mut matched, mut modified) = (0, 0);
    for i in 0..w.docs.len() {
        if !st.filter.matches(&w.docs[i]) {
            continue;
        }
        matched += 1;
        let next = st.update.apply(&w.docs[i], false).map_err(plain)?;
        if next != w.docs[i] {
            unique::check(&w.indexes, &w.ns, &w.docs, Some(i), &next)?;
            w.docs[i] = next;
            modified += 1;
        }
        if !st.multi {
            break;
        }
    }
    if matched == 0 && st.upsert {
        let d = upsert_doc(st).map_err(plain)?;
        unique::check(&w.indexes, &w.ns, &w.docs, None, &d)?;
        let id = d.get("_id").cloned();
        w.docs.push(d);
        return Ok((0, 0, id));
    }
    Ok((matched, modified, None))
}

pub fn update(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = target(cmd, "update", db)?;
    let _one_writer = lock(&shared.writes);
    let stmts = statements(cmd, "update", "updates")?;
    let mut w = begin(shared, db, name)?;
    let before = w.docs.clone();
    let (mut n, mut modified, mut upserted, mut errors) = (0i32, 0i32, Vec::new(), Vec::new());
    for (i, s) in stmts.iter().enumerate() {
        match parse_update(s)
            .map_err(plain)
            .and_then(|st| run_update(&mut w, &st))
        {
            Ok((m, changed, up)) => {
                n += m;
                modified += changed;
                if let Some(id) = up {
                    n += 1;
                    upserted.push(Bson::Document(doc! {"index": i as i32, "_id": id}));
                }
            }
            Err(e) => {
                errors.push(write_error(i, e));
                if ordered(cmd) {
                    break;
                }
            }
        }
    }
    if w.docs != before {
        commit(shared, db, name, w)?;
    }
    let mut reply = doc! {"n": n, "nModified": modified};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    Ok(finish(reply, errors))
}

fn parse_delete(s: &Bson) -> Result<(Filter, bool), CmdError> {
    let Bson::Document(s) = s else {
        return Err(err(
            14,
            "TypeMismatch",
            "BSON field 'delete.deletes' is the wrong type, expected type 'object'",
        ));
    };
    refuse_set(s, &["hint", "collation"])?;
    let filter = match s.get("q") {
        Some(Bson::Document(q)) => Filter::parse(q)?,
        _ => {
            return Err(err(
                40414,
                "Location40414",
                "BSON field 'delete.deletes.q' is missing but a required field",
            ))
        }
    };
    let one = match s.get("limit").and_then(super::controls::as_i64) {
        Some(0) => false,
        Some(1) => true,
        Some(other) => {
            return Err(err(
                9,
                "FailedToParse",
                format!("The limit field in delete objects must be 0 or 1. Got {other}"),
            ))
        }
        None => {
            return Err(err(
                40414,
                "Location40414",
                "BSON field 'delete.deletes.limit' is missing but a required field",
            ))
        }
    };
    Ok((filter, one))
}

pub fn delete(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = target(cmd, "delete", db)?;
    let _one_writer = lock(&shared.writes);
    let stmts = statements(cmd, "delete", "deletes")?;
    let mut w = begin(shared, db, name)?;
    let (mut n, mut errors) = (0i32, Vec::new());
    for (i, s) in stmts.iter().enumerate() {
        match parse_delete(s) {
            Ok((filter, one)) => {
                let mut removed = 0;
                w.docs.retain(|d| {
                    let hit = (!one || removed == 0) && filter.matches(d);
                    removed += i32::from(hit);
                    !hit
                });
                n += removed;
            }
            Err(e) => {
                errors.push(write_error(i, plain(e)));
                if ordered(cmd) {
                    break;
                }
            }
        }
    }
    if n > 0 {
        commit(shared, db, name, w)?;
    }
    Ok(finish(doc! {"n": n}, errors))
}
