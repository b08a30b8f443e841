//! One file per command. Commands compose the planes; none of them talks to Docker, Mongo or the
//! filesystem directly.

use crate::cli::{Cli, Command};
use crate::Result;

pub mod mongo_check;
pub mod rescue;
pub mod resume;
pub mod rotate;
pub mod sops;
pub mod verify;

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Verify(a) => verify::run(a),
        Command::Rotate(a) => rotate::run(a),
        Command::Rescue(a) => rescue::run(a),
        Command::Resume(a) => resume::run(a),
        Command::Sops(c) => sops::run(c),
        Command::Mongo(c) => mongo_check::run(c),
    }
}

/// A current-thread runtime: the tool does one thing at a time, and this keeps it lean.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Precondition(format!("cannot start the async runtime: {e}")))
}
