//! Which Komodo generation a deployment follows, from env key names only (research/komodo.md
//! §1.3). The naming decides which keys a DB password rotation must rewrite in compose.env and
//! in each container. A pure function: callers pass compose.env's key names and core's env keys.

pub use super::variant::{
    detect_variant, ServiceKeys, Variant, FERRETDB_URL_KEY, POSTGRES_PASSWORD_KEY,
    POSTGRES_USER_KEY,
};

/// The env-naming generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// v2.x: compose.env holds `KOMODO_DATABASE_*`, which core reads directly.
    V2,
    /// v1.17–v1.19: compose.env holds `KOMODO_DB_*`; compose maps them to core's
    /// `KOMODO_DATABASE_*` (and env_file copies `KOMODO_DB_*` into core and periphery too).
    V1,
    /// ≤ v1.16: `DB_USERNAME`/`DB_PASSWORD` and `PASSKEY`.
    Legacy,
}

/// The outcome of [`detect`]: the generation and what looked inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub generation: Generation,
    /// One line each; key names only.
    pub warnings: Vec<String>,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::V2 => "v2",
            Generation::V1 => "v1",
            Generation::Legacy => "legacy",
        }
    }

    /// The compose.env key holding the DB username.
    pub fn compose_db_username_key(self) -> &'static str {
        match self {
            Generation::V2 => "KOMODO_DATABASE_USERNAME",
            Generation::V1 => "KOMODO_DB_USERNAME",
            Generation::Legacy => "DB_USERNAME",
        }
    }

    /// The compose.env key holding the DB password.
    pub fn compose_db_password_key(self) -> &'static str {
        match self {
            Generation::V2 => "KOMODO_DATABASE_PASSWORD",
            Generation::V1 => "KOMODO_DB_PASSWORD",
            Generation::Legacy => "DB_PASSWORD",
        }
    }

    /// Keys in core's env that carry the DB password: the one core reads (always
    /// `KOMODO_DATABASE_PASSWORD` from v1.15 on) plus the env_file copy of compose.env's key.
    pub fn core_db_password_keys(self) -> &'static [&'static str] {
        match self {
            Generation::V2 => &["KOMODO_DATABASE_PASSWORD"],
            Generation::V1 => &["KOMODO_DATABASE_PASSWORD", "KOMODO_DB_PASSWORD"],
            Generation::Legacy => &["KOMODO_DATABASE_PASSWORD", "DB_PASSWORD"],
        }
    }

    /// Keys in periphery's env that carry an (unused) copy of the DB password via env_file.
    pub fn periphery_db_password_keys(self) -> &'static [&'static str] {
        match self {
            Generation::V2 => &["KOMODO_DATABASE_PASSWORD"],
            Generation::V1 => &["KOMODO_DB_PASSWORD"],
            Generation::Legacy => &["DB_PASSWORD"],
        }
    }

    /// The key in mongo's env that holds the root password used at first volume init.
    pub fn mongo_db_password_key(self) -> &'static str {
        "MONGO_INITDB_ROOT_PASSWORD"
    }

    /// The compose.env key holding core's passkey.
    pub fn compose_passkey_key(self) -> &'static str {
        match self {
            Generation::V2 | Generation::V1 => "KOMODO_PASSKEY",
            Generation::Legacy => "PASSKEY",
        }
    }
}

/// compose.env's DB password key of every generation: a host upgraded across generations may
/// keep several, and a rotation must rewrite (or refuse) each.
pub const ALL_COMPOSE_DB_PASSWORD_KEYS: &[&str] = &[
    "KOMODO_DATABASE_PASSWORD",
    "KOMODO_DB_PASSWORD",
    "DB_PASSWORD",
];

fn has(keys: &[&str], k: &str) -> bool {
    keys.contains(&k)
}

fn from_compose(keys: &[&str]) -> Option<Generation> {
    if has(keys, "KOMODO_DB_PASSWORD") || has(keys, "KOMODO_DB_USERNAME") {
        Some(Generation::V1)
    } else if has(keys, "DB_PASSWORD") || has(keys, "DB_USERNAME") {
        Some(Generation::Legacy)
    } else if has(keys, "KOMODO_DATABASE_PASSWORD") || has(keys, "KOMODO_DATABASE_USERNAME") {
        Some(Generation::V2)
    } else {
        None
    }
}

/// Detects the generation. compose.env's naming decides when it has DB keys; core's env is the
/// fallback and the cross-check (a v1 compose.env under a v2 compose file leaves core without
/// `KOMODO_DATABASE_*`: the rename trap of research/komodo.md §1.3).
pub fn detect(compose_env_keys: &[&str], core_env_keys: &[&str]) -> Result<Detection, String> {
    // A host upgraded from 1.19 to 2.x may keep v1's keys beside v2's complete pair: v2 leads
    // (both are rewritten together, or refused when they differ: planes::password_keys), and
    // core's env (which gets both through env_file) cannot tell the generations apart.
    let upgraded = from_compose(compose_env_keys) == Some(Generation::V1)
        && has(compose_env_keys, "KOMODO_DATABASE_USERNAME")
        && has(compose_env_keys, "KOMODO_DATABASE_PASSWORD");
    let from_env = if upgraded {
        Some(Generation::V2)
    } else {
        from_compose(compose_env_keys)
    };
    let from_core = from_compose(core_env_keys);
    let core_reads = has(core_env_keys, "KOMODO_DATABASE_PASSWORD")
        || has(core_env_keys, "KOMODO_DATABASE_PASSWORD_FILE")
        || has(core_env_keys, "KOMODO_DATABASE_URI")
        || has(core_env_keys, "KOMODO_DATABASE_URI_FILE");
    let generation = match (from_env, from_core) {
        (Some(g), _) => g,
        (None, Some(g)) => g,
        (None, None) if core_reads => Generation::V2,
        (None, None) => {
            return Err(
                "cannot tell the Komodo generation: neither compose.env nor core's env has KOMODO_DATABASE_*, KOMODO_DB_* or DB_* keys"
                    .to_string(),
            )
        }
    };
    let mut warnings = Vec::new();
    if !core_env_keys.is_empty() && !core_reads {
        warnings.push(format!(
            "core's env has no KOMODO_DATABASE_PASSWORD (nor _FILE/URI): core starts without DB credentials; compose.env uses {} naming",
            generation.as_str()
        ));
    }
    if let (Some(e), Some(c), false) = (from_env, from_core, upgraded) {
        if e != c {
            warnings.push(format!(
                "compose.env uses {} naming but core's env was created from {} naming",
                e.as_str(),
                c.as_str()
            ));
        }
    }
    Ok(Detection {
        generation,
        warnings,
    })
}

/// A place a container (or compose.env) carries the DB credential in a form no step can patch
/// (see `docker::carrier` for the forms that are patched): a rotation refuses it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    pub key: String,
    /// Why it cannot be patched; names only, never a value.
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_from_its_template() {
        let v2 = detect(
            &[
                "KOMODO_DATABASE_USERNAME",
                "KOMODO_DATABASE_PASSWORD",
                "KOMODO_JWT_SECRET",
            ],
            &[
                "KOMODO_DATABASE_USERNAME",
                "KOMODO_DATABASE_PASSWORD",
                "KOMODO_DATABASE_ADDRESS",
            ],
        )
        .unwrap();
        assert_eq!(v2.generation, Generation::V2);
        assert!(v2.warnings.is_empty());

        let v1 = detect(
            &["KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD", "KOMODO_PASSKEY"],
            &[
                "KOMODO_DB_PASSWORD",
                "KOMODO_DATABASE_PASSWORD",
                "KOMODO_DATABASE_USERNAME",
            ],
        )
        .unwrap();
        assert_eq!(v1.generation, Generation::V1);
        assert!(v1.warnings.is_empty(), "{:?}", v1.warnings);
        assert_eq!(
            v1.generation.core_db_password_keys(),
            &["KOMODO_DATABASE_PASSWORD", "KOMODO_DB_PASSWORD"]
        );

        let old = detect(&["DB_USERNAME", "DB_PASSWORD", "PASSKEY"], &[]).unwrap();
        assert_eq!(old.generation, Generation::Legacy);
        assert_eq!(old.generation.compose_passkey_key(), "PASSKEY");
    }

    #[test]
    fn core_env_alone_decides_when_compose_env_is_silent() {
        let d = detect(&["KOMODO_JWT_SECRET"], &["KOMODO_DATABASE_PASSWORD_FILE"]).unwrap();
        assert_eq!(d.generation, Generation::V2);
        assert!(detect(&["X"], &["Y"]).is_err());
    }

    #[test]
    fn an_upgraded_host_with_both_generations_is_v2() {
        let both = [
            "KOMODO_DB_USERNAME",
            "KOMODO_DB_PASSWORD",
            "KOMODO_DATABASE_USERNAME",
            "KOMODO_DATABASE_PASSWORD",
        ];
        let d = detect(&both, &both).unwrap();
        assert_eq!(d.generation, Generation::V2);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        // v1's keys with only v2's password (no v2 username): still v1.
        let d = detect(
            &[
                "KOMODO_DB_USERNAME",
                "KOMODO_DB_PASSWORD",
                "KOMODO_DATABASE_PASSWORD",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(d.generation, Generation::V1);
        assert_eq!(
            ALL_COMPOSE_DB_PASSWORD_KEYS,
            [Generation::V2, Generation::V1, Generation::Legacy]
                .map(|g| g.compose_db_password_key())
        );
    }

    #[test]
    fn rename_trap_is_reported() {
        // v1 compose.env deployed with a v2 compose file: core only got the KOMODO_DB_* copy.
        let d = detect(
            &["KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD"],
            &["KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD"],
        )
        .unwrap();
        assert_eq!(d.generation, Generation::V1);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("no KOMODO_DATABASE_PASSWORD"));
    }
}
