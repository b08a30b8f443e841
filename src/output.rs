//! Process-wide output settings (`--quiet`). Below `commands/` so that the planes can honour
//! them without importing the layer that composes them.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once from the command line.
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// `--quiet` was given: progress and informational lines are left out.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}
