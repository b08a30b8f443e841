//! `rescue --reset-auth`'s fault and SIGKILL matrices (issue 20 item 4), on a stack whose Mongo
//! is on a password nobody knows ("lost": set behind the tool's back with pymongo) while
//! compose.env and the containers hold compose.env's value.
//!
//! - Fault matrix: each reset step fails before it runs and after it ran. Expected: exit 4, its
//!   own fault fired and nothing else; from outside: the throw-away gone (`docker inspect`),
//!   mongo running, and pymongo logs in with the lost password while the fault came before
//!   updateUser ran, with compose.env's after (the one change that cannot be undone).
//! - SIGKILL matrix: killed before the first step and after every step, then `rescue
//!   --reset-auth --yes` again: exit 0, every plane on compose.env's value (`agreed`), the
//!   throw-away and the marker gone.
//! - Then `verify` exit 0 and the hygiene scan over everything the runs wrote.

use super::{fired, leak, pymongo_login, referee, tool, Run};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;
use std::process::Command;

/// The reset's step names, from `rescue --reset-auth --dry-run` (Mongo must be on a lost
/// password: the reset is planned only when no known password logs in).
pub fn step_names(s: &Stack) -> Vec<String> {
    let r = tool(s, &["rescue", "--reset-auth", "--dry-run"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let names: Vec<String> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("reset-auth"))
        .skip(1)
        .map_while(|l| {
            let (n, rest) = l.trim_start().split_once(". ")?;
            n.parse::<usize>().ok()?;
            rest.split_whitespace().next().map(String::from)
        })
        .collect();
    assert_eq!(names.len(), 5, "no reset plan in: {}", r.text());
    names
}

/// Mongo's admin password changed from `from` to `to` behind the tool's back (pymongo).
pub fn set_mongo_password(s: &Stack, from: &Secret, to: &Secret) {
    let script = "import os,pymongo\n\
c=pymongo.MongoClient('127.0.0.1',int(os.environ['MONGO_PORT']),username='admin',password=os.environ['FROM'],authSource='admin',serverSelectionTimeoutMS=20000)\n\
c.admin.command('updateUser','admin',pwd=os.environ['TO'])\n";
    let st = Command::new("python3")
        .args(["-c", script])
        .env("MONGO_PORT", s.mongo_port.to_string())
        .env("FROM", from.expose())
        .env("TO", to.expose())
        .status()
        .unwrap();
    assert!(st.success(), "updateUser by hand");
}

/// A fresh password nobody knows, set in Mongo (which now accepts `from`).
pub fn lose(s: &Stack, from: &Secret) -> Secret {
    let lost = Secret::generate().unwrap();
    set_mongo_password(s, from, &lost);
    lost
}

/// The throw-away's name for the stack's mongo.
pub fn throwaway(s: &Stack) -> String {
    format!("{}-reset-auth", s.mongo)
}

/// Removes the throw-away when dropped (a failed test must not leave it holding the volume).
pub struct RemoveThrowaway(pub String);
impl Drop for RemoveThrowaway {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn mongo_running(s: &Stack) -> bool {
    referee::docker_inspect(&s.mongo).is_some_and(|c| c["State"]["Running"] == true)
}

fn marker(s: &Stack) -> std::path::PathBuf {
    s.dir.join("state/reset-auth.json")
}

/// `rescue --reset-auth --yes` with `failpoints`.
pub fn reset(s: &Stack, failpoints: &str) -> Run {
    tool(
        s,
        &["rescue", "--reset-auth", "--yes"],
        &[("FAILPOINTS", failpoints)],
    )
}

/// Refused without consent (no terminal, no --yes): exit 3, nothing changed.
pub fn refuses_without_consent(s: &Stack, lost: &Secret) {
    let r = tool(s, &["rescue", "--reset-auth"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(r.stderr.contains("--yes"), "{}", r.text());
    assert!(mongo_running(s), "mongo was not stopped");
    assert_eq!(
        pymongo_login(s, lost),
        0,
        "Mongo still on the lost password"
    );
    assert!(!marker(s).exists());
    assert!(!referee::container_exists(&throwaway(s)));
}

/// The fault matrix. Mongo must be on a lost password `lost` when called; it is again after.
pub fn run_faults(s: &Stack, desired: &Secret, lost: &Secret) -> Vec<Secret> {
    let steps = step_names(s);
    let setpw = steps.iter().position(|n| n == "set-password").unwrap();
    let mut lost = lost.clone();
    let mut seen = vec![lost.clone()];
    let mut rows = Vec::new();
    let mut faults: Vec<(String, bool)> = Vec::new();
    for (i, n) in steps.iter().enumerate() {
        faults.push((format!("before:{n}"), i > setpw));
        faults.push((format!("after:{n}"), i >= setpw));
    }
    for (fp, pw_changed) in &faults {
        let r = reset(s, &format!("{fp}=return"));
        let row = format!("reset-auth {fp}");
        assert_eq!(r.code, Some(4), "{row}: {}", r.text());
        match fp.split_once(':') {
            Some(("before", step)) => fired::assert_fired(&r, &row, &[fp], &[step]),
            _ => fired::assert_fired(&r, &row, &[fp], &[]),
        }
        assert!(
            !referee::container_exists(&throwaway(s)),
            "{row}: the throw-away is left: {}",
            r.text()
        );
        assert!(mongo_running(s), "{row}: mongo is not running");
        let now = if *pw_changed { desired } else { &lost };
        assert_eq!(
            pymongo_login(s, now),
            0,
            "{row}: Mongo should accept the {} password: {}",
            if *pw_changed { "desired" } else { "lost" },
            r.text()
        );
        rows.push(format!(
            "{fp:<28} exit {:?}  mongo on {}",
            r.code,
            if *pw_changed {
                "compose.env's"
            } else {
                "the lost"
            }
        ));
        if *pw_changed {
            assert!(
                r.stderr.contains("accepts compose.env's password now"),
                "{row}: {}",
                r.text()
            );
            lost = lose(s, desired);
            seen.push(lost.clone());
        } else {
            assert!(
                r.stderr.contains("password is unchanged"),
                "{row}: {}",
                r.text()
            );
        }
    }
    println!("\nfault matrix (rescue --reset-auth):");
    for r in &rows {
        println!("  {r}");
    }
    seen
}

/// The SIGKILL matrix, ending at verify 0. Mongo must be on a lost password when called.
pub fn run_kills(s: &Stack, desired: &Secret, agreed: &dyn Fn(&str) -> Secret) -> Vec<Secret> {
    let steps = step_names(s);
    let mut points = vec![format!("before:{}", steps[0])];
    points.extend(steps.iter().map(|n| format!("after:{n}")));
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for (k, point) in points.iter().enumerate() {
        let r = reset(s, &format!("{point}=return(crash)"));
        assert_eq!(r.signal, Some(9), "{point}: no SIGKILL: {}", r.text());
        assert!(marker(s).exists(), "{point}: the marker is not kept");
        let again = reset(s, "");
        assert_eq!(again.code, Some(0), "{point}: {}", again.text());
        assert!(
            again.stderr.contains("finishing an interrupted reset-auth"),
            "{point}: {}",
            again.text()
        );
        fired::assert_fired(&again, &format!("{point} again"), &[], &[]);
        let now = agreed(point);
        assert!(now.ct_eq(desired), "{point}: not on compose.env's value");
        assert!(!referee::container_exists(&throwaway(s)), "{point}");
        assert!(!marker(s).exists(), "{point}: the marker is left");
        rows.push(format!(
            "SIGKILL {point:<24} rescue --reset-auth --yes {:?}",
            again.code
        ));
        if k + 1 < points.len() {
            seen.push(lose(s, desired));
        }
    }
    println!("\nSIGKILL matrix (rescue --reset-auth):");
    for r in &rows {
        println!("  {r}");
    }
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "verify after the matrix: {}", v.text());
    let mut all: Vec<&Secret> = seen.iter().collect();
    all.push(desired);
    leak::assert_no_leak_anywhere(s, &all, &[]);
    seen
}
