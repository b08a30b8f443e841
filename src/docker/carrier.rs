//! Carriers: the forms in which a container reads the DB credential, so that a rotation can
//! patch each one (research/komodo.md §1.4, §2.1). A pure module over a container's env and
//! mounts; it reads no file and changes nothing.
//!
//! - `Plain`: the env value is the password.
//! - `Uri`: the env value is a connection URI with the password inside ([`super::uri`]).
//! - `File`: the env value is a path inside the container to a file holding the password (or a
//!   URI); the file must come from a host bind mount, whose host side is what gets rewritten.
//!
//! What cannot be patched is [`Refused`], by container key and reason, never by value.

use super::inspect::MountInfo;
use super::uri;
use crate::secret::Secret;
use std::path::{Component, Path, PathBuf};

/// Keys whose value is a path to a file holding the DB password.
pub const PASSWORD_FILE_KEYS: &[&str] = &[
    "KOMODO_DATABASE_PASSWORD_FILE",
    "KOMODO_DB_PASSWORD_FILE",
    "DB_PASSWORD_FILE",
];
/// Keys whose value is a path to a file holding a connection URI.
pub const URI_FILE_KEYS: &[&str] = &["KOMODO_DATABASE_URI_FILE"];
/// Keys whose value is a connection URI that may hold the password inline.
pub const URI_KEYS: &[&str] = &[
    "KOMODO_DATABASE_URI",
    "KOMODO_MONGO_URI",
    "FERRETDB_POSTGRESQL_URL",
];

/// What a carrier file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileContent {
    Password,
    Uri,
}

/// How one env key of a container carries the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    Plain,
    Uri,
    File {
        container_path: String,
        host_path: PathBuf,
        content: FileContent,
    },
}

impl Form {
    pub fn as_str(&self) -> &'static str {
        match self {
            Form::Plain => "plain",
            Form::Uri => "uri",
            Form::File { .. } => "file",
        }
    }
}

/// One (key, form) of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub key: String,
    pub form: Form,
}

/// A key that carries the credential in a way no step can patch; `why` names no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key: String,
    pub why: String,
}

/// The host path behind `container_path` through the container's mounts: the mount whose
/// destination is the longest whole-component prefix decides; it must be a bind mount. A
/// volume, tmpfs or no mount at all (the image's own filesystem) is refused, naming `key`.
pub fn host_path(mounts: &[MountInfo], key: &str, container_path: &str) -> Result<PathBuf, String> {
    let p = Path::new(container_path);
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!(
            "{key} is not an absolute, normalised path inside the container"
        ));
    }
    let best = mounts
        .iter()
        .filter_map(|m| {
            let rest = p.strip_prefix(Path::new(&m.destination)).ok()?;
            Some((Path::new(&m.destination).components().count(), m, rest))
        })
        .max_by_key(|(depth, _, _)| *depth);
    let Some((_, m, rest)) = best else {
        return Err(format!(
            "{key} names a file in the container's own filesystem, not a host bind mount"
        ));
    };
    if m.kind != "bind" {
        let kind = if m.kind.is_empty() {
            "unknown"
        } else {
            &m.kind
        };
        return Err(format!(
            "{key} names a file on a {kind} mount at {}, not a host bind mount",
            m.destination
        ));
    }
    if m.source.is_empty() || !Path::new(&m.source).is_absolute() {
        return Err(format!(
            "{key}: the bind mount at {} has no absolute host path",
            m.destination
        ));
    }
    let host = Path::new(&m.source);
    Ok(if rest.as_os_str().is_empty() {
        host.to_path_buf()
    } else {
        host.join(rest)
    })
}

/// Sorts a container's env into what a rotation patches and what it must refuse. `plain_keys`
/// are the generation's plain password keys present for this container. Empty values are not
/// carriers (an empty `*_FILE` is unset; an empty URI carries nothing).
pub fn classify(
    env: &[(String, Secret)],
    mounts: &[MountInfo],
    plain_keys: &[String],
) -> (Vec<Carried>, Vec<Refused>) {
    let mut carried: Vec<Carried> = Vec::new();
    let mut refused: Vec<Refused> = Vec::new();
    // The engine's last occurrence wins; look at each key once.
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in env.iter().rev() {
        if seen.contains(&k.as_str()) {
            continue;
        }
        seen.push(k);
        let form = if plain_keys.iter().any(|p| p == k) {
            Ok(Some(Form::Plain))
        } else if URI_KEYS.contains(&k.as_str()) && !v.expose().trim().is_empty() {
            match uri::has_password(k, v) {
                Ok(true) => Ok(Some(Form::Uri)),
                Ok(false) => Ok(None),
                Err(e) => Err(format!("{} (cannot patch the password inside)", e.why)),
            }
        } else if let Some(content) = file_content(k) {
            let path = v.expose().trim();
            if path.is_empty() {
                Ok(None)
            } else {
                host_path(mounts, k, path)
                    .map(|host_path| {
                        Some(Form::File {
                            container_path: path.to_string(),
                            host_path,
                            content,
                        })
                    })
                    // The refusal names the key itself.
                    .map_err(|e| {
                        e.strip_prefix(k.as_str())
                            .unwrap_or(&e)
                            .trim_start()
                            .to_string()
                    })
            }
        } else {
            Ok(None)
        };
        match form {
            Ok(Some(form)) => carried.push(Carried {
                key: k.clone(),
                form,
            }),
            Ok(None) => {}
            Err(why) => refused.push(Refused {
                key: k.clone(),
                why,
            }),
        }
    }
    carried.reverse();
    refused.reverse();
    (carried, refused)
}

fn file_content(key: &str) -> Option<FileContent> {
    if PASSWORD_FILE_KEYS.contains(&key) {
        Some(FileContent::Password)
    } else if URI_FILE_KEYS.contains(&key) {
        Some(FileContent::Uri)
    } else {
        None
    }
}

/// The password a carrier file's bytes hold: whitespace-trimmed as Komodo reads it
/// (research/komodo.md §1.4); for a URI file, the URI's password. `key` names it in errors.
pub fn file_password(key: &str, content: FileContent, bytes: &[u8]) -> Result<Secret, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("{key}: the file is not UTF-8 text"))?;
    let value = Secret::new(text.trim().to_string());
    match content {
        FileContent::Password => Ok(value),
        FileContent::Uri => uri::password(key, &value).map_err(|e| e.to_string()),
    }
}

/// The bytes to write into a carrier file so it holds `new`, keeping the old file's leading and
/// trailing whitespace (its final newline) and, for a URI file, every byte but the password.
pub fn file_with_password(
    key: &str,
    content: FileContent,
    old_bytes: &[u8],
    new: &Secret,
) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let text =
        std::str::from_utf8(old_bytes).map_err(|_| format!("{key}: the file is not UTF-8 text"))?;
    let body = text.trim();
    let lead = &text[..text.len() - text.trim_start().len()];
    let tail = &text[text.trim_end().len()..];
    let middle = match content {
        FileContent::Password => new.clone(),
        FileContent::Uri => uri::with_password(key, &Secret::new(body.to_string()), new)
            .map_err(|e| e.to_string())?,
    };
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(text.len() + middle.len()));
    out.extend_from_slice(lead.as_bytes());
    out.extend_from_slice(middle.expose().as_bytes());
    out.extend_from_slice(tail.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &str, source: &str, destination: &str) -> MountInfo {
        MountInfo {
            kind: kind.into(),
            source: source.into(),
            destination: destination.into(),
        }
    }

    #[test]
    fn bind_mounts_resolve_by_the_longest_whole_component_prefix() {
        let mounts = [
            m("bind", "/srv/komodo/secrets", "/run/secrets"),
            m("bind", "/srv/komodo/db.pw", "/run/secrets/db/pw"),
            m(
                "volume",
                "/var/lib/docker/volumes/keys/_data",
                "/config/keys",
            ),
            m("tmpfs", "", "/tmp"),
            m("bind", "/srv/other", "/run/sec"),
        ];
        let k = "KOMODO_DATABASE_PASSWORD_FILE";
        assert_eq!(
            host_path(&mounts, k, "/run/secrets/db_password").unwrap(),
            PathBuf::from("/srv/komodo/secrets/db_password")
        );
        // A single-file bind mount: destination == the path.
        assert_eq!(
            host_path(&mounts, k, "/run/secrets/db/pw").unwrap(),
            PathBuf::from("/srv/komodo/db.pw")
        );
        // `/run/sec` is not a prefix of `/run/secrets/x` component-wise; `/run/secrets` is.
        assert_eq!(
            host_path(&mounts, k, "/run/sec/x").unwrap(),
            PathBuf::from("/srv/other/x")
        );
        for (path, why) in [
            ("/config/keys/db", "on a volume mount at /config/keys"),
            ("/tmp/pw", "on a tmpfs mount at /tmp"),
            ("/etc/pw", "the container's own filesystem"),
            ("run/secrets/pw", "not an absolute"),
            ("/run/secrets/../../etc/pw", "not an absolute, normalised"),
        ] {
            let e = host_path(&mounts, k, path).unwrap_err();
            assert!(e.starts_with(k), "{e}");
            assert!(e.contains(why), "{path}: {e}");
        }
        assert!(host_path(&[m("bind", "relative", "/x")], k, "/x")
            .unwrap_err()
            .contains("no absolute host path"));
    }

    #[test]
    fn each_key_is_plain_uri_or_file_and_the_rest_is_refused_by_name() {
        let env: Vec<(String, Secret)> = [
            ("KOMODO_DATABASE_PASSWORD", "hunter2"),
            (
                "KOMODO_DATABASE_URI",
                "mongodb://admin:hunter2@mongo:27017/?authSource=admin",
            ),
            ("KOMODO_DATABASE_PASSWORD_FILE", "/run/secrets/db"),
            ("KOMODO_DATABASE_URI_FILE", "/config/keys/uri"),
            ("KOMODO_DB_PASSWORD_FILE", ""),
            ("KOMODO_MONGO_URI", "mongodb://mongo:27017"),
            ("FERRETDB_POSTGRESQL_URL", "postgres://u:hunter2@pg@x"),
            ("KOMODO_JWT_SECRET_FILE", "/run/secrets/jwt"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
        .collect();
        let mounts = [
            m("bind", "/srv/s", "/run/secrets"),
            m("volume", "/var/lib/docker/volumes/k/_data", "/config/keys"),
        ];
        let (carried, refused) = classify(&env, &mounts, &["KOMODO_DATABASE_PASSWORD".into()]);
        assert_eq!(
            carried,
            vec![
                Carried {
                    key: "KOMODO_DATABASE_PASSWORD".into(),
                    form: Form::Plain
                },
                Carried {
                    key: "KOMODO_DATABASE_URI".into(),
                    form: Form::Uri
                },
                Carried {
                    key: "KOMODO_DATABASE_PASSWORD_FILE".into(),
                    form: Form::File {
                        container_path: "/run/secrets/db".into(),
                        host_path: "/srv/s/db".into(),
                        content: FileContent::Password
                    }
                },
            ]
        );
        let keys: Vec<&str> = refused.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            ["KOMODO_DATABASE_URI_FILE", "FERRETDB_POSTGRESQL_URL"]
        );
        assert!(refused[0].why.contains("volume"), "{:?}", refused[0]);
        assert!(refused[1].why.contains("not percent-encoded"));
        let shown = format!("{carried:?}{refused:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_last_occurrence_of_a_key_decides_as_in_the_engine() {
        let env: Vec<(String, Secret)> = [
            ("KOMODO_DATABASE_URI", "mongodb://a:b@h"),
            ("KOMODO_DATABASE_URI", "mongodb://h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(v.to_string())))
        .collect();
        let (carried, refused) = classify(&env, &[], &[]);
        assert!(carried.is_empty() && refused.is_empty(), "{carried:?}");
    }

    #[test]
    fn carrier_files_are_read_trimmed_and_rewritten_keeping_their_whitespace() {
        let k = "KOMODO_DATABASE_PASSWORD_FILE";
        let new = Secret::new("NEW".into());
        let p = FileContent::Password;
        assert_eq!(file_password(k, p, b"  old\n").unwrap().expose(), "old");
        assert_eq!(
            &file_with_password(k, p, b"old\n", &new).unwrap()[..],
            b"NEW\n"
        );
        assert_eq!(&file_with_password(k, p, b"old", &new).unwrap()[..], b"NEW");
        assert_eq!(
            &file_with_password(k, p, b"\n old \r\n", &new).unwrap()[..],
            b"\n NEW \r\n"
        );
        let u = FileContent::Uri;
        let k = "KOMODO_DATABASE_URI_FILE";
        let out = file_with_password(k, u, b"mongodb://a:old@h/?x=1\n", &new).unwrap();
        assert_eq!(&out[..], b"mongodb://a:NEW@h/?x=1\n");
        assert_eq!(file_password(k, u, &out).unwrap().expose(), "NEW");
        let e = file_with_password(k, u, b"mongodb://h\n", &new).unwrap_err();
        assert!(e.contains(k) && e.contains("without a password"), "{e}");
        let e = file_password(k, p, &[0xff, b'o', b'l', b'd']).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
