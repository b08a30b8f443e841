//! `rescue --reset-auth` (issue 20 item 4): runbooks/no-password-survives.md as a transaction.
//! When no known password logs in, MongoDB's root password is set to compose.env's value
//! through a throw-away mongod on the same data volume, started without access control (the
//! official image adds `--auth` only when its `MONGO_INITDB_ROOT_*` variables are set):
//!
//! 1. stop-mongo (undo: start it), 2. start-throwaway (the same image on the same volumes, no
//!    env, `--auth` left out, published on 127.0.0.1 only; undo: remove it), 3. set-password
//!    (`updateUser` there; no undo: the old value is unknown, and compose.env's is the desired
//!    one), 4. remove-throwaway, 5. start-mongo. On any failure the throw-away is removed and
//!    mongo started (undos newest first, each reported like a step).
//!
//! A marker in the state_dir (`reset-auth.json`: container names only) is written before
//! mongo is stopped and removed once rescue's proof has passed, so a kill at any point is
//! finished by the next `rescue`: [`recover`] removes the throw-away and starts mongo, and that
//! rescue recreates every holder and proves the planes agree.

use crate::config::Config;
use crate::docker::{throwaway, ContainerInfo, Engine};
use crate::error::{Changed, Error, Result};
use crate::mongo::{login_works, LoginOutcome, MongoAdmin, Target};
use crate::secret::Secret;
use crate::txn::failpoint::failpoint;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(super) const STEPS: [&str; 5] = [
    "stop-mongo",
    "start-throwaway",
    "set-password",
    "remove-throwaway",
    "start-mongo",
];
const SUFFIX: &str = "-reset-auth";
const LABEL: &str = "komodo-rotate.reset-auth-of";
const PORT: &str = "27017/tcp";
/// How long a started mongod may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct Marker {
    mongo: String,
    throwaway: String,
}

fn marker_path(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("reset-auth.json")
}

/// Refuses before anything is read or changed when consent cannot be asked: no `--yes`, and
/// stdin is not a terminal (or is taken by `--prior-password-from -`).
pub(super) fn refuse_without_consent(yes: bool, stdin_taken: bool) -> Result<()> {
    if yes || (!stdin_taken && std::io::stdin().is_terminal()) {
        return Ok(());
    }
    Err(Error::Precondition(
        "rescue --reset-auth may stop MongoDB and asks first, but stdin is not a terminal: pass --yes to consent; nothing was changed".into(),
    ))
}

pub(super) fn ask(yes: bool, mongo: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if super::confirmed(&format!(
        "no known password logs in. Stop {mongo}, set its root password to compose.env's value through a throw-away container on its volume, and start it again?"
    ))? {
        return Ok(());
    }
    Err(Error::Precondition(format!(
        "not confirmed: {mongo} was not stopped; nothing was changed"
    )))
}

/// Ends a reset-auth a kill interrupted: removes its throw-away and starts mongo. `true` when
/// one was found (its marker stays until [`finish`]: the caller then recreates every holder).
pub(super) async fn recover(cfg: &Config) -> Result<bool> {
    let path = marker_path(cfg);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let m: Marker = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Precondition(format!(
            "{}: not a reset-auth marker ({e}); nothing was changed",
            path.display()
        ))
    })?;
    let engine = Engine::connect().await?;
    eprintln!(
        "komodo-rotate: finishing an interrupted reset-auth ({}): removing {} and starting {}",
        path.display(),
        m.throwaway,
        m.mongo
    );
    engine.remove(&m.throwaway).await?;
    engine.start(&m.mongo).await?;
    Ok(true)
}

/// Drops the marker once rescue's proof passed.
pub(super) fn finish(cfg: &Config) -> Result<()> {
    let path = marker_path(cfg);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Waits until `target` answers (accepting or refusing `pw`), up to [`ANSWER_WITHIN`].
pub(super) async fn wait_answering(target: &Target, pw: &Secret) -> Result<LoginOutcome> {
    // Short tries: a mongod still starting would cost a whole selection timeout per try.
    let quick = target.clone().with_timeout(Duration::from_secs(2));
    let t0 = Instant::now();
    loop {
        match login_works(&quick, pw).await {
            LoginOutcome::Unreachable(_) if t0.elapsed() < ANSWER_WITHIN => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            LoginOutcome::Unreachable(r) => return Err(Error::Precondition(r)),
            o => return Ok(o),
        }
    }
}

pub(super) fn print_plan(mongo: &str) {
    let tw = format!("{mongo}{SUFFIX}");
    let what = [
        format!("stop {mongo}"),
        format!("start {tw}: {mongo}'s image on its volumes, no env, without --auth, published on 127.0.0.1 only"),
        "updateUser {pwd: compose.env's value} there".into(),
        format!("remove {tw}"),
        format!("start {mongo}, then recreate every holder and prove the planes agree"),
    ];
    println!("reset-auth (no known password logs in):");
    for (i, (name, w)) in STEPS.iter().zip(what).enumerate() {
        println!("  {}. {name:<17} {w}", i + 1);
    }
}

fn progress(i: usize, name: &str, ok: bool, t0: Instant) {
    eprintln!(
        "[{}/{}] {name} ... {} ({} ms)",
        i + 1,
        STEPS.len(),
        if ok { "ok" } else { "FAILED" },
        t0.elapsed().as_millis()
    );
}

/// Runs the reset on `mongo` (the caller asked): afterwards mongo runs again and its
/// root user (`target`'s) has `desired`. On failure everything is undone but the password.
pub(super) async fn reset(
    cfg: &Config,
    engine: &Engine,
    mongo: &ContainerInfo,
    target: &Target,
    desired: &Secret,
) -> Result<()> {
    let tw = format!("{}{SUFFIX}", mongo.name);
    if let Some(c) = engine.try_inspect(&tw).await? {
        let ours = c
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.get(LABEL) == Some(&mongo.name));
        if !ours {
            return Err(Error::Precondition(format!(
                "a container named {tw} exists and is not a reset-auth throw-away of {}; remove or rename it; nothing was changed",
                mongo.name
            )));
        }
        engine.remove(&tw).await?;
    }
    crate::txn::lock::ensure_private_dir(&cfg.state_dir)?;
    let marker = serde_json::to_vec(&Marker {
        mongo: mongo.name.clone(),
        throwaway: tw.clone(),
    })
    .map_err(|e| Error::Precondition(format!("reset-auth marker: {e}")))?;
    let path = marker_path(cfg);
    crate::fsutil::write_atomic(&path, &marker, crate::fsutil::Mode::Exactly(0o600))
        .map_err(|e| Error::io(&path, e))?;

    let mut begun: Option<usize> = None;
    let run = steps(engine, mongo, &tw, target, desired, &mut begun).await;
    let Err(cause) = run else {
        return Ok(());
    };
    // Undo newest first: the throw-away removed once its start began, mongo started once its
    // stop began (both idempotent, so a step that had already done this costs nothing).
    let mut undo_failed = Vec::new();
    for i in [1usize, 0] {
        if begun.is_none_or(|b| b < i) {
            continue;
        }
        let t0 = Instant::now();
        let r = if i == 1 {
            engine.remove(&tw).await
        } else {
            engine.start(&mongo.name).await
        };
        eprintln!(
            "[{}/{}] undo:{} ... {} ({} ms)",
            i + 1,
            STEPS.len(),
            STEPS[i],
            if r.is_ok() { "ok" } else { "FAILED" },
            t0.elapsed().as_millis()
        );
        if let Err(e) = r {
            undo_failed.push(format!("undo:{}: {e}", STEPS[i]));
        }
    }
    if !undo_failed.is_empty() {
        return Err(cause.with_change_note(
            Changed::Unknown,
            &format!(
                "; the undo failed ({}): run `komodo-rotate rescue` again, it finishes the interrupted reset-auth from {}",
                undo_failed.join("; "),
                path.display()
            ),
        ));
    }
    let now = match wait_answering(target, desired).await {
        Ok(LoginOutcome::Accepted) => "MongoDB accepts compose.env's password now: run `komodo-rotate rescue` to recreate the holders and prove it",
        Ok(_) => {
            finish(cfg)?;
            "MongoDB's password is unchanged"
        }
        Err(e) => {
            return Err(cause.with_change_note(
                Changed::Unknown,
                &format!(
                    "; {} was started again but does not answer ({e})",
                    mongo.name
                ),
            ))
        }
    };
    Err(cause.with_change_note(
        Changed::Yes,
        &format!(
            "; reset-auth undone: {tw} removed and {} started again; {now}",
            mongo.name
        ),
    ))
}

/// The five steps; `begun` is the last one begun (an undo covers a begun step too: a failure
/// inside it may have left its effect).
async fn steps(
    engine: &Engine,
    mongo: &ContainerInfo,
    tw: &str,
    target: &Target,
    desired: &Secret,
    begun: &mut Option<usize>,
) -> Result<()> {
    for (i, name) in STEPS.iter().enumerate() {
        let t0 = Instant::now();
        if let Err(e) = failpoint(&format!("before:{name}")) {
            progress(i, name, false, t0);
            return Err(e);
        }
        *begun = Some(i);
        let r = match i {
            0 => engine.stop(&mongo.name, 10).await.map_err(Error::from),
            1 => start_throwaway(engine, mongo, tw, target).await.map(drop),
            2 => set_password(engine, tw, target, desired).await,
            3 => engine.remove(tw).await.map_err(Error::from),
            _ => engine.start(&mongo.name).await.map_err(Error::from),
        };
        progress(i, name, r.is_ok(), t0);
        r?;
        failpoint(&format!("after:{name}"))?;
    }
    Ok(())
}

fn throwaway_target(target: &Target, port: u16) -> Result<Target> {
    let t = Target::loopback_no_auth(&format!("mongodb://127.0.0.1:{port}"), &target.user)?;
    Ok(t.with_auth_source(&target.auth_source)
        .with_timeout(Duration::from_secs(2)))
}

async fn start_throwaway(
    engine: &Engine,
    mongo: &ContainerInfo,
    tw: &str,
    target: &Target,
) -> Result<u16> {
    let spec = throwaway::Spec {
        like: &mongo.name,
        name: tw,
        port: PORT,
        drop_args: &["--auth"],
        labels: &[(LABEL, &mongo.name)],
    };
    let started = throwaway::start(engine, &spec).await?;
    let t = throwaway_target(target, started.host_port)?;
    let t0 = Instant::now();
    loop {
        match MongoAdmin::connect_no_auth(&t).await {
            Ok(admin) => {
                admin.close().await;
                return Ok(started.host_port);
            }
            Err(e) if t0.elapsed() >= ANSWER_WITHIN => {
                return Err(Error::Precondition(format!("{tw} does not answer: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn set_password(engine: &Engine, tw: &str, target: &Target, desired: &Secret) -> Result<()> {
    let port = ContainerInfo::load(engine, tw)
        .await?
        .loopback_port(PORT)
        .ok_or_else(|| Error::Precondition(format!("{tw} is not published on 127.0.0.1")))?;
    let t = throwaway_target(target, port)?;
    let admin = MongoAdmin::connect_no_auth(&t).await?;
    let r = admin.update_password(&target.user, desired).await;
    admin.close().await;
    r.map_err(|e| {
        Error::Precondition(format!(
            "{e} (does {tw} run without access control, and does {} exist in {}?)",
            target.user, target.auth_source
        ))
    })
}
