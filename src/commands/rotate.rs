//! `rotate`: pre-flight (nothing changes on failure), stage a new secret in the journal, then
//! the transaction: snapshot → change-db → write-env → recreate core, each periphery → commit.

use crate::cli::RotateArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::execute::{self, Direction, Live};
use crate::planes::live::Staged;
use crate::planes::Loaded;
use crate::secret::Secret;
use crate::txn::lock::RunLock;
use crate::txn::{new_journal, RunContext, Step};

pub fn run(args: RotateArgs) -> Result<i32> {
    let cfg = Config::load(args.config.config.as_deref())?;
    super::runtime()?.block_on(rotate(&cfg, args))
}

async fn rotate(cfg: &Config, args: RotateArgs) -> Result<i32> {
    if let Some(age) = args.if_older_than {
        if !crate::metrics::rotation_due(cfg, args.secret.name(), age, super::quiet())? {
            return Ok(0);
        }
    }
    let _lock = RunLock::acquire_guarding(&cfg.lock_path(), &cfg.compose_env)?;
    execute::refuse_if_pending(cfg)?;

    // Pre-flight: every check the run depends on, before anything changes.
    let Loaded {
        env,
        dk,
        keys,
        user,
        target,
        holders,
    } = Loaded::load(cfg).await?;
    let old = keys.env_password(&env)?;
    match login_works(&target, &old).await {
        LoginOutcome::Accepted => {}
        LoginOutcome::Rejected => {
            return Err(Error::Precondition(format!(
                "{}'s {} does not log in to MongoDB at {} as {user}: the planes have drifted; run `komodo-rotate rescue`",
                env.file.name(),
                keys.compose_password_key,
                target.server()
            )))
        }
        LoginOutcome::Unreachable(r) => return Err(Error::Precondition(r)),
    }
    for name in &holders {
        // Checks leftovers and that the image is present locally; changes nothing.
        crate::docker::Recreate::prepare(&dk.engine, name, crate::docker::EnvPatch::new(), 0)
            .await?;
    }
    crate::fsutil::check_dir_writable(&cfg.compose_env)?;
    // The edit write-env will make, made in memory now: a file it would refuse (a duplicated
    // key, a rule it cannot honour) fails here, before Mongo is touched.
    env.file
        .with_values(&env.ids, &[(keys.compose_password_key.as_str(), &old)])?;
    if let Some(rule) = env.file.clear_text_rule(&keys.compose_password_key) {
        return Err(Error::Precondition(format!(
            "{}: {} is stored in clear text by the file's rule ({rule}); re-encrypt the file with a rule that encrypts this key before rotating",
            env.file.name(),
            keys.compose_password_key
        )));
    }

    let mut steps = vec![Step::Snapshot, Step::ChangeDb, Step::WriteEnv];
    steps.extend(holders.iter().map(|c| Step::Recreate {
        container: c.clone(),
    }));
    steps.push(Step::Commit);
    // The git plane's pre-flight (read-only) and its steps, when [git] resolves to commit/push.
    let git = crate::planes::git_steps::preflight(cfg)?;
    crate::planes::git_steps::add_steps(&mut steps, git.as_ref());

    if args.dry_run {
        print_plan(&steps);
        println!("pre-flight: ok (compose.env decrypts, its password logs in, containers and images present)");
        return Ok(0);
    }

    let staged = Staged {
        old,
        new: Secret::generate()
            .map_err(|e| Error::Precondition(format!("no randomness for a new secret: {e}")))?,
    };
    let context = RunContext {
        compose_env: cfg.compose_env.clone(),
        env_key: keys.compose_password_key.clone(),
        mongo_user: user,
        container_keys: keys.containers.clone(),
        env_already_new: false,
        git,
    };
    let mut journal = new_journal("rotate", args.secret.name(), context, steps);
    journal.sealed_secrets = Some(staged.seal(&env.file.recipients())?);
    journal.persist(&cfg.journal_dir())?;
    crate::txn::runner::failpoint("after:stage")?;
    let live = Live {
        cfg,
        ids: &env.ids,
        engine: dk.engine.clone(),
        target,
    };
    let code = execute::execute(live, journal, staged, Direction::Forward).await?;
    println!(
        "rotated {}: every plane holds the new value",
        args.secret.name()
    );
    Ok(code)
}

pub fn print_plan(steps: &[Step]) {
    println!("plan ({} steps):", steps.len());
    for (i, s) in steps.iter().enumerate() {
        println!("  {}. {:<28} {}", i + 1, s.name(), s.describe());
        println!("     {:<28} undo: {}", "", s.describe_undo());
    }
}
