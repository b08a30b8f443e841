//! Issue 20 item 4 and issue 18 item 5, end to end on the rehearsal stack: rescue finds the
//! password Mongo still holds in the tool's own records once every other copy is gone.
//! - After a committed rotation, a hand edit of compose.env and the pipeline's `compose up -d`
//!   of the whole file: only the value the tool last committed (sealed in the state_dir) still
//!   logs in; rescue finds it and ends at verify 0.
//! - A db-password run killed after change-db (Mongo on its NEW, a journal pending), then a hand
//!   edit and a redeploy: rescue takes the pending run over (audit record), logs in with the
//!   journal's sealed NEW, and ends at verify 0.
//! - A db-password run killed inside its recreate of core (`-prev` beside it), then a hand edit:
//!   rescue puts core's original back, takes the run over and ends at verify 0 (issue 19).
//! - A pending db-password run and Mongo on a third password: rescue refuses (3) with the journal
//!   where it was; `rescue --reset-auth --yes` takes the run over and ends at verify 0.
//! - A pending jwt-secret run beside a hand-edited DB password: rescue finishes the JWT run first
//!   (as resume does), then rescues; verify 0 right after (the campaign's seed 275392833).
//! - `rescue --reset-auth` when Mongo is on a password nobody knows: its fault and SIGKILL
//!   matrices (`e2e_support::reset_auth`), each ending at verify 0.

mod docker_support;
mod e2e_support;

use e2e_support::by_hand::{shorten_health_timeout, sops_set_by_hand};
use e2e_support::reset_auth;
use e2e_support::*;
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn env_value(s: &Stack, key: &str) -> Secret {
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(key)
        .unwrap_or_else(|| panic!("compose.env has no {key}"))
}

/// The DB password edited by hand with sops, then `compose` `args`: core crash-loops.
fn hand_edit_and_redeploy(f: &Fixture, rt: &tokio::runtime::Runtime, args: &[&str]) -> Secret {
    let s = &f.stack;
    let hand = Secret::generate().unwrap();
    sops_set_by_hand(s, PW_KEY, &hand);
    s.compose()
        .run_ok(args)
        .unwrap_or_else(|e| panic!("compose {args:?}: {e}"));
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on the hand-edited DB password");
    hand
}

/// The run id of the journal pending in the stack's state_dir.
fn pending_run_id(s: &Stack) -> String {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("state/journal/current.json")).unwrap())
            .unwrap();
    j["run_id"].as_str().unwrap().to_string()
}

fn rescued_to(f: &Fixture, rt: &tokio::runtime::Runtime, hand: &Secret) {
    let s = &f.stack;
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    let now = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(now.ct_eq(hand), "the hand-edited DB password is live");
    assert_eq!(pymongo_login(s, hand), 0, "pymongo logs in with it");
    assert!(!s.dir.join("state/journal/current.json").exists());
}

/// Issue 20 item 4a: the pipeline's shape after a rotation by the tool.
#[test]
fn rescue_after_a_rotation_and_the_pipeline_redeploy_uses_the_last_committed_value() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture_with(
        "rescue_last_committed",
        "krt-rescue-last",
        |_| {},
    )) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let r = tool(s, &["rotate", "--secret", "db-password"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let rotated = env_value(s, PW_KEY);
    assert!(s.dir.join("state/last-committed/db-password.age").exists());

    let hand = hand_edit_and_redeploy(&f, &rt, &["up", "-d"]);
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stderr.contains("last committed"), "{}", r.text());
    rescued_to(&f, &rt, &hand);
    assert_no_leak(&[&rotated, &hand, &s.env_password], &s.dir.join("state"));
}

/// Issue 18 item 5 / issue 20 item 4c: a pending db-password run (Mongo on its NEW), then a
/// hand edit and a redeploy. rescue takes the run over and ends at verify 0.
#[test]
fn rescue_takes_over_a_pending_run_and_logs_in_with_its_sealed_new() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("rescue_takeover", "krt-rescue-take", |_| {})) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let r = tool(
        s,
        &["rotate", "--secret", "db-password"],
        &[("FAILPOINTS", "after:change-db=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let run_id = pending_run_id(s);
    let hand = hand_edit_and_redeploy(&f, &rt, &["up", "-d", "--no-deps", "core", "periphery"]);
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stderr.contains("took over"), "{}", r.text());
    rescued_to(&f, &rt, &hand);
    let audit = std::fs::read_to_string(s.dir.join("state/audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("taken-over-by-rescue")),
        "{audit}"
    );
    assert_no_leak(&[&hand, &s.env_password], &s.dir.join("state"));
}

/// Issue 19 (the campaign's seed 143024129): a db-password run killed inside its recreate of
/// core (core replaced, its original parked as `-prev`, Mongo on the run's NEW), then a hand
/// edit of the DB password. rescue's own recreate of core used to refuse on the `-prev` (exit 3
/// every time, while resume may be stuck on a real conflict: a lockout). Now rescue puts core's
/// original back (audit record), takes the run over and ends at verify 0, nothing left over.
#[test]
fn rescue_repairs_a_recreate_the_pending_run_left_half_done() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("rescue_partial", "krt-rescue-part", |_| {})) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let fp = format!("after:recreate:{}=return(crash)", s.core);
    let r = tool(
        s,
        &["rotate", "--secret", "db-password"],
        &[("FAILPOINTS", &fp)],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let prev = format!("{}-prev", s.core);
    let parked = |name: &str| rt.block_on(f.engine.try_inspect(name)).unwrap().is_some();
    assert!(parked(&prev), "core's original is parked as {prev}");
    let run_id = pending_run_id(s);
    // Mongo holds the run's NEW, which only the pending journal knows; compose.env another.
    let hand = Secret::generate().unwrap();
    sops_set_by_hand(s, PW_KEY, &hand);

    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(
        r.stderr.contains("half done") && r.stderr.contains("took over"),
        "{}",
        r.text()
    );
    rescued_to(&f, &rt, &hand);
    for c in [&s.core, &s.periphery] {
        for leftover in [format!("{c}-prev"), format!("{c}-next")] {
            assert!(!parked(&leftover), "{leftover} left over");
        }
    }
    let audit = std::fs::read_to_string(s.dir.join("state/audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("recreate-undone-by-rescue")),
        "{audit}"
    );
    assert_no_leak(&[&hand, &s.env_password], &s.dir.join("state"));
}

/// Issue 18 item 5, the chain of runbooks: a pending db-password run and Mongo on a third
/// password. resume cannot decide; rescue finds nothing and refuses (3) with the journal where
/// it was (a refusal changes nothing: the campaign's seed 3182008924 saw exit 3 after the
/// journal had moved); the last resort, `rescue --reset-auth --yes`, takes the run over when it
/// acts and ends at verify 0.
#[test]
fn a_pending_run_and_mongo_on_a_third_password_end_at_verify_0() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("rescue_third", "krt-rescue-third", |_| {})) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let r = tool(
        s,
        &["rotate", "--secret", "db-password"],
        &[("FAILPOINTS", "after:change-db=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let journal = s.dir.join("state/journal/current.json");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let run_id = j["run_id"].as_str().unwrap().to_string();
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    let staged =
        komodo_rotate::planes::live::Staged::open(j["sealed_secrets"].as_str().unwrap(), &ids)
            .unwrap();
    let third = Secret::generate().unwrap();
    reset_auth::set_mongo_password(s, &staged.new, &third);

    // resume's "accepts neither" branch: exit 5, the journal kept, the runbook named.
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(5), "{}", res.text());
    assert!(
        res.stderr
            .contains("accepts neither the old nor the new password")
            && res.stderr.contains("no-password-survives.md"),
        "{}",
        res.text()
    );
    assert!(journal.exists(), "resume keeps the journal");

    let kept = std::fs::read(&journal).unwrap();
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr.contains("no known password logs in")
            && r.stderr.contains(&run_id)
            && r.stderr.contains("rescue --reset-auth"),
        "{}",
        r.text()
    );
    assert!(
        std::fs::read(&journal).is_ok_and(|now| now == kept),
        "exit 3: the pending run's journal is where it was"
    );
    assert!(!s.dir.join("state/taken-over").exists());

    // no-password-survives.md: rescue --reset-auth takes the run over and sets compose.env's.
    let _rm = reset_auth::RemoveThrowaway(reset_auth::throwaway(s));
    let desired = env_value(s, PW_KEY);
    let r = reset_auth::reset(s, "");
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stderr.contains("took over"), "{}", r.text());
    assert!(s
        .dir
        .join(format!("state/taken-over/{run_id}/current.json"))
        .exists());
    rescued_to(&f, &rt, &desired);
    let audit = std::fs::read_to_string(s.dir.join("state/audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("taken-over-by-rescue")),
        "{audit}"
    );
    assert_no_leak(&[&third, &staged.new], &s.dir.join("state"));
}

/// The campaign's seed 275392833: a jwt-secret run killed after write-env (compose.env holds
/// its NEW, core and periphery the OLD: a journal pending) and the DB password edited by hand
/// (Mongo rejects compose.env's). rescue must not take the JWT run over and leave its split
/// behind an exit 0: it finishes it first as resume does (forward: compose.env holds NEW), then
/// rescues the DB password; verify 0 right after.
#[test]
fn rescue_finishes_a_pending_env_only_run_before_it_acts() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with(
        "rescue_env_only",
        "krt-rescue-envonly",
        |_| {},
    )) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    const JWT: &str = "KOMODO_JWT_SECRET";
    let old_jwt = env_value(s, JWT);
    let r = tool(
        s,
        &["rotate", "--secret", "jwt-secret"],
        &[("FAILPOINTS", "after:write-env=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let new_jwt = env_value(s, JWT);
    assert!(!new_jwt.ct_eq(&old_jwt), "write-env ran");
    let hand = Secret::generate().unwrap();
    sops_set_by_hand(s, PW_KEY, &hand);

    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    // Exit 0 means verify 0 right after (before the fix: verify 1, the JWT split).
    rescued_to(&f, &rt, &hand);
    assert!(r.stderr.contains("finishing it first"), "{}", r.text());
    for c in [&s.core, &s.periphery] {
        let v = e2e_support::referee::docker_env(c, JWT);
        assert!(
            v.is_some_and(|v| v.ct_eq(&new_jwt)),
            "{c} holds compose.env's new JWT"
        );
    }
    assert!(
        !s.dir.join("state/taken-over").exists(),
        "an env-only run is finished, not taken over"
    );
    assert_no_leak(
        &[&old_jwt, &new_jwt, &hand, &s.env_password],
        &s.dir.join("state"),
    );
}

/// Issue 20 item 4: `rescue --reset-auth` refuses without consent, then its fault matrix (each
/// step failing before and after it ran: exit 4, the throw-away removed, mongo running), then
/// a clean run ends at verify 0.
#[test]
fn reset_auth_refuses_without_consent_and_undoes_every_fault() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("reset_auth_faults", "krt-reset-fault", |_| {})) else {
        return;
    };
    let s = &f.stack;
    let _rm = reset_auth::RemoveThrowaway(reset_auth::throwaway(s));
    shorten_health_timeout(s);
    let desired = env_value(s, PW_KEY);
    let lost = reset_auth::lose(s, &desired);
    reset_auth::refuses_without_consent(s, &lost);
    let mut seen = reset_auth::run_faults(s, &desired, &lost);
    let r = reset_auth::reset(s, "");
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stdout.contains("rescued"), "{}", r.text());
    rescued_to(&f, &rt, &desired);
    seen.push(desired);
    let refs: Vec<&Secret> = seen.iter().collect();
    e2e_support::leak::assert_no_leak_anywhere(s, &refs, &[]);
}

/// Issue 20 item 4: `rescue --reset-auth` killed before its first step and after each step;
/// the next `rescue --reset-auth --yes` finishes it and ends at verify 0 every time.
#[test]
fn reset_auth_killed_at_every_step_is_finished_by_the_next_rescue() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    require_failpoints();
    let Some(f) = rt.block_on(fixture_with("reset_auth_kills", "krt-reset-kill", |_| {})) else {
        return;
    };
    let s = &f.stack;
    let _rm = reset_auth::RemoveThrowaway(reset_auth::throwaway(s));
    shorten_health_timeout(s);
    let desired = env_value(s, PW_KEY);
    reset_auth::lose(s, &desired);
    let agreed = |what: &str| {
        rt.block_on(agreed(&f.engine, s))
            .unwrap_or_else(|e| panic!("{what}: planes split: {e}"))
    };
    reset_auth::run_kills(s, &desired, &agreed);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git must be installed");
    assert!(o.status.success(), "git {args:?}: {o:?}");
}

/// Issue 20 item 4b: after a rotation by the tool, with its own record of the value gone (a lost
/// state_dir), a hand edit committed to git and the pipeline's `compose up -d` destroy every
/// live copy: only compose.env's earlier version in its git history logs in. rescue finds it
/// and ends at verify 0.
#[test]
fn rescue_finds_the_password_in_compose_envs_git_history() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture_with(
        "rescue_git_history",
        "krt-rescue-githist",
        |_| {},
    )) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let r = tool(s, &["rotate", "--secret", "db-password"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let rotated = env_value(s, PW_KEY);
    // The operator's checkout tracks compose.env from here on (no remote).
    git(&s.dir, &["init", "-q", "-b", "main"]);
    std::fs::write(s.dir.join(".git/info/exclude"), "/*\n!/compose.env\n").unwrap();
    git(&s.dir, &["config", "user.name", "e2e"]);
    git(&s.dir, &["config", "user.email", "e2e@example.invalid"]);
    git(&s.dir, &["add", "compose.env"]);
    git(&s.dir, &["commit", "-q", "-m", "deploy"]);
    std::fs::remove_file(s.dir.join("state/last-committed/db-password.age")).unwrap();

    let hand = hand_edit_and_redeploy(&f, &rt, &["up", "-d"]);
    git(&s.dir, &["commit", "-q", "-am", "a new DB password"]);
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(
        r.stderr.contains("the password from git history"),
        "{}",
        r.text()
    );
    rescued_to(&f, &rt, &hand);
    e2e_support::leak::assert_no_leak_anywhere(s, &[&rotated, &hand, &s.env_password], &[]);
}

/// Issue 20 items 4 and 7: the pipeline's drift as `rehearsal up --drift=pipeline` makes it (a
/// hand edit, then `compose up -d` of the whole file: mongo recreated, so its init env holds
/// compose.env's value too and the old one survives nowhere). rescue finds nothing (exit 3);
/// `rescue --reset-auth --yes` ends at verify 0.
#[test]
fn the_pipelines_drift_is_ended_by_rescue_reset_auth() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture_with("rescue_pipeline", "krt-rescue-pipe", |o| {
        o.drift = true;
        o.pipeline = true;
    })) else {
        return;
    };
    let s = &f.stack;
    let _rm = reset_auth::RemoveThrowaway(reset_auth::throwaway(s));
    shorten_health_timeout(s);
    let init = e2e_support::referee::docker_env(&s.mongo, "MONGO_INITDB_ROOT_PASSWORD")
        .expect("mongo's init env");
    assert!(init.ct_eq(&s.env_password), "mongo was recreated with B");
    assert_eq!(
        pymongo_login(s, &s.mongo_password),
        0,
        "its data still on A"
    );
    assert_eq!(pymongo_login(s, &s.env_password), 1);

    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr.contains("no known password logs in"),
        "{}",
        r.text()
    );
    let r = reset_auth::reset(s, "");
    assert_eq!(r.code, Some(0), "{}", r.text());
    rescued_to(&f, &rt, &s.env_password);
    assert_eq!(
        pymongo_login(s, &s.mongo_password),
        1,
        "A no longer logs in"
    );
    e2e_support::leak::assert_no_leak_anywhere(s, &[&s.env_password, &s.mongo_password], &[]);
}
