//! The documents of ordinary collections, persisted in the data directory as mongod keeps its
//! data across restarts: one BSON dump per collection (`collections/<hex of db.name>.bson`, a
//! header document naming it, then the documents in insertion order), replaced atomically on
//! every write before the write is acknowledged.

use bson::{doc, Document};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub const DOCS_DIR: &str = "collections";

/// Documents keyed by (db, collection).
#[derive(Debug, Clone, Default)]
pub struct DocStore {
    colls: BTreeMap<(String, String), Vec<Document>>,
}

fn file_of(dir: &Path, db: &str, name: &str) -> PathBuf {
    dir.join(DOCS_DIR)
        .join(format!("{}.bson", hex::encode(format!("{db}.{name}"))))
}

impl DocStore {
    pub fn load(dir: &Path) -> io::Result<DocStore> {
        let mut store = DocStore::default();
        let entries = match std::fs::read_dir(dir.join(DOCS_DIR)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("bson") {
                continue;
            }
            let bad = |msg: String| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {msg}", path.display()),
                )
            };
            let bytes = std::fs::read(&path)?;
            let mut rest = &bytes[..];
            let header = Document::from_reader(&mut rest).map_err(|e| bad(e.to_string()))?;
            let (Ok(db), Ok(name)) = (header.get_str("db"), header.get_str("name")) else {
                return Err(bad("no collection header".into()));
            };
            let mut docs = Vec::new();
            while !rest.is_empty() {
                docs.push(Document::from_reader(&mut rest).map_err(|e| bad(e.to_string()))?);
            }
            store.colls.insert((db.to_owned(), name.to_owned()), docs);
        }
        Ok(store)
    }

    pub fn get(&self, db: &str, name: &str) -> &[Document] {
        self.colls
            .get(&(db.to_owned(), name.to_owned()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Writes `docs` as the collection's content to disk, then keeps them in memory: the caller
    /// acknowledges a write only after this returned `Ok`.
    pub fn replace(
        &mut self,
        dir: &Path,
        db: &str,
        name: &str,
        docs: Vec<Document>,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        let header = doc! {"db": db, "name": name};
        for d in std::iter::once(&header).chain(docs.iter()) {
            d.to_writer(&mut out)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        std::fs::create_dir_all(dir.join(DOCS_DIR))?;
        komodo_rotate::fsutil::write_atomic(
            &file_of(dir, db, name),
            &out,
            komodo_rotate::fsutil::Mode::Exactly(0o600),
        )?;
        self.colls.insert((db.to_owned(), name.to_owned()), docs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DocStore::default();
        s.replace(
            dir.path(),
            "komodo",
            "User/x",
            vec![doc! {"_id": 1}, doc! {"_id": 2}],
        )
        .unwrap();
        let again = DocStore::load(dir.path()).unwrap();
        assert_eq!(
            again.get("komodo", "User/x"),
            &[doc! {"_id": 1}, doc! {"_id": 2}]
        );
        assert!(again.get("komodo", "Other").is_empty());
    }
}
