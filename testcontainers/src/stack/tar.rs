//! Image build contexts as tar archives, written with the `tar` crate (ustar headers, GNU long
//! names past 100 bytes). Directories and regular files only, which is all a FROM scratch
//! context needs. Every header is deterministic (mtime 0, uid/gid 0, no user or group names,
//! the given mode), so the same files always give the same bytes.

use std::collections::BTreeSet;

pub struct TarBuilder {
    out: tar::Builder<Vec<u8>>,
    dirs: BTreeSet<String>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl TarBuilder {
    pub fn new() -> Self {
        let mut out = tar::Builder::new(Vec::new());
        // Only the explicit headers below: never the metadata of a file on disk.
        out.mode(tar::HeaderMode::Deterministic);
        TarBuilder {
            out,
            dirs: BTreeSet::new(),
        }
    }

    /// Adds a regular file (and its missing parent directories). `path` is relative, '/'-separated.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.out
            .append_data(&mut h, path, data)
            .map_err(|e| format!("tar {path}: {e}"))
    }

    /// Adds a directory and its missing parents.
    pub fn dir(&mut self, path: &str) -> Result<(), String> {
        let path = path.trim_matches('/');
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            if self.dirs.insert(acc.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                self.out
                    .append_data(&mut h, format!("{acc}/"), std::io::empty())
                    .map_err(|e| format!("tar {acc}/: {e}"))?;
            }
        }
        Ok(())
    }

    /// The archive, with its two end blocks.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        self.out
            .into_inner()
            .map_err(|e| format!("tar finish: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut t = TarBuilder::new();
        t.file("rootfs/bin/x", 0o755, b"hello").unwrap();
        t.finish().unwrap()
    }

    #[test]
    fn layout_is_ustar_and_reproducible() {
        let b = sample();
        // rootfs/, rootfs/bin/, the file header, one data block, two end blocks.
        assert_eq!(b.len(), 512 * 6);
        assert_eq!(&b[0..7], b"rootfs/");
        assert_eq!(&b[257..262], b"ustar");
        assert_eq!(b[512 * 2 + 156], b'0');
        assert_eq!(&b[512 * 3..512 * 3 + 5], b"hello");
        // Checksum of the first header verifies.
        let mut h = b[..512].to_vec();
        let stored = u32::from_str_radix(
            std::str::from_utf8(&h[148..156])
                .unwrap()
                .trim_matches(['\0', ' ']),
            8,
        )
        .unwrap();
        h[148..156].fill(b' ');
        assert_eq!(stored, h.iter().map(|&b| b as u32).sum::<u32>());
        assert_eq!(sample(), b, "same input, same bytes");
    }

    #[test]
    fn headers_are_deterministic_and_read_back() {
        let b = sample();
        let mut a = tar::Archive::new(&b[..]);
        let entries: Vec<_> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.username().unwrap().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("rootfs/".into(), 0o755, 0, 0, 0, String::new()),
                ("rootfs/bin/".into(), 0o755, 0, 0, 0, String::new()),
                ("rootfs/bin/x".into(), 0o755, 0, 0, 0, String::new()),
            ]
        );
    }

    #[test]
    fn long_paths_use_gnu_long_names() {
        let long = format!("rootfs/{}/file", "d".repeat(120));
        let mut t = TarBuilder::new();
        t.file(&long, 0o644, b"x").unwrap();
        let b = t.finish().unwrap();
        let mut a = tar::Archive::new(&b[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.last().unwrap(), &long);
    }
}
