//! `campaign --seed N|random --ops N [--kinds LIST] [--tool PATH] [--no-shrink] [--keep]`
//!
//! Seeded random operations and faults against a rehearsal stack of its own, every outcome
//! checked by an independent referee (issue 19). See testcontainers/README.md "The campaign".

mod contract;
mod gen;
mod keys;
mod ops;
mod recover;
mod referee;
mod script;
mod tool;
mod view;
mod world;

use gen::{family, Op};
use komodo_rotate::docker::Engine;
use komodo_testcontainers::stack::{self, StackOptions};
use referee::Referee;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tool::Tool;
use world::World;

const USAGE: &str = "usage: campaign --seed N|random (--ops N | --script FILE) [--kinds LIST] [--variant mongo|v1] [--tool PATH] [--no-shrink] [--keep] [--plan] [--cover]";
pub(crate) const DEFAULT_KINDS: &str =
    "db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN";

struct Args {
    seed: u64,
    ops: u64,
    kinds: Vec<String>,
    tool: Option<PathBuf>,
    shrink: bool,
    keep: bool,
    /// Print the operations and the families they cover; run nothing.
    plan: bool,
    /// The first operations are one of each family.
    cover: bool,
    /// A directed sequence (`--script FILE`, operations as the campaign prints them) instead
    /// of the seed's draw; `--ops N` then runs its first N.
    script: Option<(PathBuf, Vec<Op>)>,
    /// The rehearsal stack: `mongo` (Komodo v2 on MongoDB, the default) or `v1`.
    variant: keys::Variant,
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
        cover: false,
        script: None,
        variant: keys::Variant::Mongo,
    };
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = |f: &str| {
            it.next()
                .ok_or_else(|| format!("{f} needs a value\n{USAGE}"))
        };
        match x.as_str() {
            "--seed" => {
                let s = val("--seed")?;
                seed = Some(if s == "random" {
                    let mut b = [0u8; 4];
                    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
                    u32::from_le_bytes(b) as u64
                } else {
                    s.parse()
                        .map_err(|_| format!("--seed {s:?}: a number or random"))?
                });
            }
            "--ops" => {
                let s = val("--ops")?;
                a.ops = s.parse().map_err(|_| format!("--ops {s:?}: a number"))?;
            }
            "--kinds" => {
                a.kinds = val("--kinds")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--tool" => a.tool = Some(PathBuf::from(val("--tool")?)),
            "--no-shrink" => a.shrink = false,
            "--keep" => a.keep = true,
            "--plan" => a.plan = true,
            "--cover" => a.cover = true,
            "--variant" => a.variant = val("--variant")?.parse()?,
            "--script" => {
                let p = PathBuf::from(val("--script")?);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| format!("--script {}: {e}", p.display()))?;
                let ops =
                    script::parse(&text).map_err(|e| format!("--script {}: {e}", p.display()))?;
                a.script = Some((p, ops));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            o => return Err(format!("unexpected argument {o:?}\n{USAGE}")),
        }
    }
    a.seed = seed.ok_or(format!("--seed is required\n{USAGE}"))?;
    if let Some((_, ops)) = &mut a.script {
        if a.ops == 0 || a.ops > ops.len() as u64 {
            a.ops = ops.len() as u64;
        }
        ops.truncate(a.ops as usize);
    }
    if a.ops == 0 || a.kinds.is_empty() {
        return Err(format!(
            "--ops N (N > 0) and a non-empty --kinds are required\n{USAGE}"
        ));
    }
    Ok(a)
}

impl Args {
    /// The operations to run: the script's, else the seed's draw.
    fn sequence(&self, failpoints: bool) -> Vec<Op> {
        match &self.script {
            Some((_, ops)) => ops.clone(),
            None => gen::sequence(self.seed, self.ops, &self.kinds, failpoints, self.cover),
        }
    }
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
            age_env: None,
        };
        let ops = a.sequence(t.failpoints_build());
        let mut seen = std::collections::BTreeSet::new();
        for (i, op) in ops.iter().enumerate() {
            println!("{:>3}. {op}", i + 1);
            seen.insert(family(op));
        }
        println!(
            "covers {}/{} operation families",
            seen.len(),
            gen::FAMILIES.len()
        );
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match run(&a, &rt) {
        Ok(r) => {
            if r.violations + r.lockouts > 0 && a.shrink {
                recover::shrink(&a, r.first_bad.unwrap_or(a.ops));
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
    cover: bool,
    script: Option<PathBuf>,
}

fn run(a: &Args, rt: &tokio::runtime::Runtime) -> Result<Outcome, String> {
    let bin = tool::tool_path(a.tool.as_deref());
    if !bin.exists() {
        return Err(format!(
            "no tool binary at {} (build it: cargo build --bin komodo-rotate)",
            bin.display()
        ));
    }
    let project = format!("campaign{}", std::process::id());
    let work =
        std::env::temp_dir().join(format!("komodo-campaign-{}-{}", a.seed, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .unwrap()
        .to_path_buf();
    let engine = rt.block_on(Engine::connect()).map_err(|e| e.to_string())?;
    let mut opts = StackOptions::new(&project, &work.join("host"), &bin_dir);
    keys::set_variant(a.variant);
    opts.generation = match a.variant {
        keys::Variant::Mongo => stack::Generation::V2,
        keys::Variant::V1 => stack::Generation::V1,
    };
    eprintln!(
        "campaign: seed {}, {} ops, kinds {}, variant {:?}, tool {}",
        a.seed,
        a.ops,
        a.kinds.join(","),
        a.variant,
        bin.display()
    );
    let t0 = Instant::now();
    let s = rt.block_on(stack::up(&engine, &opts))?;
    eprintln!(
        "campaign: stack {} up in {:.0}s at {}",
        s.project,
        t0.elapsed().as_secs_f64(),
        s.dir.display()
    );
    let world = World::new(&s, &work, a.seed)?;
    let mut referee = Referee::new(&work, &s.project, s.mongo_port, s.core_port, &world.origin);
    referee.dir = s.dir.clone();
    let tool = Tool {
        bin,
        config: s.config(),
        lock_dir: world.lock_dir.clone(),
        tmp: s.dir.join("tmp"),
        age_env: tool::age_secret(&s.dir.join("age.key")),
    };
    let failpoints = tool.failpoints_build();
    let ops = a.sequence(failpoints);
    let mut c = Campaign {
        seed: a.seed,
        tool,
        referee,
        world,
        ops,
        steps: Default::default(),
        work: work.clone(),
        kinds: a.kinds.clone(),
        cover: a.cover,
        script: a.script.as_ref().map(|(p, _)| p.clone()),
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
        let mut out = Outcome {
            ran: 0,
            violations: 0,
            lockouts: 0,
            first_bad: None,
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut view = self.referee.look();
        let ops = self.ops.clone();
        for (i, op) in ops.iter().enumerate() {
            let t = Instant::now();
            let (runs, v, after) = self.step(op, &view);
            out.ran += 1;
            seen.insert(family(op));
            let codes: Vec<String> = runs
                .iter()
                .map(|r| {
                    format!(
                        "{:?}{}",
                        r.code,
                        r.signal.map(|s| format!("/sig{s}")).unwrap_or_default()
                    )
                })
                .collect();
            eprintln!(
                "[{:>3}] {op} -> {} ({:.1}s){}",
                i + 1,
                codes.join(","),
                t.elapsed().as_secs_f64(),
                if v.is_empty() { "" } else { "  VIOLATION" }
            );
            for r in runs.iter().filter(|r| r.code.is_some_and(|c| c != 0)) {
                if let Some(l) = r
                    .stderr
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("komodo-rotate:"))
                {
                    eprintln!("        {}", l.chars().take(220).collect::<String>());
                }
            }
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
        let missing: Vec<_> = gen::FAMILIES
            .iter()
            .filter(|f| !seen.contains(*f))
            .collect();
        eprintln!(
            "campaign: op families covered {}/{}; not drawn: {missing:?}",
            seen.len(),
            gen::FAMILIES.len()
        );
        let _ = a;
        out
    }
}
