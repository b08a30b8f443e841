use clap::Parser;
use komodo_rotate::{cli::Cli, commands, error::exit};

fn main() {
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
