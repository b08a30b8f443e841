//! The campaign's lockouts of the inverse-edit family (issue 18), replayed as a regression: the
//! cheapest one, seed 374415312's shortest failing prefix (6 operations: a colleague's `sops set`
//! after write-env, then a failure before the second recreate; write-env's undo used to refuse the
//! edit and every `resume` exited 5). The campaign's referee judges every outcome (real `sops`,
//! pymongo, the `docker` and `git` CLIs) and its recovery must reach verify 0. The other two
//! lockouts (seeds 989915275 and 2967158084) need 22-50 operations: their shapes are
//! deterministic tests (tests/e2e_undo_by_value.rs, tests/e2e_undo_health.rs) and their replays
//! are in testcontainers/campaign-scripts/.

mod docker_support;

use docker_support::{engine_or_skip, images};
use std::process::Command;

const SEED: &str = "374415312";
const OPS: &str = "6";

#[test]
fn seed_374415312s_lockout_prefix_ends_without_violation_or_lockout() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(engine) = rt.block_on(engine_or_skip("undo_campaign")) else {
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
        .args(["--seed", SEED, "--ops", OPS, "--no-shrink"])
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
    let want = format!("campaign: seed {SEED}, {OPS} ops, 0 contract violations, 0 lockouts");
    assert_eq!(
        last,
        Some(want.as_str()),
        "the campaign's verdict (replay: testcontainers/campaign --seed {SEED} --ops {OPS})"
    );
    assert!(out.status.success(), "campaign exit: {:?}", out.status);
}
