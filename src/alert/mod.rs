//! The `[alert] webhook`: one short message per run that needs a human (a failed rotate, rescue
//! or resume; drift found by verify) and, with `on_success = true`, per run that changed
//! something. The message carries only the command, the outcome, the exit code, step names and
//! the host name: it is built from those fields alone, never from an error message, so no secret
//! can reach it.
//!
//! One try with a short timeout; any failure is a warning on stderr and never changes the exit
//! code. The webhook URL itself often holds a token (Slack, Discord), so warnings name only its
//! scheme and host.
//!
//! Split by concern: this file is the policy (what happened, whether to send); `body` shapes
//! the request for each [`Format`]; `http` sends it with reqwest.

mod body;
mod http;

pub use crate::config::Format;
pub use body::request;
pub use http::{send, webhook_display, TIMEOUT};

use crate::config::Config;
use serde::Serialize;

/// What happened, in fields that cannot hold a secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub host: String,
    pub command: String,
    pub outcome: String,
    pub exit_code: i32,
    /// `name: status` of the steps that ran, or the names of the checks that drifted.
    pub steps: Vec<String>,
}

impl Event {
    pub fn new(command: &str, exit_code: i32, steps: Vec<String>) -> Event {
        Event {
            host: hostname(),
            command: command.to_string(),
            outcome: outcome_word(exit_code).to_string(),
            exit_code,
            steps,
        }
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "komodo-rotate on {}: {} {} (exit {})",
            self.host, self.command, self.outcome, self.exit_code
        );
        if !self.steps.is_empty() {
            s.push_str(": ");
            s.push_str(&self.steps.join(", "));
        }
        s
    }

    pub fn is_failure(&self) -> bool {
        self.exit_code != 0
    }
}

/// The exit-code contract in one word each (DESIGN.md "Exit codes").
pub fn outcome_word(code: i32) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "found drift",
        2 => "usage or config error",
        3 => "refused, nothing changed",
        4 => "failed and rolled back",
        5 => "ROLLBACK INCOMPLETE, operator action needed",
        6 => "locked by another run",
        _ => "failed",
    }
}

/// Whether a run of `command` that ended with `exit_code` is worth a message. `changed` says
/// whether it changed something (a committed audit record), so that a daily "not due" rotate
/// stays quiet even with `on_success`. `interactive`: a human at a terminal started it and
/// reads a usage error (exit 2) there; a scheduled run's exit 2 (a missing age key in the unit's
/// environment) alerts like any other failure.
pub fn wanted(
    on_success: bool,
    command: &str,
    exit_code: i32,
    changed: bool,
    interactive: bool,
) -> bool {
    match (command, exit_code) {
        ("verify", 0) => on_success,
        (_, 0) => on_success && changed,
        ("verify", 1) => true,
        (_, 2) => !interactive,
        (_, code) => code >= 3,
    }
}

/// A human at a terminal: stdin and stderr are both terminals (a timer or cron has neither).
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Sends `ev` if the config asks for it. Blocking; warnings only.
pub fn notify(cfg: &Config, ev: &Event, changed: bool) {
    let a = &cfg.alert;
    if a.webhook.trim().is_empty()
        || !wanted(
            a.on_success,
            &ev.command,
            ev.exit_code,
            changed,
            interactive(),
        )
    {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("komodo-rotate: warning: alert not sent: no async runtime: {e}");
            return;
        }
    };
    if let Err(e) = rt.block_on(send(a.webhook.trim(), ev, a.format, TIMEOUT)) {
        eprintln!("komodo-rotate: warning: alert not sent: {e}");
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or the
    // result is cut at the length, which the search below handles.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_to_send() {
        for interactive in [false, true] {
            let w = |on, cmd, code, changed| wanted(on, cmd, code, changed, interactive);
            assert!(w(false, "rotate", 4, true));
            assert!(w(false, "rescue", 3, false));
            assert!(w(false, "resume", 5, true));
            assert!(!w(false, "rotate", 0, true));
            assert!(w(true, "rotate", 0, true));
            assert!(
                !w(true, "rotate", 0, false),
                "a not-due rotate changed nothing"
            );
            assert!(w(false, "verify", 1, false));
            assert!(!w(false, "verify", 0, false));
            assert!(
                w(false, "verify", 3, false),
                "a verify that could not check needs a look"
            );
        }
        assert!(
            !wanted(false, "rotate", 2, false, true),
            "a usage error at a terminal is for the shell"
        );
        for cmd in ["rotate", "rescue", "resume", "verify"] {
            assert!(
                wanted(false, cmd, 2, false, false),
                "a scheduled {cmd} that fails for any reason alerts"
            );
        }
    }
}
