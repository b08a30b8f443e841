//! What `find` does to the matched documents besides filtering: `sort` (mongod's order across
//! types; an array sorts by its smallest element ascending, its largest descending; a missing
//! field as null), and inclusion or exclusion `projection` on (dotted) fields. `$meta`,
//! `$slice`, `$elemMatch` and expressions are refused with 238.

use super::reply::{bad_value, err, not_implemented, CmdError};
use super::values::{candidates, compare};
use bson::{Bson, Document};
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub struct Sort(Vec<(String, bool)>);

impl Sort {
    pub fn parse(v: Option<&Bson>) -> Result<Sort, CmdError> {
        let d = match v {
            None | Some(Bson::Null) => return Ok(Sort(Vec::new())),
            Some(Bson::Document(d)) => d,
            Some(_) => return Err(err(14, "TypeMismatch", "sort must be an object")),
        };
        let mut keys = Vec::new();
        for (k, v) in d {
            let dir = match v {
                Bson::Int32(1) | Bson::Int64(1) => true,
                Bson::Int32(-1) | Bson::Int64(-1) => false,
                Bson::Double(x) if *x == 1.0 => true,
                Bson::Double(x) if *x == -1.0 => false,
                Bson::Document(_) => {
                    return Err(not_implemented(
                        "$meta sort keys are not supported by the test server",
                    ))
                }
                _ => {
                    return Err(bad_value(
                        "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                    ))
                }
            };
            keys.push((k.clone(), dir));
        }
        Ok(Sort(keys))
    }

    fn key(d: &Document, path: &str, asc: bool) -> Bson {
        let mut vals: Vec<&Bson> = Vec::new();
        let cands = candidates(d, path);
        for c in cands.iter().flatten() {
            // An array sorts by its elements (an empty array as itself).
            if !matches!(c, Bson::Array(a) if !a.is_empty()) {
                vals.push(c);
            }
        }
        let pick = if asc {
            vals.into_iter().min_by(|a, b| compare(a, b))
        } else {
            vals.into_iter().max_by(|a, b| compare(a, b))
        };
        pick.cloned().unwrap_or(Bson::Null)
    }

    /// A stable sort, as mongod's result for equal keys keeps no promised order anyway.
    pub fn apply(&self, docs: &mut [Document]) {
        if self.0.is_empty() {
            return;
        }
        docs.sort_by(|a, b| {
            for (path, asc) in &self.0 {
                let o = compare(&Self::key(a, path, *asc), &Self::key(b, path, *asc));
                let o = if *asc { o } else { o.reverse() };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
}

#[derive(Default)]
struct Tree(BTreeMap<String, Option<Tree>>);

impl Tree {
    fn add(&mut self, path: &str) {
        match path.split_once('.') {
            None => {
                self.0.insert(path.to_owned(), None);
            }
            Some((head, rest)) => {
                let child = self
                    .0
                    .entry(head.to_owned())
                    .or_insert_with(|| Some(Tree::default()));
                if let Some(t) = child {
                    t.add(rest);
                }
            }
        }
    }
}

pub struct Projection {
    include: bool,
    tree: Tree,
    id: bool,
}

impl Projection {
    pub fn parse(v: Option<&Bson>) -> Result<Option<Projection>, CmdError> {
        let d = match v {
            None | Some(Bson::Null) => return Ok(None),
            Some(Bson::Document(d)) if d.is_empty() => return Ok(None),
            Some(Bson::Document(d)) => d,
            Some(_) => return Err(err(14, "TypeMismatch", "projection must be an object")),
        };
        let mut include: Option<bool> = None;
        let mut id = true;
        let mut tree = Tree::default();
        for (k, v) in d {
            let on = match v {
                Bson::Boolean(b) => *b,
                Bson::Int32(n) => *n != 0,
                Bson::Int64(n) => *n != 0,
                Bson::Double(n) => *n != 0.0,
                _ => {
                    return Err(not_implemented(format!(
                        "projection of {k} with {v}: only inclusion and exclusion are supported by the test server"
                    )))
                }
            };
            if k.starts_with('$') || k.contains(".$") {
                return Err(not_implemented(format!(
                    "projection operator in {k} is not supported by the test server"
                )));
            }
            if k == "_id" {
                id = on;
                continue;
            }
            match include {
                Some(mode) if mode != on => {
                    return Err(if mode {
                        err(
                            31254,
                            "Location31254",
                            format!("Cannot do exclusion on field {k} in inclusion projection"),
                        )
                    } else {
                        err(
                            31253,
                            "Location31253",
                            format!("Cannot do inclusion on field {k} in exclusion projection"),
                        )
                    })
                }
                _ => include = Some(on),
            }
            tree.add(k);
        }
        let include = include.unwrap_or(id);
        if !include && !id {
            tree.add("_id");
        }
        Ok(Some(Projection { include, tree, id }))
    }

    pub fn apply(&self, d: &Document) -> Document {
        if self.include {
            let mut out = Document::new();
            if self.id {
                if let Some(v) = d.get("_id") {
                    out.insert("_id", v.clone());
                }
            }
            out.extend(include(d, &self.tree));
            out
        } else {
            exclude(d, &self.tree)
        }
    }
}

fn include(d: &Document, t: &Tree) -> Document {
    let mut out = Document::new();
    for (k, v) in d {
        match t.0.get(k) {
            Some(None) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Some(sub)) => match v {
                Bson::Document(c) => {
                    out.insert(k.clone(), include(c, sub));
                }
                Bson::Array(a) => {
                    let kept: Vec<Bson> = a
                        .iter()
                        .filter_map(|e| match e {
                            Bson::Document(c) => Some(Bson::Document(include(c, sub))),
                            _ => None,
                        })
                        .collect();
                    out.insert(k.clone(), kept);
                }
                _ => {}
            },
            None => {}
        }
    }
    out
}

fn exclude(d: &Document, t: &Tree) -> Document {
    let mut out = Document::new();
    for (k, v) in d {
        match (t.0.get(k), v) {
            (Some(None), _) => {}
            (Some(Some(sub)), Bson::Document(c)) => {
                out.insert(k.clone(), exclude(c, sub));
            }
            (Some(Some(sub)), Bson::Array(a)) => {
                let kept: Vec<Bson> = a
                    .iter()
                    .map(|e| match e {
                        Bson::Document(c) => Bson::Document(exclude(c, sub)),
                        other => other.clone(),
                    })
                    .collect();
                out.insert(k.clone(), kept);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn sorts_across_types_and_arrays() {
        let mut docs = vec![
            doc! {"_id": 1, "k": "b"},
            doc! {"_id": 2, "k": 5},
            doc! {"_id": 3},
            doc! {"_id": 4, "k": [7, 1]},
            doc! {"_id": 5, "k": 2.5},
        ];
        Sort::parse(Some(&doc! {"k": 1, "_id": -1}.into()))
            .unwrap()
            .apply(&mut docs);
        let ids: Vec<i32> = docs.iter().map(|d| d.get_i32("_id").unwrap()).collect();
        assert_eq!(ids, [3, 4, 5, 2, 1]);
        Sort::parse(Some(&doc! {"k": -1}.into()))
            .unwrap()
            .apply(&mut docs);
        let ids: Vec<i32> = docs.iter().map(|d| d.get_i32("_id").unwrap()).collect();
        assert_eq!(ids, [1, 4, 2, 5, 3]);
        assert_eq!(
            Sort::parse(Some(&doc! {"k": 2}.into())).err().unwrap().code,
            2
        );
        assert_eq!(
            Sort::parse(Some(&doc! {"k": {"$meta": "textScore"}}.into()))
                .err()
                .unwrap()
                .code,
            238
        );
    }

    #[test]
    fn projects_like_mongod() {
        let d =
            doc! {"_id": 1, "name": "n", "config": {"a": 1, "b": 2}, "list": [{"a": 1, "b": 2}, 3]};
        let p = |v: Document| {
            Projection::parse(Some(&v.into()))
                .unwrap()
                .unwrap()
                .apply(&d)
        };
        assert_eq!(p(doc! {"name": 1}), doc! {"_id": 1, "name": "n"});
        assert_eq!(p(doc! {"name": 1, "_id": 0}), doc! {"name": "n"});
        assert_eq!(
            p(doc! {"config.a": 1, "list.b": 1}),
            doc! {"_id": 1, "config": {"a": 1}, "list": [{"b": 2}]}
        );
        assert_eq!(
            p(doc! {"config": 0, "list.a": 0}),
            doc! {"_id": 1, "name": "n", "list": [{"b": 2}, 3]}
        );
        assert_eq!(
            p(doc! {"_id": 0}),
            doc! {"name": "n", "config": {"a": 1, "b": 2}, "list": [{"a": 1, "b": 2}, 3]}
        );
        let e = |v: Document| Projection::parse(Some(&v.into())).err().unwrap().code;
        assert_eq!(e(doc! {"a": 1, "b": 0}), 31254);
        assert_eq!(e(doc! {"a": 0, "b": 1}), 31253);
        assert_eq!(e(doc! {"a": {"$slice": 1}}), 238);
    }
}
