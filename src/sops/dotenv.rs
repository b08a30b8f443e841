//! sops' own dotenv dialect (stores/dotenv/store.go), which is not compose's: split on LF only,
//! `#` in column 0 makes a comment, everything else splits at the first `=`, nothing is trimmed or
//! unquoted, and the only escape is backslash+`n` for LF. Any "smarter" parser changes the bytes
//! that go into the AAD and the MAC, so this one is deliberately dumb.
//!
//! Lines are kept with their raw text so an edit can write every untouched line back
//! byte-for-byte.

use std::ops::Range;

/// What a raw line is. Ranges index into the file's bytes, so nothing is copied (and no secret is
/// duplicated) until a caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// An empty line; sops skips it on read (and drops it on write; we keep it).
    Blank,
    /// `#text`; `text` is everything after the `#`.
    Comment { text: Range<usize> },
    /// `key=value`, split at the first `=`.
    Pair {
        key: Range<usize>,
        value: Range<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The line without its terminating LF.
    pub span: Range<usize>,
    /// Whether an LF followed it (only the last line of a file can lack one).
    pub has_newline: bool,
    pub kind: LineKind,
}

/// A line sops cannot read: it names the line (1-based) and the problem, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    pub line: usize,
    pub problem: &'static str,
}

/// Splits `bytes` into lines by sops' rules. Only LF ends a line: a CR is data, kept in the key,
/// value or comment it sits in (as sops keeps it), so a CRLF file fails where sops fails (its
/// `sops_lastmodified` ends with a CR and is no timestamp). Lines are bytes: nothing here needs
/// them to be UTF-8.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Line>, LineError> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        number += 1;
        let (end, has_newline) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, true),
            None => (bytes.len(), false),
        };
        let raw = &bytes[start..end];
        let kind = if raw.is_empty() {
            LineKind::Blank
        } else if raw[0] == b'#' {
            LineKind::Comment {
                text: start + 1..end,
            }
        } else {
            match raw.iter().position(|&b| b == b'=') {
                Some(eq) => LineKind::Pair {
                    key: start..start + eq,
                    value: start + eq + 1..end,
                },
                None => {
                    return Err(LineError {
                        line: number,
                        problem: "is neither a comment nor KEY=VALUE (no '=')",
                    })
                }
            }
        };
        lines.push(Line {
            span: start..end,
            has_newline,
            kind,
        });
        start = end + 1;
    }
    Ok(lines)
}

/// sops' read-side unescape: every backslash+`n` becomes LF; nothing else changes.
pub(crate) fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

/// sops' write-side escape: every LF becomes backslash+`n`.
pub(crate) fn escape(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 8);
    for &b in plain {
        if b == b'\n' {
            out.extend_from_slice(b"\\n");
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(String, Option<String>)> {
        let b = s.as_bytes();
        parse(b)
            .unwrap()
            .into_iter()
            .map(|l| match l.kind {
                LineKind::Blank => ("<blank>".into(), None),
                LineKind::Comment { text } => (
                    "#".into(),
                    Some(String::from_utf8(b[text].to_vec()).unwrap()),
                ),
                LineKind::Pair { key, value } => (
                    String::from_utf8(b[key].to_vec()).unwrap(),
                    Some(String::from_utf8(b[value].to_vec()).unwrap()),
                ),
            })
            .collect()
    }

    #[test]
    fn nothing_is_trimmed_or_unquoted() {
        let k = kinds(" LEADING=x\nK = v\nexport X=1\nA=\"x y\"\nB=a=b#c d\n=empty key\nE=\n");
        let want: Vec<(String, Option<String>)> = vec![
            (" LEADING".into(), Some("x".into())),
            ("K ".into(), Some(" v".into())),
            ("export X".into(), Some("1".into())),
            ("A".into(), Some("\"x y\"".into())),
            ("B".into(), Some("a=b#c d".into())),
            ("".into(), Some("empty key".into())),
            ("E".into(), Some("".into())),
        ];
        assert_eq!(k, want);
    }

    #[test]
    fn comments_blanks_and_missing_final_newline() {
        let src = "#\n# c\n\n  # not a comment=1\nX=1";
        let lines = parse(src.as_bytes()).unwrap();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            kinds(src),
            vec![
                ("#".into(), Some("".into())),
                ("#".into(), Some(" c".into())),
                ("<blank>".into(), None),
                ("  # not a comment".into(), Some("1".into())),
                ("X".into(), Some("1".into())),
            ]
        );
        assert!(lines[3].has_newline);
        assert!(!lines[4].has_newline);
    }

    #[test]
    fn cr_is_data_and_lines_without_equals_are_refused_by_number() {
        let b = b"A=1\r\nB\r=\xe92\r\n#\rc\n";
        let lines = parse(b).unwrap();
        assert_eq!(lines.len(), 3);
        let LineKind::Pair { key, value } = &lines[0].kind else {
            panic!("pair")
        };
        assert_eq!(
            (&b[key.clone()], &b[value.clone()]),
            (&b"A"[..], &b"1\r"[..])
        );
        let LineKind::Pair { key, value } = &lines[1].kind else {
            panic!("pair")
        };
        assert_eq!(
            (&b[key.clone()], &b[value.clone()]),
            (&b"B\r"[..], &b"\xe92\r"[..])
        );
        assert!(matches!(&lines[2].kind, LineKind::Comment { text } if &b[text.clone()] == b"\rc"));
        let e = parse(b"A=1\nB=2\njust words hunter2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(!e.problem.contains("hunter2"));
    }

    #[test]
    fn escaping_is_only_backslash_n() {
        assert_eq!(unescape(br"a\nb\\nc\t\"), b"a\nb\\\nc\\t\\".to_vec());
        assert_eq!(escape(b"a\nb\\c"), br"a\nb\c".to_vec());
        assert_eq!(unescape(&escape(b"x\n\ny")), b"x\n\ny".to_vec());
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(parse(b"").unwrap().is_empty());
        assert_eq!(parse(b"\n").unwrap()[0].kind, LineKind::Blank);
    }
}
