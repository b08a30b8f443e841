//! What every command handler returns: a reply document or a mongod-shaped error, and the
//! helpers the handlers share. Kept apart from the dispatcher so handlers never import it.

use bson::{doc, Document};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub code: i32,
    pub code_name: &'static str,
    pub errmsg: String,
}

pub(crate) fn err(code: i32, code_name: &'static str, errmsg: impl Into<String>) -> CmdError {
    CmdError {
        code,
        code_name,
        errmsg: errmsg.into(),
    }
}

pub(crate) fn bad_value(msg: impl Into<String>) -> CmdError {
    err(2, "BadValue", msg)
}

/// For a command or option the test server does not implement: said, never silently ignored.
pub(crate) fn not_implemented(msg: impl Into<String>) -> CmdError {
    err(238, "NotImplemented", msg)
}

impl CmdError {
    pub fn to_document(&self) -> Document {
        doc! {"ok": 0.0, "errmsg": &self.errmsg, "code": self.code, "codeName": self.code_name}
    }
}

pub(crate) type Reply = Result<Document, CmdError>;

/// The SDAM "state change" codes (not writable primary, recovering, shutting down).
pub(crate) fn is_state_change(code: i32) -> bool {
    matches!(code, 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436)
}

/// A poisoned lock only means another connection panicked mid-command; its data is still whole
/// because every change is built on a copy and swapped in.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
