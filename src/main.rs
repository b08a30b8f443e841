use clap::Parser;
use komodo_rotate::{cli::Cli, commands, error::exit};

/// A crash must not write OLD, NEW, the age identity or a data key to disk: no core dump (the
/// soft and hard RLIMIT_CORE to 0, which a child inherits too) and not dumpable (which also keeps
/// other processes of the same uid from ptrace-reading our memory). Best effort: a failure
/// leaves the process as it was and is not fatal.
fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on this process with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

fn main() {
    disable_core_dumps();
    // Test-only: arms failpoints from the FAILPOINTS environment variable.
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("komodo-rotate: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
