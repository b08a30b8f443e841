//! `rescue`: the crash-loop rescue. compose.env is the desired state; Mongo still holds an older
//! password. Find that password without printing any candidate (the recovery ladder), then run
//! the transaction with it as OLD and compose.env's value as NEW: change-db, recreate, commit.

use crate::cli::RescueArgs;
use crate::config::Config;
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::mongo::{login_works, LoginOutcome, Target};
use crate::planes::execute::{self, Direction, Live};
use crate::planes::holders::{compare, Stand};
use crate::planes::live::Staged;
use crate::planes::{steps, EnvPlane, Loaded, RunContext};
use crate::secret::Secret;
use crate::txn::lock::RunLock;
use crate::txn::{new_journal, Step};
use std::io::{BufRead, Write};

mod candidates;
mod ferret;
mod git_history;
mod reset_auth;
mod takeover;

pub const RUNBOOK_NO_PASSWORD: &str = "runbooks/no-password-survives.md";

pub fn run(args: RescueArgs) -> Result<i32> {
    let cfg = Config::load(args.config.config.as_deref())?;
    if args.reset_auth && !args.dry_run {
        let stdin_taken = args
            .prior_password_from
            .as_deref()
            .is_some_and(|p| p.as_os_str() == "-");
        reset_auth::refuse_without_consent(args.yes, stdin_taken)?;
    }
    // Read stdin before anything else, so a prompt-less pipe is consumed once.
    let prior = match &args.prior_password_from {
        Some(p) => Some(read_prior(p)?),
        None => None,
    };
    super::runtime()?.block_on(rescue(&cfg, &args, prior))
}

fn read_prior(p: &std::path::Path) -> Result<Secret> {
    if p.as_os_str() == "-" {
        return crate::secret::read_secret(std::io::stdin().lock(), "stdin");
    }
    let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
    crate::secret::read_secret(f, &p.display().to_string())
}

/// One rung of the ladder: where a candidate came from (a name, never the value) and the value.
pub(super) struct Candidate {
    pub(super) source: String,
    pub(super) value: Secret,
}

async fn rescue(cfg: &Config, args: &RescueArgs, prior: Option<Secret>) -> Result<i32> {
    let _lock = RunLock::acquire_guarding(&cfg.lock_path(), &cfg.compose_env)?;
    // A pending run of this deployment is ended only once rescue is about to act
    // (takeover::end_pending: a db-password run taken over, its sealed OLD and NEW among the
    // candidates; an env-only kind's run finished first as resume does). A refusal leaves it
    // where it was. Any other pending run still refuses.
    // A reset-auth a kill interrupted is finished first (throw-away removed, mongo started):
    // this run then recreates every holder and proves the planes agree.
    let recovered = reset_auth::recover(cfg).await?;
    let mut pending = takeover::pending_of(cfg)?;
    if pending.is_none() {
        execute::refuse_if_pending(cfg)?;
    }
    crate::planes::leftovers::remove_committed(cfg).await?;
    let Loaded {
        env,
        dk,
        keys,
        user,
        target,
        holders: all_holders,
    } = Loaded::load(cfg).await?;
    let ferret_plane = crate::planes::ferret::FerretPlane::find(&dk).map_err(|e| {
        Error::Precondition(format!(
            "cannot tell the database variant: {e}; nothing was changed"
        ))
    })?;
    keys.refuse_unpatched()?;
    if let Some(f) = keys.files.first() {
        return Err(Error::Precondition(format!(
            "{} reads the DB password from {} ({}); rescue does not rewrite carrier files yet: nothing was changed. Put compose.env's password in that file, then run rescue again",
            f.readers.join(", "),
            f.host_path.display(),
            f.key
        )));
    }
    let desired = keys.env_password(&env)?;
    if let Some(rule) = env.file.clear_text_rule(&keys.compose_password_key) {
        return Err(Error::Precondition(format!(
            "{}: {} is stored in clear text by the file's rule ({rule}); re-encrypt the file with a rule that encrypts this key before rescuing",
            env.file.name(),
            keys.compose_password_key
        )));
    }
    if let Some(f) = &ferret_plane {
        let more = candidates::candidates(cfg, &env, &dk, &keys, prior);
        let ask = ferret::Ask {
            cfg,
            args,
            env: &env,
            dk: &dk,
            keys: &keys,
            user: &user,
            target,
            desired,
            pending: pending.take(),
            more,
        };
        return ferret::rescue(ask, f).await;
    }
    // A recreate the pending run left half done (`-next`/`-prev` beside a container it
    // recreates): put back to its original when the run is taken over, so rescue's own
    // recreate of it can act (issue 19). Read-only here.
    let partial = match &pending {
        Some(p) => crate::planes::partial::find(cfg, &env.ids, &dk.engine, p).await?,
        None => Vec::new(),
    };
    if args.yes && !args.reset_auth {
        return Err(Error::Usage(
            "--yes on a MongoDB deployment is consent for --reset-auth: pass both, or neither"
                .into(),
        ));
    }
    let first = if recovered {
        reset_auth::wait_answering(&target, &desired).await?
    } else {
        login_works(&target, &desired).await
    };
    let mut needs_reset = false;
    let mut return_plan = None;
    let (mut container_keys, mut forms) = (keys.containers.clone(), keys.forms.clone());
    let (old, plan) = match first {
        LoginOutcome::Accepted => {
            // Mongo already agrees with compose.env: only containers holding a stale value
            // need a recreate (a key set to another value; an unset one is not stale).
            let stale: Vec<String> = dk
                .dependants()
                .filter(|c| {
                    keys.containers.get(&c.name).is_some_and(|ks| {
                        compare(c, ks, &keys.forms, &desired)
                            .iter()
                            .any(|k| k.stand == Stand::Differs)
                    })
                })
                .map(|c| c.name.clone())
                .collect();
            let mut stale = if recovered {
                all_holders.clone()
            } else {
                stale
            };
            // A half-done recreate is put back to the original (an old value): recreated too.
            for p in partial
                .iter()
                .filter(|p| all_holders.iter().any(|h| h == p.name()))
            {
                if !stale.iter().any(|c| c == p.name()) {
                    stale.push(p.name().to_string());
                }
            }
            if stale.is_empty() {
                // Nothing for rescue to do, so nothing to take over: a pending run is resume's
                // (exit 3 naming it), never hidden behind "nothing to rescue" (the campaign's
                // seed 1 saw exit 0 beside a pending journal).
                if pending.is_some() {
                    execute::refuse_if_pending(cfg)?;
                }
                reset_auth::finish(cfg)?;
                println!("nothing to rescue: compose.env's password logs in and every container holds it");
                return Ok(0);
            }
            let mut plan = vec![steps::snapshot()];
            plan.extend(stale.iter().map(|c| steps::recreate(c)));
            plan.push(steps::commit());
            (desired.clone(), plan)
        }
        LoginOutcome::Unreachable(r) => return Err(Error::Precondition(r)),
        LoginOutcome::Rejected => {
            let mut ladder = takeover::tool_records(cfg, &env.ids, pending.as_ref());
            ladder.extend(git_history::candidates(
                cfg,
                &env.ids,
                &keys.compose_password_key,
            ));
            ladder.extend(candidates::candidates(cfg, &env, &dk, &keys, prior));
            let old = match climb(&target, &ladder, &desired).await? {
                Ok(old) => old,
                Err(_) if args.reset_auth => {
                    // The last resort, run below once the pre-flight passed: compose.env's
                    // value is set in Mongo, then every holder is recreated and proven.
                    needs_reset = true;
                    let mut plan = vec![steps::snapshot()];
                    plan.extend(all_holders.iter().map(|c| steps::recreate(c)));
                    plan.push(steps::commit());
                    return_plan = Some(plan);
                    desired.clone()
                }
                Err(none) => {
                    // No value logs in, the pending run's own included: its resume cannot
                    // decide either. A refusal changes nothing, the journal included (the
                    // campaign's seed 3182008924 saw exit 3 after the journal had moved):
                    // `rescue --reset-auth` takes the run over once it acts.
                    if let Some(p) = &pending {
                        return Err(Error::Precondition(format!(
                            "{}; the pending {} run {} stays in {}: `rescue --reset-auth` takes it over when it acts",
                            none,
                            p.command,
                            p.run_id,
                            cfg.journal_dir().display()
                        )));
                    }
                    return Err(Error::Precondition(none));
                }
            };
            let plan = match return_plan {
                Some(plan) => plan,
                None => {
                    let mut plan = vec![steps::snapshot(), steps::change_db()];
                    plan.extend(all_holders.iter().map(|c| steps::recreate(c)));
                    // Containers outside the roles holding the old password: recreated too
                    // (planes::holders).
                    let (found, ck, fm) = keys.with_foreign(&dk.others, &old)?;
                    plan.extend(found.iter().map(|f| steps::recreate(&f.name)));
                    (container_keys, forms) = (ck, fm);
                    plan.push(steps::commit());
                    plan
                }
            };
            (old, plan)
        }
    };
    for container in plan
        .iter()
        .filter(|s| s.is(steps::RECREATE))
        .filter_map(|s| s.target.as_deref())
        .filter(|c| !partial.iter().any(|p| p.name() == *c))
    {
        crate::docker::Recreate::prepare(&dk.engine, container, crate::docker::EnvPatch::new(), 0)
            .await?;
    }
    if args.dry_run {
        if needs_reset {
            reset_auth::print_plan(&dk.mongo.name);
        }
        for p in &partial {
            println!(
                "first, the pending run's half-done recreate of {}",
                p.describe()
            );
        }
        steps::print_plan(&plan);
        println!("pre-flight: ok; nothing changed (--dry-run)");
        return Ok(0);
    }
    if needs_reset {
        reset_auth::ask(args.yes, &dk.mongo.name)?;
        if let Some(p) = pending.take() {
            takeover::end_pending(
                cfg,
                &p,
                "no known password logs in; rescue --reset-auth sets compose.env's",
                &partial,
            )
            .await?;
        }
        reset_auth::reset(cfg, &dk.engine, &dk.mongo, &target, &desired).await?;
        if reset_auth::wait_answering(&target, &desired).await? != LoginOutcome::Accepted {
            return Err(Error::Precondition(format!(
                "after reset-auth {} still refuses compose.env's password",
                dk.mongo.name
            ))
            .with_change_note(crate::error::Changed::Unknown, ""));
        }
    }
    let staged = Staged { old, new: desired };
    let context = RunContext {
        compose_env: cfg.compose_env.clone(),
        env_key: keys.compose_password_key.clone(),
        mongo_user: user,
        container_keys,
        forms,
        files: Vec::new(),
        run: crate::planes::run::RunKind::Rescue,
        // rescue never rewrites compose.env (it is the desired state): nothing to commit.
        git: None,
        pg: None,
    };
    if let Some(p) = &pending {
        takeover::end_pending(
            cfg,
            p,
            "interrupted; rescue makes the planes agree on compose.env's value",
            &partial,
        )
        .await?;
    }
    let code = run_forward(cfg, &env, dk.engine.clone(), target, &context, plan, staged).await?;
    if code == crate::error::exit::OK {
        if recovered || needs_reset {
            reset_auth::finish(cfg)?;
        }
        println!(
            "rescued: MongoDB, compose.env and the containers agree on compose.env's password"
        );
    }
    Ok(code)
}

/// Journals a db-password rescue (OLD and NEW sealed to compose.env's recipients) and runs it
/// forward, on either variant; the run's exit code.
async fn run_forward(
    cfg: &Config,
    env: &EnvPlane,
    engine: Engine,
    target: Target,
    context: &RunContext,
    plan: Vec<Step>,
    staged: Staged,
) -> Result<i32> {
    let mut journal = new_journal(
        "rescue",
        "db-password",
        &cfg.compose_env,
        context.to_value(),
        plan,
    );
    journal.sealed_secrets = Some(staged.seal(&env.file.recipients())?);
    journal.persist(&cfg.journal_dir())?;
    let live = Live {
        cfg,
        ids: &env.ids,
        engine,
        target,
    };
    execute::execute(live, journal, staged, Direction::Forward).await
}

/// Asks `question` on stderr and reads the answer from stdin: `true` for a yes.
fn confirmed(question: &str) -> Result<bool> {
    eprint!("komodo-rotate: {question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Precondition(format!("reading the answer from stdin: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Tries each distinct candidate once; the first Mongo accepts is OLD (inner `Err`: none does,
/// with the message naming what was tried). Unreachable stops the climb: a verdict needs a
/// server that answers.
async fn climb(
    target: &Target,
    ladder: &[Candidate],
    desired: &Secret,
) -> Result<std::result::Result<Secret, String>> {
    let mut tried: Vec<&Candidate> = Vec::new();
    let mut sources = Vec::new();
    for c in ladder {
        sources.push(c.source.clone());
        if c.value.is_empty()
            || c.value.ct_eq(desired)
            || tried.iter().any(|t| t.value.ct_eq(&c.value))
        {
            continue;
        }
        tried.push(c);
        match login_works(target, &c.value).await {
            LoginOutcome::Accepted => {
                eprintln!("komodo-rotate: the password from {} logs in", c.source);
                return Ok(Ok(c.value.clone()));
            }
            LoginOutcome::Rejected => {}
            LoginOutcome::Unreachable(r) => return Err(Error::Precondition(r)),
        }
    }
    Ok(Err(format!(
        "no known password logs in to MongoDB at {} as {}; tried: compose.env, {}; nothing was changed. Run `komodo-rotate rescue --reset-auth` ({RUNBOOK_NO_PASSWORD})",
        target.server(),
        target.user,
        if sources.is_empty() { "no other source".to_string() } else { sources.join(", ") }
    )))
}
