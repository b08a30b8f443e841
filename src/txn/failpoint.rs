//! Test-only fault injection points of the transaction (compiled to nothing without the
//! `failpoints` feature).

#[cfg(feature = "failpoints")]
use crate::error::Error;
use crate::error::Result;

/// Test-only fault injection (`--features failpoints`, `FAILPOINTS=before:change-db=return`).
/// `return(crash)` kills the process with SIGKILL on the spot, to test crash safety exactly as
/// an OOM kill or power loss would leave things. Without the feature this compiles to nothing.
pub fn failpoint(name: &str) -> Result<()> {
    #[cfg(feature = "failpoints")]
    {
        let hit: Option<String> = (|| {
            fail::fail_point!(name, |arg: Option<String>| Some(arg.unwrap_or_default()));
            None
        })();
        if let Some(arg) = hit {
            if arg == "crash" {
                // SAFETY: raise only sends a signal to this process.
                unsafe {
                    libc::raise(libc::SIGKILL);
                }
            }
            return Err(Error::Precondition(format!("injected failure at {name}")));
        }
    }
    let _ = name;
    Ok(())
}
