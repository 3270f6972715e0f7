//! The file source: log files followed by the [`tail`](crate::tail) module,
//! one [`Record`] per line.
//!
//! # Line formats
//! A line shaped like a syslog file line (`Nov 21 11:09:34 host sshd[123]:
//! msg` as rsyslog writes auth.log by default, or with an RFC 3339 stamp as
//! with `RSYSLOG_FileFormat`) is split with
//! [`mirage_proto::syslog::parse_unprefixed`]: the record carries the line's
//! own host, program, pid and time, so other programs' lines in auth.log keep
//! their names (and the server ignores them). Any other line (`sshd -E FILE`
//! output, vsftpd.log, rsyncd.log, the MySQL general log) is shipped whole,
//! named after the source's service (`sshd`, `vsftpd`, …) and stamped with
//! the time it was read. `format` picks: `syslog`, `raw`, or `auto` (per
//! line; raw for mysql and redis, whose logs carry client-chosen text at the
//! start of a line, which must never be taken for another program's line).
//!
//! `sshd -E FILE` (OpenSSH 9.2, Debian 12) writes the bare message and CRLF:
//! `Invalid user bob from 10.0.0.9 port 42552\r\n`, no time, no tag; the CR
//! is removed here. The MySQL general log is shipped line by line, a
//! multi-line query's continuation lines as they are: the server's parser
//! keeps track of threads across lines.
//!
//! # Ids and delivery
//! A record's id is a hash of (agent id, source name, the file's device,
//! inode and fingerprint, the line's byte offset): reading the same line
//! again after a crash gives the same id, and no other line can. A line is
//! acknowledged to the tailer only after its record was pushed to the queue,
//! and the tailer's checkpoint is written (about once a second and at
//! shutdown) only after the queue was synced.

use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};
use mirage_config::agent::{LineFormat, SourceService, StartAt};
use mirage_proto::syslog::{SyslogMessage, parse_unprefixed};
use tokio_util::sync::CancellationToken;

use super::{BACKOFF_MIN, SourceContext, back_off, stable_id};
use crate::output::Record;
use crate::tail::{AsyncTailer, Line, ReadFrom, TailConfig, TailHealth};

/// How often acknowledged positions are checkpointed while lines flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Follows the source's files until `cancel` fires.
pub async fn run(ctx: &SourceContext, cancel: &CancellationToken) {
    let cfg = &ctx.config;
    let mut tc = TailConfig::new(cfg.paths().iter().cloned());
    tc.checkpoint_path = Some(ctx.state_file("file.json"));
    tc.max_line_bytes = cfg.max_line_bytes;
    tc.read_from = match cfg.read_from() {
        StartAt::Start => ReadFrom::Beginning,
        StartAt::End => ReadFrom::End,
    };
    // Opening fails only on an unusable checkpoint: that does not fix itself,
    // but an operator may remove it, so it is retried slowly.
    let mut backoff = BACKOFF_MIN;
    let mut tailer = loop {
        match AsyncTailer::open(tc.clone()).await {
            Ok(t) => break t,
            Err(e) => {
                ctx.health.set(false, format!("cannot start: {e}"));
                if !back_off(&mut backoff, Duration::from_secs(60), cancel).await {
                    return;
                }
            }
        }
    };
    let reader = LineReader::new(ctx);
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checkpoint at once: with read_from = "end", the first start's end
    // position must be kept, or lines written before the next start (the
    // agent down) would be skipped by another "end".
    let mut dirty = true;
    // A checkpoint that cannot be written makes the source unhealthy until
    // one can, rather than flapping with every batch.
    let mut problem: Option<String> = None;
    loop {
        report(ctx, tailer.health(), problem.as_deref());
        tokio::select! {
            _ = cancel.cancelled() => break,
            lines = tailer.next_batch() => {
                let records: Vec<Record> = lines.iter().map(|l| reader.record(l)).collect();
                let pushed = ctx.push(records, cancel).await;
                for line in &lines[..pushed] {
                    tailer.ack(line.ack_token());
                }
                dirty |= pushed > 0;
                if pushed < lines.len() {
                    // Cancelled while the queue was failing: the rest are
                    // read again from the checkpoint next time.
                    break;
                }
            }
            _ = tick.tick() => {
                if dirty {
                    problem = checkpoint(&mut tailer, ctx).await.err();
                    dirty = problem.is_some();
                }
            }
        }
    }
    if dirty && let Err(e) = checkpoint(&mut tailer, ctx).await {
        ctx.health.set(false, e);
    }
}

/// Syncs the queue, then persists the tailer's acknowledged positions.
async fn checkpoint(tailer: &mut AsyncTailer, ctx: &SourceContext) -> Result<(), String> {
    ctx.sync_queue()
        .await
        .map_err(|e| format!("cannot sync the queue (retrying): {e}"))?;
    tailer
        .checkpoint()
        .await
        .map_err(|e| format!("cannot write checkpoint (retrying): {e}"))
}

/// Sets the health from what the tailer follows, or to `problem`.
fn report(ctx: &SourceContext, h: &TailHealth, problem: Option<&str>) {
    if let Some(p) = problem {
        ctx.health.set(false, p);
        return;
    }
    if let Some((path, kind)) = h.open_errors.first() {
        let e = std::io::Error::from(*kind);
        ctx.health
            .set(false, format!("cannot open {}: {e}", path.display()));
        return;
    }
    let list = |paths: &mut dyn Iterator<Item = String>| paths.collect::<Vec<_>>().join(", ");
    if h.followed.is_empty() {
        let wanted = list(&mut ctx.config.paths().iter().map(|p| p.display().to_string()));
        ctx.health.set(false, format!("waiting for {wanted}"));
        return;
    }
    let following = list(&mut h.followed.iter().map(|p| p.display().to_string()));
    ctx.health.set(true, format!("following {following}"));
}

/// Turns lines into records.
#[derive(Debug)]
struct LineReader<'a> {
    ctx: &'a SourceContext,
    /// Whether syslog-shaped lines are split (per `format` and service).
    split: Split,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Never: the whole line is the message.
    Never,
    /// When the line parses as a syslog file line with a program name.
    WhenShaped,
    /// Always; a line that does not parse is shipped with no program name.
    Always,
}

impl<'a> LineReader<'a> {
    fn new(ctx: &'a SourceContext) -> Self {
        let split = match ctx.config.format() {
            LineFormat::Raw => Split::Never,
            LineFormat::Syslog => Split::Always,
            LineFormat::Auto => match ctx.config.service {
                SourceService::Mysql | SourceService::Redis => Split::Never,
                _ => Split::WhenShaped,
            },
        };
        LineReader { ctx, split }
    }

    fn record(&self, line: &Line) -> Record {
        let id = stable_id(&[
            b"file",
            self.ctx.agent_id.as_bytes(),
            self.ctx.config.name.as_bytes(),
            &line.file.dev.to_le_bytes(),
            &line.file.ino.to_le_bytes(),
            &line.fingerprint,
            &line.offset.to_le_bytes(),
        ]);
        let bytes = line.bytes.strip_suffix(b"\r").unwrap_or(&line.bytes);
        if self.split != Split::Never {
            match parse_unprefixed(bytes) {
                Ok(m) if m.app_name.is_some() || self.split == Split::Always => {
                    return self.split_record(id, &m);
                }
                _ if self.split == Split::Always => {
                    let mut r = self.ctx.record(id, bytes.to_vec());
                    r.app_name = String::new();
                    return r;
                }
                _ => {}
            }
        }
        self.ctx.record(id, bytes.to_vec())
    }

    fn split_record(&self, id: String, m: &SyslogMessage<'_>) -> Record {
        let mut r = self.ctx.record(id, m.message.to_vec());
        r.app_name = m.app_name.unwrap_or_default().to_owned();
        r.procid = m.procid.map(str::to_owned);
        if let Some(h) = m.hostname {
            r.hostname = h.to_owned();
        }
        if let Some(ts) = m.timestamp.and_then(|t| line_time(&t, r.timestamp)) {
            r.timestamp = ts;
        }
        r
    }
}

/// The time of a syslog file line. A classic stamp has no year and no zone:
/// the year is the one that puts it nearest to `now`, the zone this host's
/// (rsyslog writes local time).
fn line_time(t: &mirage_proto::syslog::Timestamp, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let year = t.resolve_year(now.timestamp_micros());
    let offset = t.offset_minutes.unwrap_or_else(|| {
        let secs = Local.offset_from_utc_datetime(&now.naive_utc());
        (secs.local_minus_utc() / 60) as i16
    });
    let micros = t.to_unix_micros(year, offset)?;
    DateTime::<Utc>::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{DiskQueue, QueueConfig, QueueHandle};
    use crate::sources::Health;
    use mirage_config::agent::{SourceConfig, SourceKind};

    fn ctx(dir: &std::path::Path, service: SourceService, format: LineFormat) -> SourceContext {
        let mut config = SourceConfig::new("s", SourceKind::File, service);
        config.paths = Some(vec![dir.join("log")]);
        config.format = Some(format);
        SourceContext {
            config,
            agent_id: "a".into(),
            hostname: "agent-host".into(),
            queue: QueueHandle::new(
                DiskQueue::open(dir.join("q"), QueueConfig::default()).unwrap(),
                65536,
            ),
            state_dir: dir.to_owned(),
            health: Health::new("s"),
        }
    }

    fn lines_of(dir: &std::path::Path, text: &[u8]) -> Vec<Line> {
        std::fs::write(dir.join("log"), text).unwrap();
        let mut t = crate::tail::Tailer::open(TailConfig::new([dir.join("log")])).unwrap();
        t.poll()
    }

    #[test]
    fn syslog_lines_keep_their_program_and_raw_lines_get_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), SourceService::Ssh, LineFormat::Auto);
        let lines = lines_of(
            dir.path(),
            b"Nov 21 11:09:34 vm1 sshd[123]: Failed password for root from 10.0.0.9 port 22 ssh2\n\
              2026-11-21T11:09:35.000001+00:00 vm1 CRON[9]: pam_unix(cron:session): session opened\n\
              Invalid user bob from 10.0.0.9 port 42552\r\n",
        );
        let r = LineReader::new(&c);
        let recs: Vec<Record> = lines.iter().map(|l| r.record(l)).collect();
        assert_eq!(recs[0].app_name, "sshd");
        assert_eq!(recs[0].procid.as_deref(), Some("123"));
        assert_eq!(recs[0].hostname, "vm1");
        assert_eq!(
            recs[0].message,
            b"Failed password for root from 10.0.0.9 port 22 ssh2"
        );
        assert_eq!(recs[1].app_name, "CRON");
        assert_eq!(
            recs[1].timestamp.to_rfc3339(),
            "2026-11-21T11:09:35.000001+00:00"
        );
        assert_eq!(recs[2].app_name, "sshd");
        assert_eq!(recs[2].hostname, "agent-host");
        assert_eq!(
            recs[2].message,
            b"Invalid user bob from 10.0.0.9 port 42552"
        );
        // Ids: distinct per line, the same when read again.
        let again = lines_of(dir.path(), &std::fs::read(dir.path().join("log")).unwrap());
        assert_eq!(recs[1].id, r.record(&again[1]).id);
        assert_ne!(recs[0].id, recs[1].id);
    }

    #[test]
    fn mysql_auto_is_raw_so_query_text_cannot_pose_as_sshd() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), SourceService::Mysql, LineFormat::Auto);
        let lines = lines_of(
            dir.path(),
            b"\t\t   12 Query\tSELECT 'x\nNov 21 11:09:34 vm1 sshd[1]: Accepted password for root from 10.9.9.9 port 1 ssh2'\n",
        );
        let r = LineReader::new(&c);
        for l in &lines {
            assert_eq!(r.record(l).app_name, "mysql-general");
        }
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn syslog_format_ships_unparsable_lines_without_a_program() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path(), SourceService::Ssh, LineFormat::Syslog);
        let lines = lines_of(dir.path(), b"not a syslog line\n");
        let rec = LineReader::new(&c).record(&lines[0]);
        assert_eq!(rec.app_name, "");
        assert_eq!(rec.message, b"not a syslog line");
    }
}
