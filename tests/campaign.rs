//! The campaign's fixed seed (issue 19) as part of the suite: seeded random tool, fault and world
//! operations on a rehearsal stack of its own, every outcome judged by the campaign's referee
//! (real `sops`, pymongo, the `docker` and `git` CLIs; no code shared with the tool). `--cover`
//! makes the first operations one of each operation family, so this one seed touches them all.
//! `testcontainers/campaign --seed random` explores (testcontainers/README.md "The campaign").

mod docker_support;

use docker_support::{engine_or_skip, images};
use std::process::Command;

/// The gate: a fixed seed and length, so a red run replays exactly (`--seed 1 --ops 20 --cover`).
const SEED: &str = "1";
const OPS: &str = "20";

#[test]
fn the_fixed_seed_campaign_finds_no_violation_and_no_lockout() {
    campaign_ends_clean("campaign", SEED, OPS, &["--cover"]);
}

/// Issue 18's inverse edit as a regression: the cheapest lockout of its family, seed 374415312's
/// shortest failing prefix (6 operations; testcontainers/campaign-scripts/lockout-374415312.ops):
/// a colleague's `sops set` after write-env, then a failure before the second recreate.
/// write-env's undo refused the edit and every `resume` exited 5. The other two (seeds 989915275
/// and 2967158084) need 22-50 operations: their shapes are deterministic tests
/// (tests/e2e_undo_by_value.rs, tests/e2e_undo_health.rs).
#[test]
fn seed_374415312s_lockout_prefix_ends_without_violation_or_lockout() {
    campaign_ends_clean("undo_campaign", "374415312", "6", &[]);
}

/// Runs the campaign on `seed`'s first `ops` operations with the tool under test; its last line
/// must say 0 violations and 0 lockouts.
fn campaign_ends_clean(test: &str, seed: &str, ops: &str, extra: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(engine) = rt.block_on(engine_or_skip(test)) else {
        return;
    };
    let bin = rt.block_on(images(&engine));
    let campaign = bin.join("campaign");
    assert!(
        campaign.is_file(),
        "{} is missing: cargo build -p komodo-testcontainers --bins",
        campaign.display()
    );
    let replay = tempfile::tempdir().expect("replay dir");
    let out = Command::new(&campaign)
        .args(["--seed", seed, "--ops", ops])
        .args(extra)
        .arg("--no-shrink")
        .arg("--tool")
        .arg(env!("CARGO_BIN_EXE_komodo-rotate"))
        .env("CAMPAIGN_REPLAY_DIR", replay.path())
        .env_remove("PYTHONOPTIMIZE")
        .output()
        .expect("run the campaign");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let want = format!("campaign: seed {seed}, {ops} ops, 0 contract violations, 0 lockouts");
    assert_eq!(
        last,
        Some(want.as_str()),
        "the campaign's verdict (replay: testcontainers/campaign --seed {seed} --ops {ops} {})",
        extra.join(" ")
    );
    assert!(out.status.success(), "campaign exit: {:?}", out.status);
}
