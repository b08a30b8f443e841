//! Issue 11, the v1 passkey in three phases, on the v1 rehearsal stack (docker-compose 1.29,
//! Komodo v1's compose.env with `PERIPHERY_PASSKEYS=${KOMODO_PASSKEY}`) and a real engine.
//!
//! The core stand-in calls periphery with its `KOMODO_PASSKEY` every 100 ms here
//! (`CORE_STANDIN_POLL_MS`, set on the stack's core below) and answers `GET /periphery` (does it
//! reach periphery now?) and `GET /periphery/polls` (what its polls saw since it started), so a
//! phase order that cuts core off is seen, not assumed.
//!
//! - By hand with our recreate driver: the WRONG order (core sends NEW before periphery accepts
//!   it) cuts core off; the right order never does, at any poll.
//! - `rotate --secret passkey`: ends with core reaching periphery on NEW only (periphery refuses
//!   OLD), compose.env back on the `${KOMODO_PASSKEY}` link (read with the real sops); a forced
//!   failure after each phase rolls back to OLD (exit 4) with core still reaching periphery;
//!   remote peripheries refused without `--local-only`, named with it.
//!
//! - The generic fault and SIGKILL matrices (`e2e_support::matrix`) over its step list: every
//!   step fails in turn (exit 4, all old, core reaching periphery), a SIGKILL after every step is
//!   resumed (compose.env's `KOMODO_PASSKEY` decides: all new from `send-new/write-env` on);
//!   then kills inside steps, chosen to reach each branch of resume's env-only decision.
//!
//! The cases share the engine (see `SERIAL` on how they are scheduled).

mod docker_support;
mod e2e_support;

use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine, EnvPatch, HealthGate, Recreate};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{http, Generation, Stack, PASSKEY_LINK};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One stack at a time under `cargo test` (this binary's tests are threads of one process).
/// Under nextest (one process per test) it serialises nothing: .config/nextest.toml's
/// test-threads bounds how many stacks run at once; no test relies on it for correctness.
static SERIAL: Mutex<()> = Mutex::new(());

/// Komodo's database on the stack's mongo, as core reaches it (compose.env's credentials).
async fn komodo_db(s: &Stack) -> mongodb::Database {
    let mut opts = mongodb::options::ClientOptions::parse(format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        s.mongo_port
    ))
    .await
    .unwrap();
    opts.credential = Some(
        mongodb::options::Credential::builder()
            .username(komodo_testcontainers::stack::DB_USERNAME.to_owned())
            .password(s.env_password.expose().to_owned())
            .source("admin".to_owned())
            .build(),
    );
    mongodb::Client::with_options(opts)
        .unwrap()
        .database("komodo")
}

fn gate() -> HealthGate {
    HealthGate {
        timeout: Duration::from_secs(60),
        stable_for: Duration::from_secs(2),
        ..HealthGate::default()
    }
}

/// The v1 rehearsal stack, with core polling periphery every 100 ms (a patch recreate of core,
/// so the poll interval is part of core's env from then on, through every later recreate).
async fn fixture(test: &str, project: &str) -> Option<Fixture> {
    require_failpoints();
    let f = fixture_with(test, project, |o| o.generation = Generation::V1).await?;
    let fast = EnvPatch::new().set("CORE_STANDIN_POLL_MS", Secret::new("100".into()));
    Recreate::prepare(&f.engine, &f.stack.core, fast, 0)
        .await
        .unwrap()
        .run(&gate())
        .await
        .expect("core with fast polls");
    Some(f)
}

/// Does core reach periphery now? (core's own check, made on this request)
async fn core_reaches(s: &Stack) -> Result<(), String> {
    match http::get_with_body(&format!("127.0.0.1:{}", s.core_port), "/periphery", &[]).await {
        Ok((200, _)) => Ok(()),
        Ok((code, body)) => Err(format!("HTTP {code}: {body}")),
        Err(e) => Err(e),
    }
}

/// Waits for core to answer (it was just recreated) and returns whether it reaches periphery.
async fn core_reaches_soon(s: &Stack) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let r = core_reaches(s).await;
        match &r {
            Err(e) if !e.starts_with("HTTP") && t0.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            _ => return r,
        }
    }
}

/// (accepted, rejected, unreachable) of core's polls since it started.
async fn polls(s: &Stack) -> (u64, u64, u64) {
    let (code, body) = http::get_with_body(
        &format!("127.0.0.1:{}", s.core_port),
        "/periphery/polls",
        &[],
    )
    .await
    .expect("polls");
    assert_eq!(code, 200, "{body}");
    let n = |k: &str| -> u64 {
        body.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {body:?}"))
    };
    (n("accepted"), n("rejected"), n("unreachable"))
}

/// Core's poll counts once `done` holds for them, polled every 100 ms (core polls every 100 ms);
/// fails naming `what` after 30 s instead of betting on a fixed window.
async fn polls_until(
    s: &Stack,
    what: &str,
    done: impl Fn((u64, u64, u64)) -> bool,
) -> (u64, u64, u64) {
    let t0 = Instant::now();
    loop {
        let p = polls(s).await;
        if done(p) {
            return p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}: polls (accepted, rejected, unreachable) = {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether periphery, called directly on its network address, accepts `passkey`.
async fn periphery_accepts(engine: &Engine, s: &Stack, passkey: &Secret) -> bool {
    let p = ContainerInfo::load(engine, &s.periphery).await.unwrap();
    let ip = p
        .ip_addresses
        .values()
        .find(|ip| !ip.is_empty())
        .expect("periphery's address")
        .clone();
    let code = http::get(
        &format!("{ip}:8120"),
        "/",
        &[("authorization", passkey.expose())],
    )
    .await
    .expect("periphery answers");
    assert!(code == 200 || code == 401, "HTTP {code}");
    code == 200
}

/// Recreates `name` with `key=value` through our driver (the phases "by hand").
async fn recreate(engine: &Engine, name: &str, key: &str, value: &Secret) {
    let patch = EnvPatch::new().set(key, value.clone());
    Recreate::prepare(engine, name, patch, 0)
        .await
        .unwrap()
        .run(&gate())
        .await
        .unwrap_or_else(|e| panic!("recreate {name}: {e}"));
}

fn join(a: &Secret, b: &Secret) -> Secret {
    Secret::new(format!("{},{}", a.expose(), b.expose()))
}

/// `key` in container `name`'s env, read by `docker inspect` (the CLI, not the tool's client).
async fn env_of(_engine: &Engine, name: &str, key: &str) -> Option<Secret> {
    referee::docker_env(name, key)
}

async fn no_leftovers(_engine: &Engine, s: &Stack) {
    let names: Vec<String> = [&s.core, &s.periphery]
        .iter()
        .flat_map(|n| [format!("{n}-next"), format!("{n}-prev")])
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let left: Vec<String> = referee::docker_inspect_many(&refs).into_keys().collect();
    assert!(left.is_empty(), "left over: {left:?}");
}

/// Every plane on `passkey`: compose.env (real sops) with the link kept, core's and periphery's
/// env, core reaching periphery, periphery refusing `other`.
async fn all_on(engine: &Engine, s: &Stack, passkey: &Secret, other: &Secret) {
    let core_key = sops_get(s, "KOMODO_PASSKEY").expect("KOMODO_PASSKEY");
    assert!(core_key.ct_eq(passkey), "compose.env's KOMODO_PASSKEY");
    assert_eq!(
        sops_get(s, "PERIPHERY_PASSKEYS").map(|v| v.expose().to_string()),
        Some(PASSKEY_LINK.to_string()),
        "compose.env keeps the link"
    );
    // One `docker inspect` (the CLI) of both containers.
    let found = referee::docker_inspect_many(&[&s.core, &s.periphery]);
    for (name, key) in [
        (&s.core, "KOMODO_PASSKEY"),
        (&s.core, "PERIPHERY_PASSKEYS"),
        (&s.periphery, "PERIPHERY_PASSKEYS"),
        (&s.periphery, "KOMODO_PASSKEY"),
    ] {
        assert!(
            found
                .get(name.as_str())
                .and_then(|c| referee::env_in(c, key))
                .is_some_and(|v| v.ct_eq(passkey)),
            "{name}'s {key}"
        );
    }
    core_reaches_soon(s).await.expect("core reaches periphery");
    assert!(periphery_accepts(engine, s, passkey).await);
    assert!(
        !periphery_accepts(engine, s, other).await,
        "periphery still accepts the other passkey"
    );
    no_leftovers(engine, s).await;
}

#[test]
fn by_hand_the_wrong_phase_order_cuts_core_off_and_the_right_order_never_does() {
    komodo_testcontainers::stack::real::require_standin(
        "by_hand_the_wrong_phase_order_cuts_core_off_and_the_right_order_never_does",
        komodo_testcontainers::stack::real::StandinControl::PasskeyProbe,
    );
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let Some(f) = fixture("passkey_phase_order", "krt-pk-order").await else {
            return;
        };
        let (e, s) = (&f.engine, &f.stack);
        let old = s.passkey.clone();
        // The stack is Komodo v1's shape: compose.env links the list, compose resolved the link.
        assert_eq!(
            sops_get(s, "PERIPHERY_PASSKEYS").map(|v| v.expose().to_string()),
            Some(PASSKEY_LINK.to_string())
        );
        assert!(env_of(e, &s.periphery, "PERIPHERY_PASSKEYS")
            .await
            .is_some_and(|v| v.ct_eq(&old)));
        core_reaches_soon(s)
            .await
            .expect("core reaches periphery at start");

        // The right order. 1: periphery accepts both (core, untouched, keeps polling with OLD).
        let new = Secret::generate().unwrap();
        recreate(e, &s.periphery, "PERIPHERY_PASSKEYS", &join(&old, &new)).await;
        core_reaches(s)
            .await
            .expect("accept-both: core reaches periphery");
        assert!(periphery_accepts(e, s, &old).await && periphery_accepts(e, s, &new).await);
        let (ok1, rejected, _) = polls(s).await;
        assert_eq!(
            rejected, 0,
            "a poll was refused while periphery was recreated"
        );
        assert!(ok1 > 0);
        // 2: core sends NEW.
        recreate(e, &s.core, "KOMODO_PASSKEY", &new).await;
        core_reaches_soon(s)
            .await
            .expect("send-new: core reaches periphery");
        // 3: periphery accepts NEW only; core's polls run through the recreate.
        recreate(e, &s.periphery, "PERIPHERY_PASSKEYS", &new).await;
        core_reaches(s)
            .await
            .expect("accept-new: core reaches periphery");
        assert!(!periphery_accepts(e, s, &old).await);
        // At least one more of core's polls went through after periphery accepts NEW only.
        let (seen, _, _) = polls(s).await;
        let (ok3, rejected, _) =
            polls_until(s, "a poll after accept-new", |(ok, _, _)| ok > seen).await;
        assert_eq!(rejected, 0, "a poll was refused in phases 2-3");
        assert!(ok3 > 0);

        // The wrong order: core sends NEW2 before periphery accepts it.
        let new2 = Secret::generate().unwrap();
        recreate(e, &s.core, "KOMODO_PASSKEY", &new2).await;
        let cut = core_reaches_soon(s)
            .await
            .expect_err("core must not reach periphery");
        assert!(cut.contains("401 request passkey invalid"), "{cut}");
        assert!(
            !cut.contains(new2.expose()) && !cut.contains(new.expose()),
            "{cut}"
        );
        let (_, rejected, _) =
            polls_until(s, "core's polls to see the refusal", |(_, rej, _)| rej > 0).await;
        assert!(rejected > 0, "core's polls never saw the refusal");
        // Core's log names the refusal (and never a passkey).
        let logs = e.logs_tail(&s.core, 50).await.unwrap().join("\n");
        assert!(
            logs.contains("passkey rejected (401 request passkey invalid)"),
            "{logs}"
        );
        assert!(!logs.contains(new2.expose()));
        // Repaired by letting periphery accept it.
        recreate(e, &s.periphery, "PERIPHERY_PASSKEYS", &join(&new, &new2)).await;
        core_reaches(s).await.expect("repaired");
    });
}

#[test]
fn rotate_passkey_ends_on_new_only_and_each_phase_failure_rolls_back_to_old() {
    komodo_testcontainers::stack::real::require_standin(
        "rotate_passkey_ends_on_new_only_and_each_phase_failure_rolls_back_to_old",
        komodo_testcontainers::stack::real::StandinControl::PasskeyProbe,
    );
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let Some(f) = fixture("passkey_rotate", "krt-pk-rotate").await else {
            return;
        };
        let (e, s) = (&f.engine, &f.stack);
        let old = s.passkey.clone();
        let stranger = Secret::generate().unwrap();
        all_on(e, s, &old, &stranger).await;

        // The plan, read-only.
        let r = tool(s, &["rotate", "--secret", "passkey", "--dry-run"], &[]);
        assert_eq!(r.code, Some(0), "{}", r.text());
        for phase in [
            "accept-both/write-env",
            "accept-both/recreate:",
            "send-new/write-env",
            "send-new/recreate:",
            "accept-new/write-env",
            "accept-new/recreate:",
        ] {
            assert!(r.stdout.contains(phase), "{phase}: {}", r.text());
        }
        let r = tool(s, &["rotate", "--list"], &[]);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("passkey") && l.contains(" available")),
            "{}",
            r.text()
        );

        // Issue 20: a Server with its own passkey in Komodo's database is refused by name
        // (exit 3, nothing changed); without it the run goes on.
        let servers = komodo_db(s)
            .await
            .collection::<mongodb::bson::Document>("Server");
        servers
            .insert_many([
                mongodb::bson::doc! {"name": "nas", "config": {"passkey": "its-own"}},
                mongodb::bson::doc! {"name": "plain", "config": {"passkey": ""}},
            ])
            .await
            .unwrap();
        let r = tool(s, &["rotate", "--secret", "passkey"], &[]);
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(
            r.stderr.contains("per-server passkey") || r.stderr.contains("their own passkey"),
            "{}",
            r.text()
        );
        assert!(
            r.stderr.contains(": nas.") && !r.stderr.contains("plain"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("its-own"), "{}", r.text());
        all_on(e, s, &old, &stranger).await;
        servers.delete_many(mongodb::bson::doc! {}).await.unwrap();

        // A forced failure after each phase: rolled back, exit 4, every plane on OLD, core
        // still reaching periphery.
        for fp in [
            format!("after:accept-both/recreate:{}", s.periphery),
            format!("after:send-new/recreate:{}", s.core),
            format!("after:accept-new/recreate:{}", s.periphery),
        ] {
            let r = tool(
                s,
                &["rotate", "--secret", "passkey"],
                &[("FAILPOINTS", &format!("{fp}=return"))],
            );
            assert_eq!(r.code, Some(4), "{fp}: {}", r.text());
            fired::assert_own_failpoint(s, &r, &format!("passkey {fp}"), &fp);
            all_on(e, s, &old, &stranger).await;
            println!("fault matrix row: passkey {fp:<52} exit 4  all old, core reaches periphery");
        }

        // Peripheries on other hosts: refused (exit 3, nothing changed) unless --local-only,
        // which names each in a warning (dry run: still nothing changed).
        let cfg = std::fs::read_to_string(s.config()).unwrap();
        std::fs::write(
            s.config(),
            format!("{cfg}\n[[periphery.remote]]\nname = \"nas\"\naddress = \"nas.lan:8120\"\n"),
        )
        .unwrap();
        let r = tool(s, &["rotate", "--secret", "passkey"], &[]);
        assert_eq!(r.code, Some(3), "{}", r.text());
        assert!(
            r.stderr.contains("nas (nas.lan:8120)") && r.stderr.contains("--local-only"),
            "{}",
            r.text()
        );
        let r = tool(
            s,
            &["rotate", "--secret", "passkey", "--local-only", "--dry-run"],
            &[],
        );
        assert_eq!(r.code, Some(0), "{}", r.text());
        assert!(r.stdout.contains("nas (nas.lan:8120)"), "{}", r.text());
        all_on(e, s, &old, &stranger).await;
        std::fs::write(s.config(), cfg).unwrap();

        // The rotation: every plane on NEW, periphery refuses OLD, no poll of core's was refused
        // after it started sending NEW.
        let r = tool(s, &["rotate", "--secret", "passkey"], &[]);
        assert_eq!(r.code, Some(0), "{}", r.text());
        let new = sops_get(s, "KOMODO_PASSKEY").unwrap();
        assert!(!new.ct_eq(&old));
        all_on(e, s, &new, &old).await;
        let (ok, rejected, _) = polls(s).await;
        assert!(
            ok > 0 && rejected == 0,
            "core's polls since send-new: {ok} ok, {rejected} refused"
        );
        e2e_support::leak::assert_no_leak_anywhere(s, &[&old, &new], &[]);
    });
}

#[test]
fn passkey_fault_and_sigkill_matrices_from_its_step_list() {
    komodo_testcontainers::stack::real::require_standin(
        "passkey_fault_and_sigkill_matrices_from_its_step_list",
        komodo_testcontainers::stack::real::StandinControl::PasskeyProbe,
    );
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = rt();
    let Some(f) = rt.block_on(fixture("passkey_matrices", "krt-pk-matrix")) else {
        return;
    };
    let (e, s) = (&f.engine, &f.stack);
    let stranger = Secret::generate().unwrap();
    // Every plane on compose.env's KOMODO_PASSKEY (all_on panics naming the split).
    let agreed = |_: &str| {
        let now = sops_get(s, "KOMODO_PASSKEY").expect("KOMODO_PASSKEY");
        rt.block_on(all_on(e, s, &now, &stranger));
        now
    };
    let k = e2e_support::matrix::Kind {
        args: &["--secret", "passkey"],
        decider: "send-new/write-env",
    };
    // One row per rollback and resume branch (the suite's longest test ran all 24 rows in 285 s):
    // the runner and the write-env/recreate steps are jwt-secret's, whose matrix keeps every row.
    e2e_support::matrix::run_branches(s, &k, &agreed);
    // Kills inside the steps that reach resume's env-only branches (the matrix is the suite's
    // longest test, so not inside all six plane steps): inside accept-both's periphery recreate
    // (a plane changed, compose.env's KOMODO_PASSKEY not NEW yet: back), inside send-new's
    // write-env (NEW just written, unrecorded: forward), plus the decider killed in flight
    // before it applies (back) and a kill inside the rollback (back, already rolling back).
    e2e_support::matrix::run_kills_inside_at(
        s,
        &k,
        Some(&["accept-both/recreate:", "send-new/write-env"]),
        &agreed,
    );
}
