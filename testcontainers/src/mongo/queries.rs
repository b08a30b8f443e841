//! `listDatabases`, `listCollections`, `listIndexes` and `createIndexes`, answered from the
//! catalog (documents are read in `find.rs`). Each
//! reply is what mongod would give for the same state; a filter or option the server does not
//! evaluate is refused with 238 NotImplemented instead of being ignored (an ignored filter would
//! answer a question that was not asked).

use super::catalog::{id_index, Catalog, Collection, SYSTEM_USERS};
use super::controls::as_i64;
use super::filter::Filter;
use super::reply::{bad_value, err, lock, not_implemented, CmdError, Reply};
use super::Shared;
use bson::{doc, Bson, Document};

/// Whether (db, name) exists now: `admin.system.users` only while a user exists.
fn visible(shared: &Shared, db: &str, name: &str) -> bool {
    (db, name) != SYSTEM_USERS || !lock(&shared.store).is_empty()
}

fn cursor(ns: String, batch: Vec<Bson>) -> Document {
    doc! {"cursor": {"firstBatch": batch, "id": 0i64, "ns": ns}}
}

pub fn list_databases(shared: &Shared, cmd: &Document) -> Reply {
    let filter = Filter::parse_opt(cmd.get("filter"), "listDatabases.filter")?;
    let mut names: Vec<String> = ["admin", "config", "local"].map(String::from).to_vec();
    for (db, _, _) in lock(&shared.catalog).collections() {
        if !names.iter().any(|n| n == db) {
            names.push(db.to_owned());
        }
    }
    names.sort();
    let name_only = cmd.get_bool("nameOnly") == Ok(true);
    let dbs: Vec<Bson> = names
        .iter()
        .map(|n| {
            if name_only {
                doc! {"name": n}
            } else {
                doc! {"name": n, "sizeOnDisk": 8192i64, "empty": false}
            }
        })
        .filter(|d| filter.matches(d))
        .map(Bson::Document)
        .collect();
    if name_only {
        return Ok(doc! {"databases": dbs});
    }
    let total = 8192i64 * dbs.len() as i64;
    Ok(doc! {"databases": dbs, "totalSize": total, "totalSizeMb": 0i64})
}

fn collection_entry(name: &str, c: &Collection, name_only: bool) -> Document {
    if name_only {
        return doc! {"name": name, "type": "collection"};
    }
    doc! {
        "name": name,
        "type": "collection",
        "options": {},
        "info": {"readOnly": false, "uuid": c.uuid_bson()},
        "idIndex": id_index(),
    }
}

pub fn list_collections(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let filter = Filter::parse_opt(cmd.get("filter"), "listCollections.filter")?;
    let name_only = cmd.get_bool("nameOnly") == Ok(true);
    let entries: Vec<Document> = {
        let cat = lock(&shared.catalog);
        cat.collections()
            .filter(|(cdb, _, _)| *cdb == db)
            .map(|(_, name, c)| (name.to_owned(), collection_entry(name, c, name_only)))
            .collect::<Vec<_>>()
    }
    .into_iter()
    .filter(|(name, _)| visible(shared, db, name))
    .map(|(_, d)| d)
    .collect();
    let batch = entries
        .into_iter()
        .filter(|d| filter.matches(d))
        .map(Bson::Document)
        .collect();
    Ok(cursor(format!("{db}.$cmd.listCollections"), batch))
}

pub(crate) fn collection_name<'a>(cmd: &'a Document, command: &str) -> Result<&'a str, CmdError> {
    match cmd.get(command) {
        Some(Bson::String(s)) if !s.is_empty() => Ok(s),
        Some(Bson::String(_)) => Err(err(73, "InvalidNamespace", "Invalid namespace specified")),
        Some(other) => Err(err(
            73,
            "InvalidNamespace",
            format!(
                "collection name has invalid type {}",
                other.element_type() as u8
            ),
        )),
        None => Err(bad_value(format!("{command} requires a collection name"))),
    }
}

pub fn list_indexes(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = collection_name(cmd, "listIndexes")?;
    let indexes = lock(&shared.catalog)
        .get(db, name)
        .map(|c| c.indexes.clone())
        .filter(|_| visible(shared, db, name));
    match indexes {
        Some(ix) => Ok(cursor(
            format!("{db}.{name}"),
            ix.into_iter().map(Bson::Document).collect(),
        )),
        None => Err(err(
            26,
            "NamespaceNotFound",
            format!("ns does not exist: {db}.{name}"),
        )),
    }
}

/// Index options mongod 7.0 accepts in a specification (besides v, key, name).
const INDEX_OPTIONS: [&str; 17] = [
    "unique",
    "sparse",
    "expireAfterSeconds",
    "partialFilterExpression",
    "background",
    "hidden",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "wildcardProjection",
    "storageEngine",
];

const KEY_TYPES: [&str; 5] = ["text", "2d", "2dsphere", "hashed", "columnstore"];

/// One requested index, normalised as mongod lists it: `{v: 2, key, name, ...options}`.
fn parse_index(v: &Bson) -> Result<Document, CmdError> {
    let Bson::Document(spec) = v else {
        return Err(err(
            14,
            "TypeMismatch",
            "each index specification must be an object",
        ));
    };
    let missing = |field: &str| {
        err(
            9,
            "FailedToParse",
            format!("Error in specification {spec} :: caused by :: The '{field}' field is a required property of an index specification"),
        )
    };
    let key = match spec.get("key") {
        Some(Bson::Document(k)) if !k.is_empty() => k.clone(),
        Some(Bson::Document(_)) => {
            return Err(err(67, "CannotCreateIndex", "Index keys cannot be empty."))
        }
        _ => return Err(missing("key")),
    };
    for (field, kind) in &key {
        let ok = match kind {
            Bson::String(s) => KEY_TYPES.contains(&s.as_str()),
            other => {
                as_i64(other).is_some_and(|n| n != 0)
                    || matches!(other, Bson::Double(d) if *d != 0.0 && d.is_finite())
            }
        };
        if !ok {
            return Err(err(
                67,
                "CannotCreateIndex",
                format!("Error in specification {spec} :: caused by :: Unknown index plugin or bad value for key '{field}'"),
            ));
        }
    }
    let name = match spec.get("name") {
        Some(Bson::String(n)) if !n.is_empty() => n.clone(),
        _ => return Err(missing("name")),
    };
    let mut out = doc! {"v": 2i32, "key": key, "name": name};
    for (k, v) in spec {
        match k.as_str() {
            "key" | "name" | "v" | "ns" => {}
            opt if INDEX_OPTIONS.contains(&opt) => {
                out.insert(k, v.clone());
            }
            other => {
                return Err(err(
                    197,
                    "InvalidIndexSpecificationOption",
                    format!("The field '{other}' is not valid for an index specification. Specification: {spec}"),
                ))
            }
        }
    }
    Ok(out)
}

fn options_of(ix: &Document) -> Document {
    ix.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "v" | "key" | "name"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Adds `want` to `existing` unless an equivalent index is there (then `Ok(false)`); mongod's
/// conflict codes otherwise.
fn add_index(existing: &mut Vec<Document>, want: Document) -> Result<bool, CmdError> {
    let key = want.get_document("key").ok();
    let name = want.get_str("name").ok();
    for have in existing.iter() {
        let same_name = have.get_str("name").ok() == name;
        let same_key = have.get_document("key").ok() == key;
        match (same_name, same_key) {
            (true, true) if options_of(have) == options_of(&want) => return Ok(false),
            (true, true) => {
                return Err(err(
                    86,
                    "IndexKeySpecsConflict",
                    format!("An existing index has the same name as the requested index but different options. Requested index: {want}, existing index: {have}"),
                ))
            }
            (true, false) => {
                return Err(err(
                    86,
                    "IndexKeySpecsConflict",
                    format!("An existing index has the same name as the requested index. Requested index: {want}, existing index: {have}"),
                ))
            }
            (false, true) if options_of(have) == options_of(&want) => {
                return Err(err(
                    85,
                    "IndexOptionsConflict",
                    format!(
                        "Index already exists with a different name: {}",
                        have.get_str("name").unwrap_or("")
                    ),
                ))
            }
            _ => {}
        }
    }
    existing.push(want);
    Ok(true)
}

/// Creates the indexes for real: the catalog is changed on a copy, persisted, then swapped in,
/// so `listIndexes` lists exactly what a successful reply counted.
pub fn create_indexes(shared: &Shared, cmd: &Document, db: &str) -> Reply {
    let name = collection_name(cmd, "createIndexes")?;
    let specs = cmd.get_array("indexes").map_err(|_| {
        err(
            40414,
            "Location40414",
            "BSON field 'createIndexes.indexes' is missing but a required field",
        )
    })?;
    if specs.is_empty() {
        return Err(bad_value("Must specify at least one index to create"));
    }
    if name.starts_with("system.") || db == "local" {
        return Err(not_implemented(format!(
            "createIndexes on {db}.{name} is not supported by the test server"
        )));
    }
    let wanted = specs
        .iter()
        .map(parse_index)
        .collect::<Result<Vec<_>, _>>()?;
    let _one_writer = lock(&shared.writes);
    let mut cat = lock(&shared.catalog);
    let mut next: Catalog = cat.clone();
    let (coll, created) = next.get_or_create(db, name);
    let before = if created { 1 } else { coll.indexes.len() };
    let mut added = 0;
    for w in wanted {
        if add_index(&mut coll.indexes, w)? {
            added += 1;
        }
    }
    let after = coll.indexes.len();
    // A unique index over documents that already collide is not created (E11000), as in mongod.
    let ix = super::unique::unique_indexes(&coll.indexes)?;
    super::unique::check_all(
        &ix,
        &format!("{db}.{name}"),
        lock(&shared.docs).get(db, name),
    )?;
    let mut reply = doc! {
        "numIndexesBefore": before as i32,
        "numIndexesAfter": after as i32,
        "createdCollectionAutomatically": created,
    };
    if added == 0 && !created {
        reply.insert("note", "all indexes already exist");
        return Ok(reply);
    }
    next.save(&shared.data_dir).map_err(|e| {
        err(
            1,
            "InternalError",
            format!("could not persist the catalog: {}", e.kind()),
        )
    })?;
    *cat = next;
    Ok(reply)
}
