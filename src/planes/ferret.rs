//! How the tool reaches the PostgreSQL of a FerretDB deployment: `docker exec` into the postgres
//! container, running `psql` as the `postgres` OS user over the container's local socket, the SQL
//! on stdin. The official image (and initdb's default) trusts the local socket, so this needs no
//! password: it works while the planes have drifted (the case `rescue` exists for), and the
//! plaintext password never travels at all (the tool sends the verifier it built). A client
//! crate over TCP would prove the password by logging in, but needs the live password first
//! and a published port; the proof that a password logs in is done through FerretDB instead.

use crate::docker::{exec, Engine};
use crate::postgres::{Output, Psql};
use std::time::Duration;

/// The OS user psql runs as inside the container (the official image's and Debian's).
pub const EXEC_USER: &str = "postgres";
/// How long one psql session may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// psql inside the postgres container.
pub struct ContainerPsql<'a> {
    pub engine: &'a Engine,
    pub container: &'a str,
}

impl Psql for ContainerPsql<'_> {
    fn at(&self) -> String {
        format!("container {}", self.container)
    }

    async fn run(&self, argv: &[String], stdin: &[u8]) -> Result<Output, String> {
        let out = exec::exec(
            self.engine,
            self.container,
            Some(EXEC_USER),
            argv,
            stdin,
            DEADLINE,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
            code: out.code,
        })
    }
}

use super::DockerPlane;
use crate::docker::discovery::SERVICE_LABEL;
use crate::docker::generation::{self, ServiceKeys, Variant};
use crate::docker::ContainerInfo;

/// The two FerretDB containers of a deployment of that variant.
pub struct FerretPlane<'a> {
    pub postgres: &'a ContainerInfo,
    pub ferretdb: &'a ContainerInfo,
}

/// Core's env key naming the database core connects to (`ferretdb:27017` in this variant).
pub const CORE_ADDRESS_KEY: &str = "KOMODO_DATABASE_ADDRESS";

/// Every container of the loaded deployment, each once (the mongo role is ferretdb's container
/// when the config's mongo service is FerretDB, as `init` writes it).
fn all(dk: &DockerPlane) -> Vec<&ContainerInfo> {
    let mut v: Vec<&ContainerInfo> = std::iter::once(&dk.mongo)
        .chain(dk.dependants())
        .chain(dk.others.iter())
        .collect();
    v.dedup_by(|a, b| a.name == b.name);
    v
}

/// The deployment's variant, from its containers' services and env keys and core's
/// `KOMODO_DATABASE_ADDRESS` (`docker::generation::detect_variant`); an error names what is
/// inconsistent.
pub fn variant(dk: &DockerPlane) -> Result<Variant, String> {
    let cs = all(dk);
    // Core and periphery are Komodo's clients, never FerretDB or its PostgreSQL: a
    // FERRETDB_POSTGRESQL_URL in core's env is a carrier of the password (the carriers' rules
    // patch or refuse it), not a FerretDB service.
    let is_client =
        |c: &ContainerInfo| c.name == dk.core.name || dk.periphery.iter().any(|p| p.name == c.name);
    let services: Vec<ServiceKeys<'_>> = cs
        .iter()
        .filter(|c| !is_client(c))
        .map(|c| ServiceKeys {
            service: c
                .labels
                .get(SERVICE_LABEL)
                .map(String::as_str)
                .unwrap_or(&c.name),
            container: &c.name,
            env_keys: c.env_keys().collect(),
        })
        .collect();
    let address = dk.core.env_value(CORE_ADDRESS_KEY).map(|s| s.expose());
    generation::detect_variant(&services, address)
}

impl<'a> FerretPlane<'a> {
    /// The FerretDB containers, or `None` for the Mongo variant.
    pub fn find(dk: &'a DockerPlane) -> Result<Option<FerretPlane<'a>>, String> {
        let Variant::FerretDb { postgres, ferretdb } = variant(dk)? else {
            return Ok(None);
        };
        let by_service = |svc: &str| -> Result<&'a ContainerInfo, String> {
            let found: Vec<&ContainerInfo> = all(dk)
                .into_iter()
                .filter(|c| {
                    c.labels
                        .get(SERVICE_LABEL)
                        .map_or(c.name == svc, |s| s == svc)
                })
                .collect();
            match found.as_slice() {
                [one] => Ok(one),
                _ => Err(format!(
                    "service {svc:?} has {} containers; FerretDB needs one",
                    found.len()
                )),
            }
        };
        Ok(Some(FerretPlane {
            postgres: by_service(&postgres)?,
            ferretdb: by_service(&ferretdb)?,
        }))
    }

    /// One line for `rotate --list` and verify: which containers play FerretDB's parts.
    pub fn describe(&self) -> String {
        format!(
            "FerretDB deployment (postgres {}, ferretdb {})",
            self.postgres.name, self.ferretdb.name
        )
    }
}

impl FerretPlane<'_> {
    /// The role psql connects as over the local socket: postgres's `POSTGRES_USER` (the
    /// bootstrap superuser, kept from first init), else `user` (in Komodo's file the same).
    pub fn admin(&self, user: &str) -> String {
        self.postgres
            .env_value(generation::POSTGRES_USER_KEY)
            .map(|s| s.expose().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| user.to_string())
    }
}

/// Whether `value` can be interpolated raw into `FERRETDB_POSTGRESQL_URL` (Komodo's compose
/// file does so, unencoded): only RFC 3986's unreserved letters `A-Za-z0-9-._~`. Every
/// `--charset` the generator offers (alnum, hex, base64url) is.
pub fn url_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// For `resume` on the FerretDB variant: the engine and the ferretdb container (where the Mongo
/// target points) found by compose labels, else by the run's name for it, also as the
/// `-next`/`-prev` a killed recreate leaves (it publishes the same port).
pub async fn front_for_resume(
    cfg: &crate::config::Config,
    name: &str,
) -> crate::error::Result<(Engine, ContainerInfo)> {
    let first = DockerPlane::mongo_only(cfg).await;
    let Err(e) = first else { return first };
    let engine = Engine::connect().await?;
    for n in [
        name.to_string(),
        format!("{name}{}", crate::docker::NEXT_SUFFIX),
        format!("{name}{}", crate::docker::PREV_SUFFIX),
    ] {
        if let Some(i) = engine.try_inspect(&n).await? {
            return Ok((engine, ContainerInfo::from_inspect(&i)));
        }
    }
    Err(e)
}

#[cfg(test)]
mod url_safe_tests {
    use super::url_safe;
    use crate::secret::{Charset, Generator};

    #[test]
    fn every_generated_charset_is_url_safe_and_reserved_letters_are_not() {
        for cs in Charset::ALL {
            for len in [16, 32, 97] {
                let g = Generator::new(len, cs).unwrap();
                for _ in 0..200 {
                    let v = g.generate().unwrap();
                    assert!(url_safe(v.expose()), "{} {len}", cs.name());
                }
            }
        }
        // Seeded: each reserved or other letter, anywhere in an otherwise safe value.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for bad in "@:/?#[]!$&'()*+,;=% \"<>\\^`{|}\u{e9}".chars() {
            for _ in 0..20 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % 24) as usize;
                let mut v: String = "abcdefghijklmnopqrstuvwx".into();
                v.insert(at, bad);
                assert!(!url_safe(&v), "{v:?}");
            }
        }
        assert!(url_safe("a-b.c_d~e") && !url_safe(""));
    }
}
