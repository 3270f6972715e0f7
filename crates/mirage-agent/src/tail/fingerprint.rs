//! File identity: (dev, inode) plus a hash of the file's first bytes.
//!
//! (dev, inode) alone is not enough across restarts: once a rotated file is
//! deleted, the filesystem may hand its inode to the next file, and a resumed
//! offset would then skip the start of an unrelated file. A prefix hash tells
//! the two apart. The hashed prefix grows with the file up to the configured
//! size, and its length is stored with it, so a file that was checkpointed
//! while still short is still recognised after it grew (logs only append).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use sha2::{Digest, Sha256};

/// Where a file lives on this host: device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// Device id (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
}

impl FileKey {
    /// The key of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A hash of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub len: u64,
    pub hash: [u8; 32],
}

impl Prefix {
    /// The prefix of an empty file: matches any file.
    pub fn empty() -> Self {
        Self::of_bytes(&[])
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u64,
            hash: Sha256::digest(bytes).into(),
        }
    }

    /// Hashes the first `min(want, size)` bytes of `file`.
    pub fn read(file: &File, want: u64, size: u64) -> io::Result<Self> {
        let len = want.min(size);
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        read_exact_at(file, &mut buf, 0)?;
        Ok(Self::of_bytes(&buf))
    }

    /// Whether `file` (currently `size` bytes long) still starts with the
    /// bytes this prefix was taken from.
    pub fn matches(&self, file: &File, size: u64) -> io::Result<bool> {
        if size < self.len {
            return Ok(false);
        }
        if self.len == 0 {
            return Ok(true);
        }
        Ok(Self::read(file, self.len, size)?.hash == self.hash)
    }

    pub fn hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(len: u64, hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, out) in hash.iter_mut().enumerate() {
            *out = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(Self { len, hash })
    }
}

/// `pread` until `buf` is full; a file that shrank under us is an error the
/// caller treats like truncation.
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Prefix;

    #[test]
    fn hex_round_trip() {
        let p = Prefix::of_bytes(b"hello");
        assert_eq!(Prefix::from_hex(5, &p.hex()), Some(p));
        assert_eq!(Prefix::from_hex(5, "zz"), None);
    }
}
