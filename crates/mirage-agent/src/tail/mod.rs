//! The file source: follows log files and hands out complete lines, across
//! rotation, truncation and agent restarts.
//!
//! # Model
//! A followed file is an open descriptor, identified by (dev, inode) plus a
//! hash of its first bytes ([`fingerprint`]). Holding the descriptor is what
//! makes rename rotation lossless: after `mv f f.1; touch f` the old file is
//! still readable through it, so it is read to its end (and for a grace period
//! after, while the writer still appends to it) before it is closed. While it
//! is open its inode cannot be reused, so identity during a run is exact; the
//! prefix hash is what keeps identity exact across restarts.
//!
//! # Delivery
//! [`Tailer::poll`] returns the lines written since the last poll. Each carries
//! an [`AckToken`]; the consumer passes it to [`Tailer::ack`] once the line is
//! durably queued, and [`Tailer::checkpoint`] persists the acknowledged
//! positions. After a crash the tailer resumes at the first unacknowledged
//! line: lines are never skipped, and only unacknowledged ones can repeat.
//!
//! # Limits
//! Memory per file is bounded by `max_line_bytes`; one poll reads at most
//! `max_batch_bytes`. What cannot be recovered: a rotated file moved to
//! another directory or compressed while the agent was down, and lines written
//! to a copytruncate'd file between the tailer's last read and the truncation
//! (the copy is a different file; that race is inherent to copytruncate).

mod async_tail;
mod checkpoint;
mod config;
mod error;
mod fingerprint;
mod glob;
mod split;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use async_tail::{AsyncTailer, TailHealth};
pub use config::{ReadFrom, TailConfig};
pub use error::TailError;
pub use fingerprint::FileKey;

use checkpoint::Entry;
use fingerprint::Prefix;
use split::{RawLine, Splitter};

/// Size of one read; also the scratch buffer reused across files.
const READ_CHUNK: usize = 64 * 1024;

/// One complete line of a followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The path the file is followed as (a configured path, or the match of a
    /// pattern). A rotated file keeps the name it had when it was followed.
    pub path: Arc<Path>,
    /// Device and inode of the file the line was read from.
    pub file: FileKey,
    /// Byte offset of the line's first byte in that file.
    pub offset: u64,
    /// The line without its `\n` (a `\r` before it is kept: these are the
    /// file's bytes, parsers decide what to trim).
    pub bytes: Vec<u8>,
    /// The line was longer than `max_line_bytes`; `bytes` is its head.
    pub truncated: bool,
    /// The file ended without a newline and will not grow again (rotated away
    /// or truncated): this is the last, incomplete line.
    pub unterminated: bool,
    /// SHA-256 of the file's first `min(fingerprint_bytes, end of this
    /// line)` bytes. Logs only append, so the same line read again (after a
    /// crash, from the checkpoint) has the same fingerprint, while a new file
    /// that reused the inode has another: with `file` and `offset` it is a
    /// stable identity for the line.
    pub fingerprint: [u8; 32],
    ack: AckToken,
}

impl Line {
    /// What to pass to [`Tailer::ack`] once this line is durably queued.
    pub fn ack_token(&self) -> AckToken {
        self.ack
    }
}

/// Acknowledges a line and every line of the same file before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    track: u64,
    generation: u64,
    end: u64,
    mid_line: bool,
}

/// What [`Tailer::status`] reports about one followed file, for health output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The path the file is followed as.
    pub path: Arc<Path>,
    /// Device and inode.
    pub file: FileKey,
    /// Bytes read so far.
    pub read_offset: u64,
    /// Bytes acknowledged (what a checkpoint would record).
    pub acked_offset: u64,
    /// No configured path leads to this file any more: it is being drained.
    pub rotated: bool,
}

/// Per-file state of a followed file.
#[derive(Debug)]
struct Tracked {
    /// Unique for the life of the tailer, unlike the inode, so a late ack for
    /// a closed file can never touch another one.
    id: u64,
    path: Arc<Path>,
    file: File,
    key: FileKey,
    prefix: Prefix,
    /// Bumped on truncation: acks for lines of the previous content are void.
    generation: u64,
    read_offset: u64,
    splitter: Splitter,
    delivered_end: u64,
    acked: u64,
    acked_mid_line: bool,
    /// A configured path still leads here (set by every discovery).
    watched: bool,
    /// When a rotated-away file was last seen growing.
    last_growth: Option<Instant>,
    /// Rotated away, drained and quiet: no more reads, waiting for acks.
    finished: bool,
    last_error: Option<io::ErrorKind>,
}

impl Tracked {
    fn fully_acked(&self) -> bool {
        self.acked >= self.delivered_end
    }

    fn entry(&self, now: u64) -> Entry {
        Entry {
            path: self.path.to_path_buf(),
            key: self.key,
            prefix: self.prefix,
            offset: self.acked,
            mid_line: self.acked_mid_line,
            last_seen: now,
        }
    }
}

/// Follows the configured files; see the [module docs](self).
#[derive(Debug)]
pub struct Tailer {
    config: TailConfig,
    files: Vec<Tracked>,
    /// Checkpoint entries not (yet) matched to a followed file: consulted when
    /// a file appears, persisted until `forget_after`.
    pending: Vec<Entry>,
    next_id: u64,
    backlogged: bool,
    /// Last open error per path, so a missing permission is logged once.
    open_errors: HashMap<PathBuf, io::ErrorKind>,
    scratch: Vec<u8>,
}

impl Tailer {
    /// Validates `config`, loads the checkpoint if there is one and finds the
    /// files to follow, including files rotated away while the agent was down.
    pub fn open(config: TailConfig) -> Result<Self, TailError> {
        config.validate()?;
        let pending = match &config.checkpoint_path {
            Some(p) => checkpoint::load(p)?,
            None => Vec::new(),
        };
        let mut tailer = Self {
            config,
            files: Vec::new(),
            pending,
            next_id: 0,
            backlogged: false,
            open_errors: HashMap::new(),
            scratch: vec![0; READ_CHUNK],
        };
        tailer.discover(true);
        tailer.recover_rotated();
        tailer.forget_old_entries();
        Ok(tailer)
    }

    /// Reads what was written since the last poll and returns the complete
    /// lines, rotated-away files first so their last lines come before the
    /// first lines of their successors. Never blocks for new data.
    pub fn poll(&mut self) -> Vec<Line> {
        self.retire_done();
        self.discover(false);
        let now = Instant::now();
        // Orphans first, then in discovery order: the old file's end precedes
        // the new file's start.
        self.files.sort_by_key(|t| (t.watched, t.id));
        let mut budget = self.config.max_batch_bytes;
        let mut out = Vec::new();
        for i in 0..self.files.len() {
            if self.files[i].finished || budget == 0 {
                continue;
            }
            if !self.files[i].watched && self.files[i].last_growth.is_none() {
                self.files[i].last_growth = Some(now);
            }
            let read = self.read_file(i, &mut budget, &mut out);
            let t = &mut self.files[i];
            if t.watched {
                t.last_growth = None;
                continue;
            }
            match read {
                Some(n) if n > 0 => t.last_growth = Some(now),
                Some(_) => {
                    let quiet = t
                        .last_growth
                        .is_some_and(|g| now.duration_since(g) >= self.config.rotate_grace);
                    if quiet {
                        // The writer has moved on: the held partial line will
                        // never be completed, deliver it rather than lose it.
                        if let Some(raw) = t.splitter.flush(t.read_offset) {
                            out.push(to_line(t, raw, self.config.fingerprint_bytes as u64));
                        }
                        t.finished = true;
                    }
                }
                None => {}
            }
        }
        self.backlogged = budget == 0;
        out
    }

    /// Whether the last poll stopped at `max_batch_bytes` with data left: poll
    /// again right away instead of waiting for the interval.
    pub fn backlogged(&self) -> bool {
        self.backlogged
    }

    /// Marks the line of `token`, and all lines of its file before it, as
    /// durably taken by the consumer. Tokens of files closed since, or of
    /// content replaced by a truncation, are ignored.
    pub fn ack(&mut self, token: AckToken) {
        if let Some(t) = self.files.iter_mut().find(|t| t.id == token.track)
            && t.generation == token.generation
            && token.end > t.acked
        {
            t.acked = token.end;
            t.acked_mid_line = token.mid_line;
        }
    }

    /// Persists the acknowledged positions (atomically). A no-op without a
    /// `checkpoint_path`.
    pub fn checkpoint(&mut self) -> Result<(), TailError> {
        self.retire_done();
        self.forget_old_entries();
        let Some(path) = &self.config.checkpoint_path else {
            return Ok(());
        };
        let now = unix_now();
        let mut entries: Vec<Entry> = self.files.iter().map(|t| t.entry(now)).collect();
        entries.extend(self.pending.iter().cloned());
        checkpoint::save(path, &entries)
    }

    /// The followed files, for health reporting.
    pub fn status(&self) -> Vec<FileStatus> {
        self.files
            .iter()
            .map(|t| FileStatus {
                path: t.path.clone(),
                file: t.key,
                read_offset: t.read_offset,
                acked_offset: t.acked,
                rotated: !t.watched,
            })
            .collect()
    }

    /// Paths that exist but cannot be opened (permission denied, …), with
    /// the error, for health reporting. A missing path is not listed: it is
    /// simply not followed yet.
    pub fn open_errors(&self) -> Vec<(PathBuf, io::ErrorKind)> {
        let mut v: Vec<_> = self
            .open_errors
            .iter()
            .map(|(p, k)| (p.clone(), *k))
            .collect();
        v.sort();
        v
    }

    /// The configuration in use.
    pub fn config(&self) -> &TailConfig {
        &self.config
    }

    /// Closes rotated-away files that are drained and fully acknowledged.
    fn retire_done(&mut self) {
        self.files.retain(|t| !(t.finished && t.fully_acked()));
    }

    fn forget_old_entries(&mut self) {
        let cutoff = unix_now().saturating_sub(self.config.forget_after.as_secs());
        self.pending.retain(|e| e.last_seen >= cutoff);
    }

    /// Matches the configured paths against the followed files and starts
    /// following new ones. `first` is the discovery at open, the only one
    /// where [`ReadFrom::End`] applies.
    fn discover(&mut self, first: bool) {
        let mut paths = Vec::new();
        for p in &self.config.paths {
            let name = p.file_name().unwrap_or_default();
            if glob::has_wildcard(name) {
                paths.extend(glob::expand(p));
            } else {
                paths.push(p.clone());
            }
        }
        for t in &mut self.files {
            t.watched = false;
        }
        for path in paths {
            // A missing file is normal (not created yet, or between rename and
            // re-creation): it is simply looked for again next poll.
            let Ok(meta) = std::fs::metadata(&path) else {
                // Gone: an open error reported for it is no longer current.
                self.open_errors.remove(&path);
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if self.mark_watched(FileKey::of(&meta)) {
                continue;
            }
            self.follow_new(path, first);
        }
    }

    /// Marks the followed file with `key` as still reachable; false if none.
    fn mark_watched(&mut self, key: FileKey) -> bool {
        match self.files.iter_mut().find(|t| t.key == key) {
            Some(t) => {
                t.watched = true;
                // Renamed back, or matched again by a pattern: keep reading.
                t.finished = false;
                true
            }
            None => false,
        }
    }

    fn follow_new(&mut self, path: PathBuf, first: bool) {
        let opened = File::open(&path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, meta))
        });
        let (file, meta) = match opened {
            Ok(v) => {
                self.open_errors.remove(&path);
                v
            }
            Err(e) => {
                if self.open_errors.insert(path.clone(), e.kind()) != Some(e.kind()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open log file");
                }
                return;
            }
        };
        // The path may have been replaced between stat and open; the
        // descriptor's own identity is the truth.
        let key = FileKey::of(&meta);
        if self.mark_watched(key) {
            return;
        }
        let size = meta.len();
        let start = match self.resume_point(&file, key, size) {
            Some(resume) => resume,
            None if first && self.config.read_from == ReadFrom::End => end_position(&file, size),
            None => (0, false),
        };
        self.track(path, file, key, size, start, true);
    }

    /// The checkpointed position of the file `key`, if the checkpoint knows it
    /// and the file still starts with the same bytes. A key match with other
    /// content is a reused inode or a rewrite: the entry is dropped.
    fn resume_point(&mut self, file: &File, key: FileKey, size: u64) -> Option<(u64, bool)> {
        let idx = self.pending.iter().position(|e| e.key == key)?;
        let entry = self.pending.swap_remove(idx);
        let same = entry.prefix.matches(file, size).unwrap_or(false) && entry.offset <= size;
        if same {
            Some((entry.offset, entry.mid_line))
        } else {
            tracing::info!(
                path = %entry.path.display(),
                "file identity changed since the checkpoint (inode reused or rewritten): reading from the start"
            );
            None
        }
    }

    /// After a restart, finds checkpointed files that were rotated away while
    /// the agent was down (renamed within their directory) so their unread
    /// tail is delivered before the new file's lines.
    fn recover_rotated(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            let entry = &self.pending[i];
            match find_by_key(&entry.path, entry.key) {
                Some((path, file, size)) if entry.prefix.matches(&file, size).unwrap_or(false) => {
                    let entry = self.pending.swap_remove(i);
                    if entry.offset > size {
                        continue;
                    }
                    tracing::info!(
                        path = %entry.path.display(),
                        now_at = %path.display(),
                        "draining a file rotated while the agent was down"
                    );
                    let start = (entry.offset, entry.mid_line);
                    self.track(entry.path, file, entry.key, size, start, false);
                }
                _ => i += 1,
            }
        }
    }

    fn track(
        &mut self,
        path: PathBuf,
        file: File,
        key: FileKey,
        size: u64,
        (offset, mid_line): (u64, bool),
        watched: bool,
    ) {
        let prefix =
            Prefix::read(&file, self.fingerprint_len(), size).unwrap_or_else(|_| Prefix::empty());
        self.next_id += 1;
        self.files.push(Tracked {
            id: self.next_id,
            path: path.into(),
            file,
            key,
            prefix,
            generation: 0,
            read_offset: offset,
            splitter: Splitter::new(self.config.max_line_bytes, offset, mid_line),
            delivered_end: offset,
            acked: offset,
            acked_mid_line: mid_line,
            watched,
            last_growth: None,
            finished: false,
            last_error: None,
        });
    }

    fn fingerprint_len(&self) -> u64 {
        self.config.fingerprint_bytes as u64
    }

    /// Reads new data of file `i` into lines. Returns the bytes read, or
    /// `None` after an I/O error (logged once per kind, retried next poll).
    fn read_file(&mut self, i: usize, budget: &mut usize, out: &mut Vec<Line>) -> Option<u64> {
        let limits = (self.fingerprint_len(), self.config.max_line_bytes);
        let t = &mut self.files[i];
        let result = read_into(t, &mut self.scratch, limits, budget, out);
        match result {
            Ok(n) => {
                t.last_error = None;
                Some(n)
            }
            Err(e) => {
                if t.last_error != Some(e.kind()) {
                    tracing::warn!(path = %t.path.display(), error = %e, "cannot read log file");
                    t.last_error = Some(e.kind());
                }
                None
            }
        }
    }
}

fn read_into(
    t: &mut Tracked,
    scratch: &mut [u8],
    (fp_len, max_line): (u64, usize),
    budget: &mut usize,
    out: &mut Vec<Line>,
) -> io::Result<u64> {
    let size = t.file.metadata()?.len();
    // Shrunk below what we read, or the first bytes changed: truncated
    // (copytruncate, `> file`), possibly already refilled past our offset.
    if size < t.read_offset || !t.prefix.matches(&t.file, size)? {
        tracing::info!(path = %t.path.display(), "log file truncated: reading from the start");
        if let Some(raw) = t.splitter.flush(t.read_offset) {
            out.push(to_line(t, raw, fp_len));
        }
        t.generation += 1;
        t.read_offset = 0;
        t.delivered_end = 0;
        t.acked = 0;
        t.acked_mid_line = false;
        t.splitter = Splitter::new(max_line, 0, false);
        t.prefix = Prefix::empty();
    }
    let mut total = 0u64;
    let mut raws = Vec::new();
    while t.read_offset < size && *budget > 0 {
        let left = usize::try_from(size - t.read_offset).unwrap_or(usize::MAX);
        let want = left.min(scratch.len()).min(*budget);
        let n = match t.file.read_at(&mut scratch[..want], t.read_offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        t.splitter.feed(&scratch[..n], t.read_offset, &mut raws);
        t.read_offset += n as u64;
        *budget -= n;
        total += n as u64;
    }
    // Grow the fingerprint with the file until it covers the configured size,
    // so identity checks get stronger as the file gets longer. Before the
    // lines are made: most of them can then take its hash as theirs.
    if t.prefix.len < fp_len && size > t.prefix.len {
        t.prefix = Prefix::read(&t.file, fp_len, size)?;
    }
    for raw in raws {
        out.push(to_line(t, raw, fp_len));
    }
    Ok(total)
}

fn to_line(t: &mut Tracked, raw: RawLine, fp_len: u64) -> Line {
    t.delivered_end = t.delivered_end.max(raw.end);
    let want = fp_len.min(raw.end);
    let fingerprint = if t.prefix.len == want {
        t.prefix.hash
    } else {
        // One of the first few lines of a file: hash exactly the bytes up to
        // its end. Those bytes were just read, so this fails only if the file
        // was truncated meanwhile, and then the line's content is gone anyway.
        Prefix::read(&t.file, want, raw.end).map_or(t.prefix.hash, |p| p.hash)
    };
    Line {
        path: t.path.clone(),
        file: t.key,
        offset: raw.offset,
        bytes: raw.bytes,
        truncated: raw.truncated,
        unterminated: raw.unterminated,
        fingerprint,
        ack: AckToken {
            track: t.id,
            generation: t.generation,
            end: raw.end,
            mid_line: raw.mid_line,
        },
    }
}

/// Start position for [`ReadFrom::End`]: the end, or inside the last line if
/// it is incomplete, so its tail is not delivered as if it were a whole line.
fn end_position(file: &File, size: u64) -> (u64, bool) {
    if size == 0 {
        return (0, false);
    }
    let mut last = [0u8; 1];
    let complete = file
        .read_at(&mut last, size - 1)
        .map(|n| n == 1 && last[0] == b'\n');
    (size, !complete.unwrap_or(true))
}

/// Looks in the directory of `path` for a regular file with identity `key`.
fn find_by_key(path: &Path, key: FileKey) -> Option<(PathBuf, File, u64)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || FileKey::of(&meta) != key {
            continue;
        }
        let file = File::open(entry.path()).ok()?;
        let meta = file.metadata().ok()?;
        if FileKey::of(&meta) == key {
            return Some((entry.path(), file, meta.len()));
        }
    }
    None
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
