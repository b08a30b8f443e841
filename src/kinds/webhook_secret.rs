//! `webhook-secret`: `KOMODO_WEBHOOK_SECRET`, the default secret core checks git-host webhooks
//! against (GitHub/Gitea HMAC, GitLab token). Env-only, no overlap possible: core checks exactly
//! one secret, so every webhook on a git host that uses the default secret gets 401 until it is
//! updated there. Resources with a `webhook_secret` of their own are not affected.

use super::{env_only, Ask, Plan};
use crate::error::Result;
use crate::planes::Loaded;

pub const KEY: &str = "KOMODO_WEBHOOK_SECRET";

pub fn available(loaded: &Loaded) -> std::result::Result<(), String> {
    env_only::available(loaded, KEY)
}

pub async fn plan(ask: Ask<'_>) -> Result<Plan> {
    let before = vec![format!(
        "git-host webhooks that use the default secret get 401 from the moment core runs on the new {KEY} until each is updated (there is no overlap)"
    )];
    let after = vec![format!(
        "update every git-host webhook (GitHub, Gitea, Forgejo, GitLab) that uses Komodo's default webhook secret to the new {KEY} (read it with `sops decrypt`); they get 401 until then. Komodo v1 webhooks made by its GitHub App must be deleted and re-created"
    )];
    env_only::plan(ask, KEY, before, after).await
}
