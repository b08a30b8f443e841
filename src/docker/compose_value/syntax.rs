//! One raw dotenv value as both compose versions read it (the subset the module doc lists):
//! literal pieces and `${NAME}` references, before references are resolved; anything outside
//! the subset is an error saying why (never the value).

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    Lit(String),
    Ref(String),
}

/// The value of one raw dotenv value as both compose versions read it, before references are
/// resolved.
pub(super) fn parse(raw: &[u8]) -> Result<Vec<Piece>, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "it is not UTF-8 text".to_string())?;
    if s.chars()
        .any(|c| (c.is_control() && c != '\t') || (c.is_whitespace() && c != ' ' && c != '\t'))
    {
        return Err(
            "it holds a control character or a non-ASCII blank, which the compose versions trim and cut differently"
                .into(),
        );
    }
    let s = s.trim_start_matches([' ', '\t']);
    match s.as_bytes().first() {
        Some(b'\'') => single(s),
        Some(b'"') => double(s),
        _ => unquoted(s),
    }
}

fn unquoted(s: &str) -> Result<Vec<Piece>, String> {
    // 1.29: the first run of whitespace followed by `#` starts the comment.
    let b = s.as_bytes();
    let mut cut_129 = b.len();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            if j < b.len() && b[j] == b'#' {
                cut_129 = i;
                break;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    let v129 = s[..cut_129].trim_end_matches([' ', '\t']);
    // v2: only " #" starts it.
    let v2 = s
        .split(" #")
        .next()
        .unwrap_or("")
        .trim_end_matches([' ', '\t']);
    if v129 != v2 {
        return Err(
            "a tab before `#`: compose 1.29 takes it for an inline comment, v2 does not".into(),
        );
    }
    if v129.contains('#') {
        return Err(
            "a `#` inside an unquoted value: Compose v2 releases before 2.12 cut the value there (quote it)"
                .into(),
        );
    }
    interpolate(v129)
}

/// After a closing quote: nothing, blanks, or blanks and a `# comment`.
fn rest_ok(rest: &str) -> Result<(), String> {
    let t = rest.trim_start_matches([' ', '\t']);
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err("text after the closing quote (compose 1.29 drops the line, v2 reads the rest as another line)".into())
    }
}

fn single(s: &str) -> Result<Vec<Piece>, String> {
    let body_rest = &s[1..];
    let Some(close) = body_rest.find('\'') else {
        return Err("an unterminated single quote".into());
    };
    let body = &body_rest[..close];
    if body.contains('\\') {
        return Err(
            "a backslash in single quotes: compose 1.29 decodes \\\\ there, v2 keeps it".into(),
        );
    }
    if body.contains("${") {
        return Err(
            "`${` in single quotes: compose 1.29 interpolates it, v2 keeps it literally".into(),
        );
    }
    rest_ok(&body_rest[close + 1..])?;
    Ok(vec![Piece::Lit(body.to_string())])
}

fn double(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    let mut escaped_any = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                escaped_any = true;
                let d = match chars.next() {
                    Some((_, '\\')) => '\\',
                    Some((_, '"')) => '"',
                    Some((_, 'n')) => '\n',
                    Some((_, 'r')) => '\r',
                    Some((_, 't')) => '\t',
                    Some(_) => {
                        return Err("an escape in double quotes other than \\\\ \\\" \\n \\r \\t, which the compose versions decode differently".into())
                    }
                    None => return Err("an unterminated double quote".into()),
                };
                out.push(d);
            }
            '"' => {
                let rest = &s[1 + i + 1..];
                // 1.29 matches the quoted value with a backtracking regex that takes `\"` for
                // an escaped quote when a later quote lets it: a closing quote right after a
                // backslash (`\\"`) is read differently.
                if escaped_any && s[..1 + i].ends_with('\\') {
                    return Err(
                        "a backslash right before the closing double quote, which compose 1.29 may take for an escaped quote".into(),
                    );
                }
                rest_ok(rest)?;
                return interpolate(&out);
            }
            c => out.push(c),
        }
    }
    Err("an unterminated double quote".into())
}

/// `${NAME}` references and literal text; any other `$` is refused.
fn interpolate(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(p) = rest.find('$') {
        lit.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let name = after
            .strip_prefix('{')
            .and_then(|a| a.find('}').map(|e| &a[..e]))
            .filter(|n| is_name(n));
        match name {
            Some(n) => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Ref(n.to_string()));
                rest = &after[n.len() + 2..];
            }
            None if after.starts_with('$') => {
                return Err("`$$`: compose 1.29 keeps both, v2 reads one `$`".into())
            }
            None if after.starts_with('{') => {
                return Err("`${..}` with a modifier or an unusual name, which the compose versions interpolate differently".into())
            }
            None => {
                return Err(
                    "a `$` outside `${NAME}`: compose 1.29 keeps `$NAME` literally, v2 interpolates it"
                        .into(),
                )
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn is_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}
