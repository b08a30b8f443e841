//! One file per command. Commands compose the planes; none of them talks to Docker, Mongo or the
//! filesystem directly.

use crate::cli::{Cli, Command};
use crate::Result;

pub mod completions;
pub mod init;
pub mod mongo_check;
pub mod mongo_recover;
pub mod repo;
pub mod rescue;
pub mod resume;
pub mod rotate;
pub mod salvage_env;
pub mod sops;
pub mod verify;
pub mod verify_db;
pub mod verify_ferret;
pub mod verify_git;
pub mod verify_kinds;

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    crate::output::set_quiet(cli.quiet);
    use crate::ops::RunHook;
    match cli.command {
        Command::Verify(a) => verify::run(a),
        Command::Rotate(a) => {
            let hook = RunHook::start("rotate", a.config.config.as_deref(), a.prometheus.clone());
            hook.finish(rotate::run(a))
        }
        Command::Rescue(a) => {
            let hook = RunHook::start("rescue", a.config.config.as_deref(), a.prometheus.clone());
            hook.finish(rescue::run(a))
        }
        Command::Resume(a) => {
            let hook = RunHook::start("resume", a.config.config.as_deref(), a.prometheus.clone());
            hook.finish(resume::run(a.config))
        }
        Command::SalvageEnv(a) => salvage_env::run(a),
        Command::Init(a) => init::run(a),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Sops(c) => sops::run(c),
        Command::Mongo(c) => mongo_check::run(c),
        Command::Repo(c) => repo::run(c),
    }
}

/// `--quiet` was given (see [`crate::output`]).
pub fn quiet() -> bool {
    crate::output::quiet()
}

/// A current-thread runtime: the tool does one thing at a time, and this keeps it lean.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Precondition(format!("cannot start the async runtime: {e}")))
}
