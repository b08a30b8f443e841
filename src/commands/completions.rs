//! `completions SHELL` and `man`: generated from the clap definitions, so they never drift from
//! the real command line.

use crate::cli::Cli;
use crate::error::{Error, Result};
use clap::CommandFactory;
use std::io::Write;

pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "komodo-rotate", &mut out);
    emit(&out)
}

/// The roff man page of the whole tool, subcommands included.
pub fn man() -> Result<i32> {
    let mut out = Vec::new();
    render_man(&mut out).map_err(|e| Error::io("man page", e))?;
    emit(&out)
}

pub fn render_man(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, what) in [
        (0, "ok, consistent, or nothing was due"),
        (1, "verify found drift or an unhealthy core"),
        (2, "usage or configuration error"),
        (3, "a precondition failed; nothing was changed"),
        (4, "a step failed and every completed step was rolled back"),
        (
            5,
            "rollback incomplete: the journal is kept, follow runbooks/interrupted-run.md",
        ),
        (6, "another run holds the lock"),
    ] {
        writeln!(out, ".TP\n{code}\n{what}")?;
    }
    man.render_version_section(out)?;
    Ok(())
}

fn emit(bytes: &[u8]) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        // `komodo-rotate man | head` closes the pipe early; that is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("stdout", e)),
    }
}
