//! `rescue` on a FerretDB deployment (issue 21): the role's SCRAM verifier in PostgreSQL is the
//! live credential, ferretdb's `FERRETDB_POSTGRESQL_URL` (read once at its start) and the
//! holders carry copies. compose.env is the desired state, as for MongoDB.
//!
//! The incident's two shapes: (a) postgres kept its first-init password while compose.env and
//! the rest moved on (ferretdb's pool cannot log in: code 1, core crash-loops); (b) ferretdb's
//! URL is stale after a hand change of the role. Every candidate (ferretdb's URL password,
//! postgres's `POSTGRES_PASSWORD`, the tool's records, git history, the holders, backups, the
//! operator's) is tested offline against the role's verifier, no login. The verifier is then set
//! through psql on the postgres container's local socket (trusted: no password, PostgreSQL keeps
//! running) by rotate's `change-pg` step (its exact previous stored secret sealed for the
//! undo); ferretdb (URL patched), core and periphery are recreated; the commit's proof
//! (`planes::proof_ferret`) checks the verifier and logs in through ferretdb.
//! When no candidate matches, the same path overwrites an unknown credential: it says so and
//! asks (or `--yes`); without a terminal and without `--yes` it refuses (exit 3).

use super::{confirmed, run_forward, takeover, Candidate};
use crate::cli::RescueArgs;
use crate::config::Config;
use crate::docker::generation::{FERRETDB_URL_KEY, POSTGRES_PASSWORD_KEY, POSTGRES_USER_KEY};
use crate::error::{Error, Result};
use crate::mongo::Target;
use crate::planes::execute;
use crate::planes::ferret::{url_safe, FerretPlane};
use crate::planes::ferret_read::{psql, role_state, url_password, url_user};
use crate::planes::holders::{compare, Stand};
use crate::planes::live::Staged;
use crate::planes::run::{PgRole, RunKind, FORM_URI};
use crate::planes::{steps, DbPasswordKeys, DockerPlane, EnvPlane, RunContext};
use crate::postgres::{Stored, Verifier};
use crate::secret::Secret;
use crate::txn::Journal;
use std::io::IsTerminal;

/// What the common pre-flight of `rescue` found.
pub(super) struct Ask<'a> {
    pub cfg: &'a Config,
    pub args: &'a RescueArgs,
    pub env: &'a EnvPlane,
    pub dk: &'a DockerPlane,
    pub keys: &'a DbPasswordKeys,
    pub user: &'a str,
    pub target: Target,
    pub desired: Secret,
    pub pending: Option<Journal>,
    /// The other candidates (`super::candidates`: holders, backups, the operator's).
    pub more: Vec<Candidate>,
}

fn refuse(msg: String) -> Error {
    Error::Precondition(format!("{msg}; nothing was changed"))
}

pub(super) async fn rescue(a: Ask<'_>, f: &FerretPlane<'_>) -> Result<i32> {
    let Ask {
        cfg,
        args,
        env,
        dk,
        keys,
        user,
        target,
        desired,
        mut pending,
        more,
    } = a;
    if args.reset_auth {
        return Err(refuse(format!(
            "{}: --reset-auth is MongoDB's last resort; on FerretDB rescue sets the role's verifier through psql on the postgres container's local socket itself (it asks first, or --yes)",
            f.describe()
        )));
    }
    // One role: FerretDB's URL user, postgres's bootstrap user and compose.env's username.
    let admin = f.admin("");
    if admin != user {
        return Err(refuse(format!(
            "{}'s {POSTGRES_USER_KEY} is not compose.env's database username {user:?}: rescue changes only the role FerretDB logs in as, and psql reaches it as that bootstrap superuser",
            f.postgres.name
        )));
    }
    if let Some(u) = url_user(f.ferretdb).filter(|u| u != user) {
        return Err(refuse(format!(
            "{}'s {FERRETDB_URL_KEY} logs in as {u:?}, not as compose.env's username {user:?}",
            f.ferretdb.name
        )));
    }
    // Komodo's compose file interpolates the password raw into ferretdb's URL: a value outside
    // the URL's unreserved letters would make the next `compose up` write a URL that does not
    // parse (rotate refuses such a new value for the same reason).
    if !url_safe(desired.expose()) {
        return Err(refuse(format!(
            "compose.env's {} has characters outside A-Za-z0-9-._~, which Komodo's compose file puts raw into ferretdb's {FERRETDB_URL_KEY}, where it does not parse: set a URL-safe value (`sops set`) and run rescue again",
            keys.compose_password_key
        )));
    }
    let pg = psql(&dk.engine, f);
    let (stored, verifier) = role_state(&pg, &admin, user)
        .await
        .map_err(|e| refuse(e.to_string()))?;
    if stored == Stored::NoRole {
        return Err(refuse(format!(
            "no role {user} in {}'s pg_authid",
            f.postgres.name
        )));
    }

    // Every holder: ferretdb's URL (a URI's password), core, periphery, others by value.
    let (mut container_keys, mut forms) = (keys.containers.clone(), keys.forms.clone());
    let mut holders: Vec<String> = vec![f.ferretdb.name.clone()];
    holders.extend(
        dk.dependants()
            .filter(|c| keys.containers.get(&c.name).is_some_and(|k| !k.is_empty()))
            .map(|c| c.name.clone()),
    );
    let others: Vec<_> = dk
        .others
        .iter()
        .filter(|c| c.name != f.postgres.name && c.name != f.ferretdb.name)
        .cloned()
        .collect();

    let takes_desired = verifier.as_ref().is_some_and(|v| v.accepts(&desired));
    let (old, set_verifier, blind) = if takes_desired {
        // ferretdb's stale URL password, when it has one: the proof sees it refused.
        let stale_url = url_password(f.ferretdb)
            .ok()
            .filter(|p| !p.is_empty() && !p.ct_eq(&desired))
            .filter(|p| verifier.as_ref().is_some_and(|v| !v.accepts(p)));
        (stale_url.unwrap_or_else(|| desired.clone()), false, false)
    } else {
        let mut ladder = first_candidates(f);
        ladder.extend(takeover::tool_records(cfg, &env.ids, pending.as_ref()));
        ladder.extend(super::git_history::candidates(
            cfg,
            &env.ids,
            &keys.compose_password_key,
        ));
        ladder.extend(more);
        match verifier
            .as_ref()
            .and_then(|v| matching(v, &ladder, &desired))
        {
            Some(c) => {
                eprintln!(
                    "komodo-rotate: role {user}'s verifier takes the password from {}",
                    c.source
                );
                (c.value.clone(), true, false)
            }
            None => (desired.clone(), true, true),
        }
    };
    // Stale: a key that does not hold compose.env's value, unset included (ferretdb's URL is
    // always read as a URI).
    let mut read_forms = forms.clone();
    read_forms.insert(FERRETDB_URL_KEY.to_string(), FORM_URI.to_string());
    let stale = |c: &crate::docker::ContainerInfo, ks: &[String]| {
        compare(c, ks, &read_forms, &desired)
            .iter()
            .any(|k| k.stand != Stand::Holds)
    };
    let mut recreate: Vec<String> = Vec::new();
    if set_verifier {
        recreate = holders.clone();
        // Containers outside the roles holding the old password by value: recreated too
        // (planes::holders). With no known old password there is nothing to look for.
        if !old.ct_eq(&desired) {
            let (found, ck, fm) = keys.with_foreign(&others, &old)?;
            recreate.extend(found.iter().map(|x| x.name.clone()));
            (container_keys, forms) = (ck, fm);
        }
    } else {
        let url = [FERRETDB_URL_KEY.to_string()];
        if stale(f.ferretdb, &url) {
            recreate.push(f.ferretdb.name.clone());
        }
        for c in dk.dependants() {
            if let Some(ks) = keys.containers.get(&c.name).filter(|k| !k.is_empty()) {
                if stale(c, ks) {
                    recreate.push(c.name.clone());
                }
            }
        }
    }
    container_keys.insert(f.ferretdb.name.clone(), vec![FERRETDB_URL_KEY.to_string()]);
    forms.insert(FERRETDB_URL_KEY.to_string(), FORM_URI.to_string());
    if recreate.is_empty() {
        if pending.is_some() {
            execute::refuse_if_pending(cfg)?;
        }
        println!(
            "nothing to rescue: role {user}'s verifier in {} takes compose.env's password and ferretdb's URL and every holder carry it",
            f.postgres.name
        );
        return Ok(0);
    }
    if set_verifier {
        // A value PostgreSQL and the MongoDB drivers would prepare differently is refused now,
        // before any step (client_prep).
        Verifier::build(&desired).map_err(|e| refuse(e.to_string()))?;
    }
    let mut plan = vec![steps::snapshot()];
    if set_verifier {
        plan.push(steps::change_pg());
    }
    plan.extend(recreate.iter().map(|c| steps::recreate(c)));
    plan.push(steps::commit());
    for c in &recreate {
        crate::docker::Recreate::prepare(&dk.engine, c, crate::docker::EnvPatch::new(), 0).await?;
    }
    if blind {
        eprintln!(
            "komodo-rotate: no known password matches role {user}'s verifier in {}: rescue can set it to compose.env's {} through psql on the container's local socket, without any password and without stopping PostgreSQL. The role's current secret is sealed in the journal, so the run stays undoable",
            f.postgres.name, keys.compose_password_key
        );
    }
    if args.dry_run {
        steps::print_plan(&plan);
        println!("pre-flight: ok; nothing changed (--dry-run)");
        return Ok(0);
    }
    if blind {
        consent(args.yes, user, &f.postgres.name)?;
    }
    if let Some(v) = &verifier {
        if let Some(c) = v.client_caveat().filter(|_| !set_verifier) {
            eprintln!(
                "komodo-rotate: note: role {user}'s verifier has {c}; a rotation rewrites it"
            );
        }
    }
    let staged = Staged { old, new: desired };
    let context = RunContext {
        compose_env: cfg.compose_env.clone(),
        env_key: keys.compose_password_key.clone(),
        // No Mongo user: the role is changed by change-pg and proven by proof_ferret (its
        // verifier offline, a fresh login through ferretdb); a rollback by the sealed secret
        // and the holders' snapshots, never by a login through a ferretdb stale by design.
        mongo_user: String::new(),
        pg: Some(PgRole {
            postgres: f.postgres.name.clone(),
            ferretdb: f.ferretdb.name.clone(),
            admin: admin.clone(),
            role: user.to_string(),
        }),
        container_keys,
        forms,
        files: Vec::new(),
        run: RunKind::Rescue,
        git: None,
    };
    if let Some(p) = pending.take() {
        takeover::take_over(
            cfg,
            &p,
            "interrupted; rescue makes the planes agree on compose.env's value",
        )?;
    }
    let code = run_forward(cfg, env, dk.engine.clone(), target, &context, plan, staged).await?;
    if code == crate::error::exit::OK {
        println!(
            "rescued: PostgreSQL's role {user}, compose.env, ferretdb's URL and the containers agree on compose.env's password"
        );
    }
    Ok(code)
}

/// The variant's own first candidates: the password inside ferretdb's URL, postgres's
/// `POSTGRES_PASSWORD` (first init).
fn first_candidates(f: &FerretPlane<'_>) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Ok(v) = url_password(f.ferretdb) {
        out.push(Candidate {
            source: format!("{} {FERRETDB_URL_KEY}", f.ferretdb.name),
            value: v,
        });
    }
    if let Some(v) = f.postgres.env_value(POSTGRES_PASSWORD_KEY) {
        out.push(Candidate {
            source: format!("{} {POSTGRES_PASSWORD_KEY}", f.postgres.name),
            value: v.clone(),
        });
    }
    out
}

/// The first candidate the verifier takes (offline: no login), other than compose.env's value.
fn matching<'c>(v: &Verifier, ladder: &'c [Candidate], desired: &Secret) -> Option<&'c Candidate> {
    let mut tried: Vec<&Secret> = Vec::new();
    for c in ladder {
        if c.value.is_empty() || c.value.ct_eq(desired) || tried.iter().any(|t| t.ct_eq(&c.value)) {
            continue;
        }
        tried.push(&c.value);
        if v.accepts(&c.value) {
            return Some(c);
        }
    }
    None
}

/// The operator's consent to overwrite a credential no known password matches: `--yes`, or
/// "y" at the prompt; no terminal and no `--yes` is a refusal (exit 3).
fn consent(yes: bool, user: &str, postgres: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(refuse(format!(
            "no known password matches role {user}'s verifier in {postgres}; setting it to compose.env's value needs consent and stdin is not a terminal: pass --yes"
        )));
    }
    if confirmed(&format!(
        "set role {user}'s verifier in {postgres} to compose.env's password?"
    ))? {
        return Ok(());
    }
    Err(refuse(format!(
        "not confirmed: role {user}'s verifier in {postgres} was not changed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(source: &str, v: &str) -> Candidate {
        Candidate {
            source: source.into(),
            value: Secret::new(v.into()),
        }
    }

    #[test]
    fn the_first_candidate_the_verifier_takes_wins_offline() {
        let v = Verifier::build(&Secret::new("first-init".into())).unwrap();
        let desired = Secret::new("compose-env".into());
        let ladder = [
            c("url", "compose-env"),
            c("empty", ""),
            c("backup", "older"),
            c("POSTGRES_PASSWORD", "first-init"),
            c("again", "first-init"),
        ];
        assert_eq!(
            matching(&v, &ladder, &desired).unwrap().source,
            "POSTGRES_PASSWORD"
        );
        assert!(matching(&v, &ladder[..3], &desired).is_none());
        // compose.env's own value is never a candidate for OLD.
        let v2 = Verifier::build(&desired).unwrap();
        assert!(matching(&v2, &ladder, &desired).is_none());
    }

    #[test]
    fn no_terminal_and_no_yes_refuses_naming_yes() {
        // Under the test harness stdin is not a terminal.
        if std::io::stdin().is_terminal() {
            return;
        }
        let e = consent(false, "admin", "p-postgres-1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--yes") && e.contains("nothing was changed"),
            "{e}"
        );
        assert!(consent(true, "admin", "p-postgres-1").is_ok());
    }
}
