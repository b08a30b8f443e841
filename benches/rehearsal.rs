//! Whole-command figures on the rehearsal stack (a real Docker engine): `verify` wall time next
//! to the sum of its unavoidable parts measured in the same run (one age unwrap and decrypt of
//! compose.env, the discovery and inspects, one SCRAM login), as a ratio; `rotate` wall time;
//! and core's downtime during `rotate` next to the floor measured in the same run (a plain
//! stop + start of the same container), as a ratio. Not a test: run it with
//! `cargo bench --bench rehearsal` (it builds the stand-in images first, like the tests).
//!
//! Downtime is measured from outside, as a user would see it: core's published port is polled
//! every 10 ms, and the longest run of failed polls is the outage.

use komodo_rotate::config::Config;
use komodo_rotate::docker::Engine;
use komodo_rotate::mongo::{login_works, LoginOutcome};
use komodo_rotate::planes::{mongo_target, DbPasswordKeys, DockerPlane, EnvPlane};
use komodo_testcontainers::stack::{self, http, StackOptions};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_komodo-rotate");
const ROUNDS: usize = 3;
/// verify is cheap: more rounds for a steadier median.
const VERIFY_ROUNDS: usize = 15;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    git_steps();
    let engine = Engine::connect()
        .await
        .expect("a Docker engine (scripts/setup-test-env starts one)");
    let bin = tokio::task::spawn_blocking(stack::build_binaries)
        .await
        .expect("join")
        .expect("build stand-ins");
    stack::ensure_images(&engine, &bin).await.expect("images");
    let dir = tempfile::tempdir().expect("tempdir");
    let project = "krt-bench";
    let s = stack::up(&engine, &StackOptions::new(project, dir.path(), &bin))
        .await
        .expect("rehearsal up");
    stack::wait_healthy(&engine, &s.core, Duration::from_secs(60))
        .await
        .expect("core healthy");
    let addr = format!("127.0.0.1:{}", s.core_port);
    let config = s.config();

    // verify and its parts, interleaved round by round so both see the same machine.
    let cfg = Config::load(Some(&config)).expect("the stack's config");
    let mut verify = Vec::new();
    let (mut unwrap, mut inspects, mut login, mut exec) = (vec![], vec![], vec![], vec![]);
    let mut cold = Vec::new();
    for _ in 0..VERIFY_ROUNDS {
        let t = Instant::now();
        let st = quiet(Command::new(BIN).args(["verify", "--config"]).arg(&config));
        assert_eq!(st, Some(0), "verify must find the stack consistent");
        verify.push(t.elapsed());
        let t = Instant::now();
        let env = EnvPlane::load(&cfg).expect("compose.env decrypts");
        unwrap.push(t.elapsed());
        let t = Instant::now();
        let dk = DockerPlane::load(&cfg)
            .await
            .expect("discovery and inspects");
        inspects.push(t.elapsed());
        let keys = DbPasswordKeys::detect(&env, &dk).expect("generation");
        let pw = keys.env_password(&env).expect("password in compose.env");
        let target = keys
            .user(&cfg, &env)
            .and_then(|u| mongo_target(&cfg, &dk.mongo, &u))
            .expect("mongo target");
        let t = Instant::now();
        assert_eq!(login_works(&target, &pw).await, LoginOutcome::Accepted);
        login.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(quiet(Command::new(BIN).arg("--version")), Some(0));
        exec.push(t.elapsed());
        // The same login in a process of its own: the driver caches the PBKDF2-salted password
        // per process, so only a cold login pays what verify's one login pays.
        let t = Instant::now();
        assert_eq!(cold_login(&target, &pw), Some(0), "mongo check logs in");
        cold.push(t.elapsed());
    }

    let mut rotate = Vec::new();
    let mut rotate_down = Vec::new();
    for _ in 0..ROUNDS {
        let probe = Probe::start(addr.clone());
        let t = Instant::now();
        let st = quiet(Command::new(BIN).args(["rotate", "--config"]).arg(&config));
        rotate.push(t.elapsed());
        stack::wait_healthy(&engine, &s.core, Duration::from_secs(30))
            .await
            .expect("healthy");
        rotate_down.push(probe.stop().await);
        assert_eq!(st, Some(0), "rotate must succeed");
    }

    let mut floor = Vec::new();
    for _ in 0..ROUNDS {
        let probe = Probe::start(addr.clone());
        engine.stop(&s.core, 10).await.expect("stop");
        engine.start(&s.core).await.expect("start");
        stack::wait_healthy(&engine, &s.core, Duration::from_secs(30))
            .await
            .expect("healthy");
        floor.push(probe.stop().await);
    }

    let (v, r, d, f) = (
        median(&verify),
        median(&rotate),
        median(&rotate_down),
        median(&floor),
    );
    let (u, i, l, x) = (
        median(&unwrap),
        median(&inspects),
        median(&login),
        median(&exec),
    );
    let c = median(&cold);
    let parts = u + i + l;
    let cold_parts = u + i + c;
    println!(
        "rehearsal bench (medians: verify and its parts {VERIFY_ROUNDS} rounds, interleaved; rotate {ROUNDS}; health stable_for {:?} in the stack's config)",
        cfg.health.stable_for
    );
    println!("  verify wall time               {:>8.1} ms", ms(v));
    println!("    floor: age unwrap + decrypt  {:>8.1} ms", ms(u));
    println!("    floor: discovery + inspects  {:>8.1} ms", ms(i));
    println!("    floor: one SCRAM login       {:>8.1} ms", ms(l));
    println!("    floor: sum of the parts      {:>8.1} ms", ms(parts));
    println!(
        "  verify ratio verify / warm floor {:>6.2}  (the driver's cached PBKDF2: a lower bound no process pays)",
        ms(v) / ms(parts).max(1.0)
    );
    println!(
        "    (process start, `--version` {:>8.1} ms; ratio with it in the floor {:.2})",
        ms(x),
        ms(v) / ms(parts + x).max(1.0)
    );
    println!("    floor: one SCRAM login, cold {:>8.1} ms  (`mongo check`: process start + first login, PBKDF2 included)", ms(c));
    println!(
        "    floor: sum with the cold one {:>8.1} ms",
        ms(cold_parts)
    );
    println!(
        "  verify ratio verify / floor with a cold login {:>5.2}  (target <= 1.5)",
        ms(v) / ms(cold_parts).max(1.0)
    );
    println!("  rotate wall time               {:>8.0} ms", ms(r));
    println!("  core downtime during rotate    {:>8.0} ms", ms(d));
    println!("  floor: plain stop + start      {:>8.0} ms", ms(f));
    println!(
        "  downtime ratio rotate / floor  {:>8.2}",
        ms(d) / ms(f).max(1.0)
    );
    let _ = stack::down(&engine, project, Some(dir.path())).await;
}

/// What the git steps add to a rotation: `git-commit` (compose.env only, on top of HEAD) and
/// `git-push` to a local bare repository, through the same library calls, medians of ROUNDS.
/// Printed first, since it needs no Docker.
fn git_steps() {
    use komodo_rotate::git::{publish, Repo};
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("origin.git");
    let host = tmp.path().join("host");
    let g = |dir: &std::path::Path, args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    };
    g(
        tmp.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    g(
        tmp.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            host.to_str().unwrap(),
        ],
    );
    g(&host, &["checkout", "-q", "-b", "main"]);
    g(&host, &["config", "user.name", "bench"]);
    g(&host, &["config", "user.email", "bench@example.invalid"]);
    std::fs::write(host.join("compose.env"), "K=0\n").unwrap();
    g(&host, &["add", "compose.env"]);
    g(&host, &["commit", "-q", "-m", "seed"]);
    g(&host, &["push", "-q", "-u", "origin", "main"]);
    let repo = Repo::open(&host, Duration::from_secs(30)).expect("repo");
    let (mut commit, mut push) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS * 3 {
        std::fs::write(host.join("compose.env"), format!("K={}\n", i + 1)).unwrap();
        let t = Instant::now();
        repo.commit_file("compose.env", "bench rotate")
            .expect("commit");
        commit.push(t.elapsed());
        let t = Instant::now();
        publish::push_with_one_retry(&repo, "compose.env", "origin", "main").expect("push");
        push.push(t.elapsed());
    }
    println!(
        "git steps ({} rounds, medians; local bare repo)",
        ROUNDS * 3
    );
    println!(
        "  git-commit                     {:>8.1} ms",
        ms(median(&commit))
    );
    println!(
        "  git-push                       {:>8.1} ms",
        ms(median(&push))
    );
}

/// `komodo-rotate mongo check` with the password on stdin: one login in a fresh process.
fn cold_login(
    target: &komodo_rotate::mongo::Target,
    pw: &komodo_rotate::secret::Secret,
) -> Option<i32> {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args([
            "mongo",
            "check",
            "--uri",
            &format!("mongodb://{}", target.server()),
        ])
        .args(["--user", &target.user])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(pw.expose().as_bytes()).ok()?;
    child.wait().ok()?.code()
}

fn quiet(c: &mut Command) -> Option<i32> {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

/// Polls core's port until stopped; returns the longest outage seen.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl Probe {
    fn start(addr: String) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut longest = Duration::ZERO;
            let mut down_since: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let up = matches!(
                    tokio::time::timeout(
                        Duration::from_millis(500),
                        http::get(&addr, "/health", &[])
                    )
                    .await,
                    Ok(Ok(200))
                );
                match (up, down_since) {
                    (false, None) => down_since = Some(Instant::now()),
                    (true, Some(t)) => {
                        longest = longest.max(t.elapsed());
                        down_since = None;
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(t) = down_since {
                longest = longest.max(t.elapsed());
            }
            longest
        });
        Probe { stop, task }
    }

    async fn stop(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("probe")
    }
}
