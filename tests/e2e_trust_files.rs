//! Issue 9 on the rehearsal stack and a real Docker engine, the file-and-journal items: a journal
//! that cannot be written mid-run ends in exit 5 (never 3) with the planes rolled back from the
//! in-memory journal and the stale journal kept; an edit of compose.env made by our own
//! `sops set` between write-env and a forced failure is never clobbered by the undo (the undo
//! sets only the run's key back on top of it: exit 4, the edit kept).

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::*;
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, StackOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn env_value(s: &komodo_testcontainers::stack::Stack, key: &str) -> Option<Secret> {
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(key)
}

#[test]
fn journal_failures_and_foreign_edits_end_in_exit_5() {
    let rt = rt();
    let test = "e2e_trust_files";
    let Some(engine) = rt.block_on(engine_or_skip(test)) else {
        return;
    };
    if !require_tools(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = "krt-e2e-trustfiles";
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = rt.block_on(images(&engine));
    let opts = StackOptions::new(project, dir.path(), &bin);
    let s = rt
        .block_on(stack::up(&engine, &opts))
        .expect("rehearsal up");
    rt.block_on(stack::wait_healthy(
        &engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core healthy");
    let journal = s.dir.join("state/journal/current.json");
    let before = rt.block_on(agreed(&engine, &s)).expect("agreed at start");

    // 1. The disk fills up after change-db: writes 1 (stage) .. 5 (change-db done) succeed,
    //    every later one fails. Mongo was changed, so this is exit 5, not 3.
    let r = tool(
        &s,
        &["rotate"],
        &[("FAILPOINTS", "journal:persist=5*off->return")],
    );
    assert_eq!(r.code, Some(5), "{}", r.text());
    assert!(
        r.stderr.contains("runbooks/interrupted-run.md"),
        "{}",
        r.text()
    );
    assert!(r.stderr.contains("journal"), "{}", r.text());
    let now = rt
        .block_on(agreed(&engine, &s))
        .expect("rolled back from memory");
    assert!(
        now.ct_eq(&before),
        "the in-memory rollback must restore OLD"
    );
    assert!(journal.exists(), "the stale journal is kept");
    // The stale journal says change-db is done, but Mongo accepts OLD (the in-memory rollback
    // put it back): resume rolls back, replaying the (idempotent) undos: exit 4, nothing else.
    let r = tool(&s, &["resume"], &[]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(
        r.stderr
            .contains("rolling back (Mongo still accepts the old password)"),
        "{}",
        r.text()
    );
    e2e_support::fired::assert_fired(&r, "resume of the stale journal", &[], &[]);
    assert!(!journal.exists(), "{}", r.text());
    let now = rt
        .block_on(agreed(&engine, &s))
        .expect("agreed after resume");
    assert!(now.ct_eq(&before));

    // 2. Our own `sops set` of another key lands between write-env and a failure of the next
    //    step: the undo must keep that edit and say which file changed (exit 5).
    let original = std::fs::read(s.compose_env()).unwrap();
    let fp = format!(
        "after:write-env=sleep(3000);before:recreate:{}=return",
        s.core
    );
    let _watch = e2e_support::leak::watch(&s);
    let run = Command::new(BIN)
        .args(["rotate", "--config"])
        .arg(s.config())
        .env("KOMODO_ROTATE_LOCK_DIR", host_lock_dir(&s))
        .env("FAILPOINTS", &fp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::fs::read(s.compose_env()).unwrap() == original {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "write-env never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // write-env renamed the file; it still holds our processes' lock on the directory
    // (fsutil::EnvLock) until the step returns. Wait for that release (the run is then in its
    // failpoint sleep), else a pause here would keep the lock and `sops set` would wait it out.
    let dir = std::fs::File::open(s.compose_env().parent().unwrap()).unwrap();
    while dir.try_lock().is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "write-env never released the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    dir.unlock().unwrap();
    // The run stays stopped in its failpoint sleep while the edit lands, however loaded the host.
    let stopped = pause(run.id());
    let mut set = Command::new(BIN)
        .args(["sops", "set"])
        .arg(s.compose_env())
        .arg("OPERATOR_NOTE")
        .arg("--age-key-file")
        .arg(s.age_key())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(b"edited-meanwhile\n")
        .unwrap();
    let set = finish(set.wait_with_output().unwrap());
    assert_eq!(set.code, Some(0), "{}", set.text());
    drop(stopped);
    let r = finish(run.wait_with_output().unwrap());
    // The undo sets only the run's key back on top of the edited file (issue 18's inverse
    // edit): a rollback (exit 4) that keeps the other key's edit. Before it, this was exit 5 with
    // the journal kept and every `resume` stopping there again.
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert_eq!(
        env_value(&s, "OPERATOR_NOTE").map(|v| v.expose().to_owned()),
        Some("edited-meanwhile".to_owned()),
        "the foreign edit was clobbered"
    );
    let pw = env_value(&s, "KOMODO_DATABASE_PASSWORD").expect("compose.env's DB password");
    assert!(pw.ct_eq(&before), "the run's key is back on the old value");
    assert!(!journal.exists(), "a rollback clears its journal");
    let now = rt
        .block_on(agreed(&engine, &s))
        .expect("agreed after the rollback");
    assert!(now.ct_eq(&before), "every plane on the old value");
    let note = Secret::new("edited-meanwhile".into());
    e2e_support::leak::assert_no_leak_anywhere(&s, &[&before, &s.passkey, &note], &[]);
    drop(cleanup);
}
