//! `campaign --seed N|random --ops N [--kinds LIST] [--tool PATH] [--no-shrink] [--keep]`
//!
//! Seeded random operations and faults against a rehearsal stack of its own, every outcome
//! checked by an independent referee (issue 19). See testcontainers/README.md "The campaign".

mod contract;
mod gen;
mod referee;
mod tool;
mod world;

use contract::{judge, leaks, Cmd};
use gen::{family, Op, Transient};
use komodo_rotate::docker::Engine;
use komodo_testcontainers::stack::{self, StackOptions};
use referee::{Referee, View};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tool::{Run, Tool};
use world::World;

const USAGE: &str =
    "usage: campaign --seed N|random --ops N [--kinds LIST] [--tool PATH] [--no-shrink] [--keep] [--plan]";
const DEFAULT_KINDS: &str = "db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN";

struct Args {
    seed: u64,
    ops: u64,
    kinds: Vec<String>,
    tool: Option<PathBuf>,
    shrink: bool,
    keep: bool,
    /// Print the operations and the families they cover; run nothing.
    plan: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seed: 0,
        ops: 0,
        kinds: DEFAULT_KINDS.split(',').map(String::from).collect(),
        tool: None,
        shrink: true,
        keep: false,
        plan: false,
    };
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = |f: &str| it.next().ok_or_else(|| format!("{f} needs a value\n{USAGE}"));
        match x.as_str() {
            "--seed" => {
                let s = val("--seed")?;
                seed = Some(if s == "random" {
                    let mut b = [0u8; 4];
                    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
                    u32::from_le_bytes(b) as u64
                } else {
                    s.parse().map_err(|_| format!("--seed {s:?}: a number or random"))?
                });
            }
            "--ops" => {
                let s = val("--ops")?;
                a.ops = s.parse().map_err(|_| format!("--ops {s:?}: a number"))?;
            }
            "--kinds" => a.kinds = val("--kinds")?.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            "--tool" => a.tool = Some(PathBuf::from(val("--tool")?)),
            "--no-shrink" => a.shrink = false,
            "--keep" => a.keep = true,
            "--plan" => a.plan = true,
            "-h" | "--help" => return Err(USAGE.into()),
            o => return Err(format!("unexpected argument {o:?}\n{USAGE}")),
        }
    }
    a.seed = seed.ok_or(format!("--seed is required\n{USAGE}"))?;
    if a.ops == 0 || a.kinds.is_empty() {
        return Err(format!("--ops N (N > 0) and a non-empty --kinds are required\n{USAGE}"));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("campaign: {e}");
            return ExitCode::from(2);
        }
    };
    if a.plan {
        // A failpoints build draws failpoint operations; `--tool` says which binary.
        let t = Tool {
            bin: tool::tool_path(a.tool.as_deref()),
            config: PathBuf::new(),
            lock_dir: PathBuf::new(),
            tmp: PathBuf::new(),
        };
        let ops = gen::sequence(a.seed, a.ops, &a.kinds, t.failpoints_build());
        let mut seen = std::collections::BTreeSet::new();
        for (i, op) in ops.iter().enumerate() {
            println!("{:>3}. {op}", i + 1);
            seen.insert(family(op));
        }
        println!("covers {}/{} operation families", seen.len(), gen::FAMILIES.len());
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match run(&a, &rt) {
        Ok(r) => {
            if r.violations + r.lockouts > 0 && a.shrink {
                shrink(&a, r.first_bad.unwrap_or(a.ops));
            }
            println!(
                "campaign: seed {}, {} ops, {} contract violations, {} lockouts",
                a.seed, r.ran, r.violations, r.lockouts
            );
            if r.violations + r.lockouts == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("campaign: {e}");
            println!("campaign: seed {}, 0 ops, setup failed", a.seed);
            ExitCode::from(2)
        }
    }
}

struct Outcome {
    ran: u64,
    violations: u64,
    lockouts: u64,
    /// The number of operations of the shortest prefix seen failing.
    first_bad: Option<u64>,
}

struct Campaign {
    seed: u64,
    tool: Tool,
    referee: Referee,
    world: World,
    ops: Vec<Op>,
    steps: std::collections::HashMap<String, Vec<String>>,
    work: PathBuf,
    kinds: Vec<String>,
}

fn run(a: &Args, rt: &tokio::runtime::Runtime) -> Result<Outcome, String> {
    let bin = tool::tool_path(a.tool.as_deref());
    if !bin.exists() {
        return Err(format!("no tool binary at {} (build it: cargo build --bin komodo-rotate)", bin.display()));
    }
    let project = format!("campaign{}", std::process::id());
    let work = std::env::temp_dir().join(format!("komodo-campaign-{}-{}", a.seed, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let bin_dir = std::env::current_exe().map_err(|e| e.to_string())?.parent().unwrap().to_path_buf();
    let engine = rt.block_on(Engine::connect()).map_err(|e| e.to_string())?;
    let opts = StackOptions::new(&project, &work.join("host"), &bin_dir);
    eprintln!("campaign: seed {}, {} ops, kinds {}, tool {}", a.seed, a.ops, a.kinds.join(","), bin.display());
    let t0 = Instant::now();
    let s = rt.block_on(stack::up(&engine, &opts))?;
    eprintln!("campaign: stack {} up in {:.0}s at {}", s.project, t0.elapsed().as_secs_f64(), s.dir.display());
    let world = World::new(&s, &work, a.seed)?;
    let mut referee = Referee::new(&work, &s.project, s.mongo_port, s.core_port, &world.origin);
    referee.dir = s.dir.clone();
    let tool = Tool {
        bin,
        config: s.config(),
        lock_dir: world.lock_dir.clone(),
        tmp: s.dir.join("tmp"),
    };
    let failpoints = tool.failpoints_build();
    let ops = gen::sequence(a.seed, a.ops, &a.kinds, failpoints);
    let mut c = Campaign {
        seed: a.seed,
        tool,
        referee,
        world,
        ops,
        steps: Default::default(),
        work: work.clone(),
        kinds: a.kinds.clone(),
    };
    let out = c.go(a);
    if !a.keep {
        let _ = rt.block_on(stack::down(&engine, &project, Some(&s.dir)));
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("campaign: kept {} (stack {project})", work.display());
    }
    Ok(out)
}

impl Campaign {
    fn go(&mut self, a: &Args) -> Outcome {
        let mut out = Outcome { ran: 0, violations: 0, lockouts: 0, first_bad: None };
        let mut seen = std::collections::BTreeSet::new();
        let mut view = self.referee.look();
        let ops = self.ops.clone();
        for (i, op) in ops.iter().enumerate() {
            let t = Instant::now();
            let (runs, v, after) = self.step(op, &view);
            out.ran += 1;
            seen.insert(family(op));
            let codes: Vec<String> = runs.iter().map(|r| format!("{:?}{}", r.code, r.signal.map(|s| format!("/sig{s}")).unwrap_or_default())).collect();
            eprintln!("[{:>3}] {op} -> {} ({:.1}s){}", i + 1, codes.join(","), t.elapsed().as_secs_f64(), if v.is_empty() { "" } else { "  VIOLATION" });
            if !v.is_empty() {
                out.violations += v.len() as u64;
                out.first_bad.get_or_insert(i as u64 + 1);
                self.report(i, &v, &view, &after, &runs, "contract violation");
            }
            view = after;
        }
        // Liveness: the tool's own recovery brings the stack back to verify 0.
        let (ok, runs, after) = self.recover(&view);
        if !ok {
            out.lockouts += 1;
            out.first_bad.get_or_insert(self.ops.len() as u64);
            self.report(self.ops.len() - 1, &["LOCKOUT: the tool's recovery (resume, rescue, repo unblock, the runbooks' compose up) did not reach verify 0".into()], &view, &after, &runs, "lockout");
        } else {
            eprintln!("campaign: liveness ok ({} recovery runs)", runs.len());
        }
        let missing: Vec<_> = gen::FAMILIES.iter().filter(|f| !seen.contains(*f)).collect();
        eprintln!("campaign: op families covered {}/{}; not drawn: {missing:?}", seen.len(), gen::FAMILIES.len());
        let _ = a;
        out
    }

    fn steps_of(&mut self, kind: &str) -> Vec<String> {
        if !self.steps.contains_key(kind) {
            let s = self.tool.steps(kind);
            if !s.is_empty() {
                self.steps.insert(kind.to_string(), s.clone());
            }
            return s;
        }
        self.steps[kind].clone()
    }

    fn tool_op(&mut self, cmd: Cmd, args: &[&str], kinds: &[String], before: &View) -> (Run, Vec<String>, View) {
        let r = self.tool.run(args, &[], None, None);
        let after = self.referee.look();
        let mut v = judge(cmd, kinds, &r, before, &after, false);
        v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
        if cmd == Cmd::Rotate && r.code == Some(0) && v.is_empty() {
            // verify 0 right after a committed rotation.
            let vr = self.tool.run(&["verify"], &[], None, None);
            if vr.code != Some(0) {
                v.push(format!("verify {:?} right after rotate exit 0", vr.code));
            }
            return (r, v, after).also(vr);
        }
        (r, v, after)
    }

    fn rotate_args(kinds: &[String]) -> Vec<String> {
        let mut a = vec!["rotate".to_string()];
        for k in kinds {
            a.push("--secret".into());
            a.push(k.clone());
        }
        a
    }

    /// Runs one operation: the tool's runs, the violations, the referee's view after.
    fn step(&mut self, op: &Op, before: &View) -> (Vec<Run>, Vec<String>, View) {
        let world_only = |c: &mut Campaign, note: String| {
            let after = c.referee.look();
            let mut v = leaks(&c.referee.secrets, None, &c.referee.dir);
            v.retain(|_| true);
            let _ = note;
            (Vec::new(), v, after)
        };
        match op {
            Op::Rotate { kinds } => {
                let a = Self::rotate_args(kinds);
                let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
                let (r, v, after) = self.tool_op(Cmd::Rotate, &a, kinds, before);
                (vec![r], v, after)
            }
            Op::Rescue => {
                let (r, v, after) = self.tool_op(Cmd::Rescue, &["rescue"], &[], before);
                (vec![r], v, after)
            }
            Op::Resume => {
                let (r, v, after) = self.tool_op(Cmd::Resume, &["resume"], &[], before);
                (vec![r], v, after)
            }
            Op::Verify => {
                let (r, v, after) = self.tool_op(Cmd::Verify, &["verify"], &[], before);
                (vec![r], v, after)
            }
            Op::RepoUnblock => {
                let (r, v, after) = self.tool_op(Cmd::RepoUnblock, &["repo", "unblock"], &[], before);
                (vec![r], v, after)
            }
            Op::RotateKilled { kinds, delay_ms } => {
                let a = Self::rotate_args(kinds);
                let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
                let r = self.tool.run(&a, &[], Some(Duration::from_millis(*delay_ms)), None);
                let after = self.referee.look();
                let mut v = judge(Cmd::Rotate, kinds, &r, before, &after, false);
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                (vec![r], v, after)
            }
            Op::RotateFailpoint { kind, step, after: aft, crash } => {
                let steps = self.steps_of(kind);
                if steps.is_empty() {
                    let (r, v, after) = self.tool_op(Cmd::Rotate, &["rotate", "--secret", kind], std::slice::from_ref(kind), before);
                    return (vec![r], v, after);
                }
                let name = &steps[(*step as usize) % steps.len()];
                let fp = format!("{}:{name}={}", if *aft { "after" } else { "before" }, if *crash { "return(crash)" } else { "return" });
                let r = self.tool.run(&["rotate", "--secret", kind], &[("FAILPOINTS", &fp)], None, None);
                let after = self.referee.look();
                let mut v = judge(Cmd::Rotate, std::slice::from_ref(kind), &r, before, &after, false);
                if !*crash && r.code == Some(0) && !(*aft && name == steps.last().unwrap()) {
                    v.push(format!("failpoint {fp} armed but rotate exited 0"));
                }
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                (vec![r], v, after)
            }
            Op::RotateForeignSet { kind, delay_ms } => {
                let d = Duration::from_millis(*delay_ms);
                let file = self.referee.dir.join("compose.env");
                let key = self.referee.dir.join("age.key");
                let val = format!("Komodo in flight {:x}", self.world.rng.next());
                let during: Box<dyn FnOnce() + Send> = Box::new(move || {
                    std::thread::sleep(d);
                    let _ = world::sops_set_at(&file, &key, "KOMODO_TITLE", &val);
                });
                let r = self.tool.run(&["rotate", "--secret", kind], &[], None, Some(during));
                let after = self.referee.look();
                // The foreign edit changes compose.env: judge values, not bytes.
                let mut v = judge(Cmd::Rotate, std::slice::from_ref(kind), &r, before, &after, true);
                v.retain(|x| !x.contains("compose.env's values") || r.code != Some(3));
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                let note = self.world.operator_commit("colleague's title edit");
                let after = if note == "nothing to commit" { after } else { self.referee.look() };
                (vec![r], v, after)
            }
            Op::RotateDuring { kind, fault } => {
                let a = ["rotate", "--secret", kind.as_str()];
                let r;
                let name;
                if let Transient::MongoStopped = fault {
                    let d1 = Duration::from_millis(self.world.rng.below(4000));
                    let d2 = Duration::from_millis(2000 + self.world.rng.below(8000));
                    let mongo = self.world.mongo.clone();
                    let during: Box<dyn FnOnce() + Send> = Box::new(move || {
                        std::thread::sleep(d1);
                        let _ = std::process::Command::new("docker").args(["stop", "-t", "2", &mongo]).output();
                        std::thread::sleep(d2);
                        let _ = std::process::Command::new("docker").args(["start", &mongo]).output();
                    });
                    r = self.tool.run(&a, &[], None, Some(during));
                    name = self.world.mongo.clone();
                } else {
                    let (n, _) = self.world.start_fault(fault);
                    name = n;
                    r = self.tool.run(&a, &[], None, None);
                }
                self.world.end_fault(fault, &name);
                let after = self.referee.look();
                let mut v = judge(Cmd::Rotate, std::slice::from_ref(kind), &r, before, &after, true);
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                (vec![r], v, after)
            }
            Op::ForeignSopsSet => {
                let n = self.world.foreign_set();
                let c = self.world.operator_commit("title edit");
                world_only(self, format!("{n}; {c}"))
            }
            Op::ComposeUp { no_deps } => {
                let n = self.world.compose_up(*no_deps);
                world_only(self, n)
            }
            Op::HandEditDbPassword => {
                let n = self.world.hand_edit_db_password();
                world_only(self, n)
            }
            Op::UpstreamCommit { touch_env } => {
                let n = self.world.upstream_commit(*touch_env);
                world_only(self, n)
            }
            Op::UntrackedBlock { identical } => {
                let n = self.world.untracked_block(*identical);
                world_only(self, n)
            }
            Op::Reboot => {
                let n = self.world.reboot();
                world_only(self, n)
            }
        }
    }

    /// The tool's own recovery, as the runbooks say: resume a pending journal, rescue a DB
    /// split, `docker-compose up -d` holders drifted from compose.env, `repo unblock` and the
    /// blocked-pull runbook's hand steps for the checkout; until verify exits 0 (at most 6
    /// rounds). Never a hand edit of compose.env or a journal.
    fn recover(&mut self, view: &View) -> (bool, Vec<Run>, View) {
        let mut runs = Vec::new();
        let mut v = view.clone();
        for _ in 0..6 {
            let r = self.tool.run(&["verify"], &[], None, None);
            let code = r.code;
            runs.push(r);
            if code == Some(0) {
                return (true, runs, v);
            }
            let d = v.drift();
            let db = d.iter().any(|x| x.contains("mongo rejects") || x.contains("DATABASE_PASSWORD"));
            let holders = d.iter().any(|x| x.contains("holds another") || x.contains(" is "));
            let git = v.git.behind > 0 || !v.git.pull_blocked.is_empty() || v.git.unpushed_env > 0 || v.git.env_uncommitted;
            if v.journal {
                runs.push(self.tool.run(&["resume"], &[], None, None));
            } else if v.env.is_err() {
                break;
            } else if db {
                runs.push(self.tool.run(&["rescue"], &[], None, None));
            } else if holders {
                let n = self.world.compose_up(false);
                eprintln!("campaign: recovery: docker-compose up -d: {n}");
            } else if git {
                let r = self.tool.run(&["repo", "unblock"], &[], None, None);
                let unblocked = r.code == Some(0);
                runs.push(r);
                if !unblocked {
                    let n = self.world.runbook_git_hand_steps(&self.work.join("aside"));
                    eprintln!("campaign: recovery: blocked-pull runbook by hand: {n}");
                }
            } else {
                // verify disagrees with a referee that sees nothing: one more look after a pause.
                std::thread::sleep(Duration::from_secs(3));
            }
            v = self.referee.look();
        }
        let r = self.tool.run(&["verify"], &[], None, None);
        let ok = r.code == Some(0);
        runs.push(r);
        (ok, runs, v)
    }

    fn report(&self, i: usize, v: &[String], before: &View, after: &View, runs: &[Run], what: &str) {
        println!("=== {what} at op {} of seed {}", i + 1, self.seed);
        for x in v {
            println!("  ! {x}");
        }
        println!("operations:");
        for (j, op) in self.ops.iter().enumerate().take(i + 1) {
            println!("  {:>3}. {op}", j + 1);
        }
        println!("referee before:\n{}", before.show());
        println!("referee after:\n{}", after.show());
        for r in runs {
            println!("{}", r.text());
        }
        let script = self.work.parent().unwrap_or(&self.work).join(format!("campaign-replay-{}-{}.sh", self.seed, i + 1));
        let body = format!(
            "#!/bin/sh\n# replays {what} found by the campaign: seed {}, the first {} operations\nexec {} --seed {} --ops {} --kinds {} --no-shrink \"$@\"\n",
            self.seed,
            i + 1,
            std::env::var("CAMPAIGN_WRAPPER").unwrap_or_else(|_| std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()),
            self.seed,
            i + 1,
            self.kinds.join(",")
        );
        let script = if let Ok(dir) = std::env::var("CAMPAIGN_REPLAY_DIR") { PathBuf::from(dir).join(script.file_name().unwrap()) } else { script };
        if std::fs::write(&script, body).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755));
            println!("replay: {}", script.display());
        }
    }
}

trait Also {
    fn also(self, r: Run) -> Self;
}
impl Also for (Run, Vec<String>, View) {
    fn also(mut self, r: Run) -> Self {
        self.0.stdout.push_str(&format!("\n--- verify after: exit {:?}\n{}{}", r.code, r.stdout, r.stderr));
        self
    }
}

/// Re-runs the same seed with shorter prefixes (fresh stacks, no shrinking) and reports the
/// shortest one that still fails: a binary search, as failures need not be monotone it checks
/// the prefix it settles on.
fn shrink(a: &Args, bad: u64) {
    let me = std::env::current_exe().unwrap();
    let fails = |n: u64| -> bool {
        let mut c = std::process::Command::new(&me);
        c.args(["--seed", &a.seed.to_string(), "--ops", &n.to_string(), "--no-shrink", "--kinds", &a.kinds.join(",")]);
        if let Some(t) = &a.tool {
            c.arg("--tool").arg(t);
        }
        let ok = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
        eprintln!("campaign: shrink: prefix {n} {}", if ok { "passes" } else { "fails" });
        !ok
    };
    let budget: u64 = std::env::var("CAMPAIGN_SHRINK_TRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let (mut lo, mut hi) = (0u64, bad);
    let mut tries = 0;
    while hi - lo > 1 && tries < budget {
        let mid = (lo + hi) / 2;
        tries += 1;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    println!("campaign: shortest failing prefix found: --seed {} --ops {hi} (searched {tries} prefixes)", a.seed);
}
