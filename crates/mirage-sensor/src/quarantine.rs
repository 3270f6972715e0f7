//! The quarantine: files attackers upload, kept by sha256 under a quota.
//!
//! Every emulator that accepts files (FTP STOR/APPE, rsync uploads, scp and
//! sftp, files written in the emulated shell) streams them through an
//! [`Upload`]: the bytes are hashed as they arrive and written to a
//! temporary file, which is renamed to `quarantine/<sha256>` when the upload
//! ends. Nothing stored is ever executed or opened again by mirage.
//!
//! Two caps bound the disk: one file may not exceed `max_file_bytes`, and
//! the whole directory may not exceed `max_total_bytes`. An upload that
//! breaks either cap is still hashed to the end and recorded (its hash and
//! length identify the sample), but its bytes are not kept. The same file
//! uploaded twice is stored once.
//!
//! The catch-all keeps captured client streams the same way, in a sibling
//! store (`payloads/`, opened with [`Quarantine::open_named`]) with its own
//! quota.
//!
//! File I/O is synchronous: uploads arrive in socket-sized chunks and the
//! writes go to the page cache, so they cost less than a hop to a blocking
//! thread would.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mirage_core::event::hex;
use sha2::{Digest, Sha256};

/// The directory name under the sensor's data dir.
pub const DIR_NAME: &str = "quarantine";

/// The quarantine directory and its quota.
#[derive(Debug)]
pub struct Quarantine {
    dir: PathBuf,
    /// The directory's name under the data dir (`quarantine`, `payloads`).
    name: String,
    max_file: u64,
    max_total: u64,
    /// Bytes kept or reserved by uploads in progress.
    used: AtomicU64,
    /// Names temporary files apart.
    next_tmp: AtomicU64,
}

/// What became of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// sha256 of every byte received (hex).
    pub sha256: String,
    /// Bytes received.
    pub len: u64,
    /// Where the file is kept, relative to the data dir
    /// (`quarantine/<sha256>`); `None` when a cap kept it out.
    pub stored: Option<String>,
    /// True when the same content was already in the quarantine.
    pub duplicate: bool,
}

impl Quarantine {
    /// Open (creating) `data_dir/quarantine` and count what it already holds
    /// against the quota. Temporary files left by a crash are removed.
    pub fn open(data_dir: &Path, max_file_bytes: u64, max_total_bytes: u64) -> io::Result<Self> {
        Self::open_named(data_dir, DIR_NAME, max_file_bytes, max_total_bytes)
    }

    /// As [`Quarantine::open`], for the store `data_dir/name`.
    pub fn open_named(
        data_dir: &Path,
        name: &str,
        max_file_bytes: u64,
        max_total_bytes: u64,
    ) -> io::Result<Self> {
        let dir = data_dir.join(name);
        fs::create_dir_all(&dir)?;
        let mut used = 0u64;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                used += meta.len();
            }
        }
        Ok(Quarantine {
            dir,
            name: name.to_owned(),
            max_file: max_file_bytes,
            max_total: max_total_bytes,
            used: AtomicU64::new(used),
            next_tmp: AtomicU64::new(0),
        })
    }

    /// The quarantine directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes currently kept (or reserved by uploads in progress).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Start an upload. The temporary file is created lazily, at the first
    /// byte, so an empty or refused upload touches no disk.
    pub fn begin(&self) -> Upload<'_> {
        Upload {
            q: QRef::Borrowed(self),
            hasher: Sha256::new(),
            len: 0,
            file: None,
            reserved: 0,
            keeping: true,
        }
    }

    /// As [`Quarantine::begin`], for an upload that outlives the borrow (a
    /// capture owned by a session's tap).
    pub fn begin_owned(self: &std::sync::Arc<Self>) -> Upload<'static> {
        Upload {
            q: QRef::Shared(self.clone()),
            hasher: Sha256::new(),
            len: 0,
            file: None,
            reserved: 0,
            keeping: true,
        }
    }

    /// Store `data` in one call.
    pub fn store(&self, data: &[u8]) -> io::Result<Stored> {
        let mut up = self.begin();
        up.write(data)?;
        up.finish()
    }

    /// Take `n` more bytes of the total quota, if there are that many left.
    fn reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.max_total)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One upload in progress; feed it with [`Upload::write`] and end it with
/// [`Upload::finish`]. Dropped unfinished, it removes its temporary file and
/// gives its reservation back.
pub struct Upload<'q> {
    q: QRef<'q>,
    hasher: Sha256,
    len: u64,
    file: Option<(File, PathBuf)>,
    /// Bytes of the total quota this upload holds.
    reserved: u64,
    /// False once a cap was broken: the rest is only hashed.
    keeping: bool,
}

/// The store an upload writes to, borrowed or shared.
enum QRef<'q> {
    Borrowed(&'q Quarantine),
    Shared(std::sync::Arc<Quarantine>),
}

impl std::ops::Deref for QRef<'_> {
    type Target = Quarantine;
    fn deref(&self) -> &Quarantine {
        match self {
            QRef::Borrowed(q) => q,
            QRef::Shared(q) => q,
        }
    }
}

impl Upload<'_> {
    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add the next chunk. An I/O error of the quarantine disk stops the
    /// keeping (the hash goes on) and is returned once, to be logged.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        if !self.keeping || chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len() as u64;
        if self.len > self.q.max_file || !self.q.reserve(n) {
            self.drop_kept();
            return Ok(());
        }
        self.reserved += n;
        if self.file.is_none() {
            let id = self.q.next_tmp.fetch_add(1, Ordering::Relaxed);
            let path = self.q.dir.join(format!(".tmp-{}-{id}", std::process::id()));
            match File::create(&path) {
                Ok(f) => self.file = Some((f, path)),
                Err(e) => {
                    self.drop_kept();
                    return Err(e);
                }
            }
        }
        if let Some((f, _)) = self.file.as_mut()
            && let Err(e) = f.write_all(chunk)
        {
            self.drop_kept();
            return Err(e);
        }
        Ok(())
    }

    /// End the upload: keep the file under its hash (once) and say what
    /// became of it.
    pub fn finish(mut self) -> io::Result<Stored> {
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let len = self.len;
        let Some((file, tmp)) = self.file.take().filter(|_| self.keeping) else {
            self.drop_kept();
            return Ok(Stored {
                sha256,
                len,
                stored: None,
                duplicate: false,
            });
        };
        drop(file);
        let dest = self.q.dir.join(&sha256);
        let rel = Some(format!("{}/{sha256}", self.q.name));
        if dest.exists() {
            let _ = fs::remove_file(&tmp);
            self.q.release(self.reserved);
            self.reserved = 0;
            return Ok(Stored {
                sha256,
                len,
                stored: rel,
                duplicate: true,
            });
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            self.q.release(self.reserved);
            self.reserved = 0;
            return Err(e);
        }
        // Read-only: a sample is evidence, not something to edit or run.
        let _ = fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o400));
        self.reserved = 0;
        Ok(Stored {
            sha256,
            len,
            stored: rel,
            duplicate: false,
        })
    }

    /// Stop keeping: remove the temporary file, return the reservation.
    fn drop_kept(&mut self) {
        self.keeping = false;
        if let Some((f, path)) = self.file.take() {
            drop(f);
            let _ = fs::remove_file(path);
        }
        if self.reserved > 0 {
            self.q.release(self.reserved);
            self.reserved = 0;
        }
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        self.drop_kept();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    #[test]
    fn stores_by_hash_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path(), 100, 1000).unwrap();
        let a = q.store(b"#!/bin/sh\nwget http://x/y\n").unwrap();
        assert_eq!(a.sha256, sha(b"#!/bin/sh\nwget http://x/y\n"));
        assert_eq!(
            a.stored.as_deref(),
            Some(&*format!("quarantine/{}", a.sha256))
        );
        assert!(!a.duplicate);
        let kept = std::fs::read(dir.path().join(a.stored.as_ref().unwrap())).unwrap();
        assert_eq!(kept, b"#!/bin/sh\nwget http://x/y\n");
        let b = q.store(b"#!/bin/sh\nwget http://x/y\n").unwrap();
        assert!(b.duplicate);
        assert_eq!(q.used_bytes(), 26);
        // Only the kept file (no temporaries) is in the directory.
        assert_eq!(std::fs::read_dir(q.dir()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_over_the_file_cap_is_hashed_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path(), 10, 1000).unwrap();
        let mut up = q.begin();
        up.write(b"0123456789").unwrap();
        up.write(b"abc").unwrap();
        let s = up.finish().unwrap();
        assert_eq!(s.len, 13);
        assert_eq!(s.sha256, sha(b"0123456789abc"));
        assert_eq!(s.stored, None);
        assert_eq!(q.used_bytes(), 0);
        assert_eq!(std::fs::read_dir(q.dir()).unwrap().count(), 0);
    }

    #[test]
    fn the_total_quota_holds_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path(), 10, 15).unwrap();
        assert!(q.store(b"aaaaaaaaaa").unwrap().stored.is_some());
        assert!(q.store(b"bbbbbbbbbb").unwrap().stored.is_none());
        assert!(q.store(b"ccccc").unwrap().stored.is_some());
        assert_eq!(q.used_bytes(), 15);
        // A stale temporary from a crash is removed and not counted.
        std::fs::write(q.dir().join(".tmp-1-1"), b"junk").unwrap();
        let q2 = Quarantine::open(dir.path(), 10, 15).unwrap();
        assert_eq!(q2.used_bytes(), 15);
        assert!(q2.store(b"d").unwrap().stored.is_none());
    }

    #[test]
    fn an_abandoned_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path(), 100, 100).unwrap();
        let mut up = q.begin();
        up.write(b"partial").unwrap();
        drop(up);
        assert_eq!(q.used_bytes(), 0);
        assert_eq!(std::fs::read_dir(q.dir()).unwrap().count(), 0);
        let empty = q.begin().finish().unwrap();
        assert_eq!(empty.len, 0);
        assert_eq!(empty.stored, None);
    }
}
