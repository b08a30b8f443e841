//! clap definitions only. Parsing lives here; behaviour lives in `commands/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "komodo-rotate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with a SOPS-encrypted dotenv file directly, as the `sops` tool would.
    #[command(subcommand)]
    Sops(SopsCommand),
    /// Talk to MongoDB directly.
    #[command(subcommand)]
    Mongo(MongoCommand),
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
    },
    /// Generate a new data key, re-encrypt every value and wrap the key to every recipient again.
    RotateDataKey {
        file: PathBuf,
        #[command(flatten)]
        key: AgeKeyArgs,
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
}
