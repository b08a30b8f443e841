//! The step kinds the planes know how to apply and undo, their constructors and their
//! descriptions (`--dry-run` prints them). A secret kind composes its plan from these.

use crate::txn::Step;

pub const SNAPSHOT: &str = "snapshot";
pub const CHANGE_DB: &str = "change-db";
/// The FerretDB variant's store step: the PostgreSQL role's SCRAM verifier (`planes::pg_step`).
pub const CHANGE_PG: &str = "change-pg";
pub const WRITE_ENV: &str = "write-env";
pub const RECREATE: &str = "recreate";
pub const WRITE_FILE: &str = "write-file";
pub const GIT_COMMIT: &str = "git-commit";
pub const GIT_PUSH: &str = "git-push";
pub const COMMIT: &str = "commit";

pub fn snapshot() -> Step {
    Step::new(SNAPSHOT)
}
pub fn change_db() -> Step {
    Step::new(CHANGE_DB)
}
pub fn change_pg() -> Step {
    Step::new(CHANGE_PG)
}
/// write-env with no `set`: the run's `env_key` to NEW.
pub fn write_env() -> Step {
    Step::new(WRITE_ENV)
}
/// recreate with no `set`: every key the context names for `container`, to NEW.
pub fn recreate(container: &str) -> Step {
    Step::new(RECREATE).on(container)
}
/// write-file on a carrier file (the context's `files` says what it holds): it to NEW.
pub fn write_file(host_path: &std::path::Path) -> Step {
    Step::new(WRITE_FILE).on(&host_path.display().to_string())
}
pub fn git_commit() -> Step {
    Step::new(GIT_COMMIT)
}
pub fn git_push() -> Step {
    Step::new(GIT_PUSH)
}
pub fn commit() -> Step {
    Step::new(COMMIT)
}

fn sets(step: &Step, what: &str) -> String {
    if step.set.is_empty() {
        return what.into();
    }
    step.set
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn describe(step: &Step) -> String {
    let target = step.target.as_deref().unwrap_or("?");
    match step.kind.as_str() {
        SNAPSHOT => "save inspect + last log lines of the containers to recreate (sealed)".into(),
        CHANGE_DB => "updateUser {pwd: NEW} on admin (w: majority); prove a fresh login with NEW".into(),
        CHANGE_PG => "seal the role's stored SCRAM secret in the journal dir, ALTER ROLE ... PASSWORD '<verifier of NEW: 4096 iterations, 28-byte salt>' over the postgres container's local socket; read back byte for byte".into(),
        WRITE_ENV => format!(
            "re-encrypt compose.env with {} (same data key and recipients, new MAC), atomically",
            sets(step, "NEW")
        ),
        RECREATE => format!(
            "recreate {target} with {} (create {target}-next, stop, rename to {target}-prev, start) and wait for health",
            sets(step, "the env patched")
        ),
        WRITE_FILE => format!(
            "rewrite the carrier file {target} with NEW (its previous bytes sealed in the journal dir), atomically, keeping owner and mode"
        ),
        GIT_COMMIT => "commit only the env file (ciphertext) on top of HEAD; the id is kept in the journal dir".into(),
        GIT_PUSH => "push HEAD to the remote branch; if it moved without touching the env file, fetch, replay and retry once".into(),
        COMMIT => "prove every plane holds NEW, remove the -prev containers, drop the sealed secrets, write the audit record".into(),
        other => format!("{other} (unknown to this build)"),
    }
}

pub fn describe_undo(step: &Step) -> String {
    let target = step.target.as_deref().unwrap_or("?");
    match step.kind.as_str() {
        SNAPSHOT => "nothing to undo (the snapshot is deleted with the journal)".into(),
        CHANGE_DB => "updateUser {pwd: OLD}, logged in with whichever of NEW/OLD works".into(),
        CHANGE_PG => "ALTER ROLE back to the sealed previous stored secret, byte for byte (no old plaintext needed); only over a verifier that takes NEW".into(),
        WRITE_ENV => "put the previous compose.env bytes back atomically (only over what this step wrote)".into(),
        RECREATE => format!(
            "stop and remove the replacement, rename {target}-prev back to {target}, start it"
        ),
        WRITE_FILE => format!(
            "put the sealed previous bytes of {target} back (only over what this step wrote); restart its running readers"
        ),
        GIT_COMMIT => "drop our commit while HEAD is still it (work tree left to write-env's undo), else a revert commit".into(),
        GIT_PUSH => "push a revert commit of ours on top of the remote branch (only if ours reached it)".into(),
        COMMIT => "none: after commit the new secret is the only one".into(),
        other => format!("{other} (unknown to this build)"),
    }
}

/// Prints the plan as `--dry-run` shows it: every step and its undo.
pub fn print_plan(steps: &[Step]) {
    println!("plan ({} steps):", steps.len());
    for (i, s) in steps.iter().enumerate() {
        println!("  {}. {:<28} {}", i + 1, s.name(), describe(s));
        println!("     {:<28} undo: {}", "", describe_undo(s));
    }
}

/// A journal of `plan` for unit tests of the per-phase naming (a passkey run's shape).
/// Whether no store step of `j` (change-db, change-pg) ever began or was proven untouched: each
/// is still pending (`txn::runner` puts an untouched first attempt back to pending).
pub(super) fn store_never_applied(j: &crate::txn::Journal) -> bool {
    j.steps.iter().all(|r| {
        !(r.step.is(CHANGE_DB) || r.step.is(CHANGE_PG))
            || r.status == crate::txn::StepStatus::Pending
    })
}

/// Whether a recreate step of `name` in `j` began (applied, in flight, failed or undone).
pub(super) fn recreate_began(j: &crate::txn::Journal, name: &str) -> bool {
    j.steps.iter().any(|r| {
        r.step.is(RECREATE)
            && r.step.target.as_deref() == Some(name)
            && r.status != crate::txn::StepStatus::Pending
    })
}

#[cfg(test)]
pub(crate) fn passkey_journal(plan: &[Step]) -> crate::txn::Journal {
    crate::txn::new_journal(
        "rotate",
        "passkey",
        std::path::Path::new("/x"),
        serde_json::Value::Null,
        plan.to_vec(),
    )
}
