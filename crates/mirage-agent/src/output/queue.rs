//! The disk-backed queue between the sources and the sender: nothing read
//! from a log is lost while the server is down or restarting.
//!
//! # Layout
//! A directory of append-only segment files named after the sequence number
//! of their first record (`00000000000000000042.seg`), plus `position`, the
//! sequence number of the first record not yet acknowledged. A record on disk
//! is `len: u32 LE`, `crc32(len bytes ‖ payload): u32 LE`, `payload`.
//!
//! # Crash safety
//! On open every segment is scanned and checked: a torn or corrupt tail (a
//! crash mid-append, a disk that lost the last page) is truncated at the last
//! good record, with a warning. Appends are single `write` calls, so a process
//! crash loses nothing that [`DiskQueue::append`] returned for; a power loss
//! can lose what was not yet flushed by [`DiskQueue::sync`]. `position` is
//! replaced atomically (temp file, rename), so it is old or new, never torn;
//! if it is missing or unreadable the queue restarts at its oldest record
//! (duplicates, never loss).
//!
//! # Delivery
//! [`DiskQueue::read_next`] hands out records without consuming them;
//! [`DiskQueue::ack`] consumes everything up to a sequence number and persists
//! that position; [`DiskQueue::rewind`] goes back to the first unacknowledged
//! record (after a lost connection). The sender acknowledges a batch once it
//! has been written to the socket: TCP syslog has no application-level ack, so
//! a batch in the kernel's buffers when the server dies, or written between a
//! crash and the position reaching disk, is either lost with the server's
//! socket or sent again. Delivery is therefore at-least-once and the server
//! drops duplicates by the record id ([`super::Record::id`]).
//!
//! # Bounded size
//! The segments never take more than `max_bytes`. When an append would exceed
//! it, the oldest segments are deleted, acknowledged or not: the newest logs
//! matter most to detection. Dropped records are counted
//! ([`QueueStats::dropped`]), and one warning is logged when dropping starts
//! (a burst); the burst ends, with a summary line, once the queue has drained
//! below half its limit. Dropping is per segment, so `segment_bytes` is the
//! granularity; it is at most half of `max_bytes`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes before each payload: length and CRC32.
pub const RECORD_HEADER: usize = 8;
const SEGMENT_EXT: &str = "seg";
const POSITION_FILE: &str = "position";
const POSITION_TMP: &str = "position.tmp";

/// Sizes of a [`DiskQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most bytes all segments may take on disk. Default 256 MiB.
    pub max_bytes: u64,
    /// Size at which the active segment is closed and a new one started; also
    /// the unit in which space is reclaimed. Default 8 MiB; must be at most
    /// `max_bytes / 2` so the active segment alone never fills the queue.
    pub segment_bytes: u64,
    /// Largest payload accepted. Default 1 MiB; must fit in a segment with its
    /// header.
    pub max_record_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
        }
    }
}

impl QueueConfig {
    /// Checks the relations between the sizes.
    pub fn validate(&self) -> Result<(), QueueError> {
        if self.segment_bytes == 0 || self.segment_bytes > self.max_bytes / 2 {
            return Err(QueueError::InvalidConfig(
                "segment_bytes must be between 1 and max_bytes / 2",
            ));
        }
        let largest = self.max_record_bytes as u64 + RECORD_HEADER as u64;
        if self.max_record_bytes > u32::MAX as usize || largest > self.segment_bytes {
            return Err(QueueError::InvalidConfig(
                "max_record_bytes plus its 8-byte header must fit in segment_bytes",
            ));
        }
        Ok(())
    }
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The filesystem failed.
    #[error("queue I/O: {0}")]
    Io(#[from] io::Error),
    /// A payload larger than [`QueueConfig::max_record_bytes`].
    #[error("record of {len} bytes exceeds the queue's {max}-byte limit")]
    RecordTooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Inconsistent [`QueueConfig`].
    #[error("invalid queue config: {0}")]
    InvalidConfig(&'static str),
}

/// Counters of a [`DiskQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Records appended and not yet acknowledged (nor dropped).
    pub pending: u64,
    /// Bytes the segments take on disk.
    pub bytes: u64,
    /// Sequence number the next append gets.
    pub next_seq: u64,
    /// Sequence number of the first unacknowledged record.
    pub acked_seq: u64,
    /// Records dropped for space (or found corrupt) since open.
    pub dropped: u64,
    /// Drop bursts since open (one warning each).
    pub drop_bursts: u64,
}

/// A record handed out by [`DiskQueue::read_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    /// Its sequence number, to pass to [`DiskQueue::ack`].
    pub seq: u64,
    /// The bytes given to [`DiskQueue::append`].
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    /// Bytes of whole, checked records.
    len: u64,
    count: u64,
}

impl Segment {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.count
    }
}

/// A place in the queue: the record `seq` starts at `offset` in the segment
/// whose first record is `seg_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    seg_first: u64,
    offset: u64,
}

#[derive(Debug)]
struct SegReader {
    seg_first: u64,
    offset: u64,
    file: BufReader<File>,
}

/// The queue. Single-owner and synchronous (its operations are short file
/// I/O, usually in the page cache); share it behind a mutex.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    cfg: QueueConfig,
    /// Oldest first; never empty: the last one is the active segment.
    segments: VecDeque<Segment>,
    writer: File,
    next_seq: u64,
    total_bytes: u64,
    /// First unacknowledged record.
    head: Cursor,
    /// Next record to hand out.
    read: Cursor,
    reader: Option<SegReader>,
    /// Records handed out and not acknowledged, with the cursor after each.
    inflight: VecDeque<(u64, Cursor)>,
    dropped: u64,
    drop_bursts: u64,
    in_burst: bool,
    burst_dropped: u64,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, checking every segment and
    /// truncating a torn tail.
    pub fn open(dir: impl AsRef<Path>, cfg: QueueConfig) -> Result<Self, QueueError> {
        cfg.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let _ = fs::remove_file(dir.join(POSITION_TMP));

        let mut firsts = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
                continue;
            }
            match path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(first) => firsts.push((first, path)),
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a stray file in the queue directory")
                }
            }
        }
        firsts.sort();

        let mut segments = VecDeque::new();
        let n = firsts.len();
        for (i, (first_seq, path)) in firsts.into_iter().enumerate() {
            let (len, count) = scan(&path, None, cfg.max_record_bytes)?;
            let file_len = fs::metadata(&path)?.len();
            if len < file_len {
                // A torn append (crash) or a corrupt page: keep what checks.
                tracing::warn!(
                    path = %path.display(),
                    kept = len,
                    lost = file_len - len,
                    "truncating a torn or corrupt queue segment tail"
                );
                OpenOptions::new().write(true).open(&path)?.set_len(len)?;
            }
            if count == 0 && i + 1 < n {
                fs::remove_file(&path)?;
                continue;
            }
            segments.push_back(Segment {
                first_seq,
                path,
                len,
                count,
            });
        }

        let position = read_position(&dir.join(POSITION_FILE));
        if segments.is_empty() {
            let first_seq = position.unwrap_or(0);
            let path = segment_path(&dir, first_seq);
            File::create(&path)?;
            segments.push_back(Segment {
                first_seq,
                path,
                len: 0,
                count: 0,
            });
        }
        let last = segments.back().expect("at least one segment");
        let next_seq = last.end_seq();
        let writer = OpenOptions::new().append(true).open(&last.path)?;
        let total_bytes = segments.iter().map(|s| s.len).sum();

        let mut q = DiskQueue {
            dir,
            cfg,
            segments,
            writer,
            next_seq,
            total_bytes,
            head: Cursor {
                seq: 0,
                seg_first: 0,
                offset: 0,
            },
            read: Cursor {
                seq: 0,
                seg_first: 0,
                offset: 0,
            },
            reader: None,
            inflight: VecDeque::new(),
            dropped: 0,
            drop_bursts: 0,
            in_burst: false,
            burst_dropped: 0,
        };
        q.head = q.locate(position.unwrap_or(0))?;
        q.read = q.head;
        q.delete_consumed()?;
        Ok(q)
    }

    /// The cursor of the first record with sequence number `>= seq`.
    fn locate(&self, seq: u64) -> Result<Cursor, QueueError> {
        for seg in &self.segments {
            if seq < seg.first_seq {
                return Ok(Cursor {
                    seq: seg.first_seq,
                    seg_first: seg.first_seq,
                    offset: 0,
                });
            }
            if seq < seg.end_seq() {
                let (offset, _) = scan(
                    &seg.path,
                    Some(seq - seg.first_seq),
                    self.cfg.max_record_bytes,
                )?;
                return Ok(Cursor {
                    seq,
                    seg_first: seg.first_seq,
                    offset,
                });
            }
        }
        let last = self.segments.back().expect("at least one segment");
        Ok(Cursor {
            seq: self.next_seq,
            seg_first: last.first_seq,
            offset: last.len,
        })
    }

    /// Appends one record; returns its sequence number. Drops the oldest
    /// segments first if the queue would outgrow `max_bytes`.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, QueueError> {
        if payload.len() > self.cfg.max_record_bytes {
            return Err(QueueError::RecordTooLarge {
                len: payload.len(),
                max: self.cfg.max_record_bytes,
            });
        }
        let size = (RECORD_HEADER + payload.len()) as u64;
        let active_len = self.segments.back().map_or(0, |s| s.len);
        if active_len > 0 && active_len + size > self.cfg.segment_bytes {
            self.rotate()?;
        }
        while self.total_bytes + size > self.cfg.max_bytes && self.segments.len() > 1 {
            self.drop_oldest()?;
        }

        let len = (payload.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(payload);
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&crc.finalize().to_le_bytes());
        buf.extend_from_slice(payload);
        // One write: a crash leaves the record whole or detectably torn.
        if let Err(e) = self.writer.write_all(&buf) {
            // Cut a partial write off so later appends stay aligned.
            let active = self.segments.back().expect("at least one segment");
            let _ = self.writer.set_len(active.len);
            return Err(e.into());
        }
        let active = self.segments.back_mut().expect("at least one segment");
        active.len += size;
        active.count += 1;
        self.total_bytes += size;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    fn rotate(&mut self) -> Result<(), QueueError> {
        let path = segment_path(&self.dir, self.next_seq);
        let writer = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        // No fsync here: on this path it would cost one disk sync per segment
        // on the hot path; power-loss durability is `sync()`'s job, called by
        // the owner on its own schedule.
        self.writer = writer;
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            path,
            len: 0,
            count: 0,
        });
        Ok(())
    }

    /// Deletes the oldest segment, counting its unacknowledged records.
    fn drop_oldest(&mut self) -> Result<(), QueueError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(());
        };
        let lost = seg
            .end_seq()
            .saturating_sub(self.head.seq.max(seg.first_seq));
        self.total_bytes -= seg.len;
        remove_if_exists(&seg.path)?;
        let next = self.segments.front().expect("the active segment remains");
        let new_head = Cursor {
            seq: next.first_seq,
            seg_first: next.first_seq,
            offset: 0,
        };
        if self.head.seq < new_head.seq {
            self.head = new_head;
        }
        if self.read.seq < new_head.seq {
            self.read = new_head;
            self.reader = None;
        }
        let head_seq = self.head.seq;
        self.inflight.retain(|(seq, _)| *seq >= head_seq);
        if lost > 0 {
            self.count_dropped(lost);
        }
        Ok(())
    }

    fn count_dropped(&mut self, lost: u64) {
        self.dropped += lost;
        self.burst_dropped += lost;
        if !self.in_burst {
            self.in_burst = true;
            self.drop_bursts += 1;
            tracing::warn!(
                dropped = lost,
                max_bytes = self.cfg.max_bytes,
                "output queue full: dropping the oldest records until it drains"
            );
        }
    }

    fn end_burst_if_drained(&mut self) {
        if self.in_burst && self.total_bytes <= self.cfg.max_bytes / 2 {
            tracing::info!(
                dropped = self.burst_dropped,
                "output queue drained; records dropped during the full period"
            );
            self.in_burst = false;
            self.burst_dropped = 0;
        }
    }

    /// The next record after the last one handed out, or `None` when all
    /// appended records have been handed out.
    pub fn read_next(&mut self) -> Result<Option<QueuedRecord>, QueueError> {
        loop {
            if self.read.seq >= self.next_seq {
                return Ok(None);
            }
            let Some(idx) = self.segment_index(self.read.seg_first) else {
                // The cursor's segment was deleted (it had been read to its
                // end): continue at the next one that exists.
                self.read = self.normalize(self.read);
                self.reader = None;
                if self.segment_index(self.read.seg_first).is_none() {
                    return Ok(None);
                }
                continue;
            };
            let seg = &self.segments[idx];
            if self.read.offset >= seg.len || self.read.seq >= seg.end_seq() {
                let Some(next) = self.segments.get(idx + 1) else {
                    return Ok(None);
                };
                self.read = Cursor {
                    seq: next.first_seq,
                    seg_first: next.first_seq,
                    offset: 0,
                };
                self.reader = None;
                continue;
            }
            let seg_len = seg.len;
            let path = seg.path.clone();
            match self.read_at_cursor(&path, seg_len)? {
                Some(payload) => {
                    let seq = self.read.seq;
                    self.read.seq += 1;
                    self.read.offset += (RECORD_HEADER + payload.len()) as u64;
                    if let Some(r) = &mut self.reader {
                        r.offset = self.read.offset;
                    }
                    self.inflight.push_back((seq, self.read));
                    return Ok(Some(QueuedRecord { seq, payload }));
                }
                None => {
                    // Corrupt in place (disk fault after the open-time check):
                    // skip the rest of this segment rather than stall forever.
                    let seg = &self.segments[idx];
                    let lost = seg.end_seq().saturating_sub(self.read.seq);
                    tracing::warn!(
                        path = %seg.path.display(),
                        lost,
                        "corrupt record in the output queue; skipping the rest of its segment"
                    );
                    self.dropped += lost;
                    self.read = Cursor {
                        seq: seg.end_seq(),
                        seg_first: seg.first_seq,
                        offset: seg.len,
                    };
                    self.reader = None;
                }
            }
        }
    }

    /// Reads up to `max_records` records or about `max_bytes` of payload
    /// (always at least one record if any is available).
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<QueuedRecord>, QueueError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_records && bytes < max_bytes {
            match self.read_next()? {
                Some(r) => {
                    bytes += r.payload.len();
                    out.push(r);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// The record at the read cursor, `None` if it fails its checks.
    fn read_at_cursor(&mut self, path: &Path, seg_len: u64) -> Result<Option<Vec<u8>>, QueueError> {
        let positioned = matches!(&self.reader, Some(r) if r.seg_first == self.read.seg_first && r.offset == self.read.offset);
        if !positioned {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(self.read.offset))?;
            self.reader = Some(SegReader {
                seg_first: self.read.seg_first,
                offset: self.read.offset,
                file: BufReader::with_capacity(64 * 1024, f),
            });
        }
        let r = self.reader.as_mut().expect("reader just set");
        let mut header = [0u8; RECORD_HEADER];
        r.file.read_exact(&mut header)?;
        let len_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > self.cfg.max_record_bytes
            || self.read.offset + (RECORD_HEADER + len) as u64 > seg_len
        {
            self.reader = None;
            return Ok(None);
        }
        let mut payload = vec![0u8; len];
        r.file.read_exact(&mut payload)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(&payload);
        if h.finalize() != crc {
            self.reader = None;
            return Ok(None);
        }
        Ok(Some(payload))
    }

    /// Acknowledges every handed-out record up to and including `seq`:
    /// persists the new position and deletes segments no longer needed.
    /// Sequence numbers not handed out are ignored.
    pub fn ack(&mut self, seq: u64) -> Result<(), QueueError> {
        let mut moved = false;
        while let Some(&(s, after)) = self.inflight.front() {
            if s > seq {
                break;
            }
            self.inflight.pop_front();
            if after.seq > self.head.seq {
                self.head = after;
                moved = true;
            }
        }
        if moved {
            self.persist_position()?;
            self.delete_consumed()?;
        }
        Ok(())
    }

    /// Goes back to the first unacknowledged record: everything handed out
    /// since is handed out again.
    pub fn rewind(&mut self) {
        self.read = self.head;
        self.reader = None;
        self.inflight.clear();
    }

    /// Flushes the active segment to stable storage (power-loss safety for
    /// what was appended so far).
    pub fn sync(&mut self) -> Result<(), QueueError> {
        self.writer.sync_data()?;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> QueueStats {
        let pending = self
            .segments
            .iter()
            .map(|s| s.end_seq().saturating_sub(self.head.seq.max(s.first_seq)))
            .sum();
        QueueStats {
            pending,
            bytes: self.total_bytes,
            next_seq: self.next_seq,
            acked_seq: self.head.seq,
            dropped: self.dropped,
            drop_bursts: self.drop_bursts,
        }
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `c` if its segment still exists, else the start of the first later
    /// segment (or the end of the queue).
    fn normalize(&self, c: Cursor) -> Cursor {
        if self.segment_index(c.seg_first).is_some() {
            return c;
        }
        match self.segments.iter().find(|s| s.first_seq > c.seg_first) {
            Some(s) => Cursor {
                seq: s.first_seq.max(c.seq),
                seg_first: s.first_seq,
                offset: 0,
            },
            None => {
                let last = self.segments.back().expect("at least one segment");
                Cursor {
                    seq: self.next_seq,
                    seg_first: last.first_seq,
                    offset: last.len,
                }
            }
        }
    }

    fn segment_index(&self, first_seq: u64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&first_seq, |s| s.first_seq)
            .ok()
    }

    fn persist_position(&self) -> Result<(), QueueError> {
        let tmp = self.dir.join(POSITION_TMP);
        let seq = self.head.seq.to_le_bytes();
        let mut buf = seq.to_vec();
        buf.extend_from_slice(&crc32fast::hash(&seq).to_le_bytes());
        // No fsync: a position that does not survive a power loss only means
        // records are sent again (at-least-once), and one fsync per batch
        // would cap throughput at the disk's sync rate.
        fs::write(&tmp, &buf)?;
        fs::rename(&tmp, self.dir.join(POSITION_FILE))?;
        Ok(())
    }

    /// Deletes the segments before the head's (never the active one).
    fn delete_consumed(&mut self) -> Result<(), QueueError> {
        while self.segments.len() > 1 {
            let front = self.segments.front().expect("len > 1");
            if front.end_seq() > self.head.seq {
                break;
            }
            let seg = self.segments.pop_front().expect("len > 1");
            self.total_bytes -= seg.len;
            remove_if_exists(&seg.path)?;
        }
        // A head (or read cursor) at the very end of a deleted segment moves
        // to the start of the next one.
        self.head = self.normalize(self.head);
        let read = self.normalize(self.read);
        if read != self.read {
            self.read = read;
            self.reader = None;
        }
        self.end_burst_if_drained();
        Ok(())
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{SEGMENT_EXT}"))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The persisted head, `None` if absent or damaged.
fn read_position(path: &Path) -> Option<u64> {
    let buf = fs::read(path).ok()?;
    let seq: [u8; 8] = buf.get(..8)?.try_into().ok()?;
    let crc = u32::from_le_bytes(buf.get(8..12)?.try_into().ok()?);
    (buf.len() == 12 && crc32fast::hash(&seq) == crc).then(|| u64::from_le_bytes(seq))
}

/// Walks a segment's records, checking each, and returns (bytes, records)
/// of the good prefix; with `stop_at`, stops after that many records.
fn scan(path: &Path, stop_at: Option<u64>, max_record: usize) -> io::Result<(u64, u64)> {
    let f = File::open(path)?;
    let file_len = f.metadata()?.len();
    let mut r = BufReader::with_capacity(64 * 1024, f);
    let (mut off, mut count) = (0u64, 0u64);
    let mut payload = Vec::new();
    loop {
        if stop_at == Some(count) || off + RECORD_HEADER as u64 > file_len {
            break;
        }
        let mut header = [0u8; RECORD_HEADER];
        r.read_exact(&mut header)?;
        let len_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > max_record || off + (RECORD_HEADER + len) as u64 > file_len {
            break;
        }
        payload.resize(len, 0);
        r.read_exact(&mut payload)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(&payload);
        if h.finalize() != crc {
            break;
        }
        off += (RECORD_HEADER + len) as u64;
        count += 1;
    }
    Ok((off, count))
}
