//! Shipping events to `mirage server` (`[sensor.ship]`).
//!
//! The shipper reads the day files the writer produces
//! (`events-YYYY-MM-DD.jsonl`) rather than taking events from memory: the
//! files already are a durable, ordered queue, so a server outage or a
//! sensor restart costs nothing but delay. A checkpoint
//! (`<log_dir>/.ship-checkpoint`: file name and byte offset) is advanced,
//! atomically, only after the server answered `200` for a batch, which it
//! does once the batch is stored; a batch sent again after a crash is
//! recognised by the events' ids and not stored twice.
//!
//! Requests are `POST /api/v1/events` with newline-delimited events, signed
//! with HMAC-SHA256 over method, path, timestamp, nonce and body
//! ([`mirage_core::request_auth`]). Only whole lines are sent: a line the
//! writer has not finished (or one torn by a crash, which the writer's next
//! start closes off) waits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where events are posted.
const PATH: &str = "/api/v1/events";
/// Checkpoint file name in the log directory.
const CHECKPOINT: &str = ".ship-checkpoint";
/// Largest request body (the server accepts 16 MiB).
const MAX_BODY: usize = 8 << 20;
/// How often to look for new lines when caught up.
const POLL: Duration = Duration::from_millis(200);
/// Longest wait between retries while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Shipper settings.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    /// The event directory.
    pub dir: PathBuf,
    /// Server ingest address, host:port.
    pub server: String,
    /// HMAC key.
    pub key: Vec<u8>,
    /// Most events per request.
    pub batch_events: usize,
    /// Ship files present at the first start.
    pub backfill: bool,
    /// The server certificate's pin: TLS to exactly that server; `None`:
    /// plain HTTP.
    pub pin: Option<mirage_net::Pin>,
    /// This sensor's name, sent as `x-mirage-sensor` so the server keeps
    /// its nonces and replay floor apart from other sensors'.
    pub sensor: String,
}

/// Position in the day files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    file: String,
    offset: u64,
}

/// Run until `cancel`, then return (after finishing the request in flight,
/// so a `200` is never lost between the server and the checkpoint).
pub async fn run(s: ShipSettings, cancel: CancellationToken) {
    let mut pos = match load_checkpoint(&s.dir) {
        Some(p) => p,
        None => {
            let start = initial_position(&s.dir, s.backfill);
            if let Err(e) = save_checkpoint(&s.dir, &start) {
                tracing::warn!("ship: cannot write checkpoint: {e}");
            }
            start
        }
    };
    let mut backoff = Duration::from_millis(250);
    let mut down = false;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let (body, lines, next) = match read_batch(&s.dir, &pos, s.batch_events) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("ship: reading events: {e}");
                (Vec::new(), 0, pos.clone())
            }
        };
        if lines == 0 {
            if next != pos {
                // Moved on to the next day's file.
                pos = next;
                let _ = save_checkpoint(&s.dir, &pos);
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(POLL) => continue,
            }
        }
        match post(&s, body).await {
            Ok(()) => {
                if down {
                    tracing::info!("ship: server {} reachable again", s.server);
                    down = false;
                }
                backoff = Duration::from_millis(250);
                pos = next;
                if let Err(e) = save_checkpoint(&s.dir, &pos) {
                    tracing::warn!("ship: cannot write checkpoint: {e}");
                }
            }
            Err(e) => {
                if !down {
                    tracing::warn!("ship: server {}: {e}; retrying", s.server);
                    down = true;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn initial_position(dir: &Path, backfill: bool) -> Position {
    let files = super::jsonl::event_files(dir);
    match (backfill, files.first(), files.last()) {
        (true, Some(first), _) => Position {
            file: first.clone(),
            offset: 0,
        },
        (false, _, Some(last)) => Position {
            file: last.clone(),
            offset: std::fs::metadata(dir.join(last))
                .map(|m| m.len())
                .unwrap_or(0),
        },
        _ => Position {
            file: String::new(),
            offset: 0,
        },
    }
}

/// Up to `max` whole lines from `pos`: (body, line count, position after
/// them). With no lines left in the current file and a newer file present,
/// returns no lines and the start of that file.
fn read_batch(
    dir: &Path,
    pos: &Position,
    max: usize,
) -> std::io::Result<(Vec<u8>, usize, Position)> {
    use std::io::{Read, Seek, SeekFrom};
    let files = super::jsonl::event_files(dir);
    let Some(current) = files.iter().find(|f| **f >= pos.file) else {
        return Ok((Vec::new(), 0, pos.clone()));
    };
    let offset = if *current == pos.file { pos.offset } else { 0 };
    let mut f = std::fs::File::open(dir.join(current))?;
    let len = f.metadata()?.len();
    if offset > len {
        // Shorter than our checkpoint: replaced by hand; start it over.
        tracing::warn!("ship: {current} shrank below the checkpoint; reading it from the start");
        return Ok((
            Vec::new(),
            0,
            Position {
                file: current.clone(),
                offset: 0,
            },
        ));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; (len - offset).min(MAX_BODY as u64) as usize];
    f.read_exact(&mut buf)?;
    let mut end = 0;
    let mut lines = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            end = i + 1;
            lines += 1;
            if lines == max {
                break;
            }
        }
    }
    buf.truncate(end);
    if lines == 0 {
        // Caught up here; move on if a newer day has begun and this file
        // is complete (ends with a newline, i.e. nothing half-written).
        if let Some(next) = files.iter().find(|f| **f > *current)
            && end == 0
            && len == offset
        {
            return Ok((
                Vec::new(),
                0,
                Position {
                    file: next.clone(),
                    offset: 0,
                },
            ));
        }
        return Ok((
            Vec::new(),
            0,
            Position {
                file: current.clone(),
                offset,
            },
        ));
    }
    let next = Position {
        file: current.clone(),
        offset: offset + end as u64,
    };
    Ok((buf, lines, next))
}

fn load_checkpoint(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join(CHECKPOINT)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Position {
        file: v.get("file")?.as_str()?.to_owned(),
        offset: v.get("offset")?.as_u64()?,
    })
}

fn save_checkpoint(dir: &Path, pos: &Position) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CHECKPOINT}.tmp"));
    let text = serde_json::json!({ "file": pos.file, "offset": pos.offset }).to_string();
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(CHECKPOINT))
}

/// POST one signed batch; `Ok` only for `200`.
async fn post(s: &ShipSettings, body: Vec<u8>) -> Result<(), String> {
    let (status, reply) = mirage_net::signed_post::post(
        &s.server,
        s.pin,
        PATH,
        Some(&s.key),
        &[(mirage_core::request_auth::HEADER_SENSOR, &s.sensor)],
        "application/x-ndjson",
        body,
        Duration::from_secs(60),
    )
    .await?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&reply[..reply.len().min(200)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_whole_lines_and_moves_to_the_next_day() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("events-2026-11-20.jsonl"), "a\nb\nc\n").unwrap();
        std::fs::write(d.join("events-2026-11-21.jsonl"), "d\ne").unwrap();
        let start = initial_position(d, true);
        assert_eq!(start.offset, 0);
        let (body, n, next) = read_batch(d, &start, 2).unwrap();
        assert_eq!((body.as_slice(), n), (&b"a\nb\n"[..], 2));
        let (body, n, next) = read_batch(d, &next, 2).unwrap();
        assert_eq!((body.as_slice(), n), (&b"c\n"[..], 1));
        let (_, n, next2) = read_batch(d, &next, 2).unwrap();
        assert_eq!(n, 0);
        assert_eq!(next2.file, "events-2026-11-21.jsonl");
        // The unfinished line "e" waits.
        let (body, n, next3) = read_batch(d, &next2, 10).unwrap();
        assert_eq!((body.as_slice(), n), (&b"d\n"[..], 1));
        let (_, n, same) = read_batch(d, &next3, 10).unwrap();
        assert_eq!((n, &same), (0, &next3));
        // Without backfill the first start begins at the end of the newest.
        let p = initial_position(d, false);
        assert_eq!((p.file.as_str(), p.offset), ("events-2026-11-21.jsonl", 3));
        save_checkpoint(d, &p).unwrap();
        assert_eq!(load_checkpoint(d), Some(p));
    }
}
