//! The rehearsal stack's files: the age identity, compose.env (SOPS-encrypted), core's password
//! file (the file carrier) and komodo-rotate's config for the stack, each written atomically
//! with the mode a real host would have.

use super::{compose, CoreCarrier, Variant, DB_USERNAME};
use komodo_rotate::fsutil::{write_atomic, Mode};
use komodo_rotate::secret::Secret;
use secrecy::ExposeSecret;
use std::path::Path;
use zeroize::Zeroize;

pub(crate) fn env_line(k: &str, v: &Secret) -> String {
    format!("{k}={}", v.expose())
}

/// Encrypts `lines` (a dotenv) to `recipient` and writes it as `dir/compose.env`, 0600.
pub(crate) fn write_compose_env(
    dir: &Path,
    lines: &[String],
    recipient: &str,
) -> Result<(), String> {
    let mut plain = lines.join("\n");
    plain.push('\n');
    let enc = komodo_rotate::sops::encrypt_new(plain.as_bytes(), &[recipient.to_string()]);
    plain.zeroize();
    let enc = enc.map_err(|e| format!("encrypt compose.env: {e}"))?;
    write_atomic(&dir.join("compose.env"), &enc, Mode::Exactly(0o600))
        .map_err(|e| format!("{}/compose.env: {e}", dir.display()))
}

/// A new age identity in `dir/age.key` (0600); returns its recipient.
pub(crate) fn new_age_key(dir: &Path) -> Result<String, String> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let key_file = format!(
        "# created by komodo-testcontainers rehearsal\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    let mut key_bytes = key_file.into_bytes();
    let wrote = write_atomic(&dir.join("age.key"), &key_bytes, Mode::Exactly(0o600));
    key_bytes.zeroize();
    wrote.map_err(|e| format!("{}/age.key: {e}", dir.display()))?;
    Ok(recipient)
}

/// [`CoreCarrier::PasswordFile`]: the host file core's `KOMODO_DATABASE_PASSWORD_FILE` reads,
/// `secrets/db_password` with a final newline, mode 0640 (so a rewrite must keep a mode that
/// is not the 0600 default). Nothing for the other carriers.
pub(crate) fn write_password_file(
    dir: &Path,
    carrier: CoreCarrier,
    password: &Secret,
) -> Result<(), String> {
    if carrier != CoreCarrier::PasswordFile {
        return Ok(());
    }
    let secrets = dir.join(compose::SECRETS_DIR);
    std::fs::create_dir_all(&secrets).map_err(|e| format!("{}: {e}", secrets.display()))?;
    let mut body = format!("{}\n", password.expose()).into_bytes();
    let path = secrets.join(compose::PASSWORD_FILE);
    let wrote = write_atomic(&path, &body, Mode::Exactly(0o640));
    body.zeroize();
    wrote.map_err(|e| format!("{}: {e}", path.display()))
}

/// komodo-rotate's config for the stack: `[mongo] uri` is the published port of the service
/// serving the MongoDB wire protocol (`mongo`, or `ferretdb` in the FerretDB variant).
pub(crate) fn write_config(
    dir: &Path,
    project: &str,
    variant: Variant,
    mongo_port: u16,
) -> Result<(), String> {
    let (what, mongo) = match variant {
        Variant::Mongo => ("", "mongo"),
        Variant::FerretDb => (", FerretDB variant", "ferretdb"),
    };
    let config = format!(
        "# komodo-rotate config for the rehearsal stack (project {project}{what}).\n\
         # export SOPS_AGE_KEY_FILE={dir}/age.key\n\
         compose_env = \"{dir}/compose.env\"\n\
         state_dir = \"{dir}/state\"\n\
         age_key_file = \"{dir}/age.key\"\n\n\
         [discovery]\n\
         project = \"{project}\"\n\
         services = {{ mongo = \"{mongo}\", core = \"core\", periphery = [\"periphery\"] }}\n\n\
         [mongo]\n\
         uri = \"mongodb://127.0.0.1:{mongo_port}\"\n\
         auth_source = \"admin\"\n\n\
         [health]\n\
         timeout = \"60s\"\n\
         stable_for = \"1s\"\n",
        dir = dir.display()
    );
    write_atomic(
        &dir.join("komodo-rotate.toml"),
        config.as_bytes(),
        Mode::Exactly(0o600),
    )
    .map_err(|e| format!("{}/komodo-rotate.toml: {e}", dir.display()))
}

/// The secrets a new stack is made with (in memory only): the password the database is
/// initialised with, the one compose.env holds (another one with `drift`), and the other keys.
pub(crate) struct StackSecrets {
    pub init_password: Secret,
    pub env_password: Secret,
    pub passkey: Secret,
    pub jwt: Secret,
    pub webhook: Secret,
    pub api_token: Secret,
    pub user: Secret,
}

impl StackSecrets {
    pub(crate) fn generate(drift: bool) -> Result<StackSecrets, String> {
        let gen = || Secret::generate().map_err(|e| format!("random: {e}"));
        let init_password = gen()?;
        let env_password = if drift { gen()? } else { init_password.clone() };
        Ok(StackSecrets {
            init_password,
            env_password,
            passkey: gen()?,
            jwt: gen()?,
            webhook: gen()?,
            api_token: gen()?,
            user: Secret::new(DB_USERNAME.into()),
        })
    }
}
