//! JSON Lines files rotated by UTC day (`events-YYYY-MM-DD.jsonl`), and stdout.
//!
//! Disk quota (`[sensor] events_max_bytes`): a day is written in parts
//! (`events-YYYY-MM-DD.jsonl`, then `events-YYYY-MM-DD_0001.jsonl`, …;
//! names sort in write order) of at most a sixteenth of the quota each, and
//! once the files together pass the quota the oldest are deleted, never the
//! one being written, with a `storage.evict` event naming them in the
//! current file. A flood then costs old events, not the disk.
//!
//! Durability: events are taken from the queue in batches (at most 5 ms
//! apart under load) and each batch is written with one `write` call as soon
//! as it is taken, so a process crash (even `kill -9`) loses only events
//! still in the in-memory queue, which under normal load means those of the
//! last few milliseconds. File data is
//! also `fdatasync`ed at least once a second, so a machine crash loses at
//! most about the last second. A torn last line (disk full, power loss) is
//! closed with a newline before the next write, so every line stays whole.
//! On a write error the batch is kept and retried every second: sessions
//! wait on the full queue instead of events being dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mirage_core::{Event, EventKind, Transport};
use mirage_net::EventRx;

/// Counters the writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Events written to every enabled output.
    pub written: AtomicU64,
    /// Write errors seen (each retried).
    pub write_errors: AtomicU64,
    /// Event files deleted to stay within the quota.
    pub evicted_files: AtomicU64,
}

/// What the writer writes where.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// The event directory.
    pub dir: PathBuf,
    /// Also write every event to standard output.
    pub stdout: bool,
    /// Most bytes all event files together may take; 0: no quota.
    pub max_bytes: u64,
    /// The sensor name for the writer's own events (`storage.evict`).
    pub sensor: String,
}

/// Handle on the writer thread.
pub struct EventWriter {
    thread: std::thread::JoinHandle<()>,
    stats: Arc<WriterStats>,
}

/// Most events taken from the queue per batch.
const BATCH: usize = 4096;
/// How often written data is synced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// After a batch smaller than [`BATCH`], wait this long before taking the
/// next one, so that under load events coalesce into few large writes
/// instead of waking this thread for every event (a busy honeypot emits one
/// event per command). Bounds how late an event reaches the kernel.
const COALESCE: Duration = Duration::from_millis(5);

impl EventWriter {
    /// Start writing events from `rx` as `settings` say.
    /// The thread ends, after writing everything, once every sender is gone.
    pub fn start(
        rx: EventRx,
        settings: WriterSettings,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.dir)?;
        let stats = Arc::new(WriterStats::default());
        let stdout = settings.stdout;
        let mut state = DailyFile {
            dir: settings.dir,
            day: None,
            part: 0,
            file: None,
            file_bytes: 0,
            dirty: false,
            part_max: part_max(settings.max_bytes),
            quota: settings.max_bytes,
            since_check: 0,
            sensor: settings.sensor,
        };
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("mirage-events".into())
            .spawn(move || writer_loop(rx, &mut state, stdout, &st, &rt))?;
        Ok(EventWriter { thread, stats })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }

    /// Wait for the writer to drain and finish (after all senders dropped).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// The path of the (first) event file for `day`.
pub fn day_path(dir: &Path, day: NaiveDate) -> PathBuf {
    part_path(dir, day, 0)
}

/// The path of part `part` of `day`'s events: part 0 is
/// `events-YYYY-MM-DD.jsonl`, later ones `events-YYYY-MM-DD_NNNN.jsonl`
/// (`_` sorts after `.`, so a plain name sort is the write order).
pub fn part_path(dir: &Path, day: NaiveDate, part: u32) -> PathBuf {
    let day = day.format("%Y-%m-%d");
    if part == 0 {
        dir.join(format!("events-{day}.jsonl"))
    } else {
        dir.join(format!("events-{day}_{part:04}.jsonl"))
    }
}

/// Whether `name` is one of the writer's event files.
pub fn is_event_file(name: &str) -> bool {
    name.starts_with("events-") && name.ends_with(".jsonl")
}

/// The event files in `dir`, oldest first (their names sort in write
/// order, parts included).
pub fn event_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_event_file(n))
        .collect();
    v.sort();
    v
}

/// Largest part under a quota: a sixteenth of it (so eviction frees
/// space in steps of a sixteenth), within 64 KiB..256 MiB.
fn part_max(quota: u64) -> u64 {
    if quota == 0 {
        u64::MAX
    } else {
        (quota / 16).clamp(64 << 10, 256 << 20)
    }
}

struct DailyFile {
    dir: PathBuf,
    day: Option<NaiveDate>,
    part: u32,
    file: Option<File>,
    /// Size of the open file.
    file_bytes: u64,
    dirty: bool,
    part_max: u64,
    quota: u64,
    /// Bytes written since the quota was last checked.
    since_check: u64,
    sensor: String,
}

impl DailyFile {
    /// The file to append `len` bytes of `day`'s events to: the open one,
    /// or a new part when it is full, or `day`'s last part.
    fn file_for(&mut self, day: NaiveDate, len: u64) -> std::io::Result<&mut File> {
        let full = self.file_bytes > 0 && self.file_bytes + len > self.part_max;
        if self.day != Some(day) || self.file.is_none() || full {
            if let Some(f) = self.file.take() {
                let _ = f.sync_data();
            }
            if self.day != Some(day) {
                // A new day (or a restart) continues the day's last part,
                // unless it is full.
                self.part = last_part(&self.dir, day);
                self.day = Some(day);
                let size = std::fs::metadata(part_path(&self.dir, day, self.part))
                    .map(|m| m.len())
                    .unwrap_or(0);
                if size > 0 && size + len > self.part_max {
                    self.part += 1;
                }
            } else if full {
                self.part += 1;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(part_path(&self.dir, day, self.part))?;
            self.file_bytes = repair_torn_line(&mut f)?;
            self.file = Some(f);
            // A new file is a moment to look at the quota.
            self.since_check = self.part_max;
        }
        // Just set above when missing.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no event file"))
    }

    /// Past the quota, delete the oldest event files (never the open one)
    /// until under it; returns the names deleted and their bytes.
    fn enforce_quota(&mut self) -> (Vec<String>, u64) {
        self.since_check = 0;
        if self.quota == 0 {
            return (Vec::new(), 0);
        }
        let current = match self.day {
            Some(d) => part_path(&self.dir, d, self.part),
            None => PathBuf::new(),
        };
        let files: Vec<(String, u64)> = event_files(&self.dir)
            .into_iter()
            .filter_map(|n| {
                let len = std::fs::metadata(self.dir.join(&n)).ok()?.len();
                Some((n, len))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, l)| l).sum();
        let mut gone = Vec::new();
        let mut freed = 0;
        for (name, len) in files {
            if total <= self.quota {
                break;
            }
            if self.dir.join(&name) == current {
                continue;
            }
            if std::fs::remove_file(self.dir.join(&name)).is_ok() {
                total -= len;
                freed += len;
                gone.push(name);
            }
        }
        (gone, freed)
    }
}

/// The highest part of `day` already on disk (0 when none).
fn last_part(dir: &Path, day: NaiveDate) -> u32 {
    let stem = format!("events-{}_", day.format("%Y-%m-%d"));
    event_files(dir)
        .iter()
        .filter_map(|n| {
            n.strip_prefix(&stem)?
                .strip_suffix(".jsonl")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// If the file does not end in a newline (a torn write), end the line so the
/// next event starts on its own line. Returns the file's length after.
fn repair_torn_line(f: &mut File) -> std::io::Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(0);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
        return Ok(len + 1);
    }
    Ok(len)
}

/// The writer's own event: `files` (`bytes` in all) were deleted to stay
/// within `quota`. No client caused it directly, so the addresses are
/// unspecified.
fn evict_event(sensor: &str, files: Vec<String>, bytes: u64, quota: u64) -> Event {
    let nowhere = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let mut ev = mirage_net::envelope(
        sensor,
        "sensor",
        Transport::Tcp,
        nowhere,
        nowhere,
        None,
        EventKind::StorageEvict {
            files,
            bytes,
            quota,
        },
    );
    ev.src_port = None;
    ev.dst_ip = None;
    ev.dst_port = None;
    ev
}

fn writer_loop(
    mut rx: EventRx,
    state: &mut DailyFile,
    stdout: bool,
    stats: &WriterStats,
    rt: &tokio::runtime::Handle,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // Serialized lines grouped by day (a batch can cross midnight).
    let mut pending: Vec<(NaiveDate, Vec<u8>)> = Vec::new();
    let mut last_sync = Instant::now();
    loop {
        let got = rt.block_on(async {
            tokio::time::timeout(SYNC_EVERY, rx.recv_many(&mut batch, BATCH)).await
        });
        let closed = matches!(got, Ok(0));
        let mut events = batch.len() as u64;
        for ev in batch.drain(..) {
            let day = ev.ts.date_naive();
            let mut line = ev.to_json().into_bytes();
            line.push(b'\n');
            match pending.last_mut() {
                Some((d, buf)) if *d == day => buf.extend_from_slice(&line),
                _ => pending.push((day, line)),
            }
        }
        if state.since_check >= state.part_max / 4 {
            let (files, bytes) = state.enforce_quota();
            if !files.is_empty() {
                let n = files.len() as u64;
                stats.evicted_files.fetch_add(n, Ordering::Relaxed);
                tracing::info!(
                    files = n,
                    bytes,
                    quota = state.quota,
                    "event files over the quota: deleted the oldest"
                );
                let ev = evict_event(&state.sensor, files, bytes, state.quota);
                let mut line = ev.to_json().into_bytes();
                line.push(b'\n');
                let day = ev.ts.date_naive();
                pending.push((day, line));
                events += 1;
            }
        }
        while !pending.is_empty() {
            match write_pending(state, &pending, stdout) {
                Ok(()) => {
                    pending.clear();
                    stats.written.fetch_add(events, Ordering::Relaxed);
                }
                Err(e) => {
                    let n = stats.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(error = %e, dir = %state.dir.display(), "cannot write events; holding them and retrying");
                    }
                    state.file = None;
                    std::thread::sleep(SYNC_EVERY);
                }
            }
        }
        if state.dirty && (closed || last_sync.elapsed() >= SYNC_EVERY) {
            if let Some(f) = &state.file {
                let _ = f.sync_data();
            }
            state.dirty = false;
            last_sync = Instant::now();
        }
        if closed {
            break;
        }
        if got.is_ok() && !rx.is_closed() && rx.len() < BATCH {
            std::thread::sleep(COALESCE);
        }
    }
}

fn write_pending(
    state: &mut DailyFile,
    pending: &[(NaiveDate, Vec<u8>)],
    stdout: bool,
) -> std::io::Result<()> {
    for (day, buf) in pending {
        state.file_for(*day, buf.len() as u64)?.write_all(buf)?;
        state.file_bytes += buf.len() as u64;
        state.since_check += buf.len() as u64;
        state.dirty = true;
        if stdout {
            let mut out = std::io::stdout().lock();
            out.write_all(buf)?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use mirage_core::{Event, EventKind, SCHEMA_VERSION, Transport};

    fn ev(ts: chrono::DateTime<Utc>) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            id: mirage_core::new_id(),
            ts,
            sensor: "t".into(),
            service: "redis".into(),
            transport: Transport::Tcp,
            src_ip: "127.0.0.1".parse().unwrap(),
            src_port: Some(1),
            dst_ip: None,
            dst_port: None,
            session: None,
            tags: vec![],
            kind: EventKind::SessionConnect {},
        }
    }

    fn settings(dir: &Path, max_bytes: u64) -> WriterSettings {
        WriterSettings {
            dir: dir.to_owned(),
            stdout: false,
            max_bytes,
            sensor: "t".into(),
        }
    }

    #[test]
    fn a_quota_splits_days_into_parts_and_evicts_the_oldest() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let old = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        // An old day's file from before, bigger than the whole quota.
        std::fs::write(day_path(dir.path(), old.date_naive()), vec![b'\n'; 2 << 20]).unwrap();
        let quota = 1 << 20;
        let now = Utc::now();
        // First two batches: the old day goes, and the event says so.
        let (tx, rx) = mirage_net::event_channel(64);
        let w = EventWriter::start(rx, settings(dir.path(), quota), rt.handle().clone()).unwrap();
        rt.block_on(async {
            tx.send(ev(now)).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            tx.send(ev(now)).await;
        });
        drop(tx);
        w.join();
        assert!(!day_path(dir.path(), old.date_naive()).exists());
        let today = std::fs::read_to_string(day_path(dir.path(), now.date_naive())).unwrap();
        let evicted: Vec<Event> = today
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap())
            .filter(|e| e.kind.name() == "storage.evict")
            .collect();
        assert_eq!(evicted.len(), 1, "{today}");
        assert_eq!(evicted[0].service, "sensor");
        let EventKind::StorageEvict {
            files,
            bytes,
            quota: q,
        } = &evicted[0].kind
        else {
            unreachable!()
        };
        assert_eq!(files, &["events-2026-11-01.jsonl".to_owned()]);
        assert_eq!((*bytes, *q), (2 << 20, quota));

        // About 6 MB of events in one day: parts, and old parts go.
        let (tx, rx) = mirage_net::event_channel(64);
        let w = EventWriter::start(rx, settings(dir.path(), quota), rt.handle().clone()).unwrap();
        rt.block_on(async {
            for _ in 0..30_000 {
                tx.send(ev(now)).await;
            }
        });
        drop(tx);
        let stats = w.stats();
        w.join();
        let mut names: Vec<(String, u64)> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        names.sort();
        let total: u64 = names.iter().map(|(_, l)| l).sum();
        // Within the quota, give or take the part written last.
        assert!(total <= quota + part_max(quota) * 2, "{total} {names:?}");
        assert!(
            names.len() > 1 && names.iter().all(|(n, _)| is_event_file(n)),
            "{names:?}"
        );
        assert!(stats.evicted_files.load(Ordering::Relaxed) > 1);
        // What remains is whole lines.
        for (n, _) in &names {
            for l in std::fs::read_to_string(dir.path().join(n)).unwrap().lines() {
                serde_json::from_str::<Event>(l).unwrap();
            }
        }
    }

    #[test]
    fn part_names_sort_in_write_order() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let mut names: Vec<PathBuf> = [12, 0, 2, 1]
            .into_iter()
            .map(|p| part_path(Path::new("/x"), d, p))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [0, 1, 2, 12].map(|p| part_path(Path::new("/x"), d, p))
        );
    }

    #[test]
    fn rotates_by_utc_day_and_repairs_torn_lines() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d1 = Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 59).unwrap();
        let d2 = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 1).unwrap();
        // A torn line left by an earlier crash.
        std::fs::write(day_path(dir.path(), d1.date_naive()), b"{\"torn\":").unwrap();
        let (tx, rx) = mirage_net::event_channel(16);
        let w = EventWriter::start(rx, settings(dir.path(), 0), rt.handle().clone()).unwrap();
        rt.block_on(async {
            tx.send(ev(d1)).await;
            tx.send(ev(d2)).await;
            tx.send(ev(d2)).await;
        });
        drop(tx);
        let stats = w.stats();
        w.join();
        assert_eq!(stats.written.load(Ordering::Relaxed), 3);
        let a = std::fs::read_to_string(day_path(dir.path(), d1.date_naive())).unwrap();
        let b = std::fs::read_to_string(day_path(dir.path(), d2.date_naive())).unwrap();
        let a: Vec<&str> = a.lines().collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], "{\"torn\":");
        serde_json::from_str::<Event>(a[1]).unwrap();
        assert_eq!(b.lines().count(), 2);
        for l in b.lines() {
            serde_json::from_str::<Event>(l).unwrap();
        }
    }
}
