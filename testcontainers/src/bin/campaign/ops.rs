//! One operation: the tool's runs with their faults, the world's actions, and the referee's
//! judgement of each.

use crate::contract::{judge, leaks, Cmd};
use crate::gen::{Op, Transient};
use crate::referee::View;
use crate::tool::Run;
use crate::{world, Campaign};
use std::time::Duration;

impl Campaign {
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

    fn tool_op(
        &mut self,
        cmd: Cmd,
        args: &[&str],
        kinds: &[String],
        before: &View,
    ) -> (Run, Vec<String>, View) {
        let r = self.tool.run(args, &[], None, None);
        let after = self.referee.look();
        let mut v = judge(cmd, kinds, &r, before, &after, false);
        v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
        if cmd != Cmd::Verify && cmd != Cmd::RepoUnblock && r.code == Some(0) && v.is_empty() {
            // verify 0 right after a rotate, rescue or resume exit 0 (issue 19's contract).
            let vr = self.tool.run(&["verify"], &[], None, None);
            // verify 0 when the referee sees nothing; drift the world made before the run (in
            // another kind's keys) may remain, and then verify says 1, as judged for verify.
            let want = if after.drift().is_empty() { 0 } else { 1 };
            // 3 (unknown) only while Mongo does not answer, as judged for verify.
            let unknown =
                vr.code == Some(3) && after.mongo == crate::referee::MongoView::Unreachable;
            if vr.code != Some(want) && !unknown {
                v.push(format!(
                    "verify {:?} right after {cmd:?} exit 0 (the referee sees {:?})",
                    vr.code,
                    after.drift()
                ));
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
    pub(crate) fn step(&mut self, op: &Op, before: &View) -> (Vec<Run>, Vec<String>, View) {
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
                let (r, v, after) =
                    self.tool_op(Cmd::RepoUnblock, &["repo", "unblock"], &[], before);
                (vec![r], v, after)
            }
            Op::RotateKilled { kinds, delay_ms } => {
                let a = Self::rotate_args(kinds);
                let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
                let r = self
                    .tool
                    .run(&a, &[], Some(Duration::from_millis(*delay_ms)), None);
                let after = self.referee.look();
                let mut v = judge(Cmd::Rotate, kinds, &r, before, &after, false);
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                (vec![r], v, after)
            }
            Op::RotateFailpoint {
                kind,
                step,
                after: aft,
                crash,
            } => {
                let steps = self.steps_of(kind);
                if steps.is_empty() {
                    let (r, v, after) = self.tool_op(
                        Cmd::Rotate,
                        &["rotate", "--secret", kind],
                        std::slice::from_ref(kind),
                        before,
                    );
                    return (vec![r], v, after);
                }
                let name = &steps[(*step as usize) % steps.len()];
                let fp = format!(
                    "{}:{name}={}",
                    if *aft { "after" } else { "before" },
                    if *crash { "return(crash)" } else { "return" }
                );
                let r = self.tool.run(
                    &["rotate", "--secret", kind],
                    &[("FAILPOINTS", &fp)],
                    None,
                    None,
                );
                let after = self.referee.look();
                let mut v = judge(
                    Cmd::Rotate,
                    std::slice::from_ref(kind),
                    &r,
                    before,
                    &after,
                    false,
                );
                if !*crash && r.code == Some(0) && !(*aft && name == steps.last().unwrap()) {
                    v.push(format!("failpoint {fp} armed but rotate exited 0"));
                }
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                (vec![r], v, after)
            }
            Op::RotateForeignSet {
                kind,
                delay_ms,
                fail_at,
            } => {
                let d = Duration::from_millis(*delay_ms);
                let file = self.referee.dir.join("compose.env");
                let key = self.referee.dir.join("age.key");
                let val = format!("Komodo in flight {:x}", self.world.rng.next());
                let landed = std::sync::Arc::new(std::sync::Mutex::new(false));
                let during: Box<dyn FnOnce() + Send> = {
                    let (val, landed) = (val.clone(), landed.clone());
                    Box::new(move || {
                        std::thread::sleep(d);
                        let ok = world::sops_set_at(&file, &key, "KOMODO_TITLE", &val).is_ok();
                        *landed.lock().unwrap() = ok;
                    })
                };
                let steps = match fail_at {
                    Some(_) => self.steps_of(kind),
                    None => Vec::new(),
                };
                let fp = fail_at
                    .filter(|_| !steps.is_empty())
                    .map(|n| format!("before:{}=return", steps[n as usize % steps.len()]));
                let env: Vec<(&str, &str)> =
                    fp.iter().map(|f| ("FAILPOINTS", f.as_str())).collect();
                let r = self
                    .tool
                    .run(&["rotate", "--secret", kind], &env, None, Some(during));
                let after = self.referee.look();
                // The colleague's edit survives whatever the run did (issue 18 item 1: an undo
                // restores only over the bytes the run wrote, else exit 5 with the edit kept).
                let lost = *landed.lock().unwrap()
                    && after.env.is_ok()
                    && after.env_value("KOMODO_TITLE") != Some(val.as_str());
                // The foreign edit changes compose.env: judge values, not bytes; and its
                // KOMODO_TITLE is the colleague's (kept by the undo's inverse edit, issue 18),
                // so the run is judged on every other value.
                let mut judged = after.clone();
                if let (Ok(a), Ok(b)) = (&mut judged.env, &before.env) {
                    match b.get("KOMODO_TITLE") {
                        Some(t) => a.insert("KOMODO_TITLE".into(), t.clone()),
                        None => a.remove("KOMODO_TITLE"),
                    };
                }
                let mut v = judge(
                    Cmd::Rotate,
                    std::slice::from_ref(kind),
                    &r,
                    before,
                    &judged,
                    true,
                );
                // The colleague's KOMODO_TITLE is theirs and must survive (checked above): a
                // rollback (4) is "as before" when nothing but it differs (random seed
                // 3544153401, op 21: exit 4 with every secret back, the title kept).
                let only_title = match (&before.env, &after.env) {
                    (Ok(a), Ok(b)) => {
                        let rest = |m: &std::collections::BTreeMap<String, String>| {
                            m.iter()
                                .filter(|(k, _)| k.as_str() != "KOMODO_TITLE")
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<Vec<_>>()
                        };
                        rest(a) == rest(b)
                    }
                    _ => false,
                };
                v.retain(|x| {
                    !x.contains("compose.env's values") || r.code != Some(3) && !only_title
                });
                // The colleague's edit landed after the run's git-commit: the work tree differs
                // from HEAD by their key, which is theirs to commit (they do, below). The run's
                // own promise is that HEAD and origin hold its new values: checked with git and
                // the real sops, not by the work tree's cleanliness.
                if r.code == Some(0) && after.git.unpushed_env == 0 {
                    let dir = self.referee.dir.clone();
                    let key = self.referee.age_key();
                    // Why a revision does not hold the run's values (names and fingerprints
                    // only), for the violation's report (seed 2796689006, op 25, not replayed).
                    let why_not: Vec<String> = ["HEAD", "origin/main"]
                        .iter()
                        .filter_map(
                            |rev| match crate::referee::sops_decrypt_rev(&dir, rev, &key) {
                                Err(e) => Some(format!("{rev}: {e}")),
                                Ok(c) => {
                                    let off: Vec<String> = crate::referee::kind_keys(kind)
                                        .iter()
                                        .filter(|k| {
                                            c.get(**k).map(String::as_str) != after.env_value(k)
                                        })
                                        .map(|k| {
                                            let fp = |v: Option<&str>| {
                                                v.map(crate::referee::fp)
                                                    .unwrap_or_else(|| "unset".into())
                                            };
                                            format!(
                                                "{k} {} there, {} in the work tree",
                                                fp(c.get(*k).map(String::as_str)),
                                                fp(after.env_value(k))
                                            )
                                        })
                                        .collect();
                                    (!off.is_empty()).then(|| format!("{rev}: {}", off.join(", ")))
                                }
                            },
                        )
                        .collect();
                    if why_not.is_empty() {
                        v.retain(|x| !x.contains("is not committed and pushed"));
                    } else if v.iter().any(|x| x.contains("is not committed and pushed")) {
                        v.push(format!("not the run's values: {}", why_not.join("; ")));
                    }
                }
                if lost {
                    v.push(format!(
                        "exit {:?}: the colleague's KOMODO_TITLE set during the run is gone from compose.env",
                        r.code
                    ));
                }
                v.extend(leaks(&self.referee.secrets, Some(&r), &self.referee.dir));
                let note = self.world.operator_commit("colleague's title edit");
                let after = if note == "nothing to commit" {
                    after
                } else {
                    self.referee.look()
                };
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
                        let _ = std::process::Command::new("docker")
                            .args(["stop", "-t", "2", &mongo])
                            .output();
                        std::thread::sleep(d2);
                        let _ = std::process::Command::new("docker")
                            .args(["start", &mongo])
                            .output();
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
                let mut v = judge(
                    Cmd::Rotate,
                    std::slice::from_ref(kind),
                    &r,
                    before,
                    &after,
                    true,
                );
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
}

trait Also {
    fn also(self, r: Run) -> Self;
}
impl Also for (Run, Vec<String>, View) {
    fn also(mut self, r: Run) -> Self {
        self.0.stdout.push_str(&format!(
            "\n--- verify after: exit {:?}\n{}{}",
            r.code, r.stdout, r.stderr
        ));
        self
    }
}
