//! Update documents with mongod's semantics: a replacement, or the modifiers a Komodo core uses
//! (`$set $unset $inc $push $pull $addToSet $setOnInsert`, `$each` for `$push`/`$addToSet`).
//! Modifiers mongod has and the server does not evaluate (`$rename`, `$min`, pipelines, ...)
//! are refused with 238; unknown ones with mongod's 9 FailedToParse.

use super::filter::ElementCond;
use super::reply::{bad_value, err, not_implemented, CmdError};
use super::values::{equal, get_path, set_path, type_name, unset_path};
use bson::{Bson, Document};

#[derive(Debug, Clone)]
pub enum Update {
    Replace(Document),
    Modify(Vec<(String, Document)>),
}

const SUPPORTED: [&str; 7] = [
    "$set",
    "$unset",
    "$inc",
    "$push",
    "$pull",
    "$addToSet",
    "$setOnInsert",
];
const UNSUPPORTED: [&str; 8] = [
    "$rename",
    "$min",
    "$max",
    "$mul",
    "$currentDate",
    "$pop",
    "$pullAll",
    "$bit",
];

impl Update {
    pub fn parse(u: &Bson) -> Result<Update, CmdError> {
        let d = match u {
            Bson::Document(d) => d,
            Bson::Array(_) => {
                return Err(not_implemented(
                    "pipeline-style updates are not supported by the test server",
                ))
            }
            _ => {
                return Err(err(
                    14,
                    "TypeMismatch",
                    "Update argument must be either an object or an array",
                ))
            }
        };
        if !d.keys().any(|k| k.starts_with('$')) {
            return Ok(Update::Replace(d.clone()));
        }
        let mut mods = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for (op, args) in d {
            if UNSUPPORTED.contains(&op.as_str()) {
                return Err(not_implemented(format!(
                    "the update operator {op} is not supported by the test server"
                )));
            }
            if !SUPPORTED.contains(&op.as_str()) {
                return Err(err(9, "FailedToParse", format!("Unknown modifier: {op}. Expected a valid update modifier or pipeline-style update specified as an array")));
            }
            let Bson::Document(args) = args else {
                return Err(err(9, "FailedToParse", format!("Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{op}: {}}}", type_name(args), args)));
            };
            for path in args.keys() {
                if let Some(p) = paths.iter().find(|p| conflicts(p, path)) {
                    return Err(err(
                        40,
                        "ConflictingUpdateOperators",
                        format!("Updating the path '{path}' would create a conflict at '{p}'"),
                    ));
                }
                paths.push(path.clone());
            }
            mods.push((op.clone(), args.clone()));
        }
        Ok(Update::Modify(mods))
    }

    pub fn is_replacement(&self) -> bool {
        matches!(self, Update::Replace(_))
    }

    /// Applies the update to `doc` (a copy); `inserting` applies `$setOnInsert` too. The
    /// `_id` must come out unchanged.
    pub fn apply(&self, doc: &Document, inserting: bool) -> Result<Document, CmdError> {
        let id = doc.get("_id").cloned();
        let out = match self {
            Update::Replace(r) => {
                let mut out = Document::new();
                if let Some(id) = &id {
                    out.insert("_id", id.clone());
                }
                for (k, v) in r {
                    if k == "_id" && id.is_some() {
                        continue;
                    }
                    out.insert(k.clone(), v.clone());
                }
                if let (Some(have), Some(want)) = (&id, r.get("_id")) {
                    if !equal(have, want) {
                        return Err(immutable(want));
                    }
                }
                out
            }
            Update::Modify(mods) => {
                let mut out = doc.clone();
                for (op, args) in mods {
                    for (path, arg) in args {
                        apply_one(&mut out, op, path, arg, inserting)?;
                    }
                }
                out
            }
        };
        if let Some(have) = &id {
            match out.get("_id") {
                Some(now) if equal(have, now) => {}
                Some(now) => return Err(immutable(now)),
                None => return Err(immutable(&Bson::Null)),
            }
        }
        Ok(out)
    }
}

fn conflicts(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}.")) || a.starts_with(&format!("{b}."))
}

fn immutable(now: &Bson) -> CmdError {
    err(
        66,
        "ImmutableField",
        format!("After applying the update, the (immutable) field '_id' was found to have been altered to _id: {now}"),
    )
}

fn id_of(d: &Document) -> String {
    d.get("_id").map(|v| v.to_string()).unwrap_or_default()
}

fn each(op: &str, arg: &Bson) -> Result<Vec<Bson>, CmdError> {
    match arg {
        Bson::Document(d) if d.contains_key("$each") => {
            if let Some(k) = d.keys().find(|k| *k != "$each") {
                return Err(not_implemented(format!(
                    "{op} with {k} is not supported by the test server"
                )));
            }
            match d.get("$each") {
                Some(Bson::Array(a)) => Ok(a.clone()),
                _ => Err(bad_value("The argument to $each must be an array")),
            }
        }
        other => Ok(vec![other.clone()]),
    }
}

fn apply_one(
    d: &mut Document,
    op: &str,
    path: &str,
    arg: &Bson,
    inserting: bool,
) -> Result<(), CmdError> {
    match op {
        "$set" => set_path(d, path, arg.clone()),
        "$setOnInsert" if inserting => set_path(d, path, arg.clone()),
        "$setOnInsert" => Ok(()),
        "$unset" => unset_path(d, path).map(|_| ()),
        "$inc" => {
            if !matches!(arg, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)) {
                return Err(err(
                    14,
                    "TypeMismatch",
                    format!("Cannot increment with non-numeric argument: {{{path}: {arg}}}"),
                ));
            }
            let sum = match get_path(d, path) {
                None => arg.clone(),
                Some(have) => add(have, arg).ok_or_else(|| match have {
                    Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => bad_value(format!(
                        "Failed to apply $inc operations to current value ({have}) for document {{_id: {}}}",
                        id_of(d)
                    )),
                    _ => err(14, "TypeMismatch", format!(
                        "Cannot apply $inc to a value of non-numeric type. {{_id: {}}} has the field '{path}' of non-numeric type {}",
                        id_of(d),
                        type_name(have)
                    )),
                })?,
            };
            set_path(d, path, sum)
        }
        "$push" | "$addToSet" => {
            let items = each(op, arg)?;
            let mut list = match get_path(d, path) {
                None => Vec::new(),
                Some(Bson::Array(a)) => a.clone(),
                Some(other) => {
                    return Err(bad_value(format!(
                    "The field '{path}' must be an array but is of type {} in document {{_id: {}}}",
                    type_name(other),
                    id_of(d)
                )))
                }
            };
            for item in items {
                if op == "$push" || !list.iter().any(|e| equal(e, &item)) {
                    list.push(item);
                }
            }
            set_path(d, path, Bson::Array(list))
        }
        "$pull" => {
            let cond = ElementCond::parse(arg)?;
            match get_path(d, path) {
                None => Ok(()),
                Some(Bson::Array(a)) => {
                    let kept: Vec<Bson> = a.iter().filter(|e| !cond.matches(e)).cloned().collect();
                    if kept.len() == a.len() {
                        return Ok(());
                    }
                    set_path(d, path, Bson::Array(kept))
                }
                Some(_) => Err(bad_value("Cannot apply $pull to a non-array value")),
            }
        }
        other => Err(not_implemented(format!(
            "the update operator {other} is not supported by the test server"
        ))),
    }
}

/// mongod's numeric promotion: int32 overflows into int64, any double makes a double; an
/// int64 overflow is an error (`None`, as is a non-number).
fn add(a: &Bson, b: &Bson) -> Option<Bson> {
    Some(match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => match x.checked_add(*y) {
            Some(s) => Bson::Int32(s),
            None => Bson::Int64(i64::from(*x) + i64::from(*y)),
        },
        (Bson::Int32(x), Bson::Int64(y)) | (Bson::Int64(y), Bson::Int32(x)) => {
            Bson::Int64(y.checked_add(i64::from(*x))?)
        }
        (Bson::Int64(x), Bson::Int64(y)) => Bson::Int64(x.checked_add(*y)?),
        (Bson::Double(x), other) | (other, Bson::Double(x)) => Bson::Double(
            x + match other {
                Bson::Int32(i) => f64::from(*i),
                Bson::Int64(i) => *i as f64,
                Bson::Double(d) => *d,
                _ => return None,
            },
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn run(u: Document, d: Document) -> Result<Document, CmdError> {
        Update::parse(&Bson::Document(u))?.apply(&d, false)
    }

    #[test]
    fn modifiers_as_mongod() {
        let d = doc! {"_id": 1, "n": 1, "tags": ["a"], "logs": [], "x": "s", "big": i32::MAX};
        let got = run(
            doc! {
                "$set": {"status": "Complete", "cfg.deep": true},
                "$unset": {"x": ""},
                "$inc": {"n": 2, "fresh": 1.5, "big": 1},
                "$push": {"logs": {"stage": "s"}},
                "$addToSet": {"tags": {"$each": ["a", "b", "b"]}},
                "$setOnInsert": {"created": 1},
            },
            d,
        )
        .unwrap();
        assert_eq!(
            got,
            doc! {"_id": 1, "n": 3, "tags": ["a", "b"], "logs": [{"stage": "s"}], "big": (i32::MAX as i64) + 1,
            "status": "Complete", "cfg": {"deep": true}, "fresh": 1.5}
        );
        let got = run(
            doc! {"$pull": {"users": "u1", "items": {"k": 1}, "nums": {"$gte": 5}}},
            doc! {"_id": 1, "users": ["u1", "u2", "u1"], "items": [{"k": 1}, {"k": 2}], "nums": [1, 5, 9]},
        )
        .unwrap();
        assert_eq!(
            got,
            doc! {"_id": 1, "users": ["u2"], "items": [{"k": 2}], "nums": [1]}
        );
    }

    #[test]
    fn errors_as_mongod() {
        let d = doc! {"_id": 1, "s": "text", "n": 1};
        for (u, code) in [
            (doc! {"$inc": {"s": 1}}, 14),
            (doc! {"$inc": {"n": "a"}}, 14),
            (doc! {"$push": {"s": 1}}, 2),
            (doc! {"$pull": {"s": 1}}, 2),
            (doc! {"$set": {"_id": 2}}, 66),
            (doc! {"$set": {"s.x": 1}}, 28),
            (doc! {"$set": {"a": 1}, "$unset": {"a.b": 1}}, 40),
            (doc! {"$bogus": {"a": 1}}, 9),
            (doc! {"$rename": {"a": "b"}}, 238),
            (doc! {"$push": {"a": {"$each": [1], "$slice": 1}}}, 238),
            (doc! {"$set": {"a.$": 1}}, 238),
            (doc! {"$inc": {"big": 1}, "$set": {"n": i64::MAX}}, 0),
        ] {
            let got = run(u.clone(), d.clone()).err().map(|e| e.code).unwrap_or(0);
            assert_eq!(got, code, "{u}");
        }
        let over = run(doc! {"$inc": {"n": 1}}, doc! {"_id": 1, "n": i64::MAX});
        assert_eq!(over.unwrap_err().code, 2);
        assert_eq!(Update::parse(&Bson::Array(vec![])).unwrap_err().code, 238);
    }

    #[test]
    fn replacement_keeps_the_id() {
        let u = Update::parse(&doc! {"a": 1}.into()).unwrap();
        assert!(u.is_replacement());
        assert_eq!(
            u.apply(&doc! {"_id": 7, "b": 2}, false).unwrap(),
            doc! {"_id": 7, "a": 1}
        );
        let u = Update::parse(&doc! {"_id": 8, "a": 1}.into()).unwrap();
        assert_eq!(u.apply(&doc! {"_id": 7}, false).unwrap_err().code, 66);
    }
}
