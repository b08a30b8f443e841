//! Fault injection for the rehearsal stack, switchable at run time by any client with
//! `{komodoTestControl: 1, ...}` on `admin` — only when the server was started with
//! `--test-controls` (or `MONGO_TEST_CONTROLS=1`); otherwise the command does not exist (59).
//!
//! Fields (all optional; the reply reports the state after the change):
//! * `failNextUpdateUser: true | <code>` — the next `updateUser` changes nothing and fails with
//!   mongod's shape; `true` means 91 ShutdownInProgress, an int picks a code from [`code_name`].
//!   `false` clears it.
//! * `delayMs: N` — every reply (handshakes included) is held back N ms; 0 turns it off.
//! * `dropAfterCommands: N` — the next N commands (any connection, not counting `hello`/
//!   `isMaster` polls nor `komodoTestControl`) are answered, then the connection carrying the one
//!   after is closed without a reply. One shot; `null` or a negative number clears it.
//! * `reset: true` — all of the above off.

use bson::{doc, Bson, Document};

#[derive(Debug, Default, Clone)]
pub struct Controls {
    pub fail_next_update_user: Option<i32>,
    pub delay_ms: u64,
    pub drop_after_commands: Option<u64>,
}

/// The error codes `failNextUpdateUser` may inject, with mongod's names and messages.
pub fn code_name(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        1 => ("InternalError", "injected internal error"),
        6 => ("HostUnreachable", "Connection reset by peer"),
        13 => ("Unauthorized", "not authorized on admin to execute command"),
        50 => ("MaxTimeMSExpired", "operation exceeded time limit"),
        64 => ("WriteConcernFailed", "waiting for replication timed out"),
        89 => ("NetworkTimeout", "Socket operation timed out"),
        91 => (
            "ShutdownInProgress",
            "The server is in quiesce mode and will shut down",
        ),
        11600 => ("InterruptedAtShutdown", "interrupted at shutdown"),
        _ => return None,
    })
}

impl Controls {
    /// Applies a `komodoTestControl` command; the error is a BadValue message.
    pub fn apply(&mut self, cmd: &Document) -> Result<(), String> {
        if cmd.get_bool("reset") == Ok(true) {
            *self = Controls::default();
        }
        match cmd.get("failNextUpdateUser") {
            None => {}
            Some(Bson::Boolean(true)) => self.fail_next_update_user = Some(91),
            Some(Bson::Boolean(false)) | Some(Bson::Null) => self.fail_next_update_user = None,
            Some(v) => match as_i64(v).and_then(|c| i32::try_from(c).ok()) {
                Some(c) if code_name(c).is_some() => self.fail_next_update_user = Some(c),
                _ => {
                    return Err(
                        "failNextUpdateUser must be a bool or a supported error code".into(),
                    )
                }
            },
        }
        match cmd.get("delayMs") {
            None => {}
            Some(v) => match as_i64(v) {
                Some(ms) if (0..=600_000).contains(&ms) => self.delay_ms = ms as u64,
                _ => return Err("delayMs must be an integer in 0..=600000".into()),
            },
        }
        match cmd.get("dropAfterCommands") {
            None => {}
            Some(Bson::Null) => self.drop_after_commands = None,
            Some(v) => match as_i64(v) {
                Some(n) if n < 0 => self.drop_after_commands = None,
                Some(n) => self.drop_after_commands = Some(n as u64),
                None => return Err("dropAfterCommands must be an integer or null".into()),
            },
        }
        Ok(())
    }

    pub fn report(&self) -> Document {
        doc! {
            "failNextUpdateUser": self.fail_next_update_user.map(Bson::Int32).unwrap_or(Bson::Boolean(false)),
            "delayMs": self.delay_ms as i64,
            "dropAfterCommands": self.drop_after_commands.map(|n| Bson::Int64(n as i64)).unwrap_or(Bson::Null),
        }
    }

    /// Counts one command; true when this one's connection must be dropped.
    pub fn should_drop(&mut self, command: &str) -> bool {
        if matches!(
            command,
            "hello" | "isMaster" | "ismaster" | "komodoTestControl"
        ) {
            return false;
        }
        match self.drop_after_commands {
            Some(0) => {
                self.drop_after_commands = None;
                true
            }
            Some(n) => {
                self.drop_after_commands = Some(n - 1);
                false
            }
            None => false,
        }
    }
}

pub fn as_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
        _ => None,
    }
}
