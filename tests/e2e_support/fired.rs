//! Evidence that a fault row failed for its own reason (issue 23, item 3): the injected
//! failpoints a run's stderr names (`injected failure at NAME`), the steps its progress lines
//! report (`[i/n] NAME ... ok|FAILED (N ms)`), the faults armed outside the tool that are still
//! waiting (`armed`), and the one check every fault row makes (`assert_own_fault`): exactly the
//! expected ones fired, and nothing is left armed for a later row.

use super::Run;
use komodo_testcontainers::stack::Stack;

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

/// The faults armed outside the tool on `s` that have not fired yet: core's `fail-next-start`
/// flag (the stack's control dir; core's next start removes it and fails) and the rehearsal
/// Mongo's test controls (`failNextUpdateUser`, `delayMs`, `dropAfterCommands`, read with
/// `komodoTestControl` and no change). A row that armed one finds it gone only if it fired:
/// that consumption is the row's evidence, and a marker still armed would fail a later row for
/// the wrong reason. Panics when Mongo gives no answer (it cannot be told).
pub fn armed(s: &Stack) -> Vec<String> {
    let mut out = Vec::new();
    let flag = s.control_dir().join("fail-next-start");
    if flag.exists() {
        out.push(format!("{} (core's next start fails)", flag.display()));
    }
    let port = s.mongo_port;
    let reply = std::thread::scope(|sc| {
        sc.spawn(move || mongo_controls(port))
            .join()
            .expect("the controls thread")
    });
    match reply {
        Ok(Some(d)) => {
            use mongodb::bson::Bson;
            match d.get("failNextUpdateUser") {
                None | Some(Bson::Boolean(false)) => {}
                Some(v) => out.push(format!("Mongo's failNextUpdateUser ({v})")),
            }
            if d.get_i64("delayMs").is_ok_and(|ms| ms > 0) {
                out.push(format!(
                    "Mongo's delayMs ({})",
                    d.get_i64("delayMs").unwrap()
                ));
            }
            match d.get("dropAfterCommands") {
                None | Some(Bson::Null) => {}
                Some(v) => out.push(format!("Mongo's dropAfterCommands ({v})")),
            }
        }
        Ok(None) => {} // a Mongo without test controls: nothing can be armed there
        Err(e) => panic!("cannot tell whether a Mongo fault is still armed: {e}"),
    }
    out
}

/// The rehearsal Mongo's `komodoTestControl` state; `None` when it has no test controls.
fn mongo_controls(port: u16) -> Result<Option<mongodb::bson::Document>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut opts = mongodb::options::ClientOptions::parse(format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true"
        ))
        .await
        .map_err(|e| e.to_string())?;
        opts.server_selection_timeout = Some(std::time::Duration::from_secs(10));
        let client = mongodb::Client::with_options(opts).map_err(|e| e.to_string())?;
        match client
            .database("admin")
            .run_command(mongodb::bson::doc! { "komodoTestControl": 1 })
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) => match *e.kind {
                mongodb::error::ErrorKind::Command(ref c) if c.code == 59 => Ok(None),
                _ => Err(e.to_string()),
            },
        }
    })
}

/// The one check of a fault row (issue 23, item 3): the run names exactly the failpoints
/// `injected_want` as fired and reports exactly the steps `failed_want` as FAILED, and no fault
/// armed outside the tool is left waiting on `s` (`armed`): a row that armed one proves here
/// that it was consumed by this run.
pub fn assert_own_fault(
    s: &Stack,
    r: &Run,
    label: &str,
    injected_want: &[&str],
    failed_want: &[&str],
) {
    assert_fired(r, label, injected_want, failed_want);
    let left = armed(s);
    assert!(
        left.is_empty(),
        "{label}: a fault armed outside the tool never fired (it would fail a later row): {}\n{}",
        left.join("; "),
        r.text()
    );
}

/// `assert_own_fault` for a row failed by the failpoint `fp` alone (`FAILPOINTS=fp=return`):
/// `before:X` fails X; `after:X` fails no step (X reported ok, then the run rolled back).
pub fn assert_own_failpoint(s: &Stack, r: &Run, label: &str, fp: &str) {
    match fp.split_once(':') {
        Some(("before", step)) => assert_own_fault(s, r, label, &[fp], &[step]),
        Some(("after", step)) => {
            assert_own_fault(s, r, label, &[fp], &[]);
            assert!(
                progress(r).contains(&(step.to_string(), "ok".to_string())),
                "{label}: {step} never reported ok: {}",
                r.text()
            );
        }
        _ => panic!("{label}: {fp} is neither before: nor after: a step"),
    }
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
