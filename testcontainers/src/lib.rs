//! The rehearsal stack. Filled in by the MongoDB and Docker planes.
pub mod ferret;
pub mod mongo;
pub mod stack;
