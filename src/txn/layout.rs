//! File names inside a journal directory, shared by the journal and the lock (which reads
//! another state_dir's pointer) without either importing the other.

pub const JOURNAL_FILE: &str = "current.json";
