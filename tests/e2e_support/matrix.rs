//! The generic fault and SIGKILL matrices (issue 11): driven from the step list `rotate --secret
//! KIND --dry-run` prints, so every kind gets them by naming itself, the step from which `resume`
//! rolls forward, and how to read "the value every plane agrees on".
//!
//! - Fault matrix: each step fails before it runs, and after it ran (but the last: after commit
//!   the run is over). Expected: exit 4, all old, no journal left.
//! - SIGKILL matrix: the run is killed after staging and after every step (commit included),
//!   then `resume`: from the deciding step on it rolls forward (exit 0, all new), before it back
//!   (exit 4, all old); a second `resume` has nothing to do.
//! - Every row proves its own fault fired and nothing else (`fired`): a `before:X` row names
//!   exactly `injected failure at before:X` and reports only X FAILED; an `after:X` row reports X
//!   ok and names only `after:X`; a kill's last step done is the one named; resume says which
//!   way it went, and that way matches the verdict.
//! - Then `verify` finds the planes agreeing (exit 0), and the hygiene scan (`leak`) finds no
//!   value (those seen, the stack's own, and every value the runs staged, from their journals)
//!   anywhere the runs wrote.
//! - `run_branches`: one row per rollback and resume branch; `run_kills_inside_at`: kills inside
//!   steps, see there.
//!
//! `agreed` is the caller's: every caller reads the planes through outside tools (`referee`).

use super::{fired, leak, tool, Run};
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
    run_some(s, kind, None, None, agreed)
}

/// The rows of `run` that reach each rollback and each of `resume`'s branches, for a kind whose
/// matrix is on the suite's critical path (passkey, db-password; jwt-secret keeps every row of
/// the same runner and step code):
/// - a fault before every step: each rolls back a different set of undos, with the failed step
///   recorded in flight and never applied (`after:X` rolls back the same set as `before:` the
///   step after X, with nothing in flight);
/// - kills after staging (nothing done: back), after the step before the decider (back, a plane
///   changed), after the decider (forward, the rest of the steps still to run), before the
///   commit (forward, every plane changed) and after it (committed: only the journal to clear).
pub fn run_branches(s: &Stack, kind: &Kind, agreed: &dyn Fn(&str) -> Secret) {
    let steps = step_names(s, kind.args);
    let decider = steps
        .iter()
        .position(|n| n == kind.decider)
        .unwrap_or_else(|| panic!("no step {} in {steps:?}", kind.decider));
    let faults: Vec<String> = steps.iter().map(|n| format!("before:{n}")).collect();
    let mut kills = vec!["after:stage".to_string()];
    let mut at = vec![
        decider.saturating_sub(1),
        decider,
        steps.len() - 2,
        steps.len() - 1,
    ];
    at.dedup();
    kills.extend(at.iter().map(|&i| format!("after:{}", steps[i])));
    let faults: Vec<&str> = faults.iter().map(String::as_str).collect();
    let kills: Vec<&str> = kills.iter().map(String::as_str).collect();
    run_some(s, kind, Some(&faults), Some(&kills), agreed)
}

/// `run` with only some rows (a suite with a tight time budget): `faults` the failpoints of the
/// fault matrix (e.g. `after:change-pg`), `kills` the kill points (`after:stage`,
/// `after:STEP`); `None` is every row. Each named row must exist in the plan.
pub fn run_some(
    s: &Stack,
    kind: &Kind,
    faults_only: Option<&[&str]>,
    kills_only: Option<&[&str]>,
    agreed: &dyn Fn(&str) -> Secret,
) {
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
    if let Some(only) = faults_only {
        for o in only {
            assert!(faults.iter().any(|f| f == o), "{label}: no fault row {o}");
        }
        faults.retain(|f| only.contains(&f.as_str()));
    }
    for fp in &faults {
        let before = agreed("before the case");
        let r = rotate(&format!("{fp}={}", "return"));
        let after = agreed(fp);
        let v = verdict(&after, &before);
        rows.push(format!("{fp:<52} exit {:?}  {v}", r.code));
        assert_eq!(r.code, Some(4), "{label} {fp}: {}", r.text());
        assert_eq!(v, "all old", "{label} {fp}: {}", r.text());
        // Its own fault fired, and nothing else: `before:X` fails X, `after:X` fails no step
        // (X reported ok, then the run rolled back).
        fired::assert_own_failpoint(s, &r, &format!("{label} {fp}"), fp);
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
    if let Some(only) = kills_only {
        for o in only {
            assert!(
                kills.iter().any(|(k, _)| k == o),
                "{label}: no kill row {o}"
            );
        }
        kills.retain(|(k, _)| only.contains(&k.as_str()));
    }
    for (point, at) in &kills {
        let before = agreed("before the kill");
        let r = rotate(&format!("{point}=return(crash)"));
        assert_eq!(
            r.signal,
            Some(9),
            "{label} {point}: no SIGKILL: {}",
            r.text()
        );
        // Killed where it says: the last step reported done is the one named (none after stage).
        assert_eq!(
            fired::last_done(&r),
            at.map(|i| steps[i].clone()),
            "{label} {point}: killed elsewhere: {}",
            r.text()
        );
        assert!(journal.exists(), "{label} {point}: journal not kept");
        let res = tool(s, &["resume"], &[]);
        let after = agreed(point);
        let forward = at.is_some_and(|i| i >= decider);
        let v = verdict(&after, &before);
        let how = resume_direction(&res);
        rows.push(format!(
            "SIGKILL {point:<44} resume {:?}  {v}  ({how})",
            res.code
        ));
        assert_eq!(v == "all new", forward, "{label} {point}: {}", res.text());
        let want = if forward { 0 } else { 4 };
        assert_eq!(res.code, Some(want), "{label} {point}: {}", res.text());
        // The last step is the commit: killed after it, resume only clears the journal.
        let committed = *at == Some(steps.len() - 1);
        assert!(
            committed
                || how.starts_with(if forward {
                    "rolling forward"
                } else {
                    "rolling back"
                }),
            "{label} {point}: resume went another way than its verdict: {}",
            res.text()
        );
        fired::assert_own_fault(s, &res, &format!("{label} {point} resume"), &[], &[]);
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
    leak::assert_no_leak_anywhere(s, &refs, &[]);
}

/// How `resume` says it went: "rolling forward", "rolling back (REASON)", or its first line.
pub fn resume_direction(r: &Run) -> String {
    let text = format!("{}{}", r.stderr, r.stdout);
    text.lines()
        .find_map(|l| {
            l.split_once(": rolling ")
                .map(|(_, rest)| format!("rolling {rest}"))
        })
        .or_else(|| text.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// The status the journal on disk gives step `i` (`in-flight`, `done`, ...).
pub fn journal_status(journal: &std::path::Path, i: usize) -> String {
    let text = std::fs::read_to_string(journal).expect("the kept journal");
    let j: serde_json::Value = serde_json::from_str(&text).expect("journal JSON");
    j["steps"][i]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Kills inside steps (issue 23, item 2), then `resume`, reaching each branch of its decision
/// table that a kill can reach:
/// - every step but the commit, killed while it persists its `done` (the step changed its plane,
///   the journal still says in-flight: `journal:persist=N*off->return(crash)`): from the
///   deciding step on, resume's probe finds NEW and rolls forward; before it, back;
/// - the deciding step killed after it was recorded in flight, before it touched its plane
///   (`before:STEP=return(crash)`): the probe finds OLD ("Mongo still accepts the old password"
///   for the DB password, compose.env not yet NEW for env-only kinds): back;
/// - a kill inside the rollback (the step after the decider fails, the decider's undo is
///   killed): back, "the interrupted run had already started its rollback".
///
/// (Resume's two branches that need more than a kill, Mongo unreachable and Mongo accepting
/// neither value, are reached after a kill inside change-db by `undecided`.)
///
/// `only` names the steps to kill inside (each entry starts a step's name and must match one;
/// `None`: every step but the commit), e.g. `["write-env", "recreate:"]` for the steps that
/// change a plane; the kill before the decider applies and the kill inside the rollback always
/// run.
pub fn run_kills_inside_at(
    s: &Stack,
    kind: &Kind,
    only: Option<&[&str]>,
    agreed: &dyn Fn(&str) -> Secret,
) {
    let t0 = std::time::Instant::now();
    let steps = step_names(s, kind.args);
    let label = kind.args.join(" ");
    let decider = steps
        .iter()
        .position(|n| n == kind.decider)
        .unwrap_or_else(|| panic!("{label}: no step {} in {steps:?}", kind.decider));
    assert!(
        decider + 1 < steps.len(),
        "{label}: nothing after the decider"
    );
    let journal = s.dir.join("state/journal/current.json");
    let mut rows = Vec::new();
    // (failpoints, what, index of the step killed in flight or None, forward, resume's reason)
    let mut cases: Vec<(String, String, Option<usize>, bool, &str)> = Vec::new();
    if let Some(only) = only {
        for o in only {
            assert!(
                steps.iter().any(|n| n.starts_with(o)),
                "{label}: no step {o}* in {steps:?}"
            );
        }
    }
    for (i, n) in steps[..steps.len() - 1].iter().enumerate() {
        if only.is_some_and(|o| !o.iter().any(|p| n.starts_with(p))) {
            continue;
        }
        // Journal writes of a fresh run: 1 stages it, then each step i writes in-flight (2+2i)
        // and done (3+2i): let 2+2i pass, kill on the next.
        cases.push((
            format!("journal:persist={}*off->return(crash)", 2 + 2 * i),
            format!("inside {n}, its done unrecorded"),
            Some(i),
            i >= decider,
            if i >= decider {
                "rolling forward"
            } else {
                "rolling back"
            },
        ));
    }
    cases.push((
        format!("before:{}=return(crash)", steps[decider]),
        format!("{} in flight, not applied", steps[decider]),
        Some(decider),
        false,
        "rolling back",
    ));
    cases.push((
        format!(
            "before:{}=return;before:undo:{}=return(crash)",
            steps[decider + 1],
            steps[decider]
        ),
        format!("inside the rollback, at undo:{}", steps[decider]),
        None,
        false,
        "rolling back (the interrupted run had already started its rollback)",
    ));
    for (fp, what, in_flight, forward, how_want) in &cases {
        let before = agreed("before the kill");
        let mut a = vec!["rotate"];
        a.extend_from_slice(kind.args);
        let r = tool(s, &a, &[("FAILPOINTS", fp)]);
        assert_eq!(
            r.signal,
            Some(9),
            "{label} {what}: no SIGKILL: {}",
            r.text()
        );
        assert!(journal.exists(), "{label} {what}: journal not kept");
        if let Some(i) = in_flight {
            // Killed inside step i: the journal says in flight, the progress shows the step
            // before it as the last one done.
            assert_eq!(
                journal_status(&journal, *i),
                "in-flight",
                "{label} {what}: killed elsewhere: {}",
                r.text()
            );
            assert_eq!(
                fired::last_done(&r),
                i.checked_sub(1).map(|p| steps[p].clone()),
                "{label} {what}: killed elsewhere: {}",
                r.text()
            );
        } else {
            // The step after the decider failed (the kill comes before the run's error line),
            // its undo and the ones after it ran, up to the decider's.
            fired::assert_own_fault(
                s,
                &r,
                &format!("{label} {what}"),
                &[],
                &[steps[decider + 1].as_str()],
            );
            assert_eq!(
                fired::last_done(&r),
                Some(format!("undo:{}", steps[decider + 1])),
                "{label} {what}: killed elsewhere: {}",
                r.text()
            );
        }
        let res = tool(s, &["resume"], &[]);
        let after = agreed(what);
        let how = resume_direction(&res);
        let v = if after.ct_eq(&before) {
            "all old"
        } else {
            "all new"
        };
        rows.push(format!(
            "SIGKILL {what:<44} resume {:?}  {v}  ({how})",
            res.code
        ));
        assert!(
            how.starts_with(how_want),
            "{label} {what}: resume should be {how_want}: {}",
            res.text()
        );
        assert_eq!(v == "all new", *forward, "{label} {what}: {}", res.text());
        let want = if *forward { 0 } else { 4 };
        assert_eq!(res.code, Some(want), "{label} {what}: {}", res.text());
        fired::assert_own_fault(s, &res, &format!("{label} {what} resume"), &[], &[]);
        let again = tool(s, &["resume"], &[]);
        assert_eq!(again.code, Some(0), "{label} {what}: {}", again.text());
        assert!(
            !journal.exists(),
            "{label} {what}: journal left after resume"
        );
    }
    println!(
        "\nkills inside steps (rotate {label}, {} rows, {:.0} s):",
        rows.len(),
        t0.elapsed().as_secs_f64()
    );
    for r in &rows {
        println!("  {r}");
    }
    leak::assert_no_leak_anywhere(s, &[&s.passkey, &s.env_password], &[]);
}
