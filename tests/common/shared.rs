//! Where the project's read-only `shared/` directory is: `$KOMODO_ROTATE_SHARED` when set, else
//! the first `shared/` holding `sops-vectors` beside the checkout or beside one of its parents (a
//! git worktree under `wt/NAME` finds the one beside the main checkout). A missing one panics
//! naming where it looked: the vectors are part of the suite, never a skip.

use std::path::PathBuf;

/// `shared/sops-vectors/<rel>`, which must be a directory.
pub fn sops_vectors(rel: &str) -> PathBuf {
    let mut looked = Vec::new();
    let env = std::env::var_os("KOMODO_ROTATE_SHARED").map(PathBuf::from);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let beside = manifest.ancestors().skip(1).map(|d| d.join("shared"));
    for shared in env.into_iter().chain(beside) {
        let p = shared.join("sops-vectors").join(rel);
        if p.is_dir() {
            return p;
        }
        looked.push(p.display().to_string());
    }
    panic!(
        "sops vectors not found; looked in {} (set KOMODO_ROTATE_SHARED to the shared/ directory)",
        looked.join(", ")
    );
}
