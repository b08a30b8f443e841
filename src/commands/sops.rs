//! `komodo-rotate sops ...`: the SOPS store on its own, for operators and for the rehearsal stack.
//! Plaintext reaches stdout only in `decrypt` (its purpose) and in `encrypt` never (it prints
//! ciphertext). Values for `set` come from stdin, never argv.

use crate::cli::{AgeKeyArgs, SopsCommand};
use crate::error::exit;
use crate::sops::{self, Identities, SopsFile};
use crate::Result;
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

pub fn run(cmd: SopsCommand) -> Result<i32> {
    match cmd {
        SopsCommand::Decrypt { file, key } => decrypt(&file, &key),
        SopsCommand::Check { file, key } => check(&file, &key),
        SopsCommand::Set {
            file,
            key_name,
            key,
            verbose,
        } => set(&file, &key_name, &key, verbose),
        SopsCommand::RotateDataKey { file, key } => rotate(&file, &key),
        SopsCommand::Encrypt {
            age,
            in_place,
            file,
        } => encrypt(&file, &age, in_place),
    }
}

/// The same advisory lock write-env takes, so our own edits never interleave on one file.
fn env_lock(file: &Path) -> Result<crate::fsutil::EnvLock> {
    crate::fsutil::EnvLock::acquire(file, crate::fsutil::ENV_LOCK_WAIT)
        .map_err(|e| crate::Error::io(file, e))
}

fn identities(key: &AgeKeyArgs) -> Result<Identities> {
    Ok(Identities::discover(key.age_key_file.as_deref())?)
}

fn decrypt(file: &Path, key: &AgeKeyArgs) -> Result<i32> {
    let f = SopsFile::load(file)?;
    let d = f.decrypt(&identities(key)?)?;
    for w in d.warnings() {
        eprintln!("komodo-rotate: warning: {w}");
    }
    let plain = d.plaintext_dotenv();
    let mut out = std::io::stdout().lock();
    out.write_all(plain.expose_secret())
        .and_then(|_| out.flush())
        .map_err(|e| crate::Error::io("stdout", e))?;
    Ok(exit::OK)
}

fn check(file: &Path, key: &AgeKeyArgs) -> Result<i32> {
    let f = SopsFile::load(file)?;
    let d = f.decrypt(&identities(key)?)?;
    let mut out = String::new();
    out.push_str(&format!(
        "{}: MAC ok (sops_version {}, lastmodified {})\n",
        f.name(),
        f.version(),
        f.lastmodified()
    ));
    for r in f.recipients() {
        out.push_str(&format!("recipient {r}\n"));
    }
    for k in d.key_info() {
        let state = if k.empty {
            "empty"
        } else if k.encrypted {
            "encrypted"
        } else {
            "clear"
        };
        out.push_str(&format!("{state:<9} {}\n", k.name));
    }
    let foreign = d.foreign_iv_count();
    if foreign > 0 {
        out.push_str(&format!(
            "warning: {foreign} value(s) use an IV that is not 32 bytes; `sops set` panics on such files, and the next `komodo-rotate sops set` re-encrypts them\n"
        ));
    }
    print!("{out}");
    Ok(exit::OK)
}

fn set(file: &Path, key_name: &str, key: &AgeKeyArgs, verbose: bool) -> Result<i32> {
    // A run of ours on this file (in progress or interrupted) decides by what the file holds:
    // an edit behind its back would be undone by its rollback or make `resume` decide wrongly.
    refuse_if_pending(file)?;
    let ids = identities(key)?;
    let value = crate::secret::read_secret_limited(
        std::io::stdin().lock(),
        "stdin",
        crate::secret::MAX_SOPS_VALUE,
    )?;
    let _lock = env_lock(file)?;
    refuse_if_pending(file)?;
    let f = SopsFile::load(file)?;
    let edit = f.with_values_verified(&ids, &[(key_name, &value)])?;
    sops::write_edit(file, edit)?;
    if verbose {
        eprintln!(
            "komodo-rotate: set {key_name} in {} (MAC verified)",
            f.name()
        );
    }
    Ok(exit::OK)
}

fn refuse_if_pending(file: &Path) -> Result<()> {
    // A missing file is SopsFile::load's to report.
    if !file.exists() {
        return Ok(());
    }
    match crate::txn::lock::pending_elsewhere(file, Path::new(""))? {
        Some(dir) => Err(crate::Error::Precondition(format!(
            "{}: a run's journal is pending for this file in {}: run `komodo-rotate resume` (or follow runbooks/interrupted-run.md) first; nothing was changed",
            file.display(),
            dir.display()
        ))),
        None => Ok(()),
    }
}

fn rotate(file: &Path, key: &AgeKeyArgs) -> Result<i32> {
    let ids = identities(key)?;
    let _lock = env_lock(file)?;
    let f = SopsFile::load(file)?;
    let bytes = f.rotate_data_key(&ids)?;
    sops::write_verified(file, &bytes, &ids)?;
    eprintln!(
        "komodo-rotate: new data key for {}, wrapped to {} recipient(s) (MAC verified)",
        f.name(),
        f.recipients().len()
    );
    Ok(exit::OK)
}

fn encrypt(file: &Path, recipients: &[String], in_place: bool) -> Result<i32> {
    let name = file.display().to_string();
    let _lock = in_place.then(|| env_lock(file)).transpose()?;
    let plain = Zeroizing::new(std::fs::read(file).map_err(|e| crate::Error::io(file, e))?);
    let out = sops::encrypt_new_named(&plain, recipients, &name)?;
    // The output must at least read back as a sops file (we hold no identity to decrypt it).
    SopsFile::parse(out.clone(), &name)?;
    if in_place {
        crate::fsutil::write_atomic(file, &out, crate::fsutil::Mode::KeepOr0600)
            .map_err(|e| crate::Error::io(file, e))?;
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(&out)
            .and_then(|_| o.flush())
            .map_err(|e| crate::Error::io("stdout", e))?;
    }
    Ok(exit::OK)
}
