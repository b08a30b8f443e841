//! Unique indexes, enforced as mongod enforces them: `_id_` always, and every index listed with
//! `unique: true` (sparse ones skip documents missing every key field; partial ones skip
//! documents outside their filter). A duplicate is mongod's E11000 (code 11000). Array values
//! in a unique key (multikey entries) are not modelled and are refused with 238.

use super::filter::Filter;
use super::reply::{err, not_implemented, CmdError};
use super::values::{candidates, equal};
use bson::{doc, Bson, Document};

pub struct UniqueIndex {
    name: String,
    key: Document,
    sparse: bool,
    partial: Option<Filter>,
}

/// The unique indexes among a collection's index specifications (`listIndexes` shape).
pub fn unique_indexes(specs: &[Document]) -> Result<Vec<UniqueIndex>, CmdError> {
    let mut out = vec![UniqueIndex {
        name: "_id_".into(),
        key: doc! {"_id": 1i32},
        sparse: false,
        partial: None,
    }];
    for s in specs {
        if s.get_str("name") == Ok("_id_") || s.get_bool("unique") != Ok(true) {
            continue;
        }
        out.push(UniqueIndex {
            name: s.get_str("name").unwrap_or_default().to_owned(),
            key: s.get_document("key").cloned().unwrap_or_default(),
            sparse: s.get_bool("sparse") == Ok(true),
            partial: match s.get_document("partialFilterExpression") {
                Ok(f) => Some(Filter::parse(f)?),
                Err(_) => None,
            },
        });
    }
    Ok(out)
}

/// A duplicate key: mongod's error, plus the writeError fields it adds.
pub struct DupKey {
    pub error: CmdError,
    /// `keyPattern` and `keyValue` of an E11000 (boxed: errors stay small).
    pub key: Option<Box<(Document, Document)>>,
}

impl UniqueIndex {
    /// The index key of `d`, or `None` when this index holds no entry for it.
    fn key_of(&self, d: &Document) -> Result<Option<Document>, CmdError> {
        if let Some(p) = &self.partial {
            if !p.matches(d) {
                return Ok(None);
            }
        }
        let mut key = Document::new();
        let mut present = false;
        for field in self.key.keys() {
            let cands = candidates(d, field);
            if cands.iter().flatten().any(|v| matches!(v, Bson::Array(_))) {
                return Err(not_implemented(format!(
                    "an array in the unique index {} (field {field}) is not supported by the test server",
                    self.name
                )));
            }
            let v = cands.into_iter().flatten().next().cloned();
            present |= v.is_some();
            key.insert(field.clone(), v.unwrap_or(Bson::Null));
        }
        Ok(if self.sparse && !present {
            None
        } else {
            Some(key)
        })
    }

    fn dup(&self, ns: &str, key: Document) -> DupKey {
        let shown: Vec<String> = key.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        DupKey {
            error: err(
                11000,
                "DuplicateKey",
                format!(
                    "E11000 duplicate key error collection: {ns} index: {} dup key: {{ {} }}",
                    self.name,
                    shown.join(", ")
                ),
            ),
            key: Some(Box::new((self.key.clone(), key))),
        }
    }
}

/// Whether `d` may join `docs` (skipping position `skip`, the document it replaces).
pub fn check(
    indexes: &[UniqueIndex],
    ns: &str,
    docs: &[Document],
    skip: Option<usize>,
    d: &Document,
) -> Result<(), DupKey> {
    let plain = |e: CmdError| DupKey {
        error: e,
        key: None,
    };
    for ix in indexes {
        let Some(key) = ix.key_of(d).map_err(plain)? else {
            continue;
        };
        for (i, other) in docs.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            if let Some(k) = ix.key_of(other).map_err(plain)? {
                if k.len() == key.len()
                    && k.iter().zip(key.iter()).all(|((_, a), (_, b))| equal(a, b))
                {
                    return Err(ix.dup(ns, key));
                }
            }
        }
    }
    Ok(())
}

/// Whether `docs` as they stand satisfy every unique index (before an index is created).
pub fn check_all(indexes: &[UniqueIndex], ns: &str, docs: &[Document]) -> Result<(), CmdError> {
    for (i, d) in docs.iter().enumerate() {
        check(indexes, ns, &docs[..i], None, d).map_err(|e| e.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_sparse_and_partial() {
        let specs = vec![
            doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            doc! {"v": 2, "key": {"username": 1}, "name": "username_1", "unique": true},
            doc! {"v": 2, "key": {"g": 1}, "name": "g_1", "unique": true, "sparse": true},
        ];
        let ix = unique_indexes(&specs).unwrap();
        let docs = vec![
            doc! {"_id": 1, "username": "a"},
            doc! {"_id": 2, "username": "b"},
        ];
        let e = check(
            &ix,
            "k.User",
            &docs,
            None,
            &doc! {"_id": 3, "username": "a"},
        )
        .err()
        .unwrap();
        assert_eq!(e.error.code, 11000);
        assert_eq!(
            e.error.errmsg,
            "E11000 duplicate key error collection: k.User index: username_1 dup key: { username: \"a\" }"
        );
        assert_eq!(e.key.unwrap().1, doc! {"username": "a"});
        assert_eq!(
            check(
                &ix,
                "k.User",
                &docs,
                None,
                &doc! {"_id": 1, "username": "z"}
            )
            .err()
            .unwrap()
            .error
            .code,
            11000
        );
        // Replacing a document by itself is no duplicate; two missing sparse keys are none.
        assert!(check(
            &ix,
            "k.User",
            &docs,
            Some(0),
            &doc! {"_id": 1, "username": "a"}
        )
        .is_ok());
        // Two documents without `username` share the null key of a non-sparse unique index.
        let nulls = vec![doc! {"_id": 5}];
        assert_eq!(
            check(&ix, "k.User", &nulls, None, &doc! {"_id": 6})
                .err()
                .unwrap()
                .error
                .code,
            11000
        );
        assert!(check_all(&ix, "k.User", &docs).is_ok());
        let arr = check(
            &ix,
            "k.User",
            &docs,
            None,
            &doc! {"_id": 9, "username": ["q"]},
        );
        assert_eq!(arr.err().unwrap().error.code, 238);
    }
}
