//! `jwt-secret`: `KOMODO_JWT_SECRET`, with which core signs and checks user sessions. Env-only
//! (no live copy elsewhere), no overlap possible: every session signed with the old secret is
//! refused once core runs on the new one, so every user is logged out. Holders: core (which reads
//! it) and periphery (an unused copy via env_file).

use super::{env_only, Ask, Plan};
use crate::error::Result;
use crate::planes::Loaded;

pub const KEY: &str = "KOMODO_JWT_SECRET";

pub fn available(loaded: &Loaded) -> std::result::Result<(), String> {
    env_only::available(loaded, KEY)
}

pub async fn plan(ask: Ask<'_>) -> Result<Plan> {
    let before = vec![format!(
        "every logged-in Komodo user is logged out: core signs sessions with {KEY}, and sessions signed with the old value are refused once core runs on the new one"
    )];
    env_only::plan(ask, KEY, before, Vec::new()).await
}
