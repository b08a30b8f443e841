//! The collection catalog: which collections exist and which indexes each one has, persisted in
//! the data directory (`catalog.bson`, one document per collection, replaced atomically) so an
//! index that `createIndexes` reported as created is listed by `listIndexes`, also after a
//! restart, as mongod does. The server stores no documents, so every collection is empty.

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const CATALOG_FILE: &str = "catalog.bson";

/// `admin.system.version` (the feature compatibility version) exists on every mongod;
/// `admin.system.users` once a user exists.
pub const SYSTEM_VERSION: (&str, &str) = ("admin", "system.version");
pub const SYSTEM_USERS: (&str, &str) = ("admin", "system.users");

#[derive(Debug, Clone)]
pub struct Collection {
    pub uuid: [u8; 16],
    /// Index specifications as `listIndexes` returns them, `_id_` first.
    pub indexes: Vec<Document>,
}

impl Collection {
    fn new(extra: Vec<Document>) -> Self {
        let mut indexes = vec![id_index()];
        indexes.extend(extra);
        Collection {
            uuid: super::store::new_user_id(),
            indexes,
        }
    }

    pub fn uuid_bson(&self) -> Binary {
        Binary {
            subtype: BinarySubtype::Uuid,
            bytes: self.uuid.to_vec(),
        }
    }
}

pub fn id_index() -> Document {
    doc! {"v": 2i32, "key": {"_id": 1i32}, "name": "_id_"}
}

/// Collections keyed by (db, name).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    colls: BTreeMap<(String, String), Collection>,
}

impl Catalog {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CATALOG_FILE)
    }

    /// Loads the catalog of `dir` (empty when the file is missing) and adds the system
    /// collections mongod always has; returns whether anything was added (to be saved).
    pub fn load(dir: &Path) -> io::Result<(Catalog, bool)> {
        let path = Self::path(dir);
        let mut cat = Catalog::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bad = |msg: &str| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {msg}", path.display()),
                    )
                };
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let d = Document::from_reader(&mut rest).map_err(|e| bad(&e.to_string()))?;
                    let (key, coll) = from_document(&d).ok_or_else(|| bad("bad collection"))?;
                    cat.colls.insert(key, coll);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut added = false;
        for (db, name) in [SYSTEM_VERSION, SYSTEM_USERS] {
            if cat.get(db, name).is_none() {
                let extra = if (db, name) == SYSTEM_USERS {
                    vec![
                        doc! {"v": 2i32, "unique": true, "key": {"user": 1i32, "db": 1i32}, "name": "user_1_db_1"},
                    ]
                } else {
                    Vec::new()
                };
                cat.colls
                    .insert((db.to_owned(), name.to_owned()), Collection::new(extra));
                added = true;
            }
        }
        Ok((cat, added))
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let mut out = Vec::new();
        for ((db, name), c) in &self.colls {
            let d = doc! {
                "_id": format!("{db}.{name}"),
                "db": db,
                "name": name,
                "uuid": c.uuid_bson(),
                "indexes": c.indexes.iter().cloned().map(Bson::Document).collect::<Vec<_>>(),
            };
            d.to_writer(&mut out)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        komodo_rotate::fsutil::write_atomic(
            &Self::path(dir),
            &out,
            komodo_rotate::fsutil::Mode::Exactly(0o600),
        )
    }

    pub fn get(&self, db: &str, name: &str) -> Option<&Collection> {
        self.colls.get(&(db.to_owned(), name.to_owned()))
    }

    /// The collection, created (with its `_id_` index) when missing; `true` when created.
    pub fn get_or_create(&mut self, db: &str, name: &str) -> (&mut Collection, bool) {
        let key = (db.to_owned(), name.to_owned());
        let created = !self.colls.contains_key(&key);
        let c = self
            .colls
            .entry(key)
            .or_insert_with(|| Collection::new(Vec::new()));
        (c, created)
    }

    pub fn collections(&self) -> impl Iterator<Item = (&str, &str, &Collection)> {
        self.colls
            .iter()
            .map(|((db, name), c)| (db.as_str(), name.as_str(), c))
    }
}

fn from_document(d: &Document) -> Option<((String, String), Collection)> {
    let db = d.get_str("db").ok()?.to_owned();
    let name = d.get_str("name").ok()?.to_owned();
    let uuid = match d.get("uuid") {
        Some(Bson::Binary(b)) => b.bytes.as_slice().try_into().ok()?,
        _ => return None,
    };
    let indexes = d
        .get_array("indexes")
        .ok()?
        .iter()
        .map(|i| i.as_document().cloned())
        .collect::<Option<Vec<_>>>()?;
    Some(((db, name), Collection { uuid, indexes }))
}
