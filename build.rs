//! Puts the commit the binary is built from into `--version` (and so into the man page).
//!
//! The commit comes from `KOMODO_ROTATE_COMMIT` when set (scripts/package sets it, `-dirty`
//! included), else, in release builds only, from `git rev-parse` of this checkout; outside git
//! (a source tarball) it is left out. Dev and test builds never ask git, so a new commit does not
//! rebuild the crate and relink every test binary: their `--version` carries no commit unless
//! the variable is set.
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KOMODO_ROTATE_COMMIT");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    let commit = match std::env::var("KOMODO_ROTATE_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
        _ if std::env::var("PROFILE").as_deref() == Ok("release") => {
            let c = git(dir, &["rev-parse", "--short=12", "HEAD"]);
            if c.is_some() {
                // A new commit moves HEAD or the branch it points at: only then run again.
                for p in ["HEAD", "packed-refs"] {
                    if let Some(p) = git(
                        dir,
                        &["rev-parse", "--path-format=absolute", "--git-path", p],
                    ) {
                        println!("cargo:rerun-if-changed={p}");
                    }
                }
                if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
                    if let Some(p) = git(
                        dir,
                        &["rev-parse", "--path-format=absolute", "--git-path", &r],
                    ) {
                        println!("cargo:rerun-if-changed={p}");
                    }
                }
            }
            c
        }
        _ => None,
    };
    let suffix = commit.map(|c| format!(" (commit {c})")).unwrap_or_default();
    println!("cargo:rustc-env=KOMODO_ROTATE_VERSION_SUFFIX={suffix}");
}
