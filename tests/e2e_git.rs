//! The git steps end to end on the rehearsal stack: the stack's compose.env is tracked in a
//! clone whose origin is a bare repo in a temp dir. After `rotate`, origin's compose.env decrypts
//! (real sops) to the new value, the pipeline clone's pull succeeds and the host checkout is
//! clean; a pre-receive hook refusing the push rolls everything back (exit 4, all old, origin
//! without a stray commit, host clean); SIGKILL after git-commit and after git-push, then
//! `resume`, ends all new with origin holding it.
//!
//! The deploy-after-rotate invariant: after `rotate`, the pipeline pulls, and deploys from its
//! clone's compose.env the way the compose file documents it (real sops `exec-file` handing the
//! decrypted env to real `docker-compose up -d`): core comes up healthy holding the new value and
//! `verify` exits 0. After a rotation with `[git] mode = "off"` the same deploy recreates core
//! from the stale env: core crash-loops and `verify` exits 1, proving the check can fail.

mod docker_support;
mod e2e_support;

use docker_support::{engine_or_skip, images, Cleanup};
use e2e_support::*;
use komodo_rotate::docker::{ContainerInfo, Engine};
use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::{self, StackOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git must be installed");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The real Go sops's value of `PW_KEY` in `file`.
fn sops_at(file: &Path, age_key: &Path) -> Option<Secret> {
    sops_value(file, PW_KEY, age_key).map(Secret::new)
}

/// The real Go sops's value of `key` in `file`.
fn sops_value(file: &Path, key: &str, age_key: &Path) -> Option<String> {
    e2e_support::stack_sops::get_at(file, age_key, key)
}

/// What the deploy pipeline runs on the host: `sops exec-file` (real sops) decrypts the
/// pipeline clone's compose.env into a temp file (`--no-fifo`: compose reads it once per
/// service) and runs the compose file's documented deploy with it, in the stack dir (where the
/// compose file and core's control mount are). Compose is pointed at the pipeline's file; the
/// host's own compose.env is not read. The plaintext reaches compose only as that file's path.
/// Returns compose's output; panics unless it exits 0.
fn pipeline_deploy(s: &stack::Stack, pipeline: &Path) -> String {
    let home = tempfile::tempdir().unwrap();
    let deploy = format!(
        "KOMODO_ENV_FILE={{}} {} -p {} -f {} --env-file {{}} up -d",
        stack::compose::program(),
        s.project,
        stack::compose::COMPOSE_FILE
    );
    let o = Command::new("sops")
        .args(["exec-file", "--no-fifo", "--input-type", "dotenv"])
        .args(["--output-type", "dotenv"])
        .arg(pipeline.join("compose.env"))
        .arg(&deploy)
        .current_dir(&s.dir)
        .env("SOPS_AGE_KEY_FILE", s.age_key())
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sops must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "pipeline deploy: {}: {text}", o.status);
    text
}

/// The id of `name`'s container now.
async fn container_id(engine: &Engine, name: &str) -> String {
    ContainerInfo::load(engine, name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .id
}

#[test]
fn rotate_publishes_compose_env_and_every_git_failure_rolls_back() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(engine) = rt.block_on(engine_or_skip("e2e-git")) else {
        return;
    };
    if !require_tools("e2e-git") {
        return;
    }
    let project = "krt-e2e-git";
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(project);
    cleanup.dir = Some(dir.path().to_path_buf());
    let bin = rt.block_on(images(&engine));
    let opts = StackOptions::new(project, dir.path(), &bin);
    let s = rt
        .block_on(stack::up(&engine, &opts))
        .expect("rehearsal up");
    rt.block_on(stack::wait_healthy(
        &engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core healthy");

    // origin (bare), the stack dir as the host checkout tracking only compose.env, a pipeline.
    let gitdir = tempfile::tempdir().unwrap();
    let origin = gitdir.path().join("origin.git");
    let pipeline = gitdir.path().join("pipeline");
    git(
        gitdir.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    let host = s.dir.clone();
    git(&host, &["init", "-q", "-b", "main"]);
    std::fs::write(host.join(".git/info/exclude"), "/*\n!/compose.env\n").unwrap();
    git(&host, &["config", "user.name", "komodo-rotate e2e"]);
    git(&host, &["config", "user.email", "e2e@example.invalid"]);
    git(&host, &["add", "compose.env"]);
    git(&host, &["commit", "-q", "-m", "deploy"]);
    git(
        &host,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&host, &["push", "-q", "-u", "origin", "main"]);
    git(
        gitdir.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            pipeline.to_str().unwrap(),
        ],
    );

    let dry = tool(&s, &["rotate", "--dry-run"], &[]);
    assert_eq!(dry.code, Some(0), "{}", dry.text());
    for step in ["git-commit", "git-push", "push a revert commit"] {
        assert!(
            dry.stdout.contains(step),
            "plan lacks {step}: {}",
            dry.text()
        );
    }

    // 1. A rotation reaches origin; the pipeline pulls it and real sops reads NEW.
    let old = rt.block_on(agreed(&engine, &s)).expect("agreed before");
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    assert!(r.stderr.contains("git-push ... ok"), "{}", r.text());
    let new = rt
        .block_on(agreed(&engine, &s))
        .expect("agreed after rotate");
    assert!(!new.ct_eq(&old));
    git(&pipeline, &["pull", "-q", "--ff-only"]);
    let deployed = sops_at(&pipeline.join("compose.env"), &s.age_key()).expect("sops decrypts");
    assert!(
        deployed.ct_eq(&new),
        "the pipeline would deploy the old value"
    );
    assert_eq!(pymongo_login(&s, &deployed), 0, "the deployed env logs in");
    assert_eq!(git(&host, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&host, &["rev-parse", "HEAD"]),
        git(&origin, &["rev-parse", "main"])
    );
    // The deploy-after-rotate invariant: the pipeline deploys what it pulled; compose recreates
    // core (the tool's replacement carries no compose config-hash) and core is healthy on NEW.
    let core_before = rt.block_on(container_id(&engine, &s.core));
    let up = pipeline_deploy(&s, &pipeline);
    assert_ne!(
        rt.block_on(container_id(&engine, &s.core)),
        core_before,
        "the pipeline's compose up must recreate core: {up}"
    );
    rt.block_on(stack::wait_healthy(
        &engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core healthy after the pipeline's deploy");
    let core = rt.block_on(ContainerInfo::load(&engine, &s.core)).unwrap();
    assert!(
        core.env_value(PW_KEY).is_some_and(|v| v.ct_eq(&new)),
        "the deployed core does not hold the new value"
    );
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(v.code, Some(0), "verify after the deploy: {}", v.text());

    // 2. The remote refuses the push: exit 4, all old, origin without a stray commit.
    let hook = origin.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let origin_before = git(&origin, &["rev-parse", "main"]);
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(4), "{}", r.text());
    assert!(r.stderr.contains("branch is protected"), "{}", r.text());
    fired::assert_own_fault(&s, &r, "push refused", &[], &["git-push"]);
    let after = rt
        .block_on(agreed(&engine, &s))
        .expect("all old after rollback");
    assert!(after.ct_eq(&new), "rollback must leave the previous value");
    assert_eq!(git(&origin, &["rev-parse", "main"]), origin_before);
    assert_eq!(git(&host, &["status", "--porcelain"]), "");
    assert_eq!(git(&host, &["rev-parse", "HEAD"]), origin_before);
    std::fs::remove_file(&hook).unwrap();

    // 3. SIGKILL right after each git step, then resume: all new, on origin too.
    let mut seen = vec![old, new];
    for point in ["after:git-commit", "after:git-push"] {
        let r = tool(
            &s,
            &["rotate"],
            &[("FAILPOINTS", &format!("{point}=return(crash)"))],
        );
        assert_eq!(r.signal, Some(9), "{point}: {}", r.text());
        assert_eq!(
            fired::last_done(&r).as_deref(),
            point.strip_prefix("after:"),
            "{point}: killed elsewhere: {}",
            r.text()
        );
        let res = tool(&s, &["resume"], &[]);
        assert_eq!(res.code, Some(0), "{point}: {}", res.text());
        fired::assert_own_fault(&s, &res, &format!("{point} resume"), &[], &[]);
        let now = rt
            .block_on(agreed(&engine, &s))
            .unwrap_or_else(|e| panic!("{point}: split after resume: {e}"));
        assert!(seen.iter().all(|o| !o.ct_eq(&now)), "{point}: not new");
        git(&pipeline, &["pull", "-q", "--ff-only"]);
        let deployed = sops_at(&pipeline.join("compose.env"), &s.age_key()).unwrap();
        assert!(deployed.ct_eq(&now), "{point}: origin lacks the new value");
        assert_eq!(git(&host, &["status", "--porcelain"]), "");
        let ours = git(&origin, &["log", "--format=%s", "main"]);
        assert_eq!(
            ours.lines()
                .filter(|l| l.starts_with("komodo-rotate: rotate"))
                .count(),
            seen.len(),
            "{point}: exactly one commit per committed rotation: {ours}"
        );
        seen.push(now);
    }
    // 3b. Issue 18, item 1: someone sets another key with the real sops while the run is past
    // its health gate (a pre-push hook on the host: git-push's own window), then the proof
    // fails. git-push's undo would check HEAD's copy out over that edit: it stops instead, exit
    // 5 naming the file, the edit kept. The way out its message gives ends all old.
    let marker = gitdir.path().join("edited");
    let home = tempfile::tempdir().unwrap();
    let pre_push = host.join(".git/hooks/pre-push");
    std::fs::write(
        &pre_push,
        format!(
            "#!/bin/sh\nread l lsha r rsha\n[ \"$lsha\" = \"$rsha\" ] && exit 0\n[ -e '{m}' ] && exit 0\ntouch '{m}'\nSOPS_AGE_KEY_FILE='{k}' SOPS_DISABLE_VERSION_CHECK=1 HOME='{h}' XDG_CONFIG_HOME='{h}' sops set '{f}' '[\"OTHER_KEY\"]' '\"set-meanwhile\"' >&2\n",
            m = marker.display(),
            k = s.age_key().display(),
            h = home.path().display(),
            f = host.join("compose.env").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pre_push, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = seen.last().unwrap();
    let r = tool(&s, &["rotate"], &[("FAILPOINTS", "before:commit=return")]);
    assert!(marker.exists(), "the hook did not run: {}", r.text());
    assert_eq!(r.code, Some(5), "{}", r.text());
    fired::assert_own_fault(
        &s,
        &r,
        "edit meanwhile, proof fails",
        &["before:commit"],
        &["commit", "undo:git-push"],
    );
    assert!(
        r.stderr.contains("compose.env changed under the run"),
        "{}",
        r.text()
    );
    assert_eq!(
        sops_value(&host.join("compose.env"), "OTHER_KEY", &s.age_key()).as_deref(),
        Some("set-meanwhile"),
        "the edit made meanwhile is gone"
    );
    // The way out, as the message says: keep the change, put back the run's commit, resume.
    git(&host, &["checkout", "HEAD", "--", "compose.env"]);
    let res = tool(&s, &["resume"], &[]);
    assert_eq!(res.code, Some(4), "{}", res.text());
    fired::assert_own_fault(&s, &res, "resume after the edit", &[], &[]);
    let now = rt
        .block_on(agreed(&engine, &s))
        .expect("all old after the resumed rollback");
    assert!(now.ct_eq(before), "not the old value");
    git(&pipeline, &["pull", "-q", "--ff-only"]);
    let deployed = sops_at(&pipeline.join("compose.env"), &s.age_key()).unwrap();
    assert!(deployed.ct_eq(before), "origin keeps the rolled-back value");
    assert_eq!(git(&host, &["status", "--porcelain"]), "");
    std::fs::remove_file(&pre_push).unwrap();

    // 4. The same with [git] mode = "off": the pipeline deploys a value Mongo rejects (the
    // crash loop's cause), proving the checks above can fail.
    let mut cfg = std::fs::read_to_string(s.config()).unwrap();
    cfg.push_str("\n[git]\nmode = \"off\"\n");
    std::fs::write(s.config(), cfg).unwrap();
    let r = tool(&s, &["rotate"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.text());
    let now = rt
        .block_on(agreed(&engine, &s))
        .expect("agreed after rotate");
    git(&pipeline, &["pull", "-q", "--ff-only"]);
    let deployed = sops_at(&pipeline.join("compose.env"), &s.age_key()).unwrap();
    assert!(!deployed.ct_eq(&now), "mode off must not publish");
    assert_eq!(pymongo_login(&s, &deployed), 1, "the stale env is rejected");
    assert_eq!(git(&host, &["status", "--porcelain"]), "M compose.env");
    // The same deploy now recreates core from the stale env: the incident, crash loop and all.
    let core_before = rt.block_on(container_id(&engine, &s.core));
    let up = pipeline_deploy(&s, &pipeline);
    assert_ne!(
        rt.block_on(container_id(&engine, &s.core)),
        core_before,
        "the pipeline's compose up must recreate core: {up}"
    );
    rt.block_on(stack::wait_crash_loop(
        &engine,
        &s.core,
        Duration::from_secs(60),
    ))
    .expect("core crash-loops on the stale env the pipeline deployed");
    let v = tool(&s, &["verify"], &[]);
    assert_eq!(
        v.code,
        Some(1),
        "verify after the stale deploy: {}",
        v.text()
    );
    seen.push(now);
    let refs: Vec<&Secret> = seen.iter().chain([&s.passkey]).collect();
    // The stack dir (the host checkout and its .git), origin and the pipeline's clone.
    e2e_support::leak::assert_no_leak_anywhere(&s, &refs, &[gitdir.path()]);
}
