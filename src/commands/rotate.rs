//! `rotate`: for each `--secret KIND` in turn, the kind's pre-flight (nothing changes on
//! failure) and plan, a new value staged in the journal, then the transaction and its proof.
//! `--list` prints the kinds this deployment supports.

use crate::cli::RotateArgs;
use crate::config::Config;
use crate::error::{Changed, Error, Result};
use crate::kinds::{Ask, Kind};
use crate::planes::execute::{self, Direction, Live};
use crate::planes::live::Staged;
use crate::planes::{git_steps, steps, Loaded};
use crate::secret::Generator;
use crate::txn::lock::RunLock;
use crate::txn::new_journal;

pub fn run(args: RotateArgs) -> Result<i32> {
    let cfg = Config::load(args.config.config.as_deref())?;
    super::runtime()?.block_on(rotate(&cfg, args))
}

/// The kinds asked for, in order, each once; none asked: the DB password.
fn kinds_of(args: &RotateArgs) -> Vec<Kind> {
    let mut out: Vec<Kind> = Vec::new();
    for k in &args.secret {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    if out.is_empty() {
        out.push(Kind::db_password());
    }
    out
}

async fn rotate(cfg: &Config, args: RotateArgs) -> Result<i32> {
    if args.list {
        return list(cfg).await;
    }
    let kinds = kinds_of(&args);
    // The lock and the pending check come before "not due": a scheduled run must surface an
    // interrupted run (exit 3 naming it), never hide it behind "nothing to do".
    let _lock = RunLock::acquire_guarding(&cfg.lock_path(), &cfg.compose_env)?;
    execute::refuse_if_pending(cfg)?;
    let mut due = Vec::new();
    for k in kinds {
        match args.if_older_than {
            Some(age) if !crate::metrics::rotation_due(cfg, &k.name(), age, super::quiet())? => {}
            _ => due.push(k),
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    // Several kinds run one after another, each its own transaction with its own proof: a kind
    // that fails rolls back alone, and the kinds before it stay committed (said below).
    let mut done: Vec<String> = Vec::new();
    let mut code = 0;
    for kind in &due {
        let one = async {
            execute::refuse_if_pending(cfg)?;
            crate::planes::leftovers::remove_committed(cfg).await?;
            rotate_one(cfg, &args, kind).await
        }
        .await;
        match one {
            Ok(c) => {
                code = code.max(c);
                done.push(kind.name());
            }
            // What the kinds before it committed stays changed: the code and the message say so.
            Err(e) if !done.is_empty() => {
                return Err(e.with_change_note(Changed::Yes, &committed_before(&done, kind)))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(code)
}

async fn rotate_one(cfg: &Config, args: &RotateArgs, kind: &Kind) -> Result<i32> {
    // Pre-flight: every check the run depends on, before anything changes.
    let loaded = Loaded::load(cfg).await?;
    let generator = Generator::new(args.length, args.charset).map_err(Error::Usage)?;
    let new = generator
        .generate()
        .map_err(|e| Error::Precondition(format!("no randomness for a new secret: {e}")))?;
    #[cfg(feature = "failpoints")]
    let new = test_new_value(new);
    let plan = kind
        .plan(Ask {
            cfg,
            loaded: &loaded,
            new,
            local_only: args.local_only,
        })
        .await?;
    let mut steps = plan.steps;
    let mut context = plan.context;
    // The git plane's pre-flight (read-only) and its steps, when [git] resolves to commit/push.
    context.git = git_steps::preflight(cfg)?;
    git_steps::add_steps(&mut steps, context.git.as_ref());

    if args.dry_run {
        println!("{kind}: {}", kind.about());
        steps::print_plan(&steps);
        for b in &plan.before {
            println!("effect: {b}");
        }
        for a in &plan.after {
            println!("after: {a}");
        }
        println!("pre-flight: ok (compose.env decrypts, the live value checks out, containers and images present)");
        return Ok(0);
    }
    for b in &plan.before {
        eprintln!("komodo-rotate: warning: {b}");
    }
    let staged = Staged {
        old: plan.old,
        new: plan.new,
    };
    let mut journal = new_journal(
        "rotate",
        &kind.name(),
        &cfg.compose_env,
        context.to_value(),
        steps,
    );
    journal.sealed_secrets = Some(staged.seal(&loaded.env.file.recipients())?);
    journal.persist(&cfg.journal_dir())?;
    crate::txn::runner::failpoint("after:stage")?;
    let live = Live {
        cfg,
        ids: &loaded.env.ids,
        engine: loaded.dk.engine.clone(),
        target: loaded.target.clone(),
    };
    let code = execute::execute(live, journal, staged, Direction::Forward).await?;
    if code == crate::error::exit::OK {
        println!("rotated {kind}: every plane holds the new value");
    }
    for a in &plan.after {
        println!("notice: {a}");
    }
    Ok(code)
}

fn committed_before(done: &[String], kind: &Kind) -> String {
    let keeps = if done.len() == 1 {
        "keeps its new value"
    } else {
        "keep their new values"
    };
    format!(
        "; {} committed before {kind} failed and {keeps} (proven)",
        done.join(", ")
    )
}

/// `rotate --list`: every kind, and for this deployment whether it can run or why not.
async fn list(cfg: &Config) -> Result<i32> {
    let loaded = Loaded::load(cfg).await?;
    match crate::planes::ferret::FerretPlane::find(&loaded.dk) {
        Ok(Some(f)) => println!("variant          ferretdb       {}", f.describe()),
        Ok(None) => println!("variant          mongo"),
        Err(e) => println!("variant          unknown        {e}"),
    }
    for k in Kind::all() {
        match k.available(&loaded) {
            Ok(()) => println!("{:<16} available      {}", k.name(), k.about()),
            Err(why) => println!("{:<16} not available  {why}", k.name()),
        }
    }
    Ok(0)
}

/// Test builds only (`--features failpoints`): `FAILPOINTS=rotate:new-value=return(VALUE)` makes
/// VALUE the new secret, so the tests reach the refusals of values the generator never makes
/// (a URL-unsafe one on the FerretDB variant). Compiled out of release builds.
#[cfg(feature = "failpoints")]
fn test_new_value(generated: crate::secret::Secret) -> crate::secret::Secret {
    fail::fail_point!("rotate:new-value", |arg: Option<String>| arg
        .filter(|v| !v.is_empty())
        .map(crate::secret::Secret::new)
        .unwrap_or_else(|| generated.clone()));
    generated
}
