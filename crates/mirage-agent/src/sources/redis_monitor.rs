//! The Redis MONITOR source: connects to a Redis server, authenticates if
//! configured, sends `MONITOR`, and ships every command line Redis reports
//! as a [`Record`] (program `redis-monitor`, time from the line).
//!
//! Redis answers `+OK`, then writes one status line per command any client
//! runs: `+1700000000.123456 [0 127.0.0.1:5555] "SET" "a" "1"`, arguments
//! quoted and escaped by Redis (no raw CR or LF inside). The record's
//! message is the line without its `+`, exactly what the server's MONITOR
//! parser reads. Lines are capped at `max_line_bytes` (the head is kept);
//! the connection is kept alive with TCP keepalive, and when it drops it is
//! re-established with a backoff doubling from 0.1 s to `retry_max_secs`.
//! Commands run while the agent is not connected are not seen: MONITOR is
//! a live feed with no history.
//!
//! # Cost
//! MONITOR makes Redis format and copy every command to the monitoring
//! client, on its single main thread; Redis's documentation shows one
//! MONITOR client roughly halving throughput. Measured here (Redis 7.0,
//! `redis-benchmark -t set,get -c 50` and `redis-cli monitor > /dev/null`
//! as the monitor, both in a private network namespace on the shared
//! 2-core test machine, so rough): unpipelined 86k-91k requests/s fell to
//! 44k-48k (about half); pipelined 16 deep, 1.4M-1.7M fell to 0.27M-0.44M (a
//! quarter or less). See `docs/agent.md`. Enable it where the commands are
//! worth the cost (a Redis reachable from untrusted networks); the honeypot
//! sensor catches Redis attacks at no cost to a real server. The password
//! is sent in AUTH and never logged; Redis 6.2+ shows other clients' AUTH
//! arguments as `(redacted)` and never shows admin commands (CONFIG, …).
//!
//! # Ids
//! MONITOR lines are never read twice, so ids need only be unique: a hash
//! of (agent id, source name, a random per-connection nonce, the line's
//! number on that connection).

use std::time::Duration;

use chrono::{DateTime, Utc};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::sync::CancellationToken;

use super::lines::CappedLines;
use super::{BACKOFF_MIN, SourceContext, back_off, stable_id};
use crate::output::Record;

/// Most lines pushed in one batch.
const BATCH: usize = 512;
/// Longest wait for the connection and the replies to AUTH and MONITOR.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that lasted this long counts as working: the next
/// reconnect starts again from the shortest wait.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// Follows MONITOR until `cancel` fires.
pub async fn run(ctx: &SourceContext, cancel: &CancellationToken) {
    let max_backoff = Duration::from_secs(ctx.config.retry_max_secs());
    let mut backoff = BACKOFF_MIN;
    while !cancel.is_cancelled() {
        let started = std::time::Instant::now();
        match session(ctx, cancel).await {
            Ok(()) => break,
            Err(detail) => {
                ctx.health.set(false, detail);
                if started.elapsed() >= STABLE_RUN {
                    backoff = BACKOFF_MIN;
                }
                if !back_off(&mut backoff, max_backoff, cancel).await {
                    break;
                }
            }
        }
    }
}

/// One connection: `Ok` when cancelled, else why it ended.
async fn session(ctx: &SourceContext, cancel: &CancellationToken) -> Result<(), String> {
    let address = ctx.config.address();
    let setup = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        // MONITOR on an idle server is silent: only keepalive notices a
        // server that vanished without closing the connection.
        let ka = TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10));
        let _ = SockRef::from(&stream).set_tcp_keepalive(&ka);
        let (r, mut w) = stream.into_split();
        let mut reader = BufReader::with_capacity(64 * 1024, r);
        let mut lines = CappedLines::new(ctx.config.max_line_bytes);
        let password = ctx.config.password();
        if !password.is_empty() {
            let user = ctx.config.username();
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if !user.is_empty() {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            w.write_all(&resp_command(&args))
                .await
                .map_err(|e| format!("{address}: {e}"))?;
            // Redis's refusal (`-WRONGPASS …`) never repeats the password.
            expect_ok(&mut reader, &mut lines, "AUTH").await?;
        }
        w.write_all(&resp_command(&[b"MONITOR"]))
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        expect_ok(&mut reader, &mut lines, "MONITOR").await?;
        Ok::<_, String>((reader, w, lines))
    };
    let (mut reader, _w, mut lines) = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        r = tokio::time::timeout(SETUP_TIMEOUT, setup) => match r {
            Ok(r) => r?,
            Err(_) => return Err(format!("{address}: no answer within {SETUP_TIMEOUT:?}")),
        },
    };
    let monitoring = format!("monitoring {address}");
    ctx.health.set(true, monitoring.clone());
    let nonce = uuid::Uuid::now_v7();
    let mut seq = 0u64;
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            l = lines.next(&mut reader) => l,
        };
        let first = match first {
            Ok(Some(l)) => l,
            Ok(None) => return Err(format!("{address} closed the connection")),
            Err(e) => return Err(format!("connection to {address} lost: {e}")),
        };
        let mut batch = vec![first];
        while batch.len() < BATCH && reader.buffer().contains(&b'\n') {
            match lines.next(&mut reader).await {
                Ok(Some(l)) => batch.push(l),
                _ => break,
            }
        }
        let mut records = Vec::with_capacity(batch.len());
        for (line, _truncated) in batch {
            match line.first() {
                Some(b'+') => {
                    seq += 1;
                    let id = stable_id(&[
                        b"redis_monitor",
                        ctx.agent_id.as_bytes(),
                        ctx.config.name.as_bytes(),
                        nonce.as_bytes(),
                        &seq.to_le_bytes(),
                    ]);
                    records.push(line_record(ctx, id, &line[1..]));
                }
                Some(b'-') => {
                    let msg = String::from_utf8_lossy(&line[1..]).into_owned();
                    return Err(format!("{address} reported an error: {msg}"));
                }
                // Nothing else is sent to a monitor; ignore rather than guess.
                _ => {}
            }
        }
        let n = records.len();
        if ctx.push(records, cancel).await < n {
            return Ok(());
        }
        ctx.health.set(true, monitoring.as_str());
    }
}

/// The record of one MONITOR line (without its `+`).
fn line_record(ctx: &SourceContext, id: String, line: &[u8]) -> Record {
    let mut r = ctx.record(id, line.to_vec());
    r.app_name = "redis-monitor".to_owned();
    if let Some(t) = line_time(line) {
        r.timestamp = t;
    }
    r
}

/// `SECONDS.MICROS` at the start of a MONITOR line.
fn line_time(line: &[u8]) -> Option<DateTime<Utc>> {
    let stamp = line.split(|&b| b == b' ').next()?;
    let stamp = std::str::from_utf8(stamp).ok()?;
    let (secs, frac) = stamp.split_once('.').unwrap_or((stamp, "0"));
    if secs.len() > 12 || frac.is_empty() || frac.len() > 6 {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut micros: i64 = frac.parse().ok()?;
    for _ in frac.len()..6 {
        micros *= 10;
    }
    DateTime::<Utc>::from_timestamp_micros(secs.checked_mul(1_000_000)?.checked_add(micros)?)
}

/// Reads one reply line; `+…` is success, anything else the error text.
async fn expect_ok(
    reader: &mut BufReader<OwnedReadHalf>,
    lines: &mut CappedLines,
    what: &str,
) -> Result<(), String> {
    match lines.next(reader).await {
        Ok(Some((l, _))) if l.first() == Some(&b'+') => Ok(()),
        Ok(Some((l, _))) => {
            let text = String::from_utf8_lossy(l.strip_prefix(b"-").unwrap_or(&l));
            Err(format!(
                "{what} refused: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
        Ok(None) => Err(format!("connection closed after {what}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// A RESP array of bulk strings.
fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_line_times() {
        let t = line_time(b"1700000000.123456 [0 127.0.0.1:5555] \"SET\" \"a\"").unwrap();
        assert_eq!(t.timestamp_micros(), 1_700_000_000_123_456);
        assert_eq!(
            line_time(b"1700000000.5 [0 lua]")
                .unwrap()
                .timestamp_micros(),
            1_700_000_000_500_000
        );
        assert!(line_time(b"garbage [0 x]").is_none());
        assert!(line_time(b"99999999999999999999.1 x").is_none());
    }

    #[test]
    fn resp_encoding() {
        assert_eq!(
            resp_command(&[b"AUTH", b"p w"]),
            b"*2\r\n$4\r\nAUTH\r\n$3\r\np w\r\n"
        );
    }
}
