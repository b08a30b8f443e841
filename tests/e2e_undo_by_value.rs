//! The inverse edit (issue 18): an undo that meets compose.env changed after the run wrote it
//! sets only the run's keys back to their old values on top of the file as it is, and git's undo
//! makes a commit on top that does the same (a revert by value), where restoring bytes or
//! `git revert` would refuse or conflict. One test per shape the random campaign locked out on
//! (seeds 989915275, 374415312), plus the real conflict (someone changed the run's own key).
//! Real git (bare origin, host, a colleague's clone), real `sops set` for the colleague's edits,
//! real `sops decrypt` for every outcome. The undos run in the runner's order: git-push,
//! git-commit, write-env.

mod git_support;
#[path = "common/stack_sops.rs"]
mod stack_sops;

use git_support::*;
use komodo_rotate::audit::KeptEdit;
use komodo_rotate::config::Config;
use komodo_rotate::planes::git_inverse::{kept_line, KeptEdits, Values};
use komodo_rotate::planes::git_steps;
use komodo_rotate::planes::live::{undo_write_env, Staged, PREV_ENV_FILE, WRITTEN_ENV_FILE};
use komodo_rotate::planes::steps;
use komodo_rotate::planes::RunContext;
use komodo_rotate::secret::Secret;
use komodo_rotate::sops::{encrypt_new, Identities, SopsFile};
use komodo_rotate::txn::{new_journal, Journal};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

const REL: &str = "services/komodo/compose.env";
const KEY: &str = "KOMODO_JWT_SECRET";

struct Run {
    f: Fixture,
    cfg: Config,
    j: Journal,
    dir: PathBuf,
    ids: Identities,
    key_file: PathBuf,
    staged: Staged,
    kept: KeptEdits,
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// `key`'s value in `bytes` (a compose.env), by the real `sops decrypt`.
fn sops_get(bytes: &[u8], age_key: &Path, key: &str) -> Option<String> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("compose.env");
    std::fs::write(&p, bytes).unwrap();
    stack_sops::get_at(&p, age_key, key)
}

/// Push or commit mode; compose.env a real sops file holding OLD under KEY, committed and pushed;
/// write-env has written NEW (recorded as write-env records it) and git-commit committed it.
fn after_commit(git_section: &str) -> Run {
    after_commit_setting(git_section, &[KEY])
}

/// [`after_commit`] with write-env setting each of `keys` to NEW (a key other than KEY is absent
/// before the run: the run adds it).
fn after_commit_setting(git_section: &str, keys: &[&str]) -> Run {
    let r = after_write_env(git_section, keys);
    git_steps::apply(&steps::git_commit(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    r
}

/// As [`after_commit_setting`], but the run lies killed after write-env: NEW is in the work tree,
/// uncommitted.
fn after_write_env(git_section: &str, keys: &[&str]) -> Run {
    let f = Fixture::new();
    for d in [&f.host, &f.pipeline] {
        git_ok(d, &["config", "user.name", "komodo-rotate test"]);
        git_ok(d, &["config", "user.email", "t@example.invalid"]);
    }
    let id = age::x25519::Identity::generate();
    let key_file = f.tmp.path().join("age.key");
    std::fs::write(&key_file, format!("{}\n", id.to_string().expose_secret())).unwrap();
    let ids = Identities::from_key_file(&key_file).unwrap();
    let plain = format!("KOMODO_TITLE=before\n{KEY}=OLD-jwt\n");
    let env = f.host.join(REL);
    std::fs::write(
        &env,
        encrypt_new(plain.as_bytes(), &[id.to_public().to_string()]).unwrap(),
    )
    .unwrap();
    git_ok(&f.host, &["commit", "-q", "-am", "a real sops file"]);
    git_ok(&f.host, &["push", "-q", "origin", "main"]);
    f.write_config(git_section);
    let cfg = Config::load(Some(&f.config)).unwrap();
    let target = git_steps::preflight(&cfg).unwrap();
    let ctx = RunContext {
        compose_env: env.clone(),
        env_key: KEY.into(),
        git: target,
        ..RunContext::default()
    };
    let write_env = match keys {
        [k] if *k == KEY => steps::write_env(),
        all => all.iter().fold(steps::write_env(), |s, k| s.with(k, "new")),
    };
    let mut plan = vec![write_env, steps::git_commit()];
    if git_section.is_empty() {
        plan.push(steps::git_push());
    }
    let j = new_journal("rotate", "jwt-secret", &env, ctx.to_value(), plan);
    let dir = f.tmp.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let staged = Staged {
        old: Secret::new("OLD-jwt".into()),
        new: Secret::new("NEW-jwt".into()),
    };
    // write-env, as it records itself.
    let before = std::fs::read(&env).unwrap();
    let set: Vec<(&str, &Secret)> = keys.iter().map(|k| (*k, &staged.new)).collect();
    let new = SopsFile::load(&env)
        .unwrap()
        .with_values(&ids, &set)
        .unwrap();
    std::fs::write(dir.join(PREV_ENV_FILE), &before).unwrap();
    std::fs::write(dir.join(WRITTEN_ENV_FILE), sha256_hex(&new)).unwrap();
    std::fs::write(&env, &new).unwrap();
    Run {
        f,
        cfg,
        j,
        dir,
        ids,
        key_file,
        staged,
        kept: KeptEdits::default(),
    }
}

impl Run {
    fn env(&self) -> PathBuf {
        self.f.host.join(REL)
    }
    fn values(&self) -> Values<'_> {
        Values {
            ids: &self.ids,
            staged: &self.staged,
            kept: &self.kept,
        }
    }
    fn undo_git(&self, s: komodo_rotate::txn::Step) -> komodo_rotate::error::Result<()> {
        git_steps::undo(&s, &self.j, &self.cfg, &self.dir, &self.values())
    }
    fn undo_write_env(&self) -> komodo_rotate::error::Result<()> {
        let ctx = RunContext::of(&self.j).unwrap();
        undo_write_env(
            &self.j.steps[0].step,
            &ctx,
            &self.staged,
            &self.ids,
            &self.dir,
            &self.kept,
        )
    }
    /// The whole rollback as the runner orders it.
    fn roll_back(&self) -> komodo_rotate::error::Result<()> {
        if self.j.steps.iter().any(|r| r.step.is(steps::GIT_PUSH)) {
            self.undo_git(steps::git_push())?;
        }
        self.undo_git(steps::git_commit())?;
        self.undo_write_env()
    }
    /// A colleague's commit in their clone: `sops set` of `key`, pushed to origin.
    fn colleague_pushes(&self, key: &str, value: &str) {
        let c = &self.f.pipeline;
        git_ok(c, &["pull", "-q", "--ff-only"]);
        stack_sops::set_at(&c.join(REL), &self.key_file, key, value);
        git_ok(c, &["commit", "-q", "-am", "colleague's edit"]);
        git_ok(c, &["push", "-q", "origin", "main"]);
    }
    /// After a push undo by value over a colleague's title: origin holds the run's key back
    /// and their title, the host is on origin's commit, clean, its work tree on the old value.
    fn key_back_on_origin_beside_the_colleagues_title(&self) {
        assert_eq!(
            self.at(&self.f.origin, "main", KEY).as_deref(),
            Some("OLD-jwt")
        );
        assert_eq!(
            self.at(&self.f.origin, "main", "KOMODO_TITLE").as_deref(),
            Some("colleague")
        );
        assert_eq!(self.f.head(&self.f.host), self.f.head(&self.f.origin));
        assert_eq!(self.work_tree(KEY).as_deref(), Some("OLD-jwt"));
        assert_eq!(git_ok(&self.f.host, &["status", "--porcelain"]), "");
    }
    /// The operator's own edit on the host, committed (not pushed).
    fn operator_commits(&self, key: &str, value: &str) {
        stack_sops::set_at(&self.env(), &self.key_file, key, value);
        git_ok(&self.f.host, &["commit", "-q", "-am", "operator's edit"]);
    }
    /// A replay (resume after a kill at the end) moves nothing at `dir` and tells nothing new.
    fn a_replay_changes_nothing(&self, dir: &Path) {
        let after = self.f.head(dir);
        self.roll_back().unwrap();
        assert_eq!(self.f.head(dir), after);
        assert!(self.kept.take().is_empty());
    }
    fn at(&self, dir: &Path, rev: &str, key: &str) -> Option<String> {
        let o = git(dir, &["show", &format!("{rev}:{REL}")]);
        assert!(o.status.success());
        sops_get(&o.stdout, &self.key_file, key)
    }
    fn work_tree(&self, key: &str) -> Option<String> {
        sops_get(&std::fs::read(self.env()).unwrap(), &self.key_file, key)
    }
    /// The undo by value was told (the stderr line and the audit record's `kept_edits` both come
    /// from this record): the file, the run's key set back, the other keys kept; no value.
    fn told(&self, kept: &[&str], by_commit: bool) -> KeptEdit {
        let all = self.kept.take();
        assert_eq!(all.len(), 1, "one undo by value");
        let e = all.into_iter().next().unwrap();
        assert_eq!(e.file, self.env().display().to_string());
        assert_eq!(e.set_back, [KEY]);
        assert_eq!(e.kept, kept);
        assert_eq!(e.commit.is_some(), by_commit);
        let line = kept_line(&e);
        assert!(line.contains(REL) && line.contains(KEY), "{line}");
        for v in ["OLD-jwt", "NEW-jwt", "operator-", "colleague", "theirs"] {
            assert!(!line.contains(v), "a value in: {line}");
        }
        e
    }
}

/// Seed 989915275's shape (commit mode): our local commit sits under the operator's commits that
/// edited compose.env, so `git revert` conflicts on the MAC lines. The undo commits the run's key
/// back on top; the operator's edit stays, in HEAD and the work tree; the proof agrees.
#[test]
fn our_commit_under_the_operators_commits_is_undone_by_value() {
    let r = after_commit("[git]\nmode = \"commit\"\n");
    r.operator_commits("KOMODO_TITLE", "operator-1");
    r.operator_commits("OTHER", "operator-2");
    let head = r.f.head(&r.f.host);
    r.roll_back().unwrap();
    assert_ne!(r.f.head(&r.f.host), head, "a commit on top, none rewritten");
    assert_eq!(
        git_ok(&r.f.host, &["rev-parse", "HEAD^"]),
        head,
        "the operator's commits stay in the history"
    );
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(
        r.at(&r.f.host, "HEAD", "KOMODO_TITLE").as_deref(),
        Some("operator-1")
    );
    assert_eq!(
        r.at(&r.f.host, "HEAD", "OTHER").as_deref(),
        Some("operator-2")
    );
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    let told = r.told(&["KOMODO_TITLE", "OTHER"], true);
    assert_eq!(told.commit, Some(r.f.head(&r.f.host)));
    r.a_replay_changes_nothing(&r.f.host);
}

/// Push mode: ours reached origin, a colleague pushed a `sops set` of another key on top. The
/// push undo commits the run's key back on top of origin's branch and pushes it.
#[test]
fn ours_on_origin_under_a_colleagues_push_is_undone_by_value_on_origin() {
    let r = after_commit("");
    git_steps::apply(&steps::git_push(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    r.colleague_pushes("KOMODO_TITLE", "colleague");
    r.roll_back().unwrap();
    r.key_back_on_origin_beside_the_colleagues_title();
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    r.told(&["KOMODO_TITLE"], true);
}

/// Seed 374415312's shape: a colleague's `sops set` of another key landed in the work tree after
/// our commit (HEAD is still ours). The commit is dropped; write-env's undo sets the run's key
/// back over their edit, which stays (theirs to commit); the proof accepts the difference from
/// HEAD because the run's key agrees with HEAD's.
#[test]
fn a_colleagues_edit_after_our_commit_stays_and_the_run_key_goes_back() {
    let r = after_commit("[git]\nmode = \"commit\"\n");
    stack_sops::set_at(&r.env(), &r.key_file, "KOMODO_TITLE", "theirs");
    r.roll_back().unwrap();
    assert_eq!(r.work_tree(KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(r.work_tree("KOMODO_TITLE").as_deref(), Some("theirs"));
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("OLD-jwt"));
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    r.told(&["KOMODO_TITLE"], false);
    // Once they commit it, the repo is clean.
    git_ok(&r.f.host, &["commit", "-q", "-am", "colleague's title"]);
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
}

/// The real conflict: someone else committed a third value of the run's own key on top. The
/// undo fails naming the file and the key; HEAD, origin and the work tree stay as they were.
#[test]
fn someone_elses_value_of_the_run_key_is_a_conflict_named_and_kept() {
    let r = after_commit("");
    git_steps::apply(&steps::git_push(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    r.colleague_pushes(KEY, "THIRD");
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    let bytes = std::fs::read(r.env()).unwrap();
    let e = r.undo_git(steps::git_push()).unwrap_err().to_string();
    assert!(
        e.contains(REL) && e.contains(KEY) && e.contains("conflict"),
        "{e}"
    );
    assert!(
        !e.contains("THIRD") && !e.contains("NEW-jwt"),
        "no value in the message: {e}"
    );
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
    assert_eq!(std::fs::read(r.env()).unwrap(), bytes);
    assert_eq!(r.at(&r.f.origin, "main", KEY).as_deref(), Some("THIRD"));
    assert!(r.kept.take().is_empty(), "nothing set back, nothing told");
}

/// A key the run added (absent before it), and the operator's commit of another key on top: the
/// revert by value removes the added key and sets KEY back, the operator's edit stays; the real
/// `sops` reads the result (MAC over what is left) and the rollback proof accepts it.
#[test]
fn a_key_the_run_added_is_removed_by_value_and_the_operators_edit_stays() {
    let r = after_commit_setting("[git]\nmode = \"commit\"\n", &[KEY, "NEWKEY"]);
    assert_eq!(r.work_tree("NEWKEY").as_deref(), Some("NEW-jwt"));
    r.operator_commits("KOMODO_TITLE", "operator-1");
    r.roll_back().unwrap();
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(r.at(&r.f.host, "HEAD", "NEWKEY"), None);
    assert_eq!(
        r.at(&r.f.host, "HEAD", "KOMODO_TITLE").as_deref(),
        Some("operator-1")
    );
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    let told = r.told(&["KOMODO_TITLE"], true);
    assert_eq!(told.removed, ["NEWKEY"]);
}

/// The push undo's first try made its revert and recorded it, but the revert never reached
/// origin (a pre-push hook refuses once here; in the campaign a SIGKILL), and a colleague pushed
/// a `sops set` of another key meanwhile. The state of the campaign's lockout (seed 1093341921,
/// op 55): that revert's push is refused on every try (origin changed compose.env since its
/// base), so resume ended 5 for ever.
fn revert_made_then_a_colleague_pushes() -> (Run, String) {
    use std::os::unix::fs::PermissionsExt;
    let r = after_commit("");
    git_steps::apply(&steps::git_push(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    let hook = r.f.host.join(".git/hooks/pre-push");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(
        &hook,
        "#!/bin/sh\nrm -f \"$0\"\necho refused once >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = r.undo_git(steps::git_push()).unwrap_err().to_string();
    let revert = r.f.head(&r.f.host);
    assert_eq!(
        std::fs::read_to_string(r.dir.join(git_steps::REVERT_ID_FILE))
            .unwrap()
            .trim(),
        revert,
        "the revert was made and recorded before its push failed: {e}"
    );
    r.colleague_pushes("KOMODO_TITLE", "colleague");
    (r, revert)
}

/// The resume after that state: the unpushed revert is dropped and the run's key is set back
/// by value on top of the colleague's commit, pushed; their title stays.
fn resume_ends_with_the_key_back_on_top_of_the_colleagues_commit(r: &Run, revert: &str) {
    r.roll_back().unwrap();
    r.key_back_on_origin_beside_the_colleagues_title();
    let gone = git(&r.f.host, &["merge-base", "--is-ancestor", revert, "HEAD"]);
    assert!(!gone.status.success(), "the stale revert left in history");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    r.told(&["KOMODO_TITLE"], true);
    // A replay (resume after a kill at the end) changes nothing more.
    let after = r.f.head(&r.f.origin);
    r.roll_back().unwrap();
    assert_eq!(r.f.head(&r.f.origin), after);
}

#[test]
fn an_unpushed_revert_under_a_colleagues_push_is_made_again_on_top_of_it() {
    let (r, revert) = revert_made_then_a_colleague_pushes();
    resume_ends_with_the_key_back_on_top_of_the_colleagues_commit(&r, &revert);
}

/// A kill inside that drop: HEAD is off the revert already, the work tree still holds the
/// revert's bytes, and `git-revert.id` is still recorded. The resume finishes the drop.
#[test]
fn a_kill_inside_the_drop_of_the_unpushed_revert_is_finished_by_the_resume() {
    let (r, revert) = revert_made_then_a_colleague_pushes();
    git_ok(&r.f.host, &["reset", "-q", "--soft", "HEAD^"]);
    git_ok(&r.f.host, &["reset", "-q", "HEAD", "--", REL]);
    assert_eq!(
        r.work_tree(KEY).as_deref(),
        Some("OLD-jwt"),
        "the revert's bytes"
    );
    resume_ends_with_the_key_back_on_top_of_the_colleagues_commit(&r, &revert);
}

/// An edit made in the work tree after the unpushed revert (another key, uncommitted) is not
/// taken away: the undo fails naming the file and says what to do; HEAD, origin and the file as
/// they were.
#[test]
fn an_edit_after_the_unpushed_revert_is_kept_and_named() {
    let (r, _revert) = revert_made_then_a_colleague_pushes();
    stack_sops::set_at(&r.env(), &r.key_file, "OTHER", "theirs");
    let bytes = std::fs::read(r.env()).unwrap();
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    let e = r.undo_git(steps::git_push()).unwrap_err().to_string();
    assert!(
        e.contains(REL) && e.contains("changed after this run's revert") && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(std::fs::read(r.env()).unwrap(), bytes);
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
}

/// The campaign's seed 1602271867 (op 55): a jwt-secret run lies killed after write-env, and the
/// operator's hand edit of another key is committed with `commit -a` and pushed: that commit
/// takes the run's uncommitted NEW along, to HEAD and to origin. Then a colleague pushes a
/// compose.env edit, so pushing HEAD again is refused (stale base).
fn swept_into_the_operators_pushed_commit(git_section: &str) -> Run {
    let r = after_write_env(git_section, &[KEY]);
    r.operator_commits("KOMODO_TITLE", "operator-1");
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("NEW-jwt"));
    if git_section.is_empty() {
        git_ok(&r.f.host, &["push", "-q", "origin", "main"]);
        r.colleague_pushes("OTHER", "colleague");
    }
    r
}

/// The roll forward there: git-commit has nothing of its own to commit, and git-push is done
/// because origin holds the run's value under its key, whoever committed it (it was refused, and
/// the rollback that followed locked out: the proof compared the work tree set back by value with
/// HEAD, which holds NEW, on every try).
#[test]
fn a_run_swept_into_the_operators_pushed_commit_is_pushed_when_origin_holds_it() {
    let r = swept_into_the_operators_pushed_commit("");
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    git_steps::apply(&steps::git_commit(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    git_steps::apply(&steps::git_push(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
    assert_eq!(r.at(&r.f.origin, "main", KEY).as_deref(), Some("NEW-jwt"));
    assert_eq!(
        r.at(&r.f.origin, "main", "OTHER").as_deref(),
        Some("colleague")
    );
}

/// The rollback there (a later step failed): nothing carries our trailer, yet origin and HEAD
/// hold NEW. The push undo sets the key back by value on top of origin's branch and pushes it;
/// the operator's and the colleague's edits stay; the proof agrees; a replay changes nothing.
#[test]
fn a_run_swept_into_the_operators_pushed_commit_is_rolled_back_by_value_on_origin() {
    let r = swept_into_the_operators_pushed_commit("");
    r.roll_back().unwrap();
    assert_eq!(r.at(&r.f.origin, "main", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(
        r.at(&r.f.origin, "main", "KOMODO_TITLE").as_deref(),
        Some("operator-1")
    );
    assert_eq!(
        r.at(&r.f.origin, "main", "OTHER").as_deref(),
        Some("colleague")
    );
    assert_eq!(r.f.head(&r.f.host), r.f.head(&r.f.origin));
    assert_eq!(r.work_tree(KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    r.told(&["KOMODO_TITLE", "OTHER"], true);
    r.a_replay_changes_nothing(&r.f.origin);
}

/// Commit mode: the operator's commit swept NEW into HEAD. git-commit's undo has no commit of
/// ours to drop or revert, so it commits the key back by value on top; their edit stays.
#[test]
fn a_run_swept_into_the_operators_commit_is_rolled_back_by_value() {
    let r = swept_into_the_operators_pushed_commit("[git]\nmode = \"commit\"\n");
    let operators = r.f.head(&r.f.host);
    r.roll_back().unwrap();
    assert_eq!(git_ok(&r.f.host, &["rev-parse", "HEAD^"]), operators);
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(
        r.at(&r.f.host, "HEAD", "KOMODO_TITLE").as_deref(),
        Some("operator-1")
    );
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    r.told(&["KOMODO_TITLE"], true);
}

/// The campaign's seed 4178972239: ours reached origin, then the operator committed an edit of
/// another key on the host while the run lay pending (their push refused beside the journal, so
/// it stays local), and a colleague pushed a compose.env edit. HEAD cannot reach origin's branch:
/// pushing it (the undo's revert on top of the operator's commit) was refused as stale on every
/// try, exit 5 for ever.
fn ours_pushed_then_the_operator_commits_locally() -> Run {
    let r = after_commit("");
    git_steps::apply(&steps::git_push(), &r.j, &r.cfg, &r.dir, &r.values()).unwrap();
    r.operator_commits("KOMODO_TITLE", "operator-1");
    r
}

/// After the rollback of that shape: origin's branch has the run's key back on top of the
/// colleague's commit (their edit kept, the operator's not pushed: theirs), the host's HEAD has
/// it back on top of the operator's commit (still in its history, still unpushed), the work tree
/// is clean and the proof agrees; a replay changes nothing.
fn key_back_on_both_sides_of_the_divergence(r: &Run, colleague: &str, operators: &str) {
    assert_eq!(r.at(&r.f.origin, "main", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(
        r.at(&r.f.origin, "main", "OTHER").as_deref(),
        Some("colleague")
    );
    assert_eq!(
        r.at(&r.f.origin, "main", "KOMODO_TITLE").as_deref(),
        Some("before")
    );
    assert_eq!(git_ok(&r.f.origin, &["rev-parse", "main^"]), colleague);
    assert_eq!(r.at(&r.f.host, "HEAD", KEY).as_deref(), Some("OLD-jwt"));
    assert_eq!(
        r.at(&r.f.host, "HEAD", "KOMODO_TITLE").as_deref(),
        Some("operator-1")
    );
    let kept = git(
        &r.f.host,
        &["merge-base", "--is-ancestor", operators, "HEAD"],
    );
    assert!(kept.status.success(), "the operator's commit left HEAD");
    assert_eq!(git_ok(&r.f.host, &["status", "--porcelain"]), "");
    git_steps::old_state_is_back(&r.j, &r.cfg, &r.ids).unwrap();
    let told = r.kept.take();
    assert!(
        told.iter()
            .any(|e| e.commit.as_deref() == Some(r.f.head(&r.f.origin).as_str())),
        "the set-back on origin's branch is told: {told:?}"
    );
    for e in &told {
        let line = kept_line(e);
        for v in ["OLD-jwt", "NEW-jwt", "operator-", "colleague"] {
            assert!(!line.contains(v), "a value in: {line}");
        }
    }
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    r.roll_back().unwrap();
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
}

#[test]
fn a_checkout_that_cannot_reach_the_moved_branch_sets_it_back_on_its_own() {
    let r = ours_pushed_then_the_operator_commits_locally();
    let operators = r.f.head(&r.f.host);
    r.colleague_pushes("OTHER", "colleague");
    let colleague = r.f.head(&r.f.origin);
    r.roll_back().unwrap();
    key_back_on_both_sides_of_the_divergence(&r, &colleague, &operators);
}

/// The state the campaign found: an earlier try had made its revert on top of the operator's
/// commit and recorded it, and its push was refused (a pre-push hook refuses once here) before
/// the colleague pushed. The resume sets origin's branch back on its own; the recorded revert
/// stays HEAD's side.
#[test]
fn a_revert_recorded_on_top_of_the_operators_commit_is_not_pushed_again() {
    use std::os::unix::fs::PermissionsExt;
    let r = ours_pushed_then_the_operator_commits_locally();
    let operators = r.f.head(&r.f.host);
    let hook = r.f.host.join(".git/hooks/pre-push");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\nrm -f \"$0\"\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    r.undo_git(steps::git_push()).unwrap_err();
    let revert = r.f.head(&r.f.host);
    assert_ne!(revert, operators, "the first try made its revert");
    r.colleague_pushes("OTHER", "colleague");
    let colleague = r.f.head(&r.f.origin);
    r.roll_back().unwrap();
    assert_eq!(
        r.f.head(&r.f.host),
        revert,
        "the recorded revert is HEAD's side"
    );
    key_back_on_both_sides_of_the_divergence(&r, &colleague, &operators);
}

/// The real conflict where the checkout cannot reach the branch: the colleague's push set the
/// run's own key to a third value. The undo refuses naming the file and the key; origin, the
/// host and the work tree stay as they were, nothing is told.
#[test]
fn a_third_value_on_the_unreachable_branch_is_a_conflict_named_and_kept() {
    let r = ours_pushed_then_the_operator_commits_locally();
    r.colleague_pushes(KEY, "THIRD");
    let (host, origin) = (r.f.head(&r.f.host), r.f.head(&r.f.origin));
    let bytes = std::fs::read(r.env()).unwrap();
    let e = r.undo_git(steps::git_push()).unwrap_err().to_string();
    assert!(
        e.contains(REL) && e.contains(KEY) && e.contains("conflict"),
        "{e}"
    );
    assert!(!e.contains("THIRD") && !e.contains("NEW-jwt"), "{e}");
    assert_eq!((r.f.head(&r.f.host), r.f.head(&r.f.origin)), (host, origin));
    assert_eq!(std::fs::read(r.env()).unwrap(), bytes);
    assert_eq!(r.at(&r.f.origin, "main", KEY).as_deref(), Some("THIRD"));
    assert!(r.kept.take().is_empty());
}
