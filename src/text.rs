//! Text helpers every layer may use (imports nothing of the crate).

/// The longest message [`one_line`] keeps, in characters.
const MAX_CHARS: usize = 300;

/// A multi-line message (a TOML parse error, an engine reply, an HTTP body) as one line: its first
/// non-blank line, and `: ` with its last one when there are more (TOML puts "parse error at line
/// N, column M" first and the reason last; the source excerpt between them is dropped), cut at
/// 300 characters with `…`.
pub fn one_line(s: &str) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let joined = match lines.next_back() {
        Some(last) => format!("{first}: {last}"),
        None => first.to_string(),
    };
    let mut out: String = joined.chars().take(MAX_CHARS).collect();
    if out.len() < joined.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn first_and_last_line_without_what_is_between() {
        let toml = "TOML parse error at line 3, column 7\n  |\n3 | a = \n  |     ^\nstring values must be quoted\n";
        assert_eq!(
            one_line(toml),
            "TOML parse error at line 3, column 7: string values must be quoted"
        );
        assert_eq!(one_line("  one  \n\n"), "one");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(400);
        let out = one_line(&long);
        assert_eq!(out.chars().count(), 301);
        assert!(out.ends_with('…'));
        assert_eq!(one_line(&"x".repeat(300)), "x".repeat(300));
    }
}
