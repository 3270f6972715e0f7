//! The on-disk record of how far each file has been acknowledged.
//!
//! Written atomically (temp file, fsync, rename, fsync of the directory) so a
//! crash leaves either the old or the new checkpoint, never a torn one. An
//! entry holds an acknowledged offset, never a read offset: after a crash the
//! tailer resumes at the first line the consumer had not durably taken, which
//! makes delivery at-least-once and never skipping.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TailError;
use super::fingerprint::{FileKey, Prefix};

/// Format version; bumped on incompatible changes so an old agent refuses a
/// newer file instead of misreading it.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFile {
    version: u32,
    files: Vec<EntryRepr>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    /// Last path the file was seen at; where to look for it after a restart.
    path: PathBuf,
    dev: u64,
    ino: u64,
    fingerprint_len: u64,
    fingerprint_sha256: String,
    /// First byte not yet acknowledged.
    offset: u64,
    /// The acknowledged position is inside an over-long line whose head was
    /// already delivered truncated: skip to the next newline on resume.
    #[serde(default)]
    mid_line: bool,
    /// Unix seconds when the file was last seen, to forget vanished files.
    last_seen: u64,
}

/// One file's resumable position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: PathBuf,
    pub key: FileKey,
    pub prefix: Prefix,
    pub offset: u64,
    pub mid_line: bool,
    pub last_seen: u64,
}

/// Reads a checkpoint; a missing file is an empty checkpoint (first start).
pub(crate) fn load(path: &Path) -> Result<Vec<Entry>, TailError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TailError::io(path, e)),
    };
    // A corrupt checkpoint is an error, not a fresh start: silently re-reading
    // every log from the beginning would flood the server with old attacks.
    let bad = |reason: String| TailError::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    let file: CheckpointFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if file.version != VERSION {
        return Err(bad(format!("unsupported version {}", file.version)));
    }
    file.files
        .into_iter()
        .map(|e| {
            let prefix = Prefix::from_hex(e.fingerprint_len, &e.fingerprint_sha256)
                .ok_or_else(|| bad(format!("{}: bad fingerprint", e.path.display())))?;
            Ok(Entry {
                path: e.path,
                key: FileKey {
                    dev: e.dev,
                    ino: e.ino,
                },
                prefix,
                offset: e.offset,
                mid_line: e.mid_line,
                last_seen: e.last_seen,
            })
        })
        .collect()
}

/// Replaces the checkpoint at `path` with `entries`, atomically and durably.
pub(crate) fn save(path: &Path, entries: &[Entry]) -> Result<(), TailError> {
    let file = CheckpointFile {
        version: VERSION,
        files: entries
            .iter()
            .map(|e| EntryRepr {
                path: e.path.clone(),
                dev: e.key.dev,
                ino: e.key.ino,
                fingerprint_len: e.prefix.len,
                fingerprint_sha256: e.prefix.hex(),
                offset: e.offset,
                mid_line: e.mid_line,
                last_seen: e.last_seen,
            })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|e| TailError::Checkpoint {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    json.push(b'\n');

    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&json)?;
        // Data must be on disk before the rename makes it visible, or a power
        // loss could leave an empty checkpoint under the real name.
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // And the rename itself must reach the disk for the new entries to
        // survive; fsync of the directory is how POSIX makes that durable.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| TailError::io(path, e))
}
