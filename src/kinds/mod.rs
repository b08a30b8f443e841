//! Secret kinds: what `rotate --secret KIND` can rotate. Each kind is one module that turns the
//! loaded planes into a [`Plan`]: its pre-flight (read-only; a refusal is exit 3), its steps (the
//! generic steps of `planes::steps`, each with its undo), and the context the proofs and `resume`
//! read. The transaction engine (`txn`) and the step semantics (`planes`) know no kind.
//!
//! A new kind: one module here with `available` and `async fn plan`, and its line in [`NAMED`]
//! (name, one line for `--list`, module). Nothing else in the crate names a kind.

mod db_password;
mod db_password_ferret;
mod db_password_shared;
mod env_key;
mod env_only;
mod jwt_secret;
mod webhook_secret;

pub use env_key::is_env_name;
pub use env_only::{EnvOnly, Form};
pub mod passkey;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::planes::{Loaded, RunContext};
use crate::secret::Secret;
use crate::txn::Step;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A kind with a fixed name: one row of [`NAMED`].
pub struct Def {
    pub name: &'static str,
    /// One line for `rotate --list`.
    pub about: &'static str,
    /// Whether this deployment supports the kind, else why not (one line).
    pub available: fn(&Loaded) -> std::result::Result<(), String>,
    /// The pre-flight (nothing changes; a refusal is exit 3) and the plan.
    pub plan: for<'a> fn(Ask<'a>) -> PlanFuture<'a>,
}

/// What [`Def::plan`] returns (a boxed `async fn`, so a kind is a plain table row).
pub type PlanFuture<'a> = Pin<Box<dyn Future<Output = Result<Plan>> + 'a>>;

/// A [`Def`] row from a module with `available(&Loaded)` and `async fn plan(Ask)`.
macro_rules! named {
    ($name:literal, $about:literal, $module:ident) => {
        Def {
            name: $name,
            about: $about,
            available: $module::available,
            plan: |ask| Box::pin($module::plan(ask)),
        }
    };
}

/// Every kind with a fixed name, in the order `rotate --list` prints them. A new kind is a
/// module with `available` and `plan`, and one line here.
pub const NAMED: &[Def] = &[
    named!(
        "db-password",
        "the DB password (Mongo's user, or on FerretDB the PostgreSQL role and ferretdb's URL; compose.env, core's env)",
        db_password
    ),
    named!(
        "jwt-secret",
        "KOMODO_JWT_SECRET, core's session signing key (logs every user out)",
        jwt_secret
    ),
    named!(
        "webhook-secret",
        "KOMODO_WEBHOOK_SECRET, the default git webhook secret (webhooks 401 until updated)",
        webhook_secret
    ),
    named!(
        "passkey",
        "Komodo v1's core-to-periphery passkey (three phases, no downtime)",
        passkey
    ),
];

/// A kind `rotate --secret` names: one of [`NAMED`], or `env:KEY`.
#[derive(Clone)]
pub enum Kind {
    Named(&'static Def),
    /// `env:KEY`: another env-only compose.env key (kinds/env_key.rs).
    EnvKey(String),
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Kind {}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name())
    }
}

/// Komodo's env-only secrets as verify checks them (research/komodo.md §1.3): no live copy
/// outside the containers' env, so compose.env and the containers are the whole truth.
pub const ENV_ONLY_ROWS: &[EnvOnly] = &[
    EnvOnly {
        kind: "jwt-secret",
        key: jwt_secret::KEY,
        carriers: &[(jwt_secret::KEY, Form::Plain)],
    },
    EnvOnly {
        kind: "webhook-secret",
        key: webhook_secret::KEY,
        carriers: &[(webhook_secret::KEY, Form::Plain)],
    },
    EnvOnly {
        kind: "passkey",
        key: "KOMODO_PASSKEY",
        carriers: &[
            ("KOMODO_PASSKEY", Form::Plain),
            ("PERIPHERY_PASSKEYS", Form::List),
        ],
    },
];

/// What a kind is asked to plan: the loaded planes and the value it is to roll out.
pub struct Ask<'a> {
    pub cfg: &'a Config,
    pub loaded: &'a Loaded,
    pub new: Secret,
    /// `--local-only`: peripheries on other hosts (`[[periphery.remote]]`) keep the old value.
    pub local_only: bool,
}

/// A kind's plan, ready to be journaled and run.
pub struct Plan {
    pub steps: Vec<Step>,
    pub context: RunContext,
    pub old: Secret,
    pub new: Secret,
    /// Printed before the run starts (effects on users).
    pub before: Vec<String>,
    /// Printed after a commit (what the operator still has to do elsewhere).
    pub after: Vec<String>,
}

impl Plan {
    /// `steps` from OLD to NEW with the run's `context`, and no notes for the operator.
    pub fn new(steps: Vec<Step>, context: RunContext, old: Secret, new: Secret) -> Plan {
        Plan {
            steps,
            context,
            old,
            new,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// With notes printed before the run starts and after a commit.
    pub fn with_notes(self, before: Vec<String>, after: Vec<String>) -> Plan {
        Plan {
            before,
            after,
            ..self
        }
    }
}

impl Kind {
    /// The kind `rotate` runs when none is named (the first row of [`NAMED`]).
    pub fn db_password() -> Kind {
        Kind::Named(&NAMED[0])
    }

    /// Every kind `rotate --list` reports on (`env:KEY` has no fixed name, so it is not listed).
    pub fn all() -> Vec<Kind> {
        NAMED.iter().map(Kind::Named).collect()
    }

    pub fn parse(s: &str) -> std::result::Result<Kind, String> {
        if let Some(d) = NAMED.iter().find(|d| d.name == s) {
            return Ok(Kind::Named(d));
        }
        match s.strip_prefix("env:") {
            Some(key) => env_key::parse(key).map(Kind::EnvKey),
            None => {
                let names: Vec<&str> = NAMED.iter().map(|d| d.name).collect();
                Err(format!(
                    "unknown secret kind {s:?}; `rotate --list` prints the kinds ({}, env:KEY)",
                    names.join(", ")
                ))
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Kind::Named(d) => d.name.into(),
            Kind::EnvKey(k) => format!("env:{k}"),
        }
    }

    pub fn about(&self) -> &'static str {
        match self {
            Kind::Named(d) => d.about,
            Kind::EnvKey(_) => env_key::ABOUT,
        }
    }

    /// Whether this deployment supports the kind, else why not (one line).
    pub fn available(&self, loaded: &Loaded) -> std::result::Result<(), String> {
        match self {
            Kind::Named(d) => (d.available)(loaded),
            Kind::EnvKey(k) => env_key::available(loaded, k),
        }
    }

    /// The pre-flight (nothing changes; a refusal is exit 3) and the plan.
    pub async fn plan(&self, ask: Ask<'_>) -> Result<Plan> {
        if let Err(why) = self.available(ask.loaded) {
            return Err(Error::Precondition(format!("{}: {why}", self.name())));
        }
        match self {
            Kind::Named(d) => (d.plan)(ask).await,
            Kind::EnvKey(k) => env_key::plan(ask, k).await,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The pre-flight refusal shared by every kind that writes compose.env: the key must be
/// encrypted by the file's rules.
pub(crate) fn refuse_clear_text(loaded: &Loaded, key: &str) -> Result<()> {
    if let Some(rule) = loaded.env.file.clear_text_rule(key) {
        return Err(Error::Precondition(format!(
            "{}: {key} is stored in clear text by the file's rule ({rule}); re-encrypt the file with a rule that encrypts this key before rotating",
            loaded.env.file.name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused_by_name() {
        for k in Kind::all() {
            assert_eq!(Kind::parse(&k.name()).unwrap(), k);
        }
        assert_eq!(Kind::all().len(), NAMED.len());
        assert_eq!(Kind::db_password().name(), "db-password");
        assert_eq!(
            Kind::parse("env:MY_TOKEN").unwrap(),
            Kind::EnvKey("MY_TOKEN".into())
        );
        assert_eq!(Kind::EnvKey("MY_TOKEN".into()).name(), "env:MY_TOKEN");
        let e = Kind::parse("env:KOMODO_DATABASE_PASSWORD").unwrap_err();
        assert!(e.contains("--secret db-password"), "{e}");
        let e = Kind::parse("root-password").unwrap_err();
        assert!(
            e.contains("root-password") && e.contains("rotate --list"),
            "{e}"
        );
    }
}
