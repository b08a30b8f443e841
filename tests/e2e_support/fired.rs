//! Evidence that a fault row failed for its own reason (issue 23, item 3): the injected
//! failpoints a run's stderr names (`injected failure at NAME`), the steps its progress lines
//! report (`[i/n] NAME ... ok|FAILED (N ms)`), and checks that exactly the expected ones fired.

use super::Run;

/// The failpoints a run reports as fired (`injected failure at NAME`), distinct, in order.
pub fn injected(r: &Run) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let text = format!("{}\n{}", r.stdout, r.stderr);
    for (i, _) in text.match_indices("injected failure at ") {
        let rest = &text[i + "injected failure at ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | ',' | ')' | '"' | '\''))
            .collect();
        let name = name.trim_end_matches(['.', ':']).to_string();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The progress lines of a run: (step, result) in order, e.g. ("change-db", "ok").
pub fn progress(r: &Run) -> Vec<(String, String)> {
    r.stderr
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('[')?;
            let (_, rest) = rest.split_once("] ")?;
            let (name, result) = rest.split_once(" ... ")?;
            let result = result.split_whitespace().next()?;
            Some((name.to_string(), result.to_string()))
        })
        .collect()
}

/// The steps (undos included) a run reports FAILED.
pub fn failed_steps(r: &Run) -> Vec<String> {
    progress(r)
        .into_iter()
        .filter(|(_, res)| res == "FAILED")
        .map(|(n, _)| n)
        .collect()
}

/// Panics (naming `label`) unless the run names exactly the failpoints `injected` as fired and
/// reports exactly the steps `failed` as FAILED: its own fault fired, and nothing else did.
pub fn assert_fired(r: &Run, label: &str, injected_want: &[&str], failed_want: &[&str]) {
    let got = injected(r);
    assert_eq!(
        got,
        injected_want,
        "{label}: the injected failures that fired: {}",
        r.text()
    );
    let failed = failed_steps(r);
    assert_eq!(
        failed,
        failed_want,
        "{label}: the steps reported FAILED: {}",
        r.text()
    );
}

/// The last step a killed run reported done (`ok`), `None` when it reported none.
pub fn last_done(r: &Run) -> Option<String> {
    progress(r)
        .into_iter()
        .rev()
        .find(|(_, res)| res == "ok")
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stderr: &str) -> Run {
        Run {
            code: Some(4),
            signal: None,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn reads_the_evidence_of_a_run() {
        let r = run("[1/3] snapshot ... ok (3 ms)\n[2/3] change-db ... FAILED (5 ms)\n\
                     [1/3] undo:snapshot ... ok (1 ms)\n\
                     komodo-rotate: change-db failed: injected failure at before:change-db; rolled back\n");
        assert_eq!(injected(&r), ["before:change-db"]);
        assert_eq!(failed_steps(&r), ["change-db"]);
        assert_eq!(last_done(&r).as_deref(), Some("undo:snapshot"));
        assert_fired(&r, "t", &["before:change-db"], &["change-db"]);
        let other = std::panic::catch_unwind(|| assert_fired(&r, "t", &["after:write-env"], &[]));
        assert!(other.is_err(), "another fault's row must not pass");
    }
}
