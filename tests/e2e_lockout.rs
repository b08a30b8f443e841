//! Issue 25, end to end on the rehearsal stack: a pending run plus a second fault still ends at
//! verify 0 through the tool's own commands.
//! - The undo of a recreate whose original is gone recreates the container from the sealed
//!   snapshot with the values it had, and a SIGKILL at every point of that two-phase recreate
//!   (before it, after each of its steps) is finished by the next `resume` (all old, exit 4).
//! - The reproduction: a jwt-secret rotate SIGKILLed mid-run, the DB password edited by hand with
//!   the real `sops` and `docker-compose up -d --no-deps core periphery` (core crash-loops on the
//!   DB password), `rotate` refuses (3), `resume` finishes the JWT run and ends with exit 7 naming
//!   the other problem, `rescue` brings the DB password back in line, `verify` 0.
//! - A neighbour: db-password pending (killed after change-db) and a JWT drift on core made by
//!   hand: `resume` finishes the DB password (0) without being held by the JWT drift, verify shows
//!   only the jwt-secret drift, and `rotate --secret jwt-secret` is refused (3, drifted holder).

mod docker_support;
mod e2e_support;

use e2e_support::by_hand::{shorten_health_timeout, sops_set_by_hand};
use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine, EnvPatch, Snapshot};
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{Identities, SopsFile};
use komodo_testcontainers::stack::{self, Stack};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());
const JWT: &str = "KOMODO_JWT_SECRET";

fn env_value(s: &Stack, key: &str) -> Secret {
    let ids = Identities::from_key_file(&s.age_key()).unwrap();
    SopsFile::load(&s.compose_env())
        .unwrap()
        .decrypt(&ids)
        .unwrap()
        .get(key)
        .unwrap_or_else(|| panic!("compose.env has no {key}"))
}

async fn env_of(engine: &Engine, name: &str, key: &str) -> Option<Secret> {
    ContainerInfo::load(engine, name)
        .await
        .ok()
        .and_then(|c| c.env_value(key).cloned())
}

async fn exists(engine: &Engine, name: &str) -> bool {
    engine.try_inspect(name).await.unwrap().is_some()
}

/// The recreate steps of `rotate --secret jwt-secret`, in plan order (their containers).
fn recreate_targets(s: &Stack) -> Vec<String> {
    e2e_support::matrix::step_names(s, &["--secret", "jwt-secret"])
        .into_iter()
        .filter_map(|n| n.strip_prefix("recreate:").map(String::from))
        .collect()
}

async fn fixture(test: &str, project: &str) -> Option<Fixture> {
    require_failpoints();
    fixture_with(test, project, |_| {}).await
}

/// Defect 1: both recreates of a jwt-secret run are committed with their originals removed
/// (killed before commit, then the parked `-prev` containers removed, as compose or a committed
/// run's cleanup does); the commit then fails, and the rollback must recreate each container
/// from its snapshot. A SIGKILL before the restore and after each of its seven steps, each
/// followed by `resume`, which carries the same restore on; the last `resume` ends it: exit 4,
/// every plane back on the old JWT, nothing left over, verify 0.
#[test]
fn undo_recreates_from_the_snapshot_with_a_kill_at_every_point() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("undo_from_snapshot", "krt-lockout-undo")) else {
        return;
    };
    let s = &f.stack;
    let old = env_value(s, JWT);
    let targets = recreate_targets(s);
    assert!(targets.len() >= 2, "{targets:?}");

    let r = tool(
        s,
        &["rotate", "--secret", "jwt-secret"],
        &[("FAILPOINTS", "before:commit=return(crash)")],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let new = env_value(s, JWT);
    assert!(!new.ct_eq(&old));
    rt.block_on(async {
        for t in &targets {
            let prev = format!("{t}-prev");
            assert!(exists(&f.engine, &prev).await, "{prev} parked");
            f.engine.remove(&prev).await.unwrap();
        }
    });

    let mut points = vec!["before:restore:create-next".to_string()];
    points.extend(
        [
            "create-next",
            "stop-original",
            "park-original",
            "promote-next",
            "start-replacement",
            "health-gate",
            "commit",
        ]
        .iter()
        .map(|s| format!("after:restore:{s}")),
    );
    let mut rows = Vec::new();
    for p in &points {
        let res = tool(
            s,
            &["resume"],
            &[(
                "FAILPOINTS",
                &format!("before:commit=return;{p}=return(crash)"),
            )],
        );
        rows.push(format!("resume killed at {p:<32} signal {:?}", res.signal));
        assert_eq!(res.signal, Some(9), "{p}: {}", res.text());
        assert!(
            !res.stderr.contains("cannot undo"),
            "{p}: the undo refused: {}",
            res.text()
        );
    }
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(4), "{}", res.text());
    println!("\nrestore kill chain (undo of a committed recreate):");
    for r in &rows {
        println!("  {r}");
    }
    assert!(env_value(s, JWT).ct_eq(&old), "compose.env back on OLD");
    rt.block_on(async {
        for t in &targets {
            let v = env_of(&f.engine, t, JWT).await;
            assert!(v.is_some_and(|v| v.ct_eq(&old)), "{t} holds the old JWT");
            for leftover in [format!("{t}-next"), format!("{t}-prev")] {
                assert!(!exists(&f.engine, &leftover).await, "{leftover} left over");
            }
        }
    });
    assert!(!s.dir.join("state/journal/current.json").exists());
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert_no_leak(&[&old, &new, &s.env_password], &s.dir.join("state"));
}

/// Issue 25's reproduction, through the tool's own commands to verify 0.
#[test]
fn jwt_run_pending_and_a_hand_edited_db_password_end_at_verify_0() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("issue25_sequence", "krt-lockout-seq")) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let old_jwt = env_value(s, JWT);
    let first = recreate_targets(s).remove(0);

    // 1. A jwt-secret rotate killed mid-run, after its first recreate: a journal is pending.
    let r = tool(
        s,
        &["rotate", "--secret", "jwt-secret"],
        &[(
            "FAILPOINTS",
            &format!("after:recreate:{first}=return(crash)"),
        )],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let new_jwt = env_value(s, JWT);
    assert!(!new_jwt.ct_eq(&old_jwt));

    // 2. The DB password edited by hand, core and periphery redeployed: core crash-loops.
    let hand = Secret::generate().unwrap();
    sops_set_by_hand(s, PW_KEY, &hand);
    s.compose()
        .run_ok(&["up", "-d", "--no-deps", "core", "periphery"])
        .expect("compose up -d --no-deps core periphery");
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on the hand-edited DB password");

    // 3. A new run is refused beside the pending journal.
    let r = tool(s, &["rotate", "--secret", "db-password"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());

    // 4. resume finishes the JWT run (its value is live everywhere) and names the other problem.
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(7), "{}", res.text());
    assert!(
        res.stderr.contains("MongoDB rejected") && res.stderr.contains("rescue"),
        "{}",
        res.text()
    );
    assert!(!s.dir.join("state/journal/current.json").exists());
    let again = tool(s, &["resume"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.text());

    // 5. rescue is open, and brings Mongo and the holders to compose.env's DB password.
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    let now = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(now.ct_eq(&hand), "the hand-edited DB password is live");
    assert!(env_value(s, JWT).ct_eq(&new_jwt), "the JWT run committed");
    rt.block_on(async {
        for c in [&s.core, &s.periphery] {
            let v = env_of(&f.engine, c, JWT).await;
            assert!(
                v.is_some_and(|v| v.ct_eq(&new_jwt)),
                "{c} holds the new JWT"
            );
        }
    });
    assert_no_leak(
        &[&old_jwt, &new_jwt, &hand, &s.env_password],
        &s.dir.join("state"),
    );
}

/// Recreates `name` by hand (`docker rm -f` + `docker run` with the same config) with `key` set
/// to `value`.
async fn recreate_with(engine: &Engine, name: &str, key: &str, value: Secret) {
    let snap = Snapshot::take(engine, name, 0).await.expect("snapshot");
    let image = snap
        .inspect
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .expect("image");
    engine.stop(name, 5).await.expect("stop");
    engine.remove(name).await.expect("remove");
    engine
        .create(
            name,
            snap.create_body(&EnvPatch::new().set(key, value), &image),
        )
        .await
        .expect("create");
    engine.start(name).await.expect("start");
}

/// The neighbour: db-password pending (killed after change-db) while core gets another JWT
/// secret by hand. resume finishes the DB password (0); the JWT drift is verify's to show.
#[test]
fn db_password_pending_and_a_jwt_drift() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("db_pending_jwt_drift", "krt-lockout-nb")) else {
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
    let other = Secret::generate().unwrap();
    rt.block_on(recreate_with(&f.engine, &s.core, JWT, other.clone()));

    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(0), "{}", res.text());
    let now = rt
        .block_on(agreed(&f.engine, s))
        .expect("DB password agrees");
    assert!(
        !now.ct_eq(&s.env_password),
        "rolled forward to the new DB password"
    );
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    let drift: Vec<&str> = v.stdout.lines().filter(|l| l.contains("DRIFT")).collect();
    assert!(
        !drift.is_empty() && drift.iter().all(|l| l.starts_with("jwt-secret")),
        "only the JWT drift is left: {}",
        v.text()
    );
    // The way back for a drifted env-only holder is a redeploy from compose.env.
    s.compose()
        .run_ok(&["up", "-d", "--no-deps", "core"])
        .expect("compose up -d --no-deps core");
    rt.block_on(stack::wait_healthy(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core healthy");
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
    assert_no_leak(&[&now, &other, &s.env_password], &s.dir.join("state"));
}

/// Issue 18 item 9: a committed run whose removal of the parked originals failed. verify shows
/// each `-prev` as DRIFT (they hold the old secret), and the next run removes them and goes on
/// (it used to refuse: "-prev exists").
#[test]
fn a_committed_runs_leftover_prev_is_drift_and_the_next_run_removes_it() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("leftover_prev", "krt-lockout-prev")) else {
        return;
    };
    let s = &f.stack;
    let targets = recreate_targets(s);
    let r = tool(
        s,
        &["rotate", "--secret", "jwt-secret"],
        &[("FAILPOINTS", "commit:remove-prev=return")],
    );
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stderr.contains("left over"), "{}", r.text());
    let first = env_value(s, JWT);
    rt.block_on(async {
        for t in &targets {
            assert!(
                exists(&f.engine, &format!("{t}-prev")).await,
                "{t}-prev kept"
            );
        }
    });
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(1), "{}", v.text());
    let row = v
        .stdout
        .lines()
        .find(|l| l.starts_with("leftovers"))
        .unwrap_or_else(|| panic!("no leftovers row: {}", v.text()));
    assert!(row.contains("DRIFT"), "{row}");
    for t in &targets {
        assert!(row.contains(&format!("{t}-prev")), "{row}");
    }

    let r = tool(s, &["rotate", "--secret", "jwt-secret"], &[]);
    assert_eq!(r.code, Some(0), "the next run goes on: {}", r.text());
    assert!(!env_value(s, JWT).ct_eq(&first));
    rt.block_on(async {
        for t in &targets {
            assert!(
                !exists(&f.engine, &format!("{t}-prev")).await,
                "{t}-prev removed"
            );
        }
    });
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());
}

/// The running containers of `s`'s compose project, by the docker CLI.
fn running_containers(s: &Stack) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "--format", "{{.Names}}", "--filter"])
        .arg(format!(
            "label=com.docker.compose.project={}",
            stack::compose_project_name(&s.project)
        ))
        .output()
        .expect("docker ps");
    assert!(
        out.status.success(),
        "docker ps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// A reboot as the host sees it: the lock dir (a tmpfs under /run on a real host) emptied, and
/// every container that was running restarted (`docker restart`, as the daemon's restart
/// policy brings them back; a container the run had stopped, such as a parked `-prev`, stays
/// stopped, as `unless-stopped` keeps it). Returns the containers restarted.
fn reboot(s: &Stack) -> Vec<String> {
    let lock_dir = host_lock_dir(s);
    let emptied = e2e_support::leak::files_under(&lock_dir);
    assert!(
        emptied
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "pending")),
        "the killed run left its pending pointer in the lock dir: {emptied:?}"
    );
    std::fs::remove_dir_all(&lock_dir).unwrap();
    std::fs::create_dir_all(&lock_dir).unwrap();
    let running = running_containers(s);
    let out = Command::new("docker")
        .arg("restart")
        .args(&running)
        .output()
        .expect("docker restart");
    assert!(
        out.status.success(),
        "docker restart {running:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    running
}

/// Issue 25's neighbour: the reproduction with a reboot between the killed jwt-secret run and
/// the hand edit. The journal outlives the reboot (the lock dir, pointers included, is emptied),
/// so `rotate` still refuses naming it; `resume`, `rescue` reach verify 0, every plane read by
/// the outside referees.
#[test]
fn jwt_run_pending_and_a_hand_edited_db_password_with_a_reboot_in_between() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("issue25_reboot", "krt-lockout-reboot")) else {
        return;
    };
    let s = &f.stack;
    shorten_health_timeout(s);
    let old_jwt = referee_jwt(s);
    let targets = recreate_targets(s);
    let first = targets[0].clone();

    // 1. A jwt-secret rotate killed mid-run, after its first recreate: a journal is pending.
    let r = tool(
        s,
        &["rotate", "--secret", "jwt-secret"],
        &[(
            "FAILPOINTS",
            &format!("after:recreate:{first}=return(crash)"),
        )],
    );
    assert_eq!(r.signal, Some(9), "{}", r.text());
    let new_jwt = referee_jwt(s);
    assert!(!new_jwt.ct_eq(&old_jwt));
    let journal = s.dir.join("state/journal/current.json");
    assert!(journal.exists(), "a journal is pending");
    assert!(
        referee::docker_env(&first, JWT).is_some_and(|v| v.ct_eq(&new_jwt)),
        "{first} recreated with the new JWT (docker inspect)"
    );

    // 2. The reboot: lock dir emptied, every running container restarted.
    let restarted = reboot(s);
    for c in [&s.mongo, &s.core, &s.periphery] {
        assert!(restarted.contains(c), "{c} restarted: {restarted:?}");
    }
    assert!(
        referee::docker_env(&first, JWT).is_some_and(|v| v.ct_eq(&new_jwt)),
        "{first} keeps the new JWT across the restart"
    );
    assert!(journal.exists(), "the journal outlives the reboot");

    // 3. The DB password edited by hand, core and periphery redeployed: core crash-loops.
    let hand = Secret::generate().unwrap();
    sops_set_by_hand(s, PW_KEY, &hand);
    assert!(
        sops_value(s).is_some_and(|v| v.ct_eq(&hand)),
        "sops reads the hand edit"
    );
    s.compose()
        .run_ok(&["up", "-d", "--no-deps", "core", "periphery"])
        .expect("compose up -d --no-deps core periphery");
    rt.block_on(stack::wait_crash_loop(
        &f.engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on the hand-edited DB password");
    assert_eq!(pymongo_login(s, &hand), 1, "Mongo rejects the hand edit");

    // 4. A new run is still refused beside the pending journal, after the reboot.
    let r = tool(s, &["rotate", "--secret", "db-password"], &[]);
    assert_eq!(r.code, Some(3), "{}", r.text());
    assert!(
        r.stderr.contains("journal") && r.stderr.contains("resume"),
        "the refusal names the pending journal: {}",
        r.text()
    );
    println!("rotate after the reboot: exit 3: {}", r.stderr.trim());

    // 5. resume finishes the JWT run and names the other problem; rescue; verify 0.
    let res = tool(s, &["resume"], &[]);
    assert_eq!(res.code, Some(7), "{}", res.text());
    assert!(
        res.stderr.contains("MongoDB rejected") && res.stderr.contains("rescue"),
        "{}",
        res.text()
    );
    assert!(!journal.exists());
    let again = tool(s, &["resume"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.text());
    let r = tool(s, &["rescue"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let v = tool(s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "{}", v.text());

    // The planes, by the referees: sops, pymongo, docker inspect.
    let now = rt.block_on(agreed(&f.engine, s)).expect("planes agree");
    assert!(now.ct_eq(&hand), "the hand-edited DB password is live");
    assert!(referee_jwt(s).ct_eq(&new_jwt), "the JWT run committed");
    for c in [&s.core, &s.periphery] {
        assert!(
            referee::docker_env(c, JWT).is_some_and(|v| v.ct_eq(&new_jwt)),
            "{c} holds the new JWT (docker inspect)"
        );
    }
    for t in &targets {
        for leftover in [format!("{t}-next"), format!("{t}-prev")] {
            assert!(
                !referee::container_exists(&leftover),
                "{leftover} left over"
            );
        }
    }
    e2e_support::leak::assert_no_leak_anywhere(
        s,
        &[&old_jwt, &new_jwt, &hand, &s.env_password],
        &[],
    );
}

/// compose.env's JWT secret, by the real sops.
fn referee_jwt(s: &Stack) -> Secret {
    sops_get(s, JWT).expect("the real sops reads the JWT secret")
}
