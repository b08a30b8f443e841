//! The contract, checked on the referee's views before and after a tool run.

use crate::referee::{db_key, kind_keys, MongoView, View};
use crate::tool::Run;
use std::collections::BTreeSet;
use std::path::Path;

/// What a tool run was for, to judge its exit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cmd {
    Rotate,
    Rescue,
    Resume,
    Verify,
    RepoUnblock,
}

/// The planes hold one value each: compose.env's, in Mongo and in every holder.
fn agreed(v: &View) -> Vec<String> {
    v.drift()
        .into_iter()
        .filter(|d| {
            !d.starts_with("pull blocked")
                && !d.contains("differs from HEAD")
                && !d.starts_with("unpushed")
        })
        .collect()
}

/// Same values everywhere (env, Mongo, holders), ignoring container IDs and git history shape.
fn same_values(a: &View, b: &View) -> Vec<String> {
    let mut d = Vec::new();
    if a.env != b.env {
        d.push("compose.env's values".to_string());
    }
    if a.mongo != b.mongo && a.mongo != MongoView::Unreachable && b.mongo != MongoView::Unreachable
    {
        d.push("the password Mongo accepts".into());
    }
    for s in ["core", "periphery", "mongo"] {
        if a.service(s).map(|c| &c.env) != b.service(s).map(|c| &c.env) {
            d.push(format!("{s}'s env"));
        }
    }
    let la: Vec<_> = a
        .containers
        .iter()
        .filter(|c| crate::view::is_leftover(&c.name))
        .map(|c| &c.name)
        .collect();
    let lb: Vec<_> = b
        .containers
        .iter()
        .filter(|c| crate::view::is_leftover(&c.name))
        .map(|c| &c.name)
        .collect();
    if la != lb {
        d.push("leftover -next/-prev containers".into());
    }
    if a.git.head_tree != b.git.head_tree {
        d.push("HEAD's tree".into());
    }
    if a.git.origin_tree != b.git.origin_tree {
        d.push("origin's tree".into());
    }
    d
}

/// Nothing changed at all: compose.env's bytes, containers (IDs too), git refs.
fn unchanged(a: &View, b: &View) -> Vec<String> {
    let mut d = same_values(a, b);
    if a.env_sha != b.env_sha {
        d.push("compose.env's bytes".into());
    }
    for s in ["core", "periphery", "mongo"] {
        if a.service(s).map(|c| &c.id) != b.service(s).map(|c| &c.id) {
            d.push(format!("{s}'s container ID"));
        }
    }
    if a.git.head != b.git.head || a.git.origin != b.git.origin || a.git.status != b.git.status {
        d.push("git HEAD/origin/status".into());
    }
    if a.journal != b.journal {
        d.push("journal presence".into());
    }
    d
}

/// The violations of one tool run: `before`/`after` are the referee's views around it;
/// `faulted`: the world changed during the run (a transient fault), so "unchanged" is judged on
/// values only.
pub fn judge(
    cmd: Cmd,
    kinds: &[String],
    run: &Run,
    before: &View,
    after: &View,
    faulted: bool,
) -> Vec<String> {
    let mut v = Vec::new();
    if run.hung {
        v.push("the tool hung (killed after 240 s)".into());
        return v;
    }
    // Whatever the exit: the tool never leaves compose.env unreadable or git half way.
    if before.env.is_ok() {
        if let Err(e) = &after.env {
            v.push(format!("the tool left compose.env undecryptable: {e}"));
        }
    }
    if before.git.in_progress.is_empty() && !after.git.in_progress.is_empty() {
        v.push(format!(
            "the tool left git stopped half way: {:?} (status {:?})",
            after.git.in_progress, after.git.status
        ));
    }
    let Some(code) = run.code else {
        return v; // killed by us: judged by what follows
    };
    match (cmd, code) {
        (Cmd::Verify, 0) => {
            let d = after.drift();
            if !d.is_empty() {
                v.push(format!("verify 0 but the referee sees drift: {d:?}"));
            }
        }
        (Cmd::Verify, 1) => {
            if after.drift().is_empty() {
                v.push("verify 1 but the referee sees no drift".into());
            }
        }
        (Cmd::Verify, 3) => {
            if after.mongo != MongoView::Unreachable {
                v.push(format!(
                    "verify 3 (unknown) though Mongo answers; referee drift: {:?}",
                    after.drift()
                ));
            }
        }
        (Cmd::Rotate | Cmd::Rescue | Cmd::Resume | Cmd::RepoUnblock, 0) => {
            if cmd != Cmd::RepoUnblock {
                // A split the world made before the run in keys the run does not answer for
                // (a hand-edited DB password before a jwt-secret rotation, a holder drift of
                // another kind) is not the run's, as for exit 4; one in its own keys always is.
                let own: Vec<&str> = match cmd {
                    Cmd::Rotate => kinds.iter().flat_map(|k| kind_keys(k)).collect(),
                    // rescue answers for the DB password and for the pending run it ends (the
                    // campaign's seed 275392833: rescue 0 beside a JWT run's split).
                    Cmd::Rescue => std::iter::once(db_key())
                        .chain(
                            before
                                .journal_kind
                                .as_deref()
                                .map(kind_keys)
                                .unwrap_or_default(),
                        )
                        .collect(),
                    _ => before
                        .journal_kind
                        .as_deref()
                        .map(kind_keys)
                        .unwrap_or_else(|| crate::referee::SECRET_KEYS.to_vec()),
                };
                let mine = |x: &String| {
                    own.iter().any(|k| x.contains(k))
                        || own.contains(&db_key()) && x.contains("mongo rejects")
                };
                let was = agreed(before);
                let d: Vec<String> = agreed(after)
                    .into_iter()
                    .filter(|x| !was.contains(x) || mine(x))
                    .collect();
                if !d.is_empty() {
                    // resume with nothing to resume is allowed to leave the world as it was.
                    let idle = cmd == Cmd::Resume
                        && !before.journal
                        && unchanged(before, after).is_empty();
                    if !idle {
                        v.push(format!("exit 0 but the planes are not one value: {d:?}"));
                    }
                }
                if !after.core_serving && agreed(after).is_empty() {
                    v.push("exit 0 but core does not serve".into());
                }
            } else {
                if after.git.behind > 0 || !after.git.pull_blocked.is_empty() {
                    v.push(format!(
                        "repo unblock 0 but the checkout is behind {} / blocked {:?}",
                        after.git.behind, after.git.pull_blocked
                    ));
                }
            }
            if cmd == Cmd::Rotate {
                for k in kinds {
                    for key in kind_keys(k) {
                        if before.env_value(key).is_some()
                            && before.env_value(key) == after.env_value(key)
                        {
                            v.push(format!(
                                "rotate {k} exit 0 but compose.env's {key} is unchanged"
                            ));
                        }
                    }
                }
                if after.journal {
                    v.push("rotate exit 0 with a journal pending".into());
                }
                if !after.git.env_uncommitted && after.git.unpushed_env == 0 {
                } else {
                    v.push(format!(
                        "rotate exit 0 but compose.env is not committed and pushed (work tree differs from HEAD: {}, commits of it not on origin: {})",
                        after.git.env_uncommitted, after.git.unpushed_env
                    ));
                }
            }
        }
        (_, 3) => {
            let d = if faulted {
                same_values(before, after)
            } else {
                unchanged(before, after)
            };
            if !d.is_empty() {
                v.push(format!("exit 3 (nothing changed) but changed: {d:?}"));
            }
        }
        (Cmd::Rotate | Cmd::Rescue | Cmd::Resume, 4) => {
            let d = same_values(before, after);
            // Several kinds in one rotate: a later kind's failure after earlier ones committed
            // is 4 too (README "Exit codes"), and the message names the committed kinds.
            let earlier_committed =
                cmd == Cmd::Rotate && kinds.len() > 1 && run.stderr.contains("committed before");
            // `rescue` beside a pending env-only run finishes it first as `resume` does: rolled
            // back, it is that run's "before" that counts, not this command's (random seeds
            // 550157911 and 2309906258, session 9: the verdict was the harness's).
            let finished_as_resume = cmd == Cmd::Resume
                || cmd == Cmd::Rescue && run.stderr.contains("finishing it first as `resume` does");
            if !(d.is_empty() || finished_as_resume && before.journal || earlier_committed) {
                v.push(format!("exit 4 (rolled back) but not as before: {d:?}"));
            }
            // Back to where it started: a split the world made before the run (a hand edit of
            // the DB password that no run of another kind touches) is not the run's (random
            // seed 662903541, op 39); a split that is new is.
            let was = agreed(before);
            let a: Vec<String> = agreed(after)
                .into_iter()
                .filter(|x| !was.contains(x))
                .collect();
            if !a.is_empty() {
                v.push(format!("exit 4 but the planes are split: {a:?}"));
            }
            if after.journal {
                v.push("exit 4 with a journal pending".into());
            }
        }
        (Cmd::Rotate | Cmd::Rescue | Cmd::Resume, 5) => {
            if !after.journal && cmd != Cmd::Rescue {
                v.push("exit 5 but no journal is kept".into());
            }
            if !after.split() {
                v.push("exit 5 but the referee sees no split".into());
            }
        }
        // The run's own kind ended agreed, the deployment is unhealthy for another reason
        // (README "Exit codes" 7): no journal, and the referee must see that other problem.
        (Cmd::Rotate | Cmd::Resume, 7) => {
            if after.journal {
                v.push("exit 7 with a journal pending".into());
            }
            // A transient fault of the world during the run (Mongo stopped a while) is such a
            // problem while it lasts; healed by the time the referee looks, it leaves no trace.
            if after.core_serving && after.drift().is_empty() && !faulted {
                v.push("exit 7 but core serves and the referee sees no drift".into());
            }
        }
        (_, 6) => v.push("exit 6 (locked) with no other run".into()),
        (c, code) => v.push(format!("{c:?} exit {code} is outside its contract")),
    }
    v
}

/// Secret values found where none may be: the tool's output, argv/env of the tool's children,
/// and any file under `dir` but compose.env (ciphertext), `.git` (compressed) and the
/// referee's own scripts. Returns where.
pub fn leaks(secrets: &BTreeSet<String>, run: Option<&Run>, dir: &Path) -> Vec<String> {
    let mut hay: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(r) = run {
        hay.push(("stdout".into(), r.stdout.clone().into_bytes()));
        hay.push(("stderr".into(), r.stderr.clone().into_bytes()));
        for (label, s) in &r.proc_samples {
            hay.push((format!("/proc: {label}"), s.clone()));
        }
    }
    for f in walk(dir) {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        if rel == "compose.env" || rel.starts_with(".git/") || rel.starts_with("tmp/campaign-") {
            continue;
        }
        if let Ok(b) = std::fs::read(&f) {
            hay.push((format!("file {rel}"), b));
        }
    }
    let mut found = Vec::new();
    // The age private key: the tool holds it (its environment, the key file); nothing else may.
    if let Some(age) = crate::tool::age_secret(&dir.join("age.key")) {
        for (where_, bytes) in &hay {
            if where_ == "/proc: environ of the tool" || where_ == "file age.key" {
                continue;
            }
            if bytes.windows(age.len()).any(|w| w == age.as_bytes()) {
                found.push(format!("the age private key in {where_}"));
            }
        }
    }
    for (where_, bytes) in &hay {
        for s in secrets {
            let n = s.as_bytes();
            if bytes.windows(n.len()).any(|w| w == n) {
                found.push(format!(
                    "a secret value (fingerprint {}) in {where_}",
                    crate::referee::fp(s)
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leak_scan_finds_a_planted_value_and_skips_compose_env() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "s3cretValue-0123456789".to_string();
        let secrets: BTreeSet<String> = [secret.clone()].into();
        std::fs::write(dir.path().join("compose.env"), &secret).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/audit.log"), "no values here").unwrap();
        assert!(leaks(&secrets, None, dir.path()).is_empty());
        std::fs::write(dir.path().join("state/audit.log"), format!("x {secret} y")).unwrap();
        let found = leaks(&secrets, None, dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("state/audit.log") && !found[0].contains(&secret));
    }

    #[test]
    fn the_age_key_may_be_in_the_tool_and_its_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = "AGE-SECRET-KEY-1QQQQTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTQQ";
        std::fs::write(
            dir.path().join("age.key"),
            format!("# public key: age1x\n{key}\n"),
        )
        .unwrap();
        let none = BTreeSet::new();
        let run = |label: &str| Run {
            args: vec![],
            code: Some(0),
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            proc_samples: [(
                label.to_string(),
                format!("PATH=/bin\0SOPS_AGE_KEY={key}\0").into_bytes(),
            )]
            .into(),
            secs: 0.0,
            hung: false,
        };
        assert!(leaks(&none, Some(&run("environ of the tool")), dir.path()).is_empty());
        let found = leaks(&none, Some(&run("environ of child git")), dir.path());
        assert_eq!(
            found,
            vec!["the age private key in /proc: environ of child git".to_string()]
        );
        std::fs::write(dir.path().join("notes"), key).unwrap();
        assert_eq!(leaks(&none, None, dir.path()).len(), 1);
    }
}
