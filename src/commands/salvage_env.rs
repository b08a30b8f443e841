//! `salvage-env`: rebuild a lost `.env` from a running container. A container keeps the
//! `Config.Env` it was created with, which is the compose `.env` merged with the image's own
//! `ENV` lines; a key is the container's own when the image lacks it or holds another value.
//! Values are compared in memory and written only to the new file (0600, or SOPS-encrypted);
//! never printed.

use crate::cli::SalvageEnvArgs;
use crate::docker::{ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::secret::Secret;
use std::collections::BTreeSet;
use std::path::Path;
use zeroize::Zeroizing;

pub fn run(args: SalvageEnvArgs) -> Result<i32> {
    // Refuse before touching anything: the file may be the one copy someone still has.
    if args.out.symlink_metadata().is_ok() {
        return Err(Error::Precondition(format!(
            "{} already exists: salvage-env never overwrites a file; choose another --out",
            args.out.display()
        )));
    }
    let wanted = match &args.keys_from {
        Some(p) => Some(template_keys(p)?),
        None => None,
    };
    let (info, image_env) = super::runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let info = ContainerInfo::load(&engine, &args.container).await?;
        let image_env = crate::docker::image::image_env(&engine, &info).await?;
        Ok::<_, Error>((info, image_env))
    })?;
    let own = crate::docker::image::own_env(&info.env, &image_env);
    let mut picked: Vec<(&str, &Secret)> = match &wanted {
        Some(keys) => own.into_iter().filter(|(k, _)| keys.contains(*k)).collect(),
        None => own,
    };
    picked.sort_by_key(|(k, _)| *k);
    picked.dedup_by_key(|(k, _)| *k);
    if picked.is_empty() {
        return Err(Error::Precondition(format!(
            "container {} holds no env key of its own{}: nothing to write",
            info.name,
            if wanted.is_some() {
                " among the template's keys"
            } else {
                ""
            }
        )));
    }
    let mut text = Zeroizing::new(Vec::new());
    for (k, v) in &picked {
        if v.expose().contains(['\n', '\r']) {
            return Err(Error::Precondition(format!(
                "{k}'s value spans lines, which a .env file cannot hold; recover it by hand"
            )));
        }
        text.extend_from_slice(k.as_bytes());
        text.push(b'=');
        text.extend_from_slice(v.expose().as_bytes());
        text.push(b'\n');
    }
    let bytes = if args.encrypt_with_age.is_empty() {
        text
    } else {
        Zeroizing::new(crate::sops::encrypt_new_named(
            &text,
            &args.encrypt_with_age,
            &args.out.display().to_string(),
        )?)
    };
    crate::fsutil::write_new(&args.out, &bytes, 0o600).map_err(|e| Error::io(&args.out, e))?;

    let names: Vec<&str> = picked.iter().map(|(k, _)| *k).collect();
    if !super::quiet() {
        println!(
            "wrote {} ({}, 0600): {} keys from container {}: {}",
            args.out.display(),
            if args.encrypt_with_age.is_empty() {
                "plaintext"
            } else {
                "SOPS-encrypted"
            },
            names.len(),
            info.name,
            names.join(", ")
        );
    }
    if let Some(keys) = &wanted {
        let missing: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !names.contains(k))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "komodo-rotate: warning: not recoverable from {} (absent or only the image's default): {}",
                info.name,
                missing.join(", ")
            );
        }
    }
    let odd: Vec<&str> = picked
        .iter()
        .filter(|(_, v)| v.expose().contains(['$', '"', '\'']))
        .map(|(k, _)| *k)
        .collect();
    if !odd.is_empty() {
        eprintln!(
            "komodo-rotate: warning: written verbatim, check how compose interpolates them ($ or quotes): {}",
            odd.join(", ")
        );
    }
    Ok(0)
}

/// The key names of a template (`.env`, `.env.example`, a SOPS dotenv): `KEY=…` or `export
/// KEY=…` lines; comments, blank lines and sops' own metadata are skipped; values are ignored.
pub fn template_keys(path: &Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut keys = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        let key = l.split_once('=').map(|(k, _)| k).unwrap_or(l).trim();
        if !crate::kinds::is_env_name(key) {
            return Err(Error::Usage(format!(
                "{} line {}: not a KEY=VALUE line",
                path.display(),
                i + 1
            )));
        }
        if !key.starts_with("sops_") {
            keys.insert(key.to_string());
        }
    }
    if keys.is_empty() {
        return Err(Error::Usage(format!("{}: names no key", path.display())));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_keys_are_names_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".env.example");
        std::fs::write(&p, "# c\n\nA=1\nexport B=\nC\nsops_mac=ENC[x]\n").unwrap();
        let k = template_keys(&p).unwrap();
        assert_eq!(k.into_iter().collect::<Vec<_>>(), ["A", "B", "C"]);
        std::fs::write(&p, "A=1\nnot a key=2\n").unwrap();
        let e = template_keys(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
