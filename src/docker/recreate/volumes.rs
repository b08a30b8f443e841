//! Anonymous volumes carried over to the replacement, as compose does on `up` without `-V`.
//!
//! An anonymous volume comes from an image `VOLUME` or a declared destination without a source
//! (compose's `- /data`, recorded as a volume mount without a source; `docker run -v /data`,
//! recorded in `Config.Volumes`). Created again from the same config, the replacement would get
//! a new, empty volume. Compose instead mounts the old container's volume, by name, at the same
//! destination (compose v2 `buildContainerMountOptions` with `inherit`, compose 1.x
//! `get_container_data_volumes`); so does the replacement here.

use super::Snapshot;
use bollard::models::{HostConfig, Mount, MountType};
use std::collections::BTreeSet;

/// `path.Clean` for the destinations the engine records: no trailing slash.
fn clean(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

/// One anonymous volume of the original: where it is mounted and which volume it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousVolume {
    pub destination: String,
    pub name: String,
    pub read_only: bool,
}

impl Snapshot {
    /// The original's anonymous volumes: destinations declared without a source (image or
    /// `Config.Volumes`, or a volume mount without a source) that no bind or named mount covers,
    /// with the volume the engine mounted there.
    pub fn anonymous_volumes(&self) -> Vec<AnonymousVolume> {
        let h = self.inspect.host_config.as_ref();
        let mounts = h.and_then(|h| h.mounts.as_deref()).unwrap_or_default();
        let mut named: BTreeSet<&str> = h
            .and_then(|h| h.binds.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|b| b.split(':').nth(1))
            .map(clean)
            .collect();
        let mut declared: BTreeSet<&str> = self
            .inspect
            .config
            .as_ref()
            .and_then(|c| c.volumes.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|d| clean(d))
            .collect();
        for m in mounts {
            let Some(target) = m.target.as_deref().map(clean) else {
                continue;
            };
            if m.typ == Some(MountType::VOLUME) && m.source.as_deref().unwrap_or("").is_empty() {
                declared.insert(target);
            } else {
                named.insert(target);
            }
        }
        self.inspect
            .mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| {
                let dest = clean(m.destination.as_deref()?);
                let name = m.name.as_deref().filter(|n| !n.is_empty())?;
                (declared.contains(dest) && !named.contains(dest)).then(|| AnonymousVolume {
                    destination: dest.to_string(),
                    name: name.to_string(),
                    read_only: m.rw == Some(false),
                })
            })
            .collect()
    }

    /// `h` with every anonymous volume of the original mounted by name: a source-less volume
    /// mount at the same destination gets the name (its other options kept), else a volume
    /// mount is added (it covers the `Config.Volumes` entry, which the engine then skips).
    pub(super) fn carry_anonymous_volumes(&self, mut h: HostConfig) -> HostConfig {
        let anon = self.anonymous_volumes();
        if anon.is_empty() {
            return h;
        }
        let mut mounts = h.mounts.take().unwrap_or_default();
        for v in anon {
            let declared = mounts.iter_mut().find(|m| {
                m.typ == Some(MountType::VOLUME)
                    && m.source.as_deref().unwrap_or("").is_empty()
                    && m.target.as_deref().map(clean) == Some(v.destination.as_str())
            });
            match declared {
                Some(m) => m.source = Some(v.name),
                None => mounts.push(Mount {
                    target: Some(v.destination),
                    source: Some(v.name),
                    typ: Some(MountType::VOLUME),
                    read_only: v.read_only.then_some(true),
                    ..Default::default()
                }),
            }
        }
        h.mounts = Some(mounts);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerInspectResponse, MountPoint};

    fn point(dest: &str, name: &str, rw: bool) -> MountPoint {
        MountPoint {
            typ: Some("volume".into()),
            name: Some(name.into()),
            destination: Some(dest.into()),
            rw: Some(rw),
            ..Default::default()
        }
    }

    fn vol(target: &str, source: &str) -> Mount {
        Mount {
            target: Some(target.into()),
            source: (!source.is_empty()).then(|| source.to_string()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }
    }

    #[test]
    fn anonymous_volumes_are_mounted_by_name_and_named_ones_left_alone() {
        let snap = Snapshot {
            name: "app".into(),
            original_id: "0123456789abcdef".into(),
            should_run: true,
            inspect: ContainerInspectResponse {
                config: Some(ContainerConfig {
                    // An image VOLUME left anonymous, one covered by a named mount, one by a bind.
                    volumes: Some(vec!["/img/".into(), "/named".into(), "/bound".into()]),
                    ..Default::default()
                }),
                host_config: Some(HostConfig {
                    binds: Some(vec!["/srv/x:/bound:ro".into()]),
                    mounts: Some(vec![vol("/named", "proj_named"), vol("/compose", "")]),
                    ..Default::default()
                }),
                mounts: Some(vec![
                    point("/img", "aaa", true),
                    point("/named", "proj_named", true),
                    point("/compose", "bbb", false),
                    MountPoint {
                        typ: Some("bind".into()),
                        source: Some("/srv/x".into()),
                        destination: Some("/bound".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
            logs: vec![],
            mac_address: None,
        };
        let h = snap.carry_anonymous_volumes(snap.inspect.host_config.clone().unwrap());
        let got: Vec<(Option<String>, Option<String>, Option<bool>)> = h
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.target, m.source, m.read_only))
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                (s("/named"), s("proj_named"), None),
                (s("/compose"), s("bbb"), None),
                (s("/img"), s("aaa"), None),
            ]
        );
        assert_eq!(h.binds, Some(vec!["/srv/x:/bound:ro".to_string()]));
    }
}
