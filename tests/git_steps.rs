//! The transaction's git steps (`git-commit`, `git-push`) and the git pre-flight against real
//! git: a bare origin, the host checkout, the pipeline clone. Each step is applied and undone in
//! the order the runner uses (undo: git-push, git-commit, then write-env's restore of the old
//! bytes), including replays after a crash and the failure matrix (upstream touched the env file,
//! a refusing pre-receive hook, a refusing commit hook, a silent push URL).

mod git_support;

use git_support::*;
use komodo_rotate::config::Config;
use komodo_rotate::error::Error;
use komodo_rotate::planes::git_steps::{self, COMMIT_ID_FILE, REVERT_ID_FILE};
use komodo_rotate::planes::steps;
use komodo_rotate::planes::{GitTarget, RunContext};
use komodo_rotate::txn::{new_journal, Journal, Step};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const REL: &str = "services/komodo/compose.env";
const NEW: &str = "KOMODO_DB=ciphertext-NEW\n";
const OLD: &str = "KOMODO_DB=ciphertext-1\n";

struct Run {
    f: Fixture,
    cfg: Config,
    j: Journal,
    dir: PathBuf,
}

fn identity(f: &Fixture) {
    git_ok(&f.host, &["config", "user.name", "komodo-rotate test"]);
    git_ok(&f.host, &["config", "user.email", "t@example.invalid"]);
}

/// A fixture, its config with `git_section`, the pre-flight's target and a journal with it.
fn setup(git_section: &str) -> Run {
    let f = Fixture::new();
    identity(&f);
    f.write_config(git_section);
    let cfg = Config::load(Some(&f.config)).unwrap();
    let target = git_steps::preflight(&cfg).unwrap();
    journal_for(f, cfg, target)
}

fn journal_for(f: Fixture, cfg: Config, target: Option<GitTarget>) -> Run {
    let ctx = RunContext {
        compose_env: f.host.join(REL),
        git: target,
        ..RunContext::default()
    };
    let j = new_journal(
        "rotate",
        "db-password",
        &ctx.compose_env,
        ctx.to_value(),
        vec![],
    );
    let dir = f.tmp.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    Run { f, cfg, j, dir }
}

impl Run {
    fn apply(&self, s: Step) -> komodo_rotate::error::Result<()> {
        self.with_values(|v| git_steps::apply(&s, &self.j, &self.cfg, &self.dir, v))
    }
    fn undo(&self, s: Step) -> komodo_rotate::error::Result<()> {
        self.with_values(|v| git_steps::undo(&s, &self.j, &self.cfg, &self.dir, v))
    }
    /// These fixtures' env file is not a sops file and their journal has no write-env: the git
    /// steps' judgements by value (a revert by value, origin holding the run's values) have no
    /// run keys to read (tests/e2e_undo_by_value.rs covers them), so they fail as before.
    fn with_values<R>(
        &self,
        f: impl FnOnce(&komodo_rotate::planes::git_inverse::Values<'_>) -> R,
    ) -> R {
        let id = age::x25519::Identity::generate();
        let ids = komodo_rotate::sops::Identities::from_key_text(
            secrecy::ExposeSecret::expose_secret(&id.to_string()),
            "test",
        )
        .unwrap();
        let staged = komodo_rotate::planes::live::Staged {
            old: komodo_rotate::secret::Secret::new("o".into()),
            new: komodo_rotate::secret::Secret::new("n".into()),
        };
        let kept = komodo_rotate::planes::git_inverse::KeptEdits::default();
        let v = komodo_rotate::planes::git_inverse::Values {
            ids: &ids,
            staged: &staged,
            kept: &kept,
        };
        f(&v)
    }
    fn write_env(&self, body: &str) {
        std::fs::write(self.f.host.join(REL), body).unwrap();
    }
    /// The whole rollback as the runner orders it, write-env's restore last.
    fn roll_back(&self) {
        self.undo(steps::git_push()).unwrap();
        self.undo(steps::git_commit()).unwrap();
        self.write_env(OLD);
    }
    fn origin_env(&self) -> String {
        git_ok(&self.f.origin, &["show", &format!("main:{REL}")]) + "\n"
    }
    fn origin_log(&self) -> String {
        git_ok(&self.f.origin, &["log", "--format=%s", "main"])
    }
    fn host_clean(&self) {
        assert_eq!(git_ok(&self.f.host, &["status", "--porcelain"]), "");
    }
}

fn hook(dir: &Path, name: &str, body: &str) {
    let p = dir.join("hooks").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn precondition(r: komodo_rotate::error::Result<Option<GitTarget>>) -> String {
    match r {
        Err(Error::Precondition(m)) => m,
        other => panic!("expected a pre-flight refusal, got {other:?}"),
    }
}

#[test]
fn auto_mode_resolves_to_push_with_the_upstream_and_the_steps_sit_in_place() {
    let r = setup("");
    let t = RunContext::of(&r.j)
        .unwrap()
        .git
        .clone()
        .expect("git steps active");
    assert_eq!(t.path, REL);
    assert_eq!(t.push, Some(("origin".into(), "main".into())));
    let mut steps = vec![
        steps::snapshot(),
        steps::change_db(),
        steps::write_env(),
        steps::recreate("core"),
        steps::commit(),
    ];
    git_steps::add_steps(&mut steps, Some(&t));
    let names: Vec<String> = steps.iter().map(Step::name).collect();
    assert_eq!(
        names,
        [
            "snapshot",
            "change-db",
            "write-env",
            "git-commit",
            "recreate:core",
            "git-push",
            "commit"
        ]
    );
    let commit_only = GitTarget { push: None, ..t };
    let mut steps = vec![steps::write_env(), steps::commit()];
    git_steps::add_steps(&mut steps, Some(&commit_only));
    assert_eq!(
        steps,
        [steps::write_env(), steps::git_commit(), steps::commit()]
    );
}

#[test]
fn commit_and_push_reach_origin_the_pipeline_pulls_and_a_replay_adds_nothing() {
    let r = setup("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    assert_eq!(r.origin_env(), NEW);
    let id = std::fs::read_to_string(r.dir.join(COMMIT_ID_FILE)).unwrap();
    assert_eq!(id.trim(), r.f.head(&r.f.host));
    // resume replays both steps: no second commit, nothing new pushed.
    let log = r.origin_log();
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    assert_eq!(r.origin_log(), log);
    assert_eq!(log.lines().count(), 2, "{log}");
    git_ok(&r.f.pipeline, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        std::fs::read_to_string(r.f.pipeline.join(REL)).unwrap(),
        NEW
    );
    r.host_clean();
    assert_eq!(r.f.head(&r.f.host), r.f.head(&r.f.origin));
}

#[test]
fn rollback_after_push_reverts_on_origin_and_leaves_the_host_clean() {
    let r = setup("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    r.roll_back();
    assert_eq!(r.origin_env(), OLD);
    assert!(r
        .origin_log()
        .starts_with("komodo-rotate: roll back db-password"));
    r.host_clean();
    assert_eq!(r.f.head(&r.f.host), r.f.head(&r.f.origin));
    // Replaying the rollback (resume after a kill mid-undo) pushes nothing more.
    let log = r.origin_log();
    r.roll_back();
    assert_eq!(r.origin_log(), log);
    r.host_clean();
    git_ok(&r.f.pipeline, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        std::fs::read_to_string(r.f.pipeline.join(REL)).unwrap(),
        OLD
    );
}

#[test]
fn rollback_before_push_drops_our_commit_and_origin_never_sees_it() {
    let r = setup("");
    let before = r.f.head(&r.f.host);
    let origin_before = r.f.head(&r.f.origin);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.roll_back();
    assert_eq!(r.f.head(&r.f.host), before);
    assert_eq!(r.f.head(&r.f.origin), origin_before);
    assert!(!r.dir.join(REVERT_ID_FILE).exists());
    r.host_clean();
}

/// The state a kill between `git commit` and recording its id leaves (the id file is removed
/// here; nothing is killed): the replay finds this run's commit by its message, and it is undone.
#[test]
fn a_commit_whose_id_was_never_recorded_is_replayed_once_and_undone() {
    let r = setup("[git]\nmode = \"commit\"\n");
    assert_eq!(
        RunContext::of(&r.j).unwrap().git.as_ref().unwrap().push,
        None
    );
    let before = r.f.head(&r.f.host);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    std::fs::remove_file(r.dir.join(COMMIT_ID_FILE)).unwrap();
    // Replay first: HEAD carries this run's message, so no second commit.
    r.apply(steps::git_commit()).unwrap();
    assert_eq!(
        git_ok(
            &r.f.host,
            &["rev-list", "--count", &format!("{before}..HEAD")]
        ),
        "1"
    );
    r.roll_back();
    assert_eq!(r.f.head(&r.f.host), before);
    r.host_clean();
}

#[test]
fn push_retried_once_when_upstream_moved_elsewhere_and_the_id_follows() {
    let r = setup("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    let first = r.f.head(&r.f.host);
    r.f.upstream_commit(&[("README", "x\n")], "someone else");
    r.apply(steps::git_push()).unwrap();
    assert_eq!(r.origin_env(), NEW);
    let id = std::fs::read_to_string(r.dir.join(COMMIT_ID_FILE)).unwrap();
    assert_ne!(id.trim(), first, "the replayed commit has a new id");
    assert_eq!(id.trim(), r.f.head(&r.f.origin));
    // And its undo reverts the replayed commit, keeping the other change.
    r.roll_back();
    assert_eq!(r.origin_env(), OLD);
    assert_eq!(
        git_ok(&r.f.origin, &["show", "main:README"]),
        "x",
        "someone else's change survives"
    );
    r.host_clean();
}

#[test]
fn push_rejected_because_upstream_changed_the_env_file_rolls_back_without_a_stray_commit() {
    let r = setup("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.f.upstream_commit(&[(REL, "KOMODO_DB=ciphertext-THEIRS\n")], "theirs");
    let origin_before = r.f.head(&r.f.origin);
    let e = r.apply(steps::git_push()).unwrap_err().to_string();
    assert!(e.contains("changed") && e.contains(REL), "{e}");
    r.roll_back();
    assert_eq!(r.f.head(&r.f.origin), origin_before);
    assert!(!r.origin_log().contains("komodo-rotate"));
    r.host_clean();
}

#[test]
fn pre_receive_hook_refusal_rolls_back_without_a_stray_commit() {
    let r = setup("");
    hook(
        &r.f.origin,
        "pre-receive",
        "echo 'protected branch' >&2; exit 1",
    );
    let origin_before = r.f.head(&r.f.origin);
    let before = r.f.head(&r.f.host);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    let e = r.apply(steps::git_push()).unwrap_err().to_string();
    assert!(e.contains("protected branch"), "{e}");
    r.roll_back();
    assert_eq!(r.f.head(&r.f.origin), origin_before);
    assert_eq!(r.f.head(&r.f.host), before);
    r.host_clean();
}

#[test]
fn commit_hook_refusal_fails_the_step_and_its_undo_changes_nothing() {
    let r = setup("");
    hook(
        &r.f.host.join(".git"),
        "pre-commit",
        "echo 'no secrets' >&2; exit 1",
    );
    let before = r.f.head(&r.f.host);
    r.write_env(NEW);
    let e = r.apply(steps::git_commit()).unwrap_err().to_string();
    assert!(e.contains("no secrets"), "{e}");
    r.roll_back();
    assert_eq!(r.f.head(&r.f.host), before);
    r.host_clean();
}

#[test]
fn a_silent_push_url_times_out_and_the_rollback_proves_origin_untouched() {
    let r = setup("[git]\nnetwork_timeout = \"2s\"\n");
    let port = silent_listener();
    // Fetches still reach origin; pushes go to a listener that never answers.
    git_ok(
        &r.f.host,
        &[
            "remote",
            "set-url",
            "--push",
            "origin",
            &format!("git://127.0.0.1:{port}/o.git"),
        ],
    );
    let origin_before = r.f.head(&r.f.origin);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    let e = r.apply(steps::git_push()).unwrap_err().to_string();
    assert!(e.contains("within 2s"), "{e}");
    r.roll_back();
    assert_eq!(r.f.head(&r.f.origin), origin_before);
    r.host_clean();
    // The same remote at pre-flight time: refused, exit-3 class.
    let m = precondition(git_steps::preflight(&r.cfg));
    assert!(
        m.contains("within 2s") && m.contains("mode = \"commit\""),
        "{m}"
    );
}

#[test]
fn an_unreachable_remote_during_the_push_undo_is_not_called_proven() {
    let r = setup("[git]\nnetwork_timeout = \"2s\"\n");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    let port = silent_listener();
    git_ok(
        &r.f.host,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("git://127.0.0.1:{port}/o.git"),
        ],
    );
    assert!(r.undo(steps::git_push()).is_err());
}

#[test]
fn preflight_refusals_each_say_what_to_do_and_change_nothing() {
    // Local modification of the env file.
    let f = Fixture::new();
    std::fs::write(f.host.join(REL), "edited\n").unwrap();
    let cfg = Config::load(Some(&f.config)).unwrap();
    let before = snapshot(&f.host);
    let m = precondition(git_steps::preflight(&cfg));
    assert!(
        m.contains("uncommitted changes") && m.contains("git -C"),
        "{m}"
    );
    assert_eq!(snapshot(&f.host), before);

    // Upstream changed the env file: the rotation's base would be stale.
    let f = Fixture::new();
    f.upstream_commit(&[(REL, "KOMODO_DB=ciphertext-THEIRS\n")], "theirs");
    let cfg = Config::load(Some(&f.config)).unwrap();
    let m = precondition(git_steps::preflight(&cfg));
    assert!(
        m.contains("pull --ff-only") && m.contains("1 commit(s)"),
        "{m}"
    );

    // Upstream moved elsewhere: push --dry-run is not a fast-forward.
    let f = Fixture::new();
    f.upstream_commit(&[("README", "x\n")], "other");
    let cfg = Config::load(Some(&f.config)).unwrap();
    let m = precondition(git_steps::preflight(&cfg));
    assert!(m.contains("push --dry-run"), "{m}");

    // A pre-flight that fetched refuses on the push URL's credentials too.
    let f = Fixture::new();
    git_ok(
        &f.host,
        &[
            "remote",
            "set-url",
            "--push",
            "origin",
            "/nonexistent/repo.git",
        ],
    );
    let cfg = Config::load(Some(&f.config)).unwrap();
    let m = precondition(git_steps::preflight(&cfg));
    assert!(m.contains("push --dry-run"), "{m}");

    // mode = push without an upstream.
    let f = Fixture::new();
    git_ok(&f.host, &["branch", "--unset-upstream"]);
    f.write_config("[git]\nmode = \"push\"\n");
    let cfg = Config::load(Some(&f.config)).unwrap();
    let m = precondition(git_steps::preflight(&cfg));
    assert!(m.contains("no upstream"), "{m}");
    // ... while auto falls back to commit.
    f.write_config("");
    let cfg = Config::load(Some(&f.config)).unwrap();
    let t = git_steps::preflight(&cfg).unwrap().unwrap();
    assert_eq!(t.push, None);
}

#[test]
fn untracked_or_off_means_no_git_steps_unless_a_mode_demands_them() {
    let f = Fixture::new();
    git_ok(&f.host, &["rm", "-q", "--cached", REL]);
    git_ok(&f.host, &["commit", "-q", "-m", "untrack"]);
    f.write_config("");
    let cfg = Config::load(Some(&f.config)).unwrap();
    assert_eq!(git_steps::preflight(&cfg).unwrap(), None);
    f.write_config("[git]\nmode = \"commit\"\n");
    let cfg = Config::load(Some(&f.config)).unwrap();
    let m = precondition(git_steps::preflight(&cfg));
    assert!(
        m.contains("not tracked") && m.contains("mode = \"off\""),
        "{m}"
    );

    // Outside any work tree.
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("compose.env");
    std::fs::write(&env, OLD).unwrap();
    let cfgp = tmp.path().join("c.toml");
    for (section, active) in [("", false), ("[git]\nmode = \"push\"\n", true)] {
        std::fs::write(
            &cfgp,
            format!(
                "compose_env = \"{}\"\nstate_dir = \"{}\"\n{section}",
                env.display(),
                tmp.path().join("s").display()
            ),
        )
        .unwrap();
        let cfg = Config::load(Some(&cfgp)).unwrap();
        if active {
            let m = precondition(git_steps::preflight(&cfg));
            assert!(m.contains("not in a git work tree"), "{m}");
        } else {
            assert_eq!(git_steps::preflight(&cfg).unwrap(), None);
        }
    }
    // mode = off: nothing, even when tracked.
    let f = Fixture::new();
    f.write_config("[git]\nmode = \"off\"\n");
    let cfg = Config::load(Some(&f.config)).unwrap();
    assert_eq!(git_steps::preflight(&cfg).unwrap(), None);
}

/// Seam with write-env (issue 18, item 1): a journal whose plan has a write-env step that
/// recorded writing NEW, the way write-env records it (a SHA-256 of the bytes in the journal dir).
fn with_write_env(git_section: &str) -> Run {
    let mut r = setup(git_section);
    r.j.steps = new_journal(
        "rotate",
        "db-password",
        &r.j.guarded,
        r.j.context.clone(),
        vec![steps::write_env(), steps::git_commit(), steps::git_push()],
    )
    .steps;
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(NEW.as_bytes()));
    std::fs::write(
        r.dir.join(komodo_rotate::planes::live::WRITTEN_ENV_FILE),
        hash,
    )
    .unwrap();
    r
}

/// Push mode: ours reached origin, then someone set another key in the work tree's compose.env
/// (`sops set` during the health gate). git-push's undo must not check HEAD's copy out over it:
/// it fails naming the file (the rollback stops, exit 5), the edit and origin as they were.
#[test]
fn a_foreign_edit_survives_the_push_undo_which_fails_naming_the_file() {
    let r = with_write_env("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    let edited = format!("{NEW}OTHER=ciphertext-theirs\n");
    r.write_env(&edited);
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    let e = r.undo(steps::git_push()).unwrap_err().to_string();
    assert!(
        e.contains(&r.f.host.join(REL).display().to_string())
            && e.contains("changed under the run"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), edited);
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
    assert!(!r.dir.join(REVERT_ID_FILE).exists());
    // Once the file holds exactly what the run wrote again, the same undo goes through.
    r.write_env(NEW);
    r.undo(steps::git_push()).unwrap();
    assert_eq!(r.origin_env(), OLD);
    r.host_clean();
}

/// Commit mode, commits on top of ours (so the undo is a revert, which checks HEAD's copy out):
/// the same foreign edit is kept and the undo fails naming the file; no revert commit is made.
#[test]
fn a_foreign_edit_survives_the_commit_undos_revert_branch() {
    let r = with_write_env("[git]\nmode = \"commit\"\n");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    std::fs::write(r.f.host.join("README"), "x\n").unwrap();
    git_ok(&r.f.host, &["add", "README"]);
    git_ok(&r.f.host, &["commit", "-q", "-m", "someone else, later"]);
    let head = r.f.head(&r.f.host);
    let edited = format!("{NEW}OTHER=ciphertext-theirs\n");
    r.write_env(&edited);
    let e = r.undo(steps::git_commit()).unwrap_err().to_string();
    assert!(e.contains(&r.f.host.join(REL).display().to_string()), "{e}");
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), edited);
    assert_eq!(r.f.head(&r.f.host), head, "no revert commit");
    // Once the file holds the run's bytes again, the revert goes through.
    r.write_env(NEW);
    r.undo(steps::git_commit()).unwrap();
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), OLD);
}

/// A commit-msg hook that rewrites the message (a DCO/Gerrit-style hook: new subject, a
/// trailer paragraph of its own) but keeps the lines it was given.
fn rewording_hook(r: &Run) {
    hook(
        &r.f.host.join(".git"),
        "commit-msg",
        "sed -i '1s/^/[reworded] /' \"$1\"; printf '\\nChange-Id: I0123abcd\\nSigned-off-by: t <t@example.invalid>\\n' >> \"$1\"",
    );
}

/// Issue 18, item 11: a rewording hook, then upstream moves so the push rebases and retries
/// (our commit gets a new id), and the recorded id is the stale pre-rebase one. git-push's undo
/// finds ours on the remote by its trailer and reverts it there: origin back to OLD.
#[test]
fn the_push_undo_finds_ours_by_trailer_after_a_rewording_hook_and_a_rebase() {
    let r = setup("");
    rewording_hook(&r);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    let first = r.f.head(&r.f.host);
    let msg = git_ok(&r.f.host, &["log", "-1", "--format=%B"]);
    assert!(msg.starts_with("[reworded]"), "{msg}");
    assert!(
        msg.contains(&format!("{}: {}", git_steps::RUN_TRAILER, r.j.run_id)),
        "{msg}"
    );
    r.f.upstream_commit(&[("README", "x\n")], "someone else");
    r.apply(steps::git_push()).unwrap();
    assert_eq!(r.origin_env(), NEW);
    assert_ne!(r.f.head(&r.f.origin), first, "the retry replayed ours");
    // A crash before the new id was recorded: the journal dir still names the old one.
    std::fs::write(r.dir.join(COMMIT_ID_FILE), format!("{first}\n")).unwrap();
    r.roll_back();
    assert_eq!(r.origin_env(), OLD, "the remote must not keep NEW");
    // The hook rewords our revert too.
    assert!(r
        .origin_log()
        .starts_with("[reworded] komodo-rotate: roll back"));
    assert_eq!(git_ok(&r.f.origin, &["show", "main:README"]), "x");
    r.host_clean();
}

/// Commit mode, a rewording hook, and a kill between the commit and recording its id: the
/// replay adds no second commit and the undo still finds ours (by trailer) and drops it.
#[test]
fn a_reworded_commit_whose_id_was_never_recorded_is_still_undone() {
    let r = setup("[git]\nmode = \"commit\"\n");
    rewording_hook(&r);
    let before = r.f.head(&r.f.host);
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    std::fs::remove_file(r.dir.join(COMMIT_ID_FILE)).unwrap();
    r.apply(steps::git_commit()).unwrap();
    assert_eq!(
        git_ok(
            &r.f.host,
            &["rev-list", "--count", &format!("{before}..HEAD")]
        ),
        "1"
    );
    r.roll_back();
    assert_eq!(r.f.head(&r.f.host), before, "our commit must be gone");
    r.host_clean();
}

/// Push mode, ours reached origin, then a colleague's push re-sealed the same line of
/// compose.env (a `sops set` rewrites sops_mac/sops_lastmodified and the ciphertexts): the revert
/// cannot apply textually. The undo then sets the run's keys back by value
/// (tests/e2e_undo_by_value.rs); here the env file is no sops file, so that cannot apply either:
/// git-push's undo refuses up front, one line naming the file (the rollback stops: exit 5), and
/// leaves no half-done revert: no REVERT_HEAD, no unmerged entry, compose.env byte for byte as
/// it was, host HEAD and origin untouched.
#[test]
fn a_push_undo_whose_revert_would_conflict_changes_nothing_and_names_the_file() {
    let r = with_write_env("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    r.apply(steps::git_push()).unwrap();
    r.f.upstream_commit(
        &[(REL, "KOMODO_DB=ciphertext-NEW-resealed\n")],
        "colleague: sops set OTHER",
    );
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    let e = r.undo(steps::git_push()).unwrap_err().to_string();
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), NEW);
    let o = git(&r.f.host, &["rev-parse", "-q", "--verify", "REVERT_HEAD"]);
    assert!(!o.status.success(), "REVERT_HEAD left behind");
    r.host_clean();
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
    assert!(!r.dir.join(REVERT_ID_FILE).exists());
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains(REL), "{e}");
    // The same undo again: the same refusal, still nothing changed.
    let again = r.undo(steps::git_push()).unwrap_err().to_string();
    assert_eq!(again, e);
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), NEW);
    r.host_clean();
}

/// The campaign's lockout (random seed 1553303945): a run killed after git-commit, the
/// operator's own `git push` (of a title edit) takes our commit to origin, a colleague's commit
/// touching compose.env lands on top, then `resume` rolls forward. git-push is already done
/// (ours is on the remote branch): replaying it must say so, not push a stale HEAD, get refused
/// and roll back into a revert that conflicts forever (resume exit 5 on every try).
#[test]
fn a_push_replay_finds_ours_on_the_remote_after_someone_else_pushed_it_and_moved_on() {
    let r = with_write_env("");
    r.write_env(NEW);
    r.apply(steps::git_commit()).unwrap();
    git_ok(&r.f.host, &["push", "-q"]);
    let theirs = r.f.upstream_commit(
        &[(REL, "KOMODO_DB=ciphertext-NEW-resealed\n")],
        "colleague: sops set OTHER",
    );
    let host = r.f.head(&r.f.host);
    r.apply(steps::git_push()).unwrap();
    assert_eq!(
        r.f.head(&r.f.origin),
        theirs,
        "origin moved, nothing pushed over it"
    );
    assert_eq!(r.f.head(&r.f.host), host);
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), NEW);
    r.host_clean();
}

/// The campaign's random seed 2967158084, op 5: a colleague's `sops set` of another key read
/// compose.env before write-env and wrote it back after (ours lost, theirs in). git-commit
/// committed that file under our trailer, so the rollback's revert took the colleague's edit
/// away too. git-commit commits only the bytes this run wrote; anything else fails the step
/// (nothing committed) and the edit stays in the work tree.
#[test]
fn git_commit_refuses_a_file_that_is_not_what_write_env_wrote() {
    let r = with_write_env("");
    let head = r.f.head(&r.f.host);
    let theirs = "KOMODO_DB=ciphertext-OLD-with-a-colleagues-title\n";
    std::fs::write(r.f.host.join(REL), theirs).unwrap();
    let e = r.apply(steps::git_commit()).unwrap_err().to_string();
    assert!(
        e.contains("changed under the run") && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(r.f.head(&r.f.host), head, "nothing committed");
    assert_eq!(std::fs::read_to_string(r.f.host.join(REL)).unwrap(), theirs);
    // What write-env wrote is committed as before.
    std::fs::write(r.f.host.join(REL), NEW).unwrap();
    r.apply(steps::git_commit()).unwrap();
    assert_ne!(r.f.head(&r.f.host), head);
}

/// git-commit's check of the file and git's own read of it are two reads, and a colleague's
/// `sops set` takes no lock of ours: an edit landing between them went out under our trailer
/// (found reading the code during the campaign). A `git` first on PATH that writes the
/// colleague's bytes just before the real `git commit --only` reads the file makes that landing
/// certain. The commit is taken back out (HEAD as before), the step fails naming the file, and
/// the colleague's edit stays in the work tree.
#[test]
fn an_edit_landing_between_the_check_and_gits_read_is_taken_back_out_of_the_commit() {
    let r = with_write_env("");
    r.write_env(NEW);
    let head = r.f.head(&r.f.host);
    let theirs = format!("{NEW}OTHER=ciphertext-theirs\n");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = r.f.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let file = r.f.host.join(REL);
    std::fs::write(
        bin.join("git"),
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" commit \"*\"--only\"*) printf '%s' '{theirs}' > '{}';; esac\nexec {} \"$@\"\n",
            file.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    let mut with = std::ffi::OsString::from(bin.as_os_str());
    with.push(":");
    with.push(&path);
    std::env::set_var("PATH", &with);
    let e = r.apply(steps::git_commit());
    std::env::set_var("PATH", &path);
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("changed under the run") && e.contains(REL) && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(r.f.head(&r.f.host), head, "the commit taken back out");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), theirs);
    assert!(!r.dir.join(COMMIT_ID_FILE).exists());
    let staged = git_ok(&r.f.host, &["diff", "--cached", "--name-only"]);
    assert_eq!(staged, "", "nothing left staged");
}
