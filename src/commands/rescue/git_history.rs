//! Issue 20 item 4b: every earlier version of compose.env in its git history as a rescue
//! candidate, newest first (at most [`LIMIT`] versions), decrypted in memory only. git access is
//! the git module's, decryption the sops module's; here they are only composed. Anything that
//! does not open (no work tree, a version this key cannot decrypt, no such key in it) is left
//! out; a failing git is a warning naming it, never a value.

use super::Candidate;
use crate::config::Config;
use crate::git::Repo;
use crate::sops::{Identities, SopsFile};

/// How many versions back rescue looks.
pub(super) const LIMIT: usize = 50;

pub(super) fn candidates(cfg: &Config, ids: &Identities, key: &str) -> Vec<Candidate> {
    let (repo, rel) = match Repo::discover(&cfg.compose_env, cfg.git.network_timeout) {
        Ok(Some(found)) => found,
        Ok(None) => return Vec::new(),
        Err(e) => {
            eprintln!("komodo-rotate: warning: git history of compose.env: {e}");
            return Vec::new();
        }
    };
    let commits = match repo.commits_changing(&rel, LIMIT) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("komodo-rotate: warning: git history of {rel}: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in commits {
        let short: String = c.chars().take(12).collect();
        let name = format!("{rel} at git {short}");
        let Ok(Some(bytes)) = repo.blob(&c, &rel) else {
            continue;
        };
        let value = SopsFile::parse(bytes, &name)
            .and_then(|f| f.decrypt(ids))
            .ok()
            .and_then(|d| {
                // As compose read it while that version was live.
                crate::docker::compose_value::value(&d.entries(), key)
                    .ok()
                    .flatten()
            });
        if let Some(value) = value {
            out.push(Candidate {
                source: format!("git history: {name}"),
                value,
            });
        }
    }
    out
}
