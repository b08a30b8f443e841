//! clap definitions only. Parsing lives here; behaviour lives in `commands/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// A build with test-only fault injection says so in `--version`, so a test can refuse to run
/// its fault matrix against a binary that would ignore FAILPOINTS.
/// The commit (`build.rs`: release builds and scripts/package) follows the version.
#[cfg(feature = "failpoints")]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    env!("KOMODO_ROTATE_VERSION_SUFFIX"),
    " (failpoints)"
);
#[cfg(not(feature = "failpoints"))]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    env!("KOMODO_ROTATE_VERSION_SUFFIX")
);

#[derive(Debug, Parser)]
#[command(name = "komodo-rotate", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Only errors and warnings on stderr: no progress lines, no "not due" line.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read-only pre-rotation check: the truth matrix of compose.env, Mongo and the containers.
    Verify(VerifyArgs),
    /// Rotate a secret as one transaction (journal, rollback of every completed step on failure).
    Rotate(RotateArgs),
    /// Crash-loop rescue: find the prior password Mongo accepts, move Mongo to compose.env's value.
    Rescue(RescueArgs),
    /// Finish or roll back a run that was interrupted, from its journal.
    Resume(ResumeArgs),
    /// Rebuild a lost .env from a running container's environment (never overwrites a file).
    SalvageEnv(SalvageEnvArgs),
    /// Find the Komodo deployment on this host by its compose labels and write a config for it.
    Init(InitArgs),
    /// Print a shell completion script to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Work with a SOPS-encrypted dotenv file directly, as the `sops` tool would.
    #[command(subcommand)]
    Sops(SopsCommand),
    /// Talk to MongoDB directly.
    #[command(subcommand)]
    Mongo(MongoCommand),
    /// The git checkout compose.env lives in.
    #[command(subcommand)]
    Repo(RepoCommand),
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Make a blocked fast-forward pull succeed safely: quarantine untracked files identical to
    /// the incoming ones (nothing deleted), refuse differing ones and local changes, never touch
    /// gitignored files, then `git merge --ff-only`.
    Unblock(RepoUnblockArgs),
}

#[derive(Debug, Args)]
pub struct RepoUnblockArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The work tree to unblock (default: the one holding compose_env).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Fetch and print the plan; move nothing, merge nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Merge even when upstream's compose.env carries secrets that differ from the live ones
    /// (or they cannot be compared).
    #[arg(long)]
    pub allow_env_change: bool,
}

/// Where the age identity comes from; mirrors sops' own lookup order.
#[derive(Debug, Args, Clone, Default)]
pub struct AgeKeyArgs {
    /// age identity file (else SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
    #[arg(long, value_name = "FILE")]
    pub age_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SopsCommand {
    /// Print the decrypted dotenv to stdout, exactly as `sops decrypt` does.
    Decrypt {
        file: PathBuf,
        #[command(flatten)]
        key: AgeKeyArgs,
    },
    /// Verify the MAC and list the key names and which are encrypted (never values).
    Check {
        file: PathBuf,
        #[command(flatten)]
        key: AgeKeyArgs,
    },
    /// Set KEY to a value read from stdin (one trailing newline stripped) and rewrite FILE.
    Set {
        file: PathBuf,
        key_name: String,
        #[command(flatten)]
        key: AgeKeyArgs,
        /// Say on stderr what was written (like `sops set`, silent on success otherwise).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Generate a new data key, re-encrypt every value and wrap the key to every recipient again.
    RotateDataKey {
        file: PathBuf,
        #[command(flatten)]
        key: AgeKeyArgs,
    },
    /// Encrypt a plaintext dotenv FILE to age recipients, as `sops encrypt --age R1,R2` does.
    Encrypt {
        /// age recipients (age1… or "ssh-ed25519 …"), comma-separated or repeated.
        #[arg(
            long = "age",
            value_name = "RECIPIENT",
            value_delimiter = ',',
            required = true
        )]
        age: Vec<String>,
        /// Replace FILE with the ciphertext instead of printing it.
        #[arg(long)]
        in_place: bool,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MongoCommand {
    /// Exit 0 when the password on stdin logs in, 1 when it is rejected, 3 when unreachable.
    Check {
        /// mongodb:// URI without credentials.
        #[arg(long)]
        uri: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "admin")]
        auth_source: String,
    },
    /// Last resort (runbooks/no-password-survives.md): set USER's password to the one on stdin
    /// on a mongod started WITHOUT access control on the real data volume.
    SetPassword {
        /// mongodb:// URI of the throw-away, unauthenticated mongod (127.0.0.1 only).
        #[arg(long)]
        uri: String,
        #[arg(long)]
        user: String,
        /// Required: says you started mongod without --auth on purpose.
        #[arg(long, required = true)]
        no_auth: bool,
        /// The deployment whose Mongo this is: refuse only beside a pending run of it
        /// (without it: beside any pending run on this host).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (default ./komodo-rotate.toml, then /etc/komodo-rotate/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the matrix as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the matrix as Prometheus textfile-collector metrics to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The secret to rotate (default db-password). Repeat it to rotate several kinds one after
    /// another, each as its own transaction. `--list` prints the kinds.
    #[arg(long, value_name = "KIND", value_parser = crate::kinds::Kind::parse)]
    pub secret: Vec<crate::kinds::Kind>,
    /// Print the secret kinds and whether this deployment supports each (changes nothing).
    #[arg(long, conflicts_with_all = ["dry_run", "if_older_than"])]
    pub list: bool,
    /// Print the plan (every step and its undo) and run the pre-flight only.
    #[arg(long)]
    pub dry_run: bool,
    /// Length of each new secret, 16 to 4096 characters.
    #[arg(long, value_name = "N", default_value_t = crate::secret::GENERATED_LEN, value_parser = crate::secret::parse_length)]
    pub length: usize,
    /// Letters of each new secret: alnum ([A-Za-z0-9], safe everywhere), hex, base64url.
    #[arg(long, value_name = "SET", default_value = "alnum", value_parser = parse_charset)]
    pub charset: crate::secret::Charset,
    /// Rotate only when the last committed rotation of this secret (audit log) is older than AGE
    /// (e.g. 30d); otherwise print "not due" and exit 0. No record: rotate.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub if_older_than: Option<std::time::Duration>,
    /// Write run metrics in the node_exporter textfile format to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// passkey: rotate although the config lists peripheries on other hosts
    /// (`[[periphery.remote]]`); they keep the old passkey and are named in a warning.
    #[arg(long)]
    pub local_only: bool,
}

fn parse_charset(s: &str) -> Result<crate::secret::Charset, String> {
    s.parse()
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    crate::config::duration::parse(s)
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write run metrics in the node_exporter textfile format to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SalvageEnvArgs {
    /// The running container whose Config.Env is the source.
    #[arg(long, value_name = "NAME")]
    pub container: String,
    /// The file to create (refused if it exists).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Keep only the keys named in this template (a .env or .env.example; values ignored).
    #[arg(long, value_name = "FILE")]
    pub keys_from: Option<PathBuf>,
    /// Write a SOPS-encrypted dotenv to these age recipients instead of plaintext.
    #[arg(long, value_name = "RECIPIENT", value_delimiter = ',')]
    pub encrypt_with_age: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print the config to stdout instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// The config file to create (never overwritten).
    #[arg(long, value_name = "FILE", default_value = "komodo-rotate.toml")]
    pub output: PathBuf,
    /// The SOPS-encrypted compose.env, when the compose files' env_file entries do not name it.
    #[arg(long, value_name = "PATH")]
    pub compose_env: Option<PathBuf>,
    /// The compose project, when more than one on this host looks like Komodo.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// age identity file that opens compose.env (else one beside it, else sops' own lookup).
    #[arg(long, value_name = "FILE")]
    pub age_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RescueArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the plan and the candidate sources, try the candidates, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One more candidate for the old password: a file holding it, or - for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub prior_password_from: Option<PathBuf>,
    /// When no known password logs in: stop mongo, set its root password to compose.env's
    /// value through a throw-away container on its volume (no access control, 127.0.0.1
    /// only), start mongo again, then recreate the holders and prove (asks first).
    #[arg(long)]
    pub reset_auth: bool,
    /// Consent without asking: with --reset-auth, to stopping mongo; on FerretDB, to setting the
    /// role's verifier to compose.env's value when no known password matches it.
    #[arg(long)]
    pub yes: bool,
    /// Write run metrics in the node_exporter textfile format to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}
