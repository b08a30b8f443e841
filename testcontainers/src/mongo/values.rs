//! BSON values as mongod compares and walks them: the canonical type order of comparisons and
//! sorts (numbers compare by value across int32/int64/double), dotted-path lookup through
//! embedded documents and arrays (the candidates a filter tests), and dotted-path writes.

use super::reply::{err, not_implemented, CmdError};
use bson::{Bson, Document};
use std::cmp::Ordering;

/// mongod's canonical type rank: the order of values of different types.
pub fn rank(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::Null | Bson::Undefined => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::Symbol(_) | Bson::String(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

fn as_int(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    }
}

/// The total order mongod sorts by (simple collation: strings by bytes).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        _ if ra == 10 => match (as_int(a), as_int(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => match (as_f64(a), as_f64(b)) {
                // NaN sorts below every other number, as in mongod.
                (Some(x), Some(y)) => x
                    .partial_cmp(&y)
                    .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()).reverse()),
                _ => a.to_string().cmp(&b.to_string()),
            },
        },
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => x.cmp(y),
        (Bson::Document(x), Bson::Document(y)) => compare_docs(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then(u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then(x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn compare_docs(x: &Document, y: &Document) -> Ordering {
    let mut i = x.iter();
    let mut j = y.iter();
    loop {
        match (i.next(), j.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = rank(va)
                    .cmp(&rank(vb))
                    .then_with(|| ka.cmp(kb))
                    .then_with(|| compare(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

pub fn equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// The values a filter on `path` tests in `d`: each value reached (through arrays of embedded
/// documents, and an array's elements besides the array itself at the end of the path);
/// `None` where the path ends in a missing field.
pub fn candidates<'a>(d: &'a Document, path: &str) -> Vec<Option<&'a Bson>> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk_doc(d, &parts, &mut out);
    out
}

fn walk_doc<'a>(d: &'a Document, parts: &[&str], out: &mut Vec<Option<&'a Bson>>) {
    match d.get(parts[0]) {
        Some(v) => walk(v, &parts[1..], out),
        None => out.push(None),
    }
}

fn walk<'a>(v: &'a Bson, rest: &[&str], out: &mut Vec<Option<&'a Bson>>) {
    if rest.is_empty() {
        out.push(Some(v));
        if let Bson::Array(a) = v {
            out.extend(a.iter().map(Some));
        }
        return;
    }
    match v {
        Bson::Document(d) => walk_doc(d, rest, out),
        Bson::Array(a) => {
            let before = out.len();
            if let Ok(i) = rest[0].parse::<usize>() {
                if let Some(e) = a.get(i) {
                    walk(e, &rest[1..], out);
                }
            }
            for e in a {
                if let Bson::Document(d) = e {
                    walk_doc(d, rest, out);
                }
            }
            if out.len() == before {
                out.push(None);
            }
        }
        _ => out.push(None),
    }
}

/// The value at `path` without array traversal (`a.0.b` indexes arrays), for update operators.
pub fn get_path<'a>(d: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = d.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn positional(path: &str) -> Result<(), CmdError> {
    if path.split('.').any(|p| p.starts_with('$')) {
        return Err(not_implemented(format!(
            "positional update paths ({path}) are not supported by the test server"
        )));
    }
    if path.split('.').any(str::is_empty) {
        return Err(err(
            56,
            "EmptyFieldName",
            format!("The update path '{path}' contains an empty field name, which is not allowed."),
        ));
    }
    Ok(())
}

fn not_viable(part: &str, at: &Bson) -> CmdError {
    err(
        28,
        "PathNotViable",
        format!("Cannot create field '{part}' in element {{{at}}}"),
    )
}

/// Sets `path` to `value`, creating embedded documents on the way (and padding arrays with
/// nulls for an index past their end), as mongod's `$set` does.
pub fn set_path(d: &mut Document, path: &str, value: Bson) -> Result<(), CmdError> {
    positional(path)?;
    let parts: Vec<&str> = path.split('.').collect();
    set_in_doc(d, &parts, value)
}

fn set_in_doc(d: &mut Document, parts: &[&str], value: Bson) -> Result<(), CmdError> {
    if parts.len() == 1 {
        d.insert(parts[0], value);
        return Ok(());
    }
    if !d.contains_key(parts[0]) {
        d.insert(parts[0], Document::new());
    }
    let child = d.get_mut(parts[0]).expect("inserted above");
    set_in(child, &parts[1..], value)
}

fn set_in(v: &mut Bson, parts: &[&str], value: Bson) -> Result<(), CmdError> {
    match v {
        Bson::Document(d) => set_in_doc(d, parts, value),
        Bson::Array(a) => {
            let Ok(i) = parts[0].parse::<usize>() else {
                return Err(not_viable(parts[0], &Bson::Array(a.clone())));
            };
            while a.len() <= i {
                a.push(Bson::Null);
            }
            if parts.len() == 1 {
                a[i] = value;
                return Ok(());
            }
            if a[i] == Bson::Null {
                a[i] = Bson::Document(Document::new());
            }
            set_in(&mut a[i], &parts[1..], value)
        }
        other => Err(not_viable(parts[0], other)),
    }
}

/// Removes `path` (an array element becomes null, as mongod's `$unset` does); a missing path
/// is no change. Returns whether anything changed.
pub fn unset_path(d: &mut Document, path: &str) -> Result<bool, CmdError> {
    positional(path)?;
    let parts: Vec<&str> = path.split('.').collect();
    Ok(unset_in_doc(d, &parts))
}

fn unset_in_doc(d: &mut Document, parts: &[&str]) -> bool {
    if parts.len() == 1 {
        return d.remove(parts[0]).is_some();
    }
    match d.get_mut(parts[0]) {
        Some(Bson::Document(c)) => unset_in_doc(c, &parts[1..]),
        Some(Bson::Array(a)) => match parts[1].parse::<usize>() {
            Ok(i) if i < a.len() => {
                if parts.len() == 2 {
                    let changed = a[i] != Bson::Null;
                    a[i] = Bson::Null;
                    changed
                } else if let Bson::Document(c) = &mut a[i] {
                    unset_in_doc(c, &parts[2..])
                } else {
                    false
                }
            }
            _ => false,
        },
        _ => false,
    }
}

/// The BSON type name mongod uses in its messages.
pub fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Decimal128(_) => "decimal",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn numbers_compare_by_value_and_types_by_rank() {
        assert!(equal(&Bson::Int32(3), &Bson::Double(3.0)));
        assert!(equal(&Bson::Int64(3), &Bson::Int32(3)));
        assert_eq!(compare(&Bson::Null, &Bson::Int32(0)), Ordering::Less);
        assert_eq!(
            compare(&Bson::Int64(i64::MAX), &Bson::String(String::new())),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::String("b".into()), &Bson::String("a".into())),
            Ordering::Greater
        );
        assert!(!equal(
            &doc! {"a": 1, "b": 2}.into(),
            &doc! {"b": 2, "a": 1}.into()
        ));
    }

    #[test]
    fn candidates_walk_arrays_of_documents() {
        let d = doc! {"a": [{"b": 1}, {"b": [2, 3]}, {"c": 1}], "x": [1, 2]};
        let got: Vec<Option<Bson>> = candidates(&d, "a.b")
            .into_iter()
            .map(|o| o.cloned())
            .collect();
        assert_eq!(
            got,
            vec![
                Some(Bson::Int32(1)),
                Some(Bson::Array(vec![2.into(), 3.into()])),
                Some(Bson::Int32(2)),
                Some(Bson::Int32(3)),
                None
            ]
        );
        assert_eq!(candidates(&d, "x").len(), 3);
        assert_eq!(candidates(&d, "nope"), vec![None]);
    }

    #[test]
    fn set_and_unset_paths_as_mongod() {
        let mut d = doc! {"_id": 1, "a": 5, "arr": [1]};
        set_path(&mut d, "b.c.d", Bson::Int32(1)).unwrap();
        assert_eq!(d.get_document("b").unwrap(), &doc! {"c": {"d": 1}});
        set_path(&mut d, "arr.2", Bson::Int32(9)).unwrap();
        assert_eq!(
            d.get_array("arr").unwrap(),
            &vec![Bson::Int32(1), Bson::Null, Bson::Int32(9)]
        );
        assert_eq!(set_path(&mut d, "a.x", Bson::Null).unwrap_err().code, 28);
        assert_eq!(set_path(&mut d, "arr.$", Bson::Null).unwrap_err().code, 238);
        assert!(unset_path(&mut d, "b.c").unwrap());
        assert!(!unset_path(&mut d, "b.c").unwrap());
        assert!(unset_path(&mut d, "arr.0").unwrap());
        assert_eq!(d, doc! {"_id": 1, "a": 5, "arr": [null, null, 9], "b": {}});
    }
}
