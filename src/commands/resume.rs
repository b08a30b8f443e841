//! `resume`: after a crash or a kill, read the journal, probe which password Mongo accepts (on
//! the FerretDB variant: which one the PostgreSQL role's verifier accepts, offline), and finish
//! or roll back by DESIGN.md's decision table. Idempotent: with no journal it says so and
//! exits 0.

use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::error::{Changed, Error, Result};
use crate::mongo::{login_works, LoginOutcome};
use crate::planes::execute::{self, Direction, Live, RUNBOOK_INTERRUPTED};
use crate::planes::live::Staged;
use crate::planes::{mongo_target, steps, DockerPlane, RunContext};
use crate::sops::{Identities, SopsFile};
use crate::txn::lock::RunLock;
use crate::txn::{Journal, StepStatus};

pub fn run(args: ConfigArgs) -> Result<i32> {
    let cfg = Config::load(args.config.as_deref())?;
    super::runtime()?.block_on(resume(&cfg))
}

async fn resume(cfg: &Config) -> Result<i32> {
    let _lock = RunLock::acquire_guarding(&cfg.lock_path(), &cfg.compose_env)?;
    crate::planes::leftovers::remove_committed(cfg).await?;
    let dir = cfg.journal_dir();
    let Some(journal) = Journal::load_pending(&dir)? else {
        println!("nothing to resume: no interrupted run in {}", dir.display());
        return Ok(0);
    };
    // A shared state_dir can hold another deployment's journal: deciding it against this
    // config's Mongo and containers would be wrong. Refused before anything is touched.
    if !journal.guarded.as_os_str().is_empty()
        && !crate::txn::lock::same_file(&journal.guarded, &cfg.compose_env)
    {
        return Err(Error::Precondition(format!(
            "the journal in {} is of a run on {}, not on this config's compose_env {}: run resume with that deployment's config; nothing was changed",
            dir.display(),
            journal.guarded.display(),
            cfg.compose_env.display()
        )));
    }
    if journal.is_committed() {
        Journal::clear(&dir)?;
        println!(
            "nothing to resume: {} run {} had committed; its journal is now cleared",
            journal.command, journal.run_id
        );
        return Ok(0);
    }
    finish(cfg, journal).await
}

/// Decides and ends the pending run `journal` of this deployment (forward or back, as
/// DESIGN.md's table says), under the caller's run lock. Also `rescue`'s way to end a pending
/// run of an env-only kind before it acts (the campaign's seed 275392833).
pub(crate) async fn finish(cfg: &Config, mut journal: Journal) -> Result<i32> {
    let dir = cfg.journal_dir();
    // Once the interrupted run changed something, an error before the decision leaves the
    // planes as unproven as the crash did: exit 5, never 3.
    let progressed = journal
        .steps
        .iter()
        .any(|r| r.status != StepStatus::Pending);
    let unsure = |e: Error| match progressed {
        true => e.with_change_note(
            Changed::Unknown,
            "; the planes may be split, the journal is kept",
        ),
        false => e,
    };
    let ids = Identities::discover(cfg.age_key_file.as_deref()).map_err(|e| unsure(e.into()))?;
    let Some(sealed) = journal.sealed_secrets.clone() else {
        return Err(unsure(Error::Precondition(format!(
            "journal {} holds no sealed secrets; follow {RUNBOOK_INTERRUPTED}",
            Journal::path(&dir).display()
        ))));
    };
    let staged = Staged::open(&sealed, &ids).map_err(unsure)?;
    let ctx = RunContext::of(&journal).map_err(unsure)?;
    let (engine, mongo) = match &ctx.pg {
        // ferretdb is one of the containers the run recreates: found also mid-recreate.
        Some(pg) => crate::planes::ferret::front_for_resume(cfg, &pg.ferretdb).await,
        None => DockerPlane::mongo_only(cfg).await,
    }
    .map_err(unsure)?;
    // An env-only kind has no Mongo user; its steps and proofs never use the target.
    let user = if ctx.has_store() {
        ctx.mongo_user.as_str()
    } else if let Some(pg) = &ctx.pg {
        // A FerretDB rescue: no Mongo user in its context, the proof logs in as the role.
        pg.role.as_str()
    } else {
        "(env-only: unused)"
    };
    let target = mongo_target(cfg, &mongo, user).map_err(unsure)?;

    let direction = if let Some(pg) = &ctx.pg {
        decide_pg(&mut journal, &engine, pg, &staged, ctx.is_rescue()).await
    } else if ctx.has_store() {
        decide(&mut journal, &target, &staged, &ctx).await
    } else {
        decide_env_only(&journal, &ctx, &ids, &staged)
    }
    .map_err(unsure)?;
    match &direction {
        Direction::Forward => eprintln!(
            "komodo-rotate: resuming {} run {}: rolling forward",
            journal.command, journal.run_id
        ),
        Direction::Back { reason } => eprintln!(
            "komodo-rotate: resuming {} run {}: rolling back ({reason})",
            journal.command, journal.run_id
        ),
    }
    let live = Live {
        cfg,
        ids: &ids,
        engine,
        target,
    };
    let code = execute::execute(live, journal, staged, direction).await?;
    if code == crate::error::exit::OK {
        println!("resumed: the run is complete and the planes agree");
    }
    Ok(code)
}

fn rolling_back(journal: &Journal) -> bool {
    journal.steps.iter().any(|r| {
        matches!(
            r.status,
            StepStatus::Failed
                | StepStatus::UndoInFlight
                | StepStatus::Undone
                | StepStatus::UndoFailed
        )
    })
}

/// A kind with no live copy outside compose.env and the containers: compose.env, the deploy
/// source, decides. Holding NEW: roll forward (a `compose up` now deploys NEW anyway); else back.
fn decide_env_only(
    journal: &Journal,
    ctx: &RunContext,
    ids: &Identities,
    staged: &Staged,
) -> Result<Direction> {
    if rolling_back(journal) {
        return Ok(Direction::Back {
            reason: "the interrupted run had already started its rollback".into(),
        });
    }
    let env = SopsFile::load(&ctx.compose_env)?.decrypt(ids)?;
    if env.get(&ctx.env_key).is_some_and(|v| v.ct_eq(&staged.new)) {
        Ok(Direction::Forward)
    } else {
        Ok(Direction::Back {
            reason: format!("compose.env's {} is not the new value yet", ctx.env_key),
        })
    }
}

/// DESIGN.md's decision table.
async fn decide(
    journal: &mut Journal,
    target: &crate::mongo::Target,
    staged: &Staged,
    ctx: &RunContext,
) -> Result<Direction> {
    if rolling_back(journal) {
        return Ok(Direction::Back {
            reason: "the interrupted run had already started its rollback".into(),
        });
    }
    let db = journal.status_of(&steps::change_db());
    if db == Some(StepStatus::Pending) {
        return Ok(Direction::Back {
            reason: "it stopped before change-db: Mongo was never touched".into(),
        });
    }
    let new_ok = login_works(target, &staged.new).await;
    let old_ok = login_works(target, &staged.old).await;
    match (new_ok, old_ok) {
        (LoginOutcome::Unreachable(r), _) | (_, LoginOutcome::Unreachable(r)) => {
            Err(Error::Precondition(format!(
                "{r}; the journal is kept, run resume again when MongoDB answers"
            )))
        }
        (LoginOutcome::Accepted, _) => {
            if let Some(r) = journal.record_mut(&steps::change_db()) {
                r.status = StepStatus::Done;
            }
            Ok(Direction::Forward)
        }
        (LoginOutcome::Rejected, LoginOutcome::Accepted) => Ok(Direction::Back {
            reason: "Mongo still accepts the old password".into(),
        }),
        (LoginOutcome::Rejected, LoginOutcome::Rejected) => Err(Error::RollbackIncomplete {
            step: "resume".into(),
            cause: format!(
                "MongoDB at {} accepts neither the old nor the new password of {}",
                target.server(),
                ctx.mongo_user
            ),
            undo_failure: "cannot decide between rolling forward and back".into(),
            runbook: "runbooks/no-password-survives.md".into(),
        }),
    }
}

/// DESIGN.md's decision table on the FerretDB variant: the PostgreSQL role's verifier decides
/// (an offline check of the sealed OLD and NEW, through the postgres container's local socket).
async fn decide_pg(
    journal: &mut Journal,
    engine: &crate::docker::Engine,
    pg: &crate::planes::PgRole,
    staged: &Staged,
    rescue: bool,
) -> Result<Direction> {
    use crate::planes::pg_step::{which_is_live, Live};
    if rolling_back(journal) {
        return Ok(Direction::Back {
            reason: "the interrupted run had already started its rollback".into(),
        });
    }
    if journal.status_of(&steps::change_pg()) == Some(StepStatus::Pending) {
        return Ok(Direction::Back {
            reason: "it stopped before change-pg: PostgreSQL was never touched".into(),
        });
    }
    let live = which_is_live(engine, pg, &staged.old, &staged.new)
        .await
        .map_err(|e| {
            Error::Precondition(format!(
                "{e}; the journal is kept, run resume again when PostgreSQL answers"
            ))
        })?;
    match live {
        Live::New => {
            if let Some(r) = journal.record_mut(&steps::change_pg()) {
                r.status = StepStatus::Done;
            }
            Ok(Direction::Forward)
        }
        Live::Old => Ok(Direction::Back {
            reason: "the PostgreSQL role's verifier still accepts the old password".into(),
        }),
        // A rescue with no known old password (OLD is NEW): the role still holds the unknown
        // secret; back is its sealed bytes (or untouched).
        Live::Neither if rescue => Ok(Direction::Back {
            reason: "the PostgreSQL role takes neither value: the rescue had not set it".into(),
        }),
        Live::Neither => Err(Error::RollbackIncomplete {
            step: "resume".into(),
            cause: format!(
                "role {}'s verifier in {} accepts neither the old nor the new password",
                pg.role, pg.postgres
            ),
            undo_failure: "cannot decide between rolling forward and back".into(),
            runbook: "runbooks/no-password-survives.md".into(),
        }),
    }
}
