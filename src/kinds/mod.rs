//! Secret kinds: what `rotate --secret KIND` can rotate. Each kind is one module that turns the
//! loaded planes into a [`Plan`]: its pre-flight (read-only; a refusal is exit 3), its steps (the
//! generic steps of `planes::steps`, each with its undo), and the context the proofs and `resume`
//! read. The transaction engine (`txn`) and the step semantics (`planes`) know no kind.
//!
//! A new kind: one module here with `plan` and `available`, and one arm in each `match` below.

mod db_password;
mod env_key;
mod env_only;
mod jwt_secret;
mod webhook_secret;

pub use env_only::{EnvOnly, Form};
pub mod passkey;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::planes::{Loaded, RunContext};
use crate::secret::Secret;
use crate::txn::Step;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The MongoDB password of Komodo's DB user (compose.env, Mongo's user, core's env).
    DbPassword,
    /// `KOMODO_JWT_SECRET` (env-only; every user is logged out).
    JwtSecret,
    /// `KOMODO_WEBHOOK_SECRET` (env-only; git-host webhooks must be updated).
    WebhookSecret,
    /// `env:KEY`: another env-only compose.env key.
    EnvKey(String),
    /// Komodo v1's core-to-periphery passkey, in three phases (kinds/passkey.rs).
    Passkey,
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

impl Kind {
    /// Every kind `rotate --list` reports on.
    pub fn all() -> Vec<Kind> {
        vec![
            Kind::DbPassword,
            Kind::JwtSecret,
            Kind::WebhookSecret,
            Kind::Passkey,
        ]
    }

    pub fn parse(s: &str) -> std::result::Result<Kind, String> {
        match s {
            "db-password" => Ok(Kind::DbPassword),
            "jwt-secret" => Ok(Kind::JwtSecret),
            "passkey" => Ok(Kind::Passkey),
            "webhook-secret" => Ok(Kind::WebhookSecret),
            _ => match s.strip_prefix("env:") {
                Some(key) => env_key::parse(key).map(Kind::EnvKey),
                None => Err(format!(
                    "unknown secret kind {s:?}; `rotate --list` prints the kinds (db-password, jwt-secret, webhook-secret, passkey, env:KEY)"
                )),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            Kind::DbPassword => "db-password".into(),
            Kind::JwtSecret => "jwt-secret".into(),
            Kind::WebhookSecret => "webhook-secret".into(),
            Kind::EnvKey(k) => format!("env:{k}"),
            Kind::Passkey => "passkey".into(),
        }
    }

    pub fn about(&self) -> &'static str {
        match self {
            Kind::DbPassword => "the MongoDB password (Mongo's user, compose.env, core's env)",
            Kind::JwtSecret => {
                "KOMODO_JWT_SECRET, core's session signing key (logs every user out)"
            }
            Kind::WebhookSecret => {
                "KOMODO_WEBHOOK_SECRET, the default git webhook secret (webhooks 401 until updated)"
            }
            Kind::EnvKey(_) => {
                "an env-only compose.env key (compose.env and the containers holding it)"
            }
            Kind::Passkey => "Komodo v1's core-to-periphery passkey (three phases, no downtime)",
        }
    }

    /// Whether this deployment supports the kind, else why not (one line).
    pub fn available(&self, loaded: &Loaded) -> std::result::Result<(), String> {
        match self {
            Kind::DbPassword => db_password::available(loaded),
            Kind::JwtSecret => jwt_secret::available(loaded),
            Kind::WebhookSecret => webhook_secret::available(loaded),
            Kind::EnvKey(k) => env_key::available(loaded, k),
            Kind::Passkey => passkey::available(loaded),
        }
    }

    /// The pre-flight (nothing changes; a refusal is exit 3) and the plan.
    pub async fn plan(&self, ask: Ask<'_>) -> Result<Plan> {
        if let Err(why) = self.available(ask.loaded) {
            return Err(Error::Precondition(format!("{}: {why}", self.name())));
        }
        match self {
            Kind::DbPassword => db_password::plan(ask).await,
            Kind::JwtSecret => jwt_secret::plan(ask).await,
            Kind::WebhookSecret => webhook_secret::plan(ask).await,
            Kind::EnvKey(k) => env_key::plan(ask, k).await,
            Kind::Passkey => passkey::plan(ask).await,
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
