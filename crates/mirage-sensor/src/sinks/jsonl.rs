//! JSON Lines files rotated by UTC day (`events-YYYY-MM-DD.jsonl`), and stdout.
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
use mirage_net::EventRx;

/// Counters the writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Events written to every enabled output.
    pub written: AtomicU64,
    /// Write errors seen (each retried).
    pub write_errors: AtomicU64,
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
    /// Start writing events from `rx` into `dir` (and stdout if `stdout`).
    /// The thread ends, after writing everything, once every sender is gone.
    pub fn start(
        rx: EventRx,
        dir: &Path,
        stdout: bool,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let stats = Arc::new(WriterStats::default());
        let mut state = DailyFile {
            dir: dir.to_path_buf(),
            day: None,
            file: None,
            dirty: false,
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

/// The path of the event file for `day`.
pub fn day_path(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(format!("events-{}.jsonl", day.format("%Y-%m-%d")))
}

struct DailyFile {
    dir: PathBuf,
    day: Option<NaiveDate>,
    file: Option<File>,
    dirty: bool,
}

impl DailyFile {
    fn switch_to(&mut self, day: NaiveDate) -> std::io::Result<&mut File> {
        if self.day != Some(day) || self.file.is_none() {
            if let Some(f) = self.file.take() {
                let _ = f.sync_data();
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(day_path(&self.dir, day))?;
            repair_torn_line(&mut f)?;
            self.file = Some(f);
            self.day = Some(day);
        }
        // Just set above when missing.
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no event file"))
    }
}

/// If the file does not end in a newline (a torn write), end the line so the
/// next event starts on its own line.
fn repair_torn_line(f: &mut File) -> std::io::Result<()> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    Ok(())
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
        let events = batch.len() as u64;
        for ev in batch.drain(..) {
            let day = ev.ts.date_naive();
            let mut line = ev.to_json().into_bytes();
            line.push(b'\n');
            match pending.last_mut() {
                Some((d, buf)) if *d == day => buf.extend_from_slice(&line),
                _ => pending.push((day, line)),
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
        state.switch_to(*day)?.write_all(buf)?;
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
        let w = EventWriter::start(rx, dir.path(), false, rt.handle().clone()).unwrap();
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
