//! The rehearsal's secret keys, per variant and per kind: the names the referee reads and the
//! contract judges by. Names only; values never pass through here (`fp` prints a fingerprint).

use sha2::{Digest, Sha256};

/// compose.env keys whose values are secrets (the campaign tracks and scans for them).
pub const SECRET_KEYS: &[&str] = &[
    "KOMODO_DATABASE_PASSWORD",
    "KOMODO_DB_PASSWORD",
    "KOMODO_JWT_SECRET",
    "KOMODO_WEBHOOK_SECRET",
    "REHEARSAL_API_TOKEN",
    "KOMODO_PASSKEY",
    "PERIPHERY_PASSKEYS",
];

/// Which rehearsal stack the campaign runs on (`--variant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Komodo v2 on MongoDB (`KOMODO_DATABASE_*` in compose.env): the default.
    Mongo,
    /// Komodo v1.17-1.19 on MongoDB: compose.env holds `KOMODO_DB_*`, compose maps it to
    /// core's `KOMODO_DATABASE_*` (and env_file copies `KOMODO_DB_*` into both holders).
    V1,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mongo" | "v2" => Ok(Variant::Mongo),
            "v1" => Ok(Variant::V1),
            // The hook for issue 21: a FerretDB variant needs its stack (StackOptions for the
            // FerretDB compose file) and a referee that asks PostgreSQL, not pymongo, which
            // password the database accepts. Until both exist it is refused, never faked.
            "ferretdb" => Err("--variant ferretdb: no FerretDB rehearsal stack in the campaign yet (issue 21: add its StackOptions in main.rs and a PostgreSQL check beside Referee::mongo)".into()),
            o => Err(format!("--variant {o:?}: expected mongo (v2) or v1")),
        }
    }
}

static VARIANT: std::sync::OnceLock<Variant> = std::sync::OnceLock::new();

/// Sets the variant once, before the first look.
pub fn set_variant(v: Variant) {
    let _ = VARIANT.set(v);
}

pub fn variant() -> Variant {
    *VARIANT.get().unwrap_or(&Variant::Mongo)
}

/// compose.env's DB password key in this variant.
pub fn db_key() -> &'static str {
    match variant() {
        Variant::Mongo => "KOMODO_DATABASE_PASSWORD",
        Variant::V1 => "KOMODO_DB_PASSWORD",
    }
}

/// The compose.env key a container's key comes from (v1 maps `KOMODO_DATABASE_PASSWORD`).
pub fn env_key_of(container_key: &str) -> &str {
    match (variant(), container_key) {
        (Variant::V1, "KOMODO_DATABASE_PASSWORD") => "KOMODO_DB_PASSWORD",
        (_, k) => k,
    }
}

/// compose.env keys a kind rotates.
pub fn kind_keys(kind: &str) -> Vec<&'static str> {
    match kind {
        "db-password" => vec![db_key()],
        "jwt-secret" => vec!["KOMODO_JWT_SECRET"],
        "webhook-secret" => vec!["KOMODO_WEBHOOK_SECRET"],
        "passkey" => vec!["KOMODO_PASSKEY", "PERIPHERY_PASSKEYS"],
        k => match k.strip_prefix("env:") {
            Some(key) => SECRET_KEYS.iter().copied().filter(|s| *s == key).collect(),
            None => vec![],
        },
    }
}

pub fn fp(v: &str) -> String {
    hex::encode(&Sha256::digest(v.as_bytes())[..4])
}
