//! The generic fault and SIGKILL matrices (issue 11): driven from the step list `rotate --secret
//! KIND --dry-run` prints, so every kind gets them by naming itself, the step from which `resume`
//! rolls forward, and how to read "the value every plane agrees on".
//!
//! - Fault matrix: each step fails before it runs, and after it ran (but the last: after commit
//!   the run is over). Expected: exit 4, all old, no journal left.
//! - SIGKILL matrix: the run is killed after staging and after every step (commit included),
//!   then `resume`: from the deciding step on it rolls forward (exit 0, all new), before it back
//!   (exit 4, all old); a second `resume` has nothing to do.
//! - Then `verify` finds the planes agreeing (exit 0), and no value seen (nor the stack's own
//!   secrets) is in anything the tool printed or left in its state dir.

use super::{assert_no_leak, tool};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;

/// What the matrices need to know of a kind.
pub struct Kind<'a> {
    /// `rotate` arguments naming it, e.g. `["--secret", "jwt-secret"]`.
    pub args: &'a [&'a str],
    /// The step whose completion makes `resume` roll forward (the one that puts NEW in the plane
    /// `resume` asks: `write-env` for env-only kinds, `change-db` for the DB password).
    pub decider: &'a str,
}

/// The step names `rotate ARGS --dry-run` prints, in order.
pub fn step_names(s: &Stack, args: &[&str]) -> Vec<String> {
    let mut a = vec!["rotate"];
    a.extend_from_slice(args);
    a.push("--dry-run");
    let r = tool(s, &a, &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let names: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(". ")?;
            n.parse::<usize>().ok()?;
            rest.split_whitespace().next().map(String::from)
        })
        .collect();
    assert!(names.len() >= 3, "no plan in: {}", r.text());
    names
}

/// Runs both matrices on `s`, then verify and the hygiene scan. `agreed` returns the value every
/// plane holds, or panics naming the split.
pub fn run(s: &Stack, kind: &Kind, agreed: &dyn Fn(&str) -> Secret) {
    let steps = step_names(s, kind.args);
    let label = kind.args.join(" ");
    println!("\n{label}: steps from --dry-run: {}", steps.join(", "));
    let decider = steps
        .iter()
        .position(|n| n == kind.decider)
        .unwrap_or_else(|| panic!("{label}: no step {} in {steps:?}", kind.decider));
    let journal = s.dir.join("state/journal/current.json");
    let rotate = |env: &str| {
        let mut a = vec!["rotate"];
        a.extend_from_slice(kind.args);
        tool(s, &a, &[("FAILPOINTS", env)])
    };
    let verdict = |after: &Secret, before: &Secret| {
        if after.ct_eq(before) {
            "all old"
        } else {
            "all new"
        }
    };
    let mut seen = vec![s.passkey.clone(), s.env_password.clone()];
    let mut rows = Vec::new();

    let mut faults: Vec<String> = steps.iter().map(|n| format!("before:{n}")).collect();
    faults.extend(
        steps[..steps.len() - 1]
            .iter()
            .map(|n| format!("after:{n}")),
    );
    for fp in &faults {
        let before = agreed("before the case");
        let r = rotate(&format!("{fp}={}", "return"));
        let after = agreed(fp);
        let v = verdict(&after, &before);
        rows.push(format!("{fp:<52} exit {:?}  {v}", r.code));
        assert_eq!(r.code, Some(4), "{label} {fp}: {}", r.text());
        assert_eq!(v, "all old", "{label} {fp}: {}", r.text());
        assert!(
            !journal.exists(),
            "{label} {fp}: a rollback left its journal"
        );
    }

    let mut kills = vec![("after:stage".to_string(), None)];
    kills.extend(
        steps
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("after:{n}"), Some(i))),
    );
    for (point, at) in &kills {
        let before = agreed("before the kill");
        let r = rotate(&format!("{point}=return(crash)"));
        assert_eq!(
            r.signal,
            Some(9),
            "{label} {point}: no SIGKILL: {}",
            r.text()
        );
        assert!(journal.exists(), "{label} {point}: journal not kept");
        let res = tool(s, &["resume"], &[]);
        let after = agreed(point);
        let forward = at.is_some_and(|i| i >= decider);
        let v = verdict(&after, &before);
        rows.push(format!("SIGKILL {point:<44} resume {:?}  {v}", res.code));
        assert_eq!(v == "all new", forward, "{label} {point}: {}", res.text());
        let want = if forward { 0 } else { 4 };
        assert_eq!(res.code, Some(want), "{label} {point}: {}", res.text());
        seen.push(after);
        let again = tool(s, &["resume"], &[]);
        assert_eq!(again.code, Some(0), "{label} {point}: {}", again.text());
    }
    println!("\nfault and crash matrix (rotate {label}):");
    for r in &rows {
        println!("  {r}");
    }
    let v = tool(s, &["verify"], &[]);
    assert_eq!(
        v.code,
        Some(0),
        "{label}: verify after the matrices: {}",
        v.text()
    );
    let refs: Vec<&Secret> = seen.iter().collect();
    assert_no_leak(&refs, &s.dir.join("state"));
}
