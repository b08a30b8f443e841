//! The end of a sequence and of a finding: liveness (the tool's own recovery reaches verify
//! 0), the report with its replay script, and shrinking to the shortest failing prefix.

use crate::referee::View;
use crate::tool::Run;
use crate::{Args, Campaign};
use std::path::PathBuf;
use std::time::Duration;

impl Campaign {
    /// The tool's own recovery, as the runbooks say: resume a pending journal, rescue a DB
    /// split (`rescue --reset-auth --yes` when rescue names it: no known password logs in),
    /// `docker-compose up -d` holders drifted from compose.env, `repo unblock` and the
    /// blocked-pull runbook's hand steps for the checkout; until verify exits 0 (at most 8
    /// rounds; a run `resume` cannot end twice goes to `rescue`, as
    /// runbooks/interrupted-run.md says). Never a hand edit of compose.env or a journal.
    pub(crate) fn recover(&mut self, view: &View) -> (bool, Vec<Run>, View) {
        let mut runs = Vec::new();
        let mut v = view.clone();
        let mut resume_failed = 0;
        for _ in 0..8 {
            let r = self.tool.run(&["verify"], &[], None, None);
            let code = r.code;
            runs.push(r);
            if code == Some(0) {
                return (true, runs, v);
            }
            let d = v.drift();
            let db = d
                .iter()
                .any(|x| x.contains("mongo rejects") || x.contains(crate::referee::db_key()));
            let holders = d
                .iter()
                .any(|x| x.contains("holds another") || x.contains(" is "));
            let git = v.git.behind > 0
                || !v.git.pull_blocked.is_empty()
                || v.git.unpushed_env > 0
                || v.git.env_uncommitted;
            if v.journal && resume_failed < 2 {
                let r = self.tool.run(&["resume"], &[], None, None);
                resume_failed = if r.code == Some(5) {
                    resume_failed + 1
                } else {
                    0
                };
                runs.push(r);
            } else if v.journal {
                // runbooks/interrupted-run.md: "`rescue` is the way to end a run `resume`
                // cannot" (it takes the pending run over).
                resume_failed = 0;
                self.runbook_rescue(&mut runs);
            } else if v.env.is_err() {
                break;
            } else if db {
                self.runbook_rescue(&mut runs);
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

    /// `rescue`; when it finds no password that logs in and points at the last resort,
    /// runbooks/no-password-survives.md as written: `rescue --reset-auth --yes`.
    fn runbook_rescue(&mut self, runs: &mut Vec<Run>) {
        let r = self.tool.run(&["rescue"], &[], None, None);
        let last_resort = r.code == Some(3) && r.stderr.contains("rescue --reset-auth");
        runs.push(r);
        if last_resort {
            runs.push(
                self.tool
                    .run(&["rescue", "--reset-auth", "--yes"], &[], None, None),
            );
        }
    }

    pub(crate) fn report(
        &self,
        i: usize,
        v: &[String],
        before: &View,
        after: &View,
        runs: &[Run],
        what: &str,
    ) {
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
        let script = self.work.parent().unwrap_or(&self.work).join(format!(
            "campaign-replay-{}-{}.sh",
            self.seed,
            i + 1
        ));
        let body = format!(
            "#!/bin/sh\n# replays {what} found by the campaign: seed {}, the first {} operations\nexec {} --seed {} --ops {} --kinds {} --variant {}{}{} --no-shrink \"$@\"\n",
            self.seed,
            i + 1,
            std::env::var("CAMPAIGN_WRAPPER").unwrap_or_else(|_| std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()),
            self.seed,
            i + 1,
            self.kinds.join(","),
            match crate::keys::variant() {
                crate::keys::Variant::Mongo => "mongo",
                crate::keys::Variant::V1 => "v1",
            },
            if self.cover { " --cover" } else { "" },
            self.script
                .as_ref()
                .map(|p| format!(" --script '{}'", p.display()))
                .unwrap_or_default()
        );
        let script = if let Ok(dir) = std::env::var("CAMPAIGN_REPLAY_DIR") {
            PathBuf::from(dir).join(script.file_name().unwrap())
        } else {
            script
        };
        if std::fs::write(&script, body).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755));
            println!("replay: {}", script.display());
        }
    }
}

/// Re-runs the same seed with shorter prefixes (fresh stacks, no shrinking) and reports the
/// shortest one that still fails: a binary search, as failures need not be monotone it checks
/// the prefix it settles on.
pub fn shrink(a: &Args, bad: u64) {
    let me = std::env::current_exe().unwrap();
    let fails = |n: u64| -> bool {
        let mut c = std::process::Command::new(&me);
        c.args([
            "--seed",
            &a.seed.to_string(),
            "--ops",
            &n.to_string(),
            "--no-shrink",
            "--kinds",
            &a.kinds.join(","),
            "--variant",
            match a.variant {
                crate::keys::Variant::Mongo => "mongo",
                crate::keys::Variant::V1 => "v1",
            },
        ]);
        if let Some(t) = &a.tool {
            c.arg("--tool").arg(t);
        }
        if a.cover {
            c.arg("--cover");
        }
        if let Some((p, _)) = &a.script {
            c.arg("--script").arg(p);
        }
        let ok = c
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        eprintln!(
            "campaign: shrink: prefix {n} {}",
            if ok { "passes" } else { "fails" }
        );
        !ok
    };
    let budget: u64 = std::env::var("CAMPAIGN_SHRINK_TRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
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
    println!(
        "campaign: shortest failing prefix found: --seed {} --ops {hi} (searched {tries} prefixes)",
        a.seed
    );
}
