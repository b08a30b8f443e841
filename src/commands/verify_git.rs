//! verify's git rows: is the rotated compose.env committed, is the host checkout in step with
//! its upstream, and would the deploy pipeline's fast-forward pull succeed (with the gitignored
//! files a careless cleanup would destroy), and does upstream's compose.env carry secrets other
//! than the live ones. Read-only: the remote is read with `git ls-remote` and its objects fetched
//! into a temp dir (git/peek.rs), so it works under the hardened verify unit; an unreachable
//! remote is a warning, not drift; a count or comparison that could not be made is `unknown`.

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
    // The remote and branch rotate pushes to: [git] remote/branch, else the upstream.
    let up = match repo.upstream() {
        Ok(u) => u,
        Err(e) => {
            m.push("git-upstream", Status::Unknown, e.to_string());
            return;
        }
    };
    let pick = |set: &str, up: Option<String>| (!set.is_empty()).then(|| set.to_string()).or(up);
    let remote = pick(&cfg.git.remote, up.as_ref().map(|u| u.remote.clone()));
    let branch = pick(&cfg.git.branch, up.as_ref().map(|u| u.branch.clone()));
    let (Some(remote), Some(branch)) = (remote, branch) else {
        let st = if mode == GitMode::Push {
            Status::Drift
        } else {
            Status::Info
        };
        m.push("git-upstream", st, "the checked-out branch has no upstream");
        return;
    };
    let shown = format!("{}/{branch}", crate::git::run::redact_urls(&remote));
    // A read-only look (ls-remote, objects into a temp dir): works when .git is read-only.
    let peek = repo.peek(&remote, &branch);
    f.fetch_ok = Some(peek.is_ok());
    let (q, rev) = match &peek {
        Ok(p) => (&p.repo, p.rev.clone()),
        Err(_) => (&repo, format!("refs/remotes/{remote}/{branch}")),
    };
    let offline = match &peek {
        Ok(_) => String::new(),
        Err(e) => format!(" (offline, as of the last fetch: {e})"),
    };
    let pc = match pull::check(q, &rev) {
        Ok(pc) => pc,
        Err(e) => {
            m.push(
                "git-upstream",
                Status::Unknown,
                format!("{shown}: {e}{offline}"),
            );
            return;
        }
    };
    f.ahead = Some(pc.ahead);
    f.behind = Some(pc.behind);
    let count = |range: String| q.commits_touching(&range, &rel);
    let unpushed_env = if pc.ahead > 0 {
        count(format!("{rev}..HEAD"))
    } else {
        Ok(0)
    };
    let incoming_env = if pc.behind > 0 {
        count(format!("HEAD..{rev}"))
    } else {
        Ok(0)
    };
    let change = match &incoming_env {
        Ok(n) if *n > 0 => env_change(cfg, q, &rev, &rel),
        Ok(_) => EnvChange::Same,
        Err(e) => EnvChange::Unknown(e.to_string()),
    };
    let counts = format!("{} ahead, {} behind {shown}", pc.ahead, pc.behind);
    let (st, detail) = match (&change, &unpushed_env) {
        (EnvChange::Changed(keys), _) => (
            Status::Drift,
            format!(
                "{shown} changes {} in {rel}, which differ from the live values: a pull deploys secrets Mongo or the containers do not hold; `repo unblock` refuses it without --allow-env-change ({counts}){offline}",
                keys.join(", ")
            ),
        ),
        (_, Ok(n)) if *n > 0 => (
            Status::Drift,
            format!(
                "{rel} changed in {n} commit(s) not on {shown}: push, or a deploy from upstream brings the old file back{offline}"
            ),
        ),
        (EnvChange::Unknown(why), _) => (
            Status::Unknown,
            format!("cannot compare upstream's {rel} with the live values: {why} ({counts}){offline}"),
        ),
        (_, Err(e)) => (
            Status::Unknown,
            format!("cannot count the unpushed commits changing {rel}: {e} ({counts}){offline}"),
        ),
        _ if peek.is_err() => (Status::Info, format!("{counts}{offline}")),
        _ => (Status::Ok, counts),
    };
    m.push("git-upstream", st, detail);
    let up_tracking = shown;

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
                up_tracking,
                pc.describe()
            ),
        );
    } else if !pc.ignored_overwritten.is_empty() {
        m.push(
            "git-pull",
            Status::Drift,
            format!(
                "a pull of {} would silently overwrite gitignored {}: move them first (runbooks/blocked-pull.md)",
                up_tracking,
                pc.ignored_overwritten.join(", ")
            ),
        );
    } else {
        m.push(
            "git-pull",
            Status::Ok,
            format!(
                "a fast-forward pull of {} would succeed ({} commit(s))",
                up_tracking, pc.behind
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

/// What a pull of `rev` would do to compose.env's secrets, compared with the host's compose.env
/// (which verify's other rows prove live): decrypted in memory, never written anywhere.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvChange {
    /// Every secret compose.env carries now is the same upstream (or the file is unchanged).
    Same,
    /// These keys (names only) would change or disappear.
    Changed(Vec<String>),
    /// The comparison could not be made (why): never reported as "same".
    Unknown(String),
}

/// Compares the secrets of `rev:rel` with the host's compose.env, key by key. A key upstream
/// adds is not a change of a live secret; one it changes or removes is.
/// Whether a compose.env key carries a secret whose change upstream matters before a pull: the
/// keys of the tool's secret kinds (the DB password under every naming generation, the env-only
/// kinds and their carriers) and any key named like a credential. A title, an interval or an
/// image tag changed upstream is an ordinary deploy, not drift.
pub fn carries_a_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    crate::docker::generation::ALL_COMPOSE_DB_PASSWORD_KEYS.contains(&k.as_str())
        || crate::kinds::ENV_ONLY_ROWS
            .iter()
            .any(|r| r.key == k || r.carriers.iter().any(|(c, _)| *c == k))
        || [
            "PASSWORD",
            "SECRET",
            "PASSKEY",
            "TOKEN",
            "CREDENTIAL",
            "PRIVATE",
        ]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("_KEY")
        || k.ends_with("_KEYS")
        || k.ends_with("_URI")
        || k.ends_with("_URL")
}

pub fn env_change(cfg: &Config, repo: &Repo, rev: &str, rel: &str) -> EnvChange {
    let incoming = match repo.blob(rev, rel) {
        Ok(Some(b)) => b,
        Ok(None) => return EnvChange::Changed(vec![format!("{rel} (removed upstream)")]),
        Err(e) => return EnvChange::Unknown(e.to_string()),
    };
    let local = match std::fs::read(&cfg.compose_env) {
        Ok(b) => b,
        Err(e) => return EnvChange::Unknown(format!("{}: {e}", cfg.compose_env.display())),
    };
    if incoming == local {
        return EnvChange::Same;
    }
    let decrypt = |bytes: Vec<u8>, name: &str| -> Result<crate::sops::Decrypted, String> {
        let ids = crate::sops::Identities::discover(cfg.age_key_file.as_deref())
            .map_err(|e| e.to_string())?;
        crate::sops::SopsFile::parse(bytes, name)
            .and_then(|f| f.decrypt(&ids))
            .map_err(|e| e.to_string())
    };
    let ours = match decrypt(local, &cfg.compose_env.display().to_string()) {
        Ok(d) => d,
        Err(e) => return EnvChange::Unknown(e),
    };
    let theirs = match decrypt(incoming, &format!("{rev}:{rel}")) {
        Ok(d) => d,
        Err(e) => return EnvChange::Unknown(format!("cannot decrypt upstream's {rel}: {e}")),
    };
    let mut changed: Vec<String> = Vec::new();
    for k in ours.keys() {
        if changed.contains(&k) || !carries_a_secret(&k) {
            continue;
        }
        let now = ours.get(&k);
        match theirs.get(&k) {
            None => changed.push(format!("{k} (removed)")),
            Some(v) if !now.is_some_and(|n| n.ct_eq(&v)) => changed.push(k),
            Some(_) => {}
        }
    }
    if changed.is_empty() {
        EnvChange::Same
    } else {
        EnvChange::Changed(changed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_keys_that_carry_a_secret_count_as_an_env_change() {
        for k in [
            "KOMODO_DATABASE_PASSWORD",
            "KOMODO_DB_PASSWORD",
            "DB_PASSWORD",
            "KOMODO_JWT_SECRET",
            "KOMODO_WEBHOOK_SECRET",
            "KOMODO_PASSKEY",
            "PERIPHERY_PASSKEYS",
            "REHEARSAL_API_TOKEN",
            "KOMODO_DATABASE_URI",
            "PERIPHERY_CORE_PUBLIC_KEYS",
            "komodo_jwt_secret",
        ] {
            assert!(super::carries_a_secret(k), "{k}");
        }
        for k in [
            "KOMODO_TITLE",
            "KOMODO_MONITORING_INTERVAL",
            "COMPOSE_KOMODO_IMAGE_TAG",
            "KOMODO_HOST",
            "TZ",
        ] {
            assert!(!super::carries_a_secret(k), "{k}");
        }
    }
}
