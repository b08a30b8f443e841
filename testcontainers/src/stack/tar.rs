//! A minimal ustar writer for image build contexts: directories and regular files only, which
//! is all a FROM scratch context needs. Written here instead of adding a crate for ~60 lines.

use std::collections::BTreeSet;

pub struct TarBuilder {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            out: Vec::new(),
            dirs: BTreeSet::new(),
        }
    }

    /// Adds a regular file (and its missing parent directories). `path` is relative, '/'-separated.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.header(path, mode, data.len() as u64, b'0')?;
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
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
                self.header(&format!("{acc}/"), 0o755, 0, b'5')?;
            }
        }
        Ok(())
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, kind: u8) -> Result<(), String> {
        if name.len() > 100 {
            return Err(format!("path too long for a tar header: {name}"));
        }
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

/// Writes `v` as zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_ustar() {
        let mut t = TarBuilder::new();
        t.file("rootfs/bin/x", 0o755, b"hello").unwrap();
        let b = t.finish();
        // rootfs/, rootfs/bin/, the file header, one data block, two end blocks.
        assert_eq!(b.len(), 512 * 6);
        assert_eq!(&b[0..7], b"rootfs/");
        assert_eq!(&b[257..262], b"ustar");
        assert_eq!(b[512 * 2 + 156], b'0');
        assert_eq!(&b[512 * 3..512 * 3 + 5], b"hello");
        // Checksum of the first header verifies.
        let mut h = b[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].fill(b' ');
        assert_eq!(stored, h.iter().map(|&b| b as u32).sum::<u32>());
    }
}
