//! A committed run's leftovers (issue 18 item 9). Removing a parked original (`<name>-prev`) at
//! commit is cleanup: when it fails the run still committed, but the stopped `-prev` keeps the
//! old secret in its env and would make the next pre-flight refuse ("-prev exists"). So the
//! commit records each one it could not remove (name and container ID) in
//! `state_dir/leftovers`; `verify` shows every `-prev`/`-next` of a holder as DRIFT; and the next
//! `rotate`, `rescue` or `resume` removes the recorded ones, only while no journal is pending and
//! only when the container under that name is still the recorded one (a `-prev` of a pending run
//! is its original, and is never touched here).

use crate::config::Config;
use crate::docker::{Engine, NEXT_SUFFIX, PREV_SUFFIX};
use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::txn::Journal;
use std::path::PathBuf;

/// One container a committed run left behind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leftover {
    pub name: String,
    pub id: String,
}

fn path(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("leftovers")
}

/// The recorded leftovers (none when the file is absent).
pub fn recorded(cfg: &Config) -> Result<Vec<Leftover>> {
    let p = path(cfg);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            Error::Precondition(format!("{}: not a leftovers list: {e}", p.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn store(cfg: &Config, list: &[Leftover]) -> Result<()> {
    let p = path(cfg);
    if list.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        };
    }
    let body = serde_json::to_vec_pretty(list)
        .map_err(|e| Error::Precondition(format!("cannot serialise the leftovers list: {e}")))?;
    fsutil::write_atomic(&p, &body, Mode::Exactly(0o600)).map_err(|e| Error::io(&p, e))
}

/// Adds `l` to the record (once).
pub fn record(cfg: &Config, l: Leftover) -> Result<()> {
    let mut list = recorded(cfg)?;
    if !list.contains(&l) {
        list.push(l);
    }
    store(cfg, &list)
}

/// Removes every recorded leftover still under its name with its recorded ID (and forgets the
/// ones that are gone or were replaced). Nothing while a journal is pending. Returns the names
/// removed; a failed removal stays recorded and is returned as an error naming it.
pub async fn remove_committed(cfg: &Config) -> Result<Vec<String>> {
    remove_temps(cfg)?;
    if recorded(cfg)?.is_empty()
        || Journal::load_pending(&cfg.journal_dir())?.is_some_and(|j| !j.is_committed())
    {
        return Ok(Vec::new());
    }
    let engine = Engine::connect().await?;
    let mut keep = Vec::new();
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for l in recorded(cfg)? {
        match engine.try_inspect(&l.name).await {
            Ok(Some(c)) if c.id.as_deref() == Some(l.id.as_str()) => {
                match engine.remove(&l.id).await {
                    Ok(()) => removed.push(l.name.clone()),
                    Err(e) => {
                        failed.push(e.to_string());
                        keep.push(l);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                failed.push(e.to_string());
                keep.push(l);
            }
        }
    }
    store(cfg, &keep)?;
    if !failed.is_empty() {
        return Err(Error::Precondition(format!(
            "a committed run's leftover could not be removed: {}",
            failed.join("; ")
        )));
    }
    for n in &removed {
        eprintln!("komodo-rotate: removed {n}, left over by a committed run");
    }
    Ok(removed)
}

/// The files whose writes a kill could interrupt: compose.env and the carrier files of the
/// pending run (its journal's context), plus `extra` (the carrier files found now).
fn written_paths(cfg: &Config, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = vec![cfg.compose_env.clone()];
    if let Ok(Some(j)) = Journal::load_pending(&cfg.journal_dir()) {
        if let Ok(ctx) = super::run::RunContext::of(&j) {
            paths.extend(ctx.files.into_iter().map(|f| f.host_path));
        }
    }
    for p in extra {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    paths
}

/// The temp files killed writes left beside compose.env and the carrier files (`extra`, plus
/// the pending run's): a write-file temp holds the password in plaintext.
pub fn temp_files(cfg: &Config, extra: &[PathBuf]) -> Vec<PathBuf> {
    written_paths(cfg, extra)
        .iter()
        .flat_map(|p| fsutil::leftover_temps(p))
        .collect()
}

/// Removes the temp files a killed write left (see [`temp_files`]), each named on stderr; under
/// the run lock (no writer of ours is running) and, beside compose.env, its env lock (our own
/// `sops set`). A failed removal is an error naming the file.
pub fn remove_temps(cfg: &Config) -> Result<()> {
    let _env = fsutil::EnvLock::acquire(&cfg.compose_env, fsutil::ENV_LOCK_WAIT)
        .map_err(|e| Error::io(&cfg.compose_env, e))?;
    for t in temp_files(cfg, &[]) {
        match std::fs::remove_file(&t) {
            Ok(()) => eprintln!(
                "komodo-rotate: removed {}, left by a write that was killed",
                t.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&t, e)),
        }
    }
    Ok(())
}

/// verify's `leftovers` row: `None` when no `-next`/`-prev` of `holders` exists, else the line
/// naming each (they hold secrets; they are DRIFT).
pub async fn verify_line(cfg: &Config, engine: &Engine, holders: &[String]) -> Option<String> {
    let found = match present(cfg, engine, holders).await {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    if found.is_empty() {
        return None;
    }
    let pending = Journal::load_pending(&cfg.journal_dir())
        .ok()
        .flatten()
        .is_some_and(|j| !j.is_committed());
    let named: Vec<String> = found
        .iter()
        .map(|(n, ours)| match (ours, pending) {
            (_, true) => format!("{n} (the pending run's: `komodo-rotate resume`)"),
            (true, false) => format!(
                "{n} (left by a committed run: the next rotate, rescue or resume removes it)"
            ),
            (false, false) => {
                format!("{n} (not recorded by a committed run: inspect it, then `docker rm` it)")
            }
        })
        .collect();
    Some(format!(
        "{} left over, holding an old secret: {}",
        found.len(),
        named.join(", ")
    ))
}

/// Every `-next`/`-prev` beside `holders` that exists now: (name, recorded by a committed run).
async fn present(cfg: &Config, engine: &Engine, holders: &[String]) -> Result<Vec<(String, bool)>> {
    let rec = recorded(cfg)?;
    let mut out = Vec::new();
    for h in holders {
        for n in [format!("{h}{PREV_SUFFIX}"), format!("{h}{NEXT_SUFFIX}")] {
            if let Some(c) = engine.try_inspect(&n).await? {
                let ours = rec
                    .iter()
                    .any(|l| l.name == n && c.id.as_deref() == Some(l.id.as_str()));
                out.push((n, ours));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(d: &tempfile::TempDir) -> Config {
        std::fs::write(d.path().join("compose.env"), b"x").unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "compose_env = \"compose.env\"\nstate_dir = \"state\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        std::fs::create_dir_all(&c.state_dir).unwrap();
        c
    }

    #[test]
    fn temp_files_of_killed_writes_are_found_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(&d);
        let carrier = d.path().join("secrets").join("db_password");
        std::fs::create_dir_all(carrier.parent().unwrap()).unwrap();
        std::fs::write(&carrier, b"pw").unwrap();
        assert!(temp_files(&c, std::slice::from_ref(&carrier)).is_empty());
        let env_tmp = d.path().join(".compose.env.00112233aabb.tmp");
        let file_tmp = carrier.with_file_name(".db_password.445566778899.tmp");
        std::fs::write(&env_tmp, b"x").unwrap();
        std::fs::write(&file_tmp, b"pw2").unwrap();
        assert_eq!(
            temp_files(&c, std::slice::from_ref(&carrier)),
            vec![env_tmp.clone(), file_tmp.clone()]
        );
        // Without a pending journal naming the carrier file, a run knows compose.env's only.
        remove_temps(&c).unwrap();
        assert!(!env_tmp.exists() && file_tmp.exists());
    }

    #[test]
    fn the_record_keeps_each_leftover_once_0600_and_goes_when_empty() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(&d);
        assert!(recorded(&c).unwrap().is_empty());
        let l = Leftover {
            name: "k_core_1-prev".into(),
            id: "abc".into(),
        };
        record(&c, l.clone()).unwrap();
        record(&c, l.clone()).unwrap();
        assert_eq!(recorded(&c).unwrap(), vec![l]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&c)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        store(&c, &[]).unwrap();
        assert!(!path(&c).exists());
    }
}
