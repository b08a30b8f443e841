//! `env:KEY`: any other env-only compose.env key the operator names. Keys whose live copy is
//! elsewhere, or that another kind rotates with the care they need, are refused at parse time
//! (exit 2) with the right kind named; a key compose.env lacks is refused in the pre-flight.

use super::{env_only, Ask, Plan};
use crate::error::Result;
use crate::planes::Loaded;

/// One line for `rotate --list`'s help of `env:KEY`.
pub const ABOUT: &str = "an env-only compose.env key (compose.env and the containers holding it)";

/// Why `key` is not an `env:KEY` secret, naming what to use instead; `None`: it may be one.
pub fn refused(key: &str) -> Option<String> {
    let db = "the DB credential's live copy is in MongoDB: use `--secret db-password`";
    let why = match key {
        "KOMODO_DB_PASSWORD" | "KOMODO_DATABASE_PASSWORD" | "DB_PASSWORD"
        | "KOMODO_MONGO_PASSWORD" | "KOMODO_DATABASE_URI" | "KOMODO_MONGO_URI" => db.to_string(),
        "KOMODO_DB_USERNAME" | "KOMODO_DATABASE_USERNAME" | "DB_USERNAME"
        | "KOMODO_MONGO_USERNAME" => {
            "the DB user name is not a secret and lives in MongoDB too; `--secret db-password` rotates its password".into()
        }
        "KOMODO_PASSKEY" | "PERIPHERY_PASSKEYS" | "PASSKEY" => {
            "the passkey must reach every periphery before core sends it: use `--secret passkey` (three phases)".into()
        }
        "KOMODO_JWT_SECRET" => "use `--secret jwt-secret`".into(),
        "KOMODO_WEBHOOK_SECRET" => "use `--secret webhook-secret`".into(),
        "KOMODO_INIT_ADMIN_PASSWORD" | "KOMODO_INIT_ADMIN_USERNAME" => {
            "used only to seed the first user of an empty DB; the live password is in MongoDB: rotate it in the UI or with `km set user <name> password`, then set the env to match".into()
        }
        k if k.starts_with("KOMODO_OIDC_")
            || k.starts_with("KOMODO_GITHUB_OAUTH_")
            || k.starts_with("KOMODO_GOOGLE_OAUTH_")
            || k.starts_with("KOMODO_AWS_")
            || k == "KOMODO_HETZNER_TOKEN" =>
        {
            "a third-party credential: it is issued by the provider, so rotate it there first (most allow two live at once), then put the provider's value into compose.env (`komodo-rotate sops set`, value on stdin) and redeploy core".into()
        }
        k if k.starts_with("COMPOSE_") => {
            "a COMPOSE_* key is read by compose itself, not a secret held by a container".into()
        }
        _ => return None,
    };
    Some(format!("env:{key}: {why}"))
}

/// Letters, digits and `_`, not starting with a digit (what compose and a shell take as a name).
pub fn is_env_name(key: &str) -> bool {
    key.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `env:KEY`'s key: an env name, not refused.
pub fn parse(key: &str) -> std::result::Result<String, String> {
    if !is_env_name(key) {
        return Err(format!(
            "env:{key}: not an env variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    match refused(key) {
        Some(why) => Err(why),
        None => Ok(key.to_string()),
    }
}

pub fn available(loaded: &Loaded, key: &str) -> std::result::Result<(), String> {
    env_only::available(loaded, key)
}

pub async fn plan(ask: Ask<'_>, key: &str) -> Result<Plan> {
    env_only::plan(ask, key, Vec::new(), Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_a_live_copy_elsewhere_are_refused_naming_the_right_kind() {
        for (key, hint) in [
            ("KOMODO_DATABASE_PASSWORD", "--secret db-password"),
            ("KOMODO_DB_PASSWORD", "--secret db-password"),
            ("KOMODO_DATABASE_URI", "--secret db-password"),
            ("KOMODO_PASSKEY", "--secret passkey"),
            ("PERIPHERY_PASSKEYS", "--secret passkey"),
            ("KOMODO_JWT_SECRET", "--secret jwt-secret"),
            ("KOMODO_WEBHOOK_SECRET", "--secret webhook-secret"),
            ("KOMODO_INIT_ADMIN_PASSWORD", "km set user"),
            ("KOMODO_OIDC_CLIENT_SECRET", "rotate it there first"),
            ("KOMODO_GITHUB_OAUTH_SECRET", "provider"),
            ("KOMODO_AWS_SECRET_ACCESS_KEY", "provider"),
            ("COMPOSE_KOMODO_IMAGE_TAG", "compose itself"),
        ] {
            let e = parse(key).unwrap_err();
            assert!(e.starts_with(&format!("env:{key}: ")), "{e}");
            assert!(e.contains(hint), "{key}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn other_env_names_are_accepted_and_bad_names_refused() {
        assert_eq!(parse("MY_API_TOKEN").unwrap(), "MY_API_TOKEN");
        assert_eq!(parse("_X1").unwrap(), "_X1");
        for bad in ["", "1ABC", "A-B", "A B", "A=B", "ÄB"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("not an env variable name"), "{bad:?}: {e}");
        }
    }
}
