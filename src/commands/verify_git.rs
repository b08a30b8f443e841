//! verify's git rows: is the rotated compose.env committed, is the host checkout in step with
//! its upstream, and would the deploy pipeline's fast-forward pull succeed (with the gitignored
//! files a careless cleanup would destroy). Read-only except for `git fetch`, which only moves
//! remote-tracking refs; an unreachable remote is a warning, not drift.

use crate::config::{Config, GitMode};
use crate::git::{pull, Repo};
use crate::metrics::GitFacts;
use crate::report::{Matrix, Status};

/// Appends the git rows and gauges to `m`.
pub fn rows(cfg: &Config, m: &mut Matrix) {
    let mut facts = GitFacts::default();
    add_rows(cfg, m, &mut facts);
    m.gauges.extend(crate::metrics::git_gauges(&facts));
}

fn add_rows(cfg: &Config, m: &mut Matrix, f: &mut GitFacts) {
    let mode = cfg.git.mode;
    if mode == GitMode::Off {
        m.push("git", Status::Info, "git plane off ([git] mode = \"off\")");
        return;
    }
    // In auto mode a host without git, or compose.env outside a repo, is simply not GitOps.
    let missing = if mode == GitMode::Auto {
        Status::Info
    } else {
        Status::Drift
    };
    let (repo, rel) = match Repo::discover(&cfg.compose_env, cfg.git.network_timeout) {
        Ok(Some(x)) => x,
        Ok(None) => {
            m.push(
                "git",
                missing,
                format!("{} is not in a git work tree", cfg.compose_env.display()),
            );
            return;
        }
        Err(e) => {
            m.push("git", Status::Unknown, e.to_string());
            return;
        }
    };
    match repo.is_tracked(&rel) {
        Ok(true) => {}
        Ok(false) => {
            m.push(
                "git",
                missing,
                format!("{rel} is not tracked in {}", repo.worktree.display()),
            );
            return;
        }
        Err(e) => {
            m.push("git", Status::Unknown, e.to_string());
            return;
        }
    }
    match repo.is_modified(&rel) {
        Ok(false) => {
            f.env_committed = Some(true);
            m.push("git-env", Status::Ok, format!("{rel} equals HEAD's"));
        }
        Ok(true) => {
            f.env_committed = Some(false);
            m.push(
                "git-env",
                Status::Drift,
                format!(
                    "{rel} differs from HEAD's: commit and push it, or a deploy from the repo brings the old file back"
                ),
            );
        }
        Err(e) => m.push("git-env", Status::Unknown, e.to_string()),
    }
    let up = match repo.upstream() {
        Ok(Some(u)) => u,
        Ok(None) => {
            let st = if mode == GitMode::Push {
                Status::Drift
            } else {
                Status::Info
            };
            m.push("git-upstream", st, "the checked-out branch has no upstream");
            return;
        }
        Err(e) => {
            m.push("git-upstream", Status::Unknown, e.to_string());
            return;
        }
    };
    let fetched = repo.fetch(&up.remote);
    f.fetch_ok = Some(fetched.is_ok());
    let pc = match pull::check(&repo, &up.tracking) {
        Ok(pc) => pc,
        Err(e) => {
            m.push("git-upstream", Status::Unknown, e.to_string());
            return;
        }
    };
    f.ahead = Some(pc.ahead);
    f.behind = Some(pc.behind);
    let offline = match &fetched {
        Ok(()) => String::new(),
        Err(e) => format!(" (offline, as of the last fetch: {e})"),
    };
    let unpushed_env = if pc.ahead > 0 {
        repo.commits_touching(&format!("{}..HEAD", up.tracking), &rel)
            .unwrap_or(0)
    } else {
        0
    };
    let (st, detail) = if unpushed_env > 0 {
        (
            Status::Drift,
            format!(
                "{rel} changed in {unpushed_env} commit(s) not on {}: push, or a deploy from upstream brings the old file back{offline}",
                up.tracking
            ),
        )
    } else if fetched.is_err() {
        (
            Status::Info,
            format!(
                "{} ahead, {} behind {}{offline}",
                pc.ahead, pc.behind, up.tracking
            ),
        )
    } else {
        (
            Status::Ok,
            format!("{} ahead, {} behind {}", pc.ahead, pc.behind, up.tracking),
        )
    };
    m.push("git-upstream", st, detail);

    f.pull_blocked = Some(pc.blocked());
    f.untracked_collisions = Some(pc.untracked_collisions.len());
    f.ignored_at_risk = Some(pc.ignored_overwritten.len() + pc.ignored_at_risk.len());
    if pc.behind == 0 {
        m.push("git-pull", Status::Ok, "nothing to pull");
    } else if pc.blocked() {
        m.push(
            "git-pull",
            Status::Drift,
            format!(
                "a fast-forward pull of {} would fail: {}; run `komodo-rotate repo unblock --dry-run` (runbooks/blocked-pull.md)",
                up.tracking,
                pc.describe()
            ),
        );
    } else if !pc.ignored_overwritten.is_empty() {
        m.push(
            "git-pull",
            Status::Drift,
            format!(
                "a pull of {} would silently overwrite gitignored {}: move them first (runbooks/blocked-pull.md)",
                up.tracking,
                pc.ignored_overwritten.join(", ")
            ),
        );
    } else {
        m.push(
            "git-pull",
            Status::Ok,
            format!(
                "a fast-forward pull of {} would succeed ({} commit(s))",
                up.tracking, pc.behind
            ),
        );
    }
    if !pc.ignored_at_risk.is_empty() {
        m.push(
            "git-ignored-at-risk",
            Status::Drift,
            format!(
                "gitignored {} inside the directory blocking the pull: do not delete the directory; `komodo-rotate repo unblock` keeps them",
                pc.ignored_at_risk.join(", ")
            ),
        );
    }
}
