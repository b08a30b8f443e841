//! Query filters with mongod's semantics for the operators a Komodo core uses: equality (an
//! array matches an element or itself, null matches a missing field), `$eq $ne $gt $gte $lt
//! $lte $in $nin $exists $all $size $not $regex`, and `$and $or $nor`. An operator the server
//! does not evaluate is refused with 238 NotImplemented, an unknown one with mongod's 2 BadValue;
//! nothing is ever ignored (an ignored condition answers a question that was not asked).

use super::reply::{bad_value, err, not_implemented, CmdError};
use super::values::{candidates, compare, equal, rank};
use bson::{Bson, Document};
use std::cmp::Ordering;

#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
    Field(String, Cond),
}

#[derive(Debug, Clone)]
pub enum Cond {
    Eq(Bson),
    Ne(Bson),
    Cmp(Ordering, bool, Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
    All(Vec<Bson>),
    Size(usize),
    Regex(regex::Regex),
    Not(Vec<Cond>),
    And(Vec<Cond>),
}

const UNSUPPORTED: [&str; 16] = [
    "$elemMatch",
    "$type",
    "$mod",
    "$expr",
    "$where",
    "$text",
    "$jsonSchema",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$sampleRate",
];

fn unsupported(op: &str) -> CmdError {
    not_implemented(format!(
        "the filter operator {op} is not supported by the test server"
    ))
}

impl Filter {
    /// Everything matches an empty filter.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// Parses a filter document; `what` names it in errors (`find.filter`, `q`, ...).
    pub fn parse(f: &Document) -> Result<Filter, CmdError> {
        let mut parts = Vec::new();
        for (k, v) in f {
            match k.as_str() {
                "$and" | "$or" | "$nor" => {
                    let list = match v {
                        Bson::Array(a) if !a.is_empty() => a,
                        _ => return Err(bad_value(format!("{k} must be a nonempty array"))),
                    };
                    let subs = list
                        .iter()
                        .map(|e| match e {
                            Bson::Document(d) => Filter::parse(d),
                            _ => Err(bad_value(format!("{k} argument's entries must be objects"))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    parts.push(match k.as_str() {
                        "$and" => Filter::And(subs),
                        "$or" => Filter::Or(subs),
                        _ => Filter::Nor(subs),
                    });
                }
                "$comment" => {}
                op if UNSUPPORTED.contains(&op) => return Err(unsupported(op)),
                op if op.starts_with('$') => {
                    return Err(bad_value(format!("unknown top level operator: {op}")))
                }
                field => parts.push(Filter::Field(field.to_owned(), parse_value(v)?)),
            }
        }
        Ok(Filter::And(parts))
    }

    /// Parses an optional filter field of a command (`null`/absent: everything).
    pub fn parse_opt(v: Option<&Bson>, what: &str) -> Result<Filter, CmdError> {
        match v {
            None | Some(Bson::Null) => Ok(Filter::all()),
            Some(Bson::Document(d)) => Filter::parse(d),
            Some(_) => Err(err(14, "TypeMismatch", format!("{what} must be an object"))),
        }
    }

    pub fn matches(&self, d: &Document) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(d)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(d)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(d)),
            Filter::Field(path, c) => c.test(&candidates(d, path)),
        }
    }

    /// The equality conditions an upsert copies into the document it inserts.
    pub fn equalities(&self, out: &mut Vec<(String, Bson)>) {
        match self {
            Filter::And(fs) => fs.iter().for_each(|f| f.equalities(out)),
            Filter::Field(path, Cond::Eq(v)) => out.push((path.clone(), v.clone())),
            Filter::Field(path, Cond::And(cs)) => {
                for c in cs {
                    if let Cond::Eq(v) = c {
                        out.push((path.clone(), v.clone()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A field's condition: an operator document, a regular expression, or a value to equal.
fn parse_value(v: &Bson) -> Result<Cond, CmdError> {
    match v {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            parse_operators(d)
        }
        Bson::RegularExpression(r) => regex_cond(&r.pattern, &r.options),
        other => Ok(Cond::Eq(other.clone())),
    }
}

fn list(op: &str, v: &Bson) -> Result<Vec<Bson>, CmdError> {
    match v {
        Bson::Array(a) => {
            if a.iter().any(|e| matches!(e, Bson::RegularExpression(_))) {
                return Err(not_implemented(format!(
                    "regular expressions inside {op} are not supported by the test server"
                )));
            }
            Ok(a.clone())
        }
        _ => Err(bad_value(format!("{op} needs an array"))),
    }
}

fn parse_operators(d: &Document) -> Result<Cond, CmdError> {
    let mut conds = Vec::new();
    let options = match d.get("$options") {
        None => None,
        Some(Bson::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad_value("$options has to be a string")),
    };
    for (op, v) in d {
        let c = match op.as_str() {
            "$eq" => Cond::Eq(v.clone()),
            "$ne" => Cond::Ne(v.clone()),
            "$gt" => Cond::Cmp(Ordering::Greater, false, v.clone()),
            "$gte" => Cond::Cmp(Ordering::Greater, true, v.clone()),
            "$lt" => Cond::Cmp(Ordering::Less, false, v.clone()),
            "$lte" => Cond::Cmp(Ordering::Less, true, v.clone()),
            "$in" => Cond::In(list(op, v)?),
            "$nin" => Cond::Nin(list(op, v)?),
            "$all" => Cond::All(list(op, v)?),
            "$exists" => Cond::Exists(match v {
                Bson::Boolean(b) => *b,
                Bson::Null => false,
                other => super::controls::as_i64(other).is_some_and(|n| n != 0),
            }),
            "$size" => match super::controls::as_i64(v) {
                Some(n) if n >= 0 => Cond::Size(n as usize),
                _ => return Err(bad_value("$size needs a non-negative whole number")),
            },
            "$regex" => match v {
                Bson::String(p) => regex_cond(p, options.unwrap_or(""))?,
                Bson::RegularExpression(r) => {
                    regex_cond(&r.pattern, options.unwrap_or(&r.options))?
                }
                _ => return Err(bad_value("$regex has to be a string")),
            },
            "$options" if d.contains_key("$regex") => continue,
            "$options" => return Err(bad_value("$options needs a $regex")),
            "$not" => match v {
                Bson::Document(n) if !n.is_empty() && n.keys().all(|k| k.starts_with('$')) => {
                    match parse_operators(n)? {
                        Cond::And(cs) => Cond::Not(cs),
                        c => Cond::Not(vec![c]),
                    }
                }
                Bson::RegularExpression(r) => Cond::Not(vec![regex_cond(&r.pattern, &r.options)?]),
                _ => return Err(bad_value("$not needs a regex or a document")),
            },
            o if UNSUPPORTED.contains(&o) => return Err(unsupported(o)),
            o => return Err(bad_value(format!("unknown operator: {o}"))),
        };
        conds.push(c);
    }
    Ok(if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::And(conds)
    })
}

fn regex_cond(pattern: &str, options: &str) -> Result<Cond, CmdError> {
    let mut flags = String::new();
    for o in options.chars() {
        match o {
            'i' | 'm' | 's' | 'x' => flags.push(o),
            'u' => {}
            other => {
                return Err(err(
                    51108,
                    "Location51108",
                    format!("invalid flag in regex options: {other}"),
                ))
            }
        }
    }
    let full = if flags.is_empty() {
        pattern.to_owned()
    } else {
        format!("(?{flags}){pattern}")
    };
    regex::Regex::new(&full).map(Cond::Regex).map_err(|e| {
        err(
            51091,
            "Location51091",
            format!("Regular expression is invalid: {e}"),
        )
    })
}

fn eq_any(cands: &[Option<&Bson>], want: &Bson) -> bool {
    if matches!(want, Bson::Null) {
        return cands
            .iter()
            .any(|c| matches!(c, None | Some(Bson::Null | Bson::Undefined)));
    }
    cands.iter().flatten().any(|v| equal(v, want))
}

impl Cond {
    fn test(&self, cands: &[Option<&Bson>]) -> bool {
        match self {
            Cond::Eq(v) => eq_any(cands, v),
            Cond::Ne(v) => !eq_any(cands, v),
            Cond::Cmp(dir, or_equal, v) => cands.iter().flatten().any(|c| {
                rank(c) == rank(v) && {
                    let o = compare(c, v);
                    o == *dir || (*or_equal && o == Ordering::Equal)
                }
            }),
            Cond::In(list) => list.iter().any(|v| eq_any(cands, v)),
            Cond::Nin(list) => !list.iter().any(|v| eq_any(cands, v)),
            Cond::Exists(want) => cands.iter().any(Option::is_some) == *want,
            Cond::All(list) => !list.is_empty() && list.iter().all(|v| eq_any(cands, v)),
            Cond::Size(n) => cands
                .iter()
                .flatten()
                .any(|c| matches!(c, Bson::Array(a) if a.len() == *n)),
            Cond::Regex(re) => cands.iter().flatten().any(|c| match c {
                Bson::String(s) | Bson::Symbol(s) => re.is_match(s),
                _ => false,
            }),
            Cond::Not(cs) => !cs.iter().all(|c| c.test(cands)),
            Cond::And(cs) => cs.iter().all(|c| c.test(cands)),
        }
    }

    /// Tests one value on its own (an array element for `$pull`).
    pub fn test_value(&self, v: &Bson) -> bool {
        self.test(&[Some(v)])
    }
}

/// A `$pull` condition: a value to equal, a condition on the element, or a filter on
/// element documents.
pub enum ElementCond {
    Value(Bson),
    Cond(Cond),
    Doc(Filter),
}

impl ElementCond {
    pub fn parse(v: &Bson) -> Result<ElementCond, CmdError> {
        Ok(match v {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                ElementCond::Cond(parse_operators(d)?)
            }
            Bson::Document(d) => ElementCond::Doc(Filter::parse(d)?),
            Bson::RegularExpression(r) => ElementCond::Cond(regex_cond(&r.pattern, &r.options)?),
            other => ElementCond::Value(other.clone()),
        })
    }

    pub fn matches(&self, e: &Bson) -> bool {
        match (self, e) {
            (ElementCond::Value(v), e) => equal(v, e),
            (ElementCond::Cond(c), e) => c.test_value(e),
            (ElementCond::Doc(f), Bson::Document(d)) => f.matches(d),
            (ElementCond::Doc(_), _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn m(f: Document, d: Document) -> bool {
        Filter::parse(&f).unwrap().matches(&d)
    }

    #[test]
    fn equality_arrays_null_and_paths() {
        let d = doc! {"name": "a", "tags": ["x", "y"], "cfg": {"on": true}, "n": 3};
        assert!(m(doc! {"tags": "x"}, d.clone()));
        assert!(m(doc! {"tags": ["x", "y"]}, d.clone()));
        assert!(!m(doc! {"tags": "z"}, d.clone()));
        assert!(m(doc! {"missing": null}, d.clone()));
        assert!(m(doc! {"cfg.on": true}, d.clone()));
        assert!(m(doc! {"n": 3.0}, d.clone()));
        assert!(!m(doc! {"name": "a", "n": 4}, d.clone()));
        assert!(m(doc! {}, d));
    }

    #[test]
    fn operators_as_mongod() {
        let d = doc! {"name": "Alpha", "tags": ["x", "y"], "n": 3, "s": "3"};
        for (f, want) in [
            (doc! {"n": {"$gt": 2}}, true),
            (doc! {"n": {"$gt": 3}}, false),
            (doc! {"n": {"$gte": 3, "$lt": 4}}, true),
            (doc! {"s": {"$gt": 2}}, false), // type bracketing
            (doc! {"n": {"$in": [1, 3]}}, true),
            (doc! {"n": {"$nin": [1, 3]}}, false),
            (doc! {"tags": {"$in": ["y"]}}, true),
            (doc! {"tags": {"$all": ["y", "x"]}}, true),
            (doc! {"tags": {"$all": ["y", "z"]}}, false),
            (doc! {"tags": {"$size": 2}}, true),
            (doc! {"n": {"$ne": 3}}, false),
            (doc! {"missing": {"$ne": 3}}, true),
            (doc! {"missing": {"$exists": false}}, true),
            (doc! {"n": {"$exists": true}}, true),
            (doc! {"name": {"$regex": "^al", "$options": "i"}}, true),
            (doc! {"name": {"$regex": "^al"}}, false),
            (doc! {"n": {"$not": {"$gt": 5}}}, true),
            (doc! {"$or": [{"n": 1}, {"name": "Alpha"}]}, true),
            (doc! {"$and": [{"n": 3}, {"name": "x"}]}, false),
            (doc! {"$nor": [{"n": 1}]}, true),
            (doc! {"_id": {"$in": []}}, false),
        ] {
            assert_eq!(m(f.clone(), d.clone()), want, "{f}");
        }
    }

    #[test]
    fn unknown_and_unsupported_operators_are_refused() {
        for (f, code) in [
            (doc! {"a": {"$elemMatch": {"b": 1}}}, 238),
            (doc! {"$where": "1"}, 238),
            (doc! {"$expr": {"$eq": [1, 1]}}, 238),
            (doc! {"a": {"$bogus": 1}}, 2),
            (doc! {"$bogus": 1}, 2),
            (doc! {"$or": []}, 2),
            (doc! {"a": {"$in": 1}}, 2),
        ] {
            assert_eq!(Filter::parse(&f).unwrap_err().code, code, "{f}");
        }
    }
}
