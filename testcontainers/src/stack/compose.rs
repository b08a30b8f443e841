//! The rehearsal stack's compose side: the compose files (shaped like Komodo's official
//! `mongo.compose.yaml`, one per generation, in `testcontainers/compose/`) and running Debian's
//! `docker-compose` 1.29 on them the way SOPS users do: compose.env stays encrypted on disk, is
//! decrypted (with komodo-rotate's own SOPS store and the stack's age key) into a 0600 temp file
//! beside it, handed to compose as `--env-file` and as the services' `env_file`
//! (`KOMODO_ENV_FILE`), and removed when compose returns.

use super::Generation;
use komodo_rotate::sops::{Identities, SopsFile};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The compose file's name in the stack dir (as in Komodo's `compose/` folder).
pub const COMPOSE_FILE: &str = "mongo.compose.yaml";

/// The optional override with the sidecar network mode and the anonymous volume
/// ([`super::StackOptions::shapes`]); when the stack dir has it, every compose call reads it.
pub const SHAPES_FILE: &str = "shapes.override.yaml";
pub const SHAPES_TEXT: &str = include_str!("../../compose/v2/shapes.override.yaml");

/// The FerretDB variant's compose file (Komodo's `compose/ferretdb.compose.yaml`).
pub const FERRETDB_FILE: &str = "ferretdb.compose.yaml";
const FERRETDB_TEXT: &str = include_str!("../../compose/ferretdb/ferretdb.compose.yaml");

pub fn ferretdb_file_text() -> &'static str {
    FERRETDB_TEXT
}

const V1_FILE: &str = include_str!("../../compose/v1/mongo.compose.yaml");
const V2_FILE: &str = include_str!("../../compose/v2/mongo.compose.yaml");

/// The compose file of `generation`.
pub fn compose_file_text(generation: Generation) -> &'static str {
    match generation {
        Generation::V1 => V1_FILE,
        Generation::V2 => V2_FILE,
    }
}

/// The stack dir's folder bind-mounted read-only at `/run/secrets` in core
/// ([`super::CoreCarrier::PasswordFile`]), and the file in it.
pub const SECRETS_DIR: &str = "secrets";
pub const PASSWORD_FILE: &str = "db_password";

/// The compose file of `generation` with core given the DB password through `carrier` too:
/// lines added to core's `environment:` (and `volumes:`), everything else as in the file.
pub fn compose_file_with(generation: Generation, carrier: super::CoreCarrier) -> String {
    let text = compose_file_text(generation);
    let (user, password) = match generation {
        Generation::V1 => ("KOMODO_DB_USERNAME", "KOMODO_DB_PASSWORD"),
        Generation::V2 => ("KOMODO_DATABASE_USERNAME", "KOMODO_DATABASE_PASSWORD"),
    };
    let (env, volume) = match carrier {
        super::CoreCarrier::Plain => return text.to_string(),
        super::CoreCarrier::Uri => (
            format!(
                "      KOMODO_DATABASE_URI: mongodb://${{{user}}}:${{{password}}}@mongo:27017/?authSource=admin # rehearsal: URI carrier\n"
            ),
            String::new(),
        ),
        super::CoreCarrier::PasswordFile => (
            format!("      KOMODO_DATABASE_PASSWORD_FILE: /run/secrets/{PASSWORD_FILE} # rehearsal: file carrier\n"),
            format!("      - ./{SECRETS_DIR}:/run/secrets:ro # rehearsal: file carrier\n"),
        ),
    };
    const ENV_ANCHOR: &str = "      KOMODO_DATABASE_ADDRESS: mongo:27017\n";
    const VOLUME_ANCHOR: &str = "      - ./control:/control";
    let mut out = text.replacen(ENV_ANCHOR, &format!("{ENV_ANCHOR}{env}"), 1);
    if !volume.is_empty() {
        let at = out
            .find(VOLUME_ANCHOR)
            .expect("core's control mount in the compose file");
        out.insert_str(at, &volume);
    }
    out
}

/// The compose program: `$KRT_DOCKER_COMPOSE` or `docker-compose` on PATH.
pub fn program() -> String {
    std::env::var("KRT_DOCKER_COMPOSE").unwrap_or_else(|_| "docker-compose".into())
}

/// A stack dir's compose project: its name, the dir holding `mongo.compose.yaml` (or, for the
/// FerretDB variant, `ferretdb.compose.yaml`), compose.env (SOPS-encrypted) and age.key.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    /// The compose file's name in `dir`.
    pub file: &'static str,
}

impl Project {
    /// The file is `ferretdb.compose.yaml` when the dir holds that one and no
    /// `mongo.compose.yaml` (a stack dir holds one of them: `up` removes both first).
    pub fn new(name: &str, dir: &Path) -> Project {
        let ferret = dir.join(FERRETDB_FILE).is_file() && !dir.join(COMPOSE_FILE).is_file();
        Project {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            file: if ferret { FERRETDB_FILE } else { COMPOSE_FILE },
        }
    }

    pub fn compose_file(&self) -> PathBuf {
        self.dir.join(self.file)
    }

    /// `-f shapes.override.yaml` when the stack dir has that file, else nothing.
    fn override_args(&self) -> Vec<&'static str> {
        if self.dir.join(SHAPES_FILE).exists() {
            vec!["-f", SHAPES_FILE]
        } else {
            Vec::new()
        }
    }

    /// Runs `docker-compose -p NAME -f <file> --env-file <decrypted> ARGS` in the
    /// stack dir with compose.env decrypted to a 0600 temp file for the duration of the call.
    /// The output is returned whatever the exit status; the plaintext never leaves the temp
    /// file (no argv, no env: the child gets only its path).
    pub fn run(&self, args: &[&str]) -> Result<Output, String> {
        let ids = Identities::from_key_file(&self.dir.join("age.key"))
            .map_err(|e| format!("{}/age.key: {e}", self.dir.display()))?;
        let env_path = self.dir.join("compose.env");
        let plain = SopsFile::load(&env_path)
            .and_then(|f| f.decrypt(&ids))
            .map_err(|e| format!("decrypt {}: {e}", env_path.display()))?
            .plaintext_dotenv();
        // tempfile creates the file 0600 and removes it on drop, also on every error path.
        let mut tmp = tempfile::Builder::new()
            .prefix(".compose.env.plain.")
            .tempfile_in(&self.dir)
            .map_err(|e| format!("temp file in {}: {e}", self.dir.display()))?;
        tmp.write_all(plain.expose_secret())
            .and_then(|_| tmp.flush())
            .map_err(|e| format!("write {}: {e}", tmp.path().display()))?;
        drop(plain);
        let out = Command::new(program())
            .current_dir(&self.dir)
            .arg("--env-file")
            .arg(tmp.path())
            .args(["-p", &self.name, "-f", self.file])
            .args(self.override_args())
            .args(args)
            .env("KOMODO_ENV_FILE", tmp.path())
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "run {}: {e} (install Debian's docker-compose: scripts/setup-test-env)",
                    program()
                )
            });
        let closed = tmp.close();
        let out = out?;
        closed.map_err(|e| format!("remove the decrypted compose.env: {e}"))?;
        Ok(out)
    }

    /// [`Self::run`], an error (with compose's stderr) unless it exits 0.
    pub fn run_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.run(args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{} {}: {}: {}",
                program(),
                args.join(" "),
                out.status,
                text.trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::CoreCarrier;

    #[test]
    fn carriers_add_lines_to_core_only_and_plain_is_the_file_as_shipped() {
        for g in [Generation::V1, Generation::V2] {
            assert_eq!(
                compose_file_with(g, CoreCarrier::Plain),
                compose_file_text(g)
            );
            let core = |t: &str| {
                let start = t.find("\n  core:\n").unwrap();
                let end = t.find("\n  periphery:\n").unwrap();
                (start, end)
            };
            let uri = compose_file_with(g, CoreCarrier::Uri);
            let at = uri.find("KOMODO_DATABASE_URI: mongodb://${").unwrap();
            let (s, e) = core(&uri);
            assert!(s < at && at < e, "{g:?}: the URI is core's");
            assert_eq!(
                uri.len() - compose_file_text(g).len(),
                uri.lines()
                    .find(|l| l.contains("KOMODO_DATABASE_URI"))
                    .unwrap()
                    .len()
                    + 1
            );
            let file = compose_file_with(g, CoreCarrier::PasswordFile);
            let (s, e) = core(&file);
            for needle in [
                "KOMODO_DATABASE_PASSWORD_FILE: /run/secrets/db_password",
                "- ./secrets:/run/secrets:ro",
            ] {
                let at = file.find(needle).unwrap();
                assert!(s < at && at < e, "{g:?}: {needle} is core's");
                assert_eq!(file.matches(needle).count(), 1);
            }
        }
        let v1 = compose_file_with(Generation::V1, CoreCarrier::Uri);
        assert!(v1.contains("${KOMODO_DB_USERNAME}:${KOMODO_DB_PASSWORD}@"));
    }
}
