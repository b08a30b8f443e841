//! The proofs that close a run: no outcome is reported until the planes are seen to agree.
//!
//! - [`new_state_is_live`], before the commit step (so also at the end of `resume`'s roll-forward):
//!   compose.env (the real file, not the journal) decrypts to NEW, Mongo accepts NEW and rejects
//!   OLD, and every holder container running now, looked up again by compose labels (not by the
//!   journal's names), holds NEW, settles and, for core, serves HTTP.
//! - [`old_state_is_back`], after a rollback: Mongo accepts OLD (or, unreachable, was never
//!   changed by the run: its store step still pending), compose.env holds OLD, no
//!   `-next`/`-prev` is left, and for a rotation every holder holds OLD, settles and (core)
//!   serves, waiting at most the health timeout (the undo order restarts core while Mongo still
//!   holds NEW, so core may restart-loop until change-db is undone). A rescue started from a
//!   crash loop: there each container it snapshotted must be back on its pre-run value.
//!
//! Each returns every failure it saw in one line (names only, never a value).

use super::carriers::file_value;
use super::context::LivePlanes;
use super::holders::holds;
use super::run::RunContext;
use super::DockerPlane;
use crate::docker::{settle, ContainerInfo, HealthGate, Signature, NEXT_SUFFIX, PREV_SUFFIX};
use crate::mongo::{login_works, LoginOutcome};
use crate::probe::{core_serves as probe_core, ProbeUrl};
use crate::secret::Secret;
use crate::sops::SopsFile;
use crate::txn::Journal;
use std::time::{Duration, Instant};

type Proof = std::result::Result<(), String>;

/// Containers that hold the run's value but do not settle for a reason outside the run's kind
/// ([`LivePlanes::outside_cause`]): the proof of the run's own kind holds beside them.
pub(super) type Outside = Vec<(String, Signature)>;

pub(super) async fn new_state_is_live(
    p: &LivePlanes<'_>,
    j: &Journal,
) -> std::result::Result<Outside, String> {
    let ctx = RunContext::of(j).map_err(|e| e.to_string())?;
    let (old, new) = (&p.staged.old, &p.staged.new);
    env_holds(p, &ctx, new, "new")?;
    files_hold(&ctx, new, "new")?;
    if ctx.has_store() {
        match login_works(&p.target, new).await {
            LoginOutcome::Accepted => {}
            LoginOutcome::Rejected => return Err("Mongo does not accept the new password".into()),
            LoginOutcome::Unreachable(r) => return Err(r),
        }
    }
    if ctx.has_store() && !old.ct_eq(new) {
        match login_works(&p.target, old).await {
            LoginOutcome::Rejected => {}
            LoginOutcome::Accepted => return Err("Mongo still accepts the old password".into()),
            LoginOutcome::Unreachable(r) => return Err(r),
        }
    }
    super::proof_ferret::new_state(p, &ctx).await?;
    let (covered, core, mut problems) = covered(p, j, &ctx).await;
    let gate = p.gate();
    let mut outside = Outside::new();
    let want = final_values(p, j, &ctx).map_err(|e| e.to_string())?;
    for cov in &covered {
        let Some(c) = &cov.now else {
            problems.push(format!("{} is gone", cov.name));
            continue;
        };
        let present: Vec<&String> = cov
            .keys
            .iter()
            .filter(|k| c.env_value(k).is_some())
            .collect();
        if present.is_empty() {
            continue;
        }
        let stale: Vec<&str> = present
            .iter()
            .filter(|k| {
                let expect = want.get(&(c.name.clone(), k.to_string())).unwrap_or(new);
                !c.env_value(k)
                    .is_some_and(|v| holds(ctx.form(k), k, v, expect))
            })
            .map(|k| k.as_str())
            .collect();
        if !stale.is_empty() {
            problems.push(format!(
                "{} ({}) holds {} not on the new value",
                c.name,
                short(&c.id),
                stale.join(", ")
            ));
            continue;
        }
        // A holder stopped on purpose (`compose stop`) was recreated stopped: its value is all
        // there is to prove.
        if p.load_snapshot(&c.name)
            .ok()
            .flatten()
            .is_some_and(|s| !s.should_run)
        {
            continue;
        }
        // Its recreate in this process found it unsettled for an outside cause after a whole
        // health gate: the cause still in its log is enough, without waiting out a second gate.
        if p.noted_outside(&c.name) {
            if let Some(sig) = p.outside_cause(&ctx, &c.name).await {
                outside.push((c.name.clone(), sig));
                continue;
            }
        }
        if let Err(e) = settled_and_serving(p, core.as_deref(), c, &gate).await {
            match p.outside_cause(&ctx, &c.name).await {
                Some(sig) => outside.push((c.name.clone(), sig)),
                None => problems.push(e),
            }
        }
    }
    if problems.is_empty() {
        Ok(outside)
    } else {
        Err(problems.join("; "))
    }
}

/// A container a proof covers: its name, the run's keys it is checked under, and the container
/// under that name now (`None`: gone).
struct Covered {
    name: String,
    keys: Vec<String>,
    /// Named by the journal (a holder or a recreate target), not only found by discovery.
    named: bool,
    now: Option<ContainerInfo>,
}

/// The containers both proofs cover, found the same way: every container the journal names as
/// a holder or recreates (by name: a recreate keeps the name), then every core or periphery
/// discovery finds now under a name the journal does not know (compose made it during the run),
/// checked under every key the run names. Also core's name (for the HTTP probe) and the
/// problems met (discovery failing, a container that cannot be inspected), one line each.
async fn covered(
    p: &LivePlanes<'_>,
    j: &Journal,
    ctx: &RunContext,
) -> (Vec<Covered>, Option<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut names: Vec<String> = ctx.holders().map(|(n, _)| n.clone()).collect();
    for r in j.steps.iter().filter(|r| r.step.is(super::steps::RECREATE)) {
        if let Some(t) = &r.step.target {
            if !names.contains(t) {
                names.push(t.clone());
            }
        }
    }
    let mut out = Vec::new();
    for name in names {
        let now = match p.engine.try_inspect(&name).await {
            Ok(i) => i.map(|i| ContainerInfo::from_inspect(&i)),
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        out.push(Covered {
            keys: keys_of(ctx, &name),
            name,
            named: true,
            now,
        });
    }
    let core = match DockerPlane::load(p.cfg).await {
        Ok(dk) => {
            for c in dk.dependants() {
                if !out.iter().any(|o| o.name == c.name) {
                    out.push(Covered {
                        name: c.name.clone(),
                        keys: keys_of(ctx, &c.name),
                        named: false,
                        now: Some(c.clone()),
                    });
                }
            }
            Some(dk.core.name.clone())
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    (out, core, problems)
}

pub(super) async fn old_state_is_back(
    p: &LivePlanes<'_>,
    j: &Journal,
) -> std::result::Result<Outside, String> {
    let ctx = RunContext::of(j).map_err(|e| e.to_string())?;
    if ctx.has_store() {
        match login_works(&p.target, &p.staged.old).await {
            LoginOutcome::Accepted => {}
            LoginOutcome::Rejected => return Err("Mongo does not accept the old password".into()),
            // This run never changed the store (its step never began, or failed proving it sent
            // nothing): it holds what the pre-flight logged in with. A rejection still fails.
            LoginOutcome::Unreachable(_) if super::steps::store_never_applied(j) => {}
            LoginOutcome::Unreachable(r) => return Err(r),
        }
    }
    super::proof_ferret::old_state(p, &ctx).await?;
    if !ctx.is_rescue() {
        env_holds(p, &ctx, &p.staged.old, "old")?;
    }
    if !ctx.is_rescue() {
        files_hold(&ctx, &p.staged.old, "old")?;
    }
    // The repo too: compose.env in the work tree equals HEAD's (no stray commit of ours).
    super::git_steps::old_state_is_back(j, p.cfg, p.ids)?;
    let (covered, core, mut problems) = covered(p, j, &ctx).await;
    let gate = p.gate();
    let mut outside = Outside::new();
    let rotation = !ctx.is_rescue();
    for cov in &covered {
        let name = &cov.name;
        for leftover in [
            format!("{name}{NEXT_SUFFIX}"),
            format!("{name}{PREV_SUFFIX}"),
        ] {
            match p.engine.try_inspect(&leftover).await {
                Ok(None) => {}
                Ok(Some(_)) => problems.push(format!("{leftover} is left over")),
                Err(e) => problems.push(e.to_string()),
            }
        }
        let snap = match p.load_snapshot(name) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        // A rescue's containers held stale values before the run: "back" means as snapshotted.
        // Without a snapshot a rescue never reached them, unless a recreate of it began: then
        // the snapshot went missing, and what it held cannot be proven back.
        if !rotation && snap.is_none() {
            if super::steps::recreate_began(j, name) {
                problems.push(format!(
                    "{name} was recreated, but its snapshot {} is missing",
                    p.snapshot_path(name).display()
                ));
            }
            continue;
        }
        let Some(now) = &cov.now else {
            problems.push(format!("{name} is gone"));
            continue;
        };
        // A container the journal does not know is checked under the keys it carries.
        let keys: Vec<&String> = cov
            .keys
            .iter()
            .filter(|k| cov.named || now.env_value(k).is_some())
            .collect();
        let differ: Vec<&str> = keys
            .iter()
            .filter(|k| {
                let is = now.env_value(k);
                match &snap {
                    // A rotation's rollback ends with every plane on OLD.
                    _ if rotation => !is.is_some_and(|v| holds(ctx.form(k), k, v, &p.staged.old)),
                    Some(snap) => match (snap.env_value(k), is) {
                        (Some(was), Some(is)) => !was.ct_eq(is),
                        (None, None) => false,
                        _ => true,
                    },
                    None => false,
                }
            })
            .map(|k| k.as_str())
            .collect();
        if !differ.is_empty() {
            problems.push(format!(
                "{name} ({}) holds {} not on the {} value",
                short(&now.id),
                differ.join(", "),
                if rotation { "old" } else { "pre-run" }
            ));
            continue;
        }
        // A rotation starts from healthy containers, so the old state includes them serving. A
        // rescue starts from a crash loop: the original being back is all that can be proven.
        if !rotation || keys.is_empty() || snap.is_some_and(|s| !s.should_run) {
            continue;
        }
        if let Err(e) = settled_and_serving(p, core.as_deref(), now, &gate).await {
            match p.outside_cause(&ctx, name).await {
                Some(sig) => outside.push((name.clone(), sig)),
                None => problems.push(e),
            }
        }
    }
    if problems.is_empty() {
        Ok(outside)
    } else {
        Err(problems.join("; "))
    }
}

/// compose.env, read from disk, holds `want` under the run's key.
fn env_holds(p: &LivePlanes<'_>, ctx: &RunContext, want: &Secret, which: &str) -> Proof {
    let env = SopsFile::load(&ctx.compose_env)
        .and_then(|f| f.decrypt(p.ids))
        .map_err(|e| e.to_string())?;
    // As compose hands it to the containers (a quoted value in compose.env holds `want`).
    if crate::docker::compose_value::value(&env.entries(), &ctx.env_key)
        .ok()
        .flatten()
        .is_some_and(|v| v.ct_eq(want))
    {
        Ok(())
    } else {
        Err(format!(
            "compose.env's {} is not the {which} value",
            ctx.env_key
        ))
    }
}

/// Every carrier file of the run holds `want`; else one line naming each file that does not.
fn files_hold(ctx: &RunContext, want: &Secret, which: &str) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for f in &ctx.files {
        match file_value(f) {
            Ok(v) if v.ct_eq(want) => {}
            Ok(_) => problems.push(format!(
                "{} ({}) is not on the {which} value",
                f.host_path.display(),
                f.key
            )),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What each (container, key) must hold at the end of the run when it is not simply NEW: the
/// `set` of the last recreate step of that container (a multi-phase plan ends on its last phase).
fn final_values(
    p: &LivePlanes<'_>,
    j: &Journal,
    ctx: &RunContext,
) -> crate::error::Result<std::collections::BTreeMap<(String, String), Secret>> {
    let mut out = std::collections::BTreeMap::new();
    for r in j.steps.iter().filter(|r| r.step.is(super::steps::RECREATE)) {
        let container = r.step.target.clone().unwrap_or_default();
        for (k, v) in p.patch_of(&r.step, ctx)? {
            out.insert((container.clone(), k), v);
        }
    }
    Ok(out)
}

/// The keys the journal names for `name`; for a container it does not know (a new name from
/// discovery), every key it names anywhere.
fn keys_of(ctx: &RunContext, name: &str) -> Vec<String> {
    match ctx.container_keys.get(name) {
        Some(k) => k.clone(),
        None => {
            let mut all: Vec<String> = ctx.container_keys.values().flatten().cloned().collect();
            all.sort();
            all.dedup();
            all
        }
    }
}

/// Settles `c`; if it is core, also waits (within what is left of the gate) for core to serve.
async fn settled_and_serving(
    p: &LivePlanes<'_>,
    core: Option<&str>,
    c: &ContainerInfo,
    gate: &HealthGate,
) -> Proof {
    let t0 = Instant::now();
    let info = settle(&p.engine, &c.name, gate)
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = format!("{} running", c.name);
    if core == Some(c.name.as_str()) {
        let left = gate.timeout.saturating_sub(t0.elapsed()).max(gate.poll);
        let status = core_serves(p, &info, left).await?;
        seen.push_str(&format!(", serving (HTTP {status})"));
    }
    if !crate::output::quiet() {
        eprintln!(
            "komodo-rotate: proof: {seen} after {:.1}s",
            t0.elapsed().as_secs_f32()
        );
    }
    Ok(())
}

/// Polls core until `GET /version` answers 200 (`probe::core_serves`), for at most `within`.
async fn core_serves(
    p: &LivePlanes<'_>,
    core: &ContainerInfo,
    within: Duration,
) -> Result<u16, String> {
    let url = core_url(&p.cfg.health.core_url, core)?;
    let t0 = Instant::now();
    loop {
        let per_try = within
            .saturating_sub(t0.elapsed())
            .clamp(Duration::from_millis(200), Duration::from_secs(3));
        let last = match probe_core(&url, per_try).await {
            Ok(()) => return Ok(200),
            Err(e) => e,
        };
        if t0.elapsed() >= within {
            return Err(format!("core {} does not serve: {last}", core.name));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The configured URL, else core's published 9120 on loopback, else its compose-network address.
fn core_url(configured: &str, core: &ContainerInfo) -> Result<ProbeUrl, String> {
    let url = if !configured.is_empty() {
        configured.to_string()
    } else if let Some(port) = core.loopback_port("9120/tcp") {
        format!("http://127.0.0.1:{port}/")
    } else if let Some(ip) = core.ip_addresses.values().find(|ip| !ip.is_empty()) {
        format!("http://{ip}:9120/")
    } else {
        return Err(format!(
            "core {} publishes no port 9120 and has no network address; set [health] core_url",
            core.name
        ));
    };
    ProbeUrl::parse(&url)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
