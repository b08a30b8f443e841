//! Which database is behind core: MongoDB, or FerretDB on PostgreSQL (Komodo's
//! `ferretdb.compose.yaml`), from the project's services' env key names and core's
//! `KOMODO_DATABASE_ADDRESS` host. A pure function, like generation detection.

/// The database behind core: MongoDB, or FerretDB on PostgreSQL (Komodo's
/// `ferretdb.compose.yaml`, for hosts where MongoDB cannot run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    Mongo,
    /// The services playing FerretDB's two parts.
    FerretDb {
        postgres: String,
        ferretdb: String,
    },
}

impl Variant {
    pub fn as_str(&self) -> &'static str {
        match self {
            Variant::Mongo => "mongo",
            Variant::FerretDb { .. } => "ferretdb",
        }
    }
}

/// One service of the project, as variant detection sees it: its env keys, and (core only) the
/// host of `KOMODO_DATABASE_ADDRESS` (not a secret).
#[derive(Debug, Clone)]
pub struct ServiceKeys<'a> {
    pub service: &'a str,
    /// Its container's name (compose makes it a DNS alias too).
    pub container: &'a str,
    pub env_keys: Vec<&'a str>,
}

/// The env key of the ferretdb service that holds its PostgreSQL URL (password inside).
pub const FERRETDB_URL_KEY: &str = "FERRETDB_POSTGRESQL_URL";
/// The postgres service's first-init credentials (used by initdb on an empty data dir only).
pub const POSTGRES_USER_KEY: &str = "POSTGRES_USER";
pub const POSTGRES_PASSWORD_KEY: &str = "POSTGRES_PASSWORD";

/// Which variant a deployment is, from its services' env keys and where core's
/// `KOMODO_DATABASE_ADDRESS` points (`core_address`, e.g. `ferretdb:27017`). FerretDB: exactly
/// one service with `FERRETDB_POSTGRESQL_URL`, exactly one with `POSTGRES_USER` and
/// `POSTGRES_PASSWORD`, and core's address naming the ferretdb service (or its container).
/// No `FERRETDB_POSTGRESQL_URL` anywhere: Mongo, unchanged. Anything in between is an error
/// naming the services, so no run guesses which database is live.
pub fn detect_variant(
    services: &[ServiceKeys<'_>],
    core_address: Option<&str>,
) -> Result<Variant, String> {
    let with = |pred: &dyn Fn(&ServiceKeys<'_>) -> bool| -> Vec<&ServiceKeys<'_>> {
        services.iter().filter(|s| pred(s)).collect()
    };
    let ferret = with(&|s| s.env_keys.contains(&FERRETDB_URL_KEY));
    if ferret.is_empty() {
        return Ok(Variant::Mongo);
    }
    let names = |v: &[&ServiceKeys<'_>]| {
        v.iter()
            .map(|s| s.service.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [f] = ferret.as_slice() else {
        return Err(format!(
            "several services carry {FERRETDB_URL_KEY} ({}): cannot tell which FerretDB core uses",
            names(&ferret)
        ));
    };
    let pg = with(&|s| {
        s.env_keys.contains(&POSTGRES_USER_KEY) && s.env_keys.contains(&POSTGRES_PASSWORD_KEY)
    });
    let p = match pg.as_slice() {
        [p] => p,
        [] => {
            return Err(format!(
                "service {} carries {FERRETDB_URL_KEY} but no service of the project has {POSTGRES_USER_KEY} and {POSTGRES_PASSWORD_KEY} (FerretDB's PostgreSQL)",
                f.service
            ))
        }
        many => {
            return Err(format!(
                "several services have {POSTGRES_USER_KEY} and {POSTGRES_PASSWORD_KEY} ({}): cannot tell which PostgreSQL FerretDB uses",
                names(many)
            ))
        }
    };
    let host = core_address.map(address_host);
    match host {
        Some(h) if h == f.service || h == f.container => Ok(Variant::FerretDb {
            postgres: p.service.to_string(),
            ferretdb: f.service.to_string(),
        }),
        Some(h) => Err(format!(
            "service {} is FerretDB, but core's KOMODO_DATABASE_ADDRESS points at {h:?}, not at it",
            f.service
        )),
        None => Err(format!(
            "service {} is FerretDB, but core has no KOMODO_DATABASE_ADDRESS naming it",
            f.service
        )),
    }
}

/// The host of a `host[:port]` address (first of a list; `[v6]` kept whole).
fn address_host(addr: &str) -> &str {
    let first = addr.split(',').next().unwrap_or("").trim();
    let first = first.strip_prefix("mongodb://").unwrap_or(first);
    if first.starts_with('[') {
        return first
            .split(']')
            .next()
            .map_or(first, |h| &first[..h.len() + 1]);
    }
    first.split([':', '/']).next().unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc<'a>(service: &'a str, keys: &[&'a str]) -> ServiceKeys<'a> {
        ServiceKeys {
            service,
            container: service,
            env_keys: keys.to_vec(),
        }
    }

    /// The services of Komodo's ferretdb.compose.yaml, by env keys.
    fn ferret_project<'a>() -> Vec<ServiceKeys<'a>> {
        vec![
            svc(
                "postgres",
                &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"],
            ),
            svc("ferretdb", &["FERRETDB_POSTGRESQL_URL"]),
            svc(
                "core",
                &["KOMODO_DATABASE_ADDRESS", "KOMODO_DATABASE_PASSWORD"],
            ),
            svc("periphery", &["KOMODO_DATABASE_PASSWORD"]),
        ]
    }

    #[test]
    fn the_ferretdb_variant_by_services_keys_and_core_address() {
        let p = ferret_project();
        let want = Variant::FerretDb {
            postgres: "postgres".into(),
            ferretdb: "ferretdb".into(),
        };
        assert_eq!(detect_variant(&p, Some("ferretdb:27017")).unwrap(), want);
        assert_eq!(detect_variant(&p, Some("ferretdb")).unwrap(), want);
        let mut named = p.clone();
        named[1].container = "komodo-ferretdb-1";
        assert_eq!(
            detect_variant(&named, Some("komodo-ferretdb-1:27017")).unwrap(),
            want
        );
        assert_eq!(want.as_str(), "ferretdb");
        // The Mongo variant is unchanged: no FERRETDB_POSTGRESQL_URL anywhere.
        let mongo = vec![
            svc(
                "mongo",
                &["MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"],
            ),
            svc("core", &["KOMODO_DATABASE_ADDRESS"]),
        ];
        assert_eq!(
            detect_variant(&mongo, Some("mongo:27017")).unwrap(),
            Variant::Mongo
        );
        assert_eq!(detect_variant(&mongo, None).unwrap(), Variant::Mongo);
    }

    #[test]
    fn a_half_ferretdb_project_is_an_error_naming_the_services() {
        let p = ferret_project();
        let e = detect_variant(&p, Some("mongo:27017")).unwrap_err();
        assert!(e.contains("ferretdb") && e.contains("\"mongo\""), "{e}");
        let e = detect_variant(&p, None).unwrap_err();
        assert!(e.contains("no KOMODO_DATABASE_ADDRESS"), "{e}");
        let no_pg: Vec<_> = p
            .iter()
            .filter(|s| s.service != "postgres")
            .cloned()
            .collect();
        let e = detect_variant(&no_pg, Some("ferretdb:27017")).unwrap_err();
        assert!(e.contains("POSTGRES_USER and POSTGRES_PASSWORD"), "{e}");
        let mut two = p.clone();
        two.push(svc("ferretdb2", &["FERRETDB_POSTGRESQL_URL"]));
        let e = detect_variant(&two, Some("ferretdb:27017")).unwrap_err();
        assert!(e.contains("ferretdb, ferretdb2"), "{e}");
        let mut two_pg = p.clone();
        two_pg.push(svc("pg2", &["POSTGRES_USER", "POSTGRES_PASSWORD"]));
        let e = detect_variant(&two_pg, Some("ferretdb:27017")).unwrap_err();
        assert!(e.contains("postgres, pg2"), "{e}");
        assert_eq!(address_host("[::1]:27017"), "[::1]");
        assert_eq!(address_host("ferretdb:27017,other:1"), "ferretdb");
    }
}
