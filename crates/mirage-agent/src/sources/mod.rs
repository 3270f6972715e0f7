//! The agent's log sources: each follows what one service logs, turns it
//! into [`Record`]s, pushes them to the output queue and reports its health.
//!
//! * [`file`]: log files through the [`tail`](crate::tail) module (sshd's
//!   auth.log or `sshd -E` file, vsftpd, rsyncd, the MySQL general log);
//! * [`journald`]: the systemd journal through `journalctl -o json -f`;
//! * [`redis_monitor`]: a Redis server's MONITOR stream.
//!
//! Every source follows the same delivery rule: a position (file offset,
//! journal cursor) is acknowledged only after [`QueueHandle::push`] returned
//! for its record, and checkpointed only after the queue was synced, so a
//! crash repeats records (with the same ids, which the server drops) and
//! never loses them. Trouble (a missing file, journalctl exiting, Redis
//! down) is a health state and a retry, never the end of the agent.

pub mod file;
pub mod journald;
pub mod redis_monitor;

mod lines;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mirage_config::agent::{SourceConfig, SourceKind, SourceService};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::output::{QueueError, QueueHandle, Record};

/// Syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;
/// Syslog facility `authpriv`, where sshd and vsftpd log on Debian.
const FACILITY_AUTHPRIV: u8 = 10;
/// Syslog severity `info`.
const SEVERITY_INFO: u8 = 6;

/// The APP-NAME records of `service` carry when the log line names no
/// program: the names `mirage_logparse::Service::from_app_name` maps back.
pub fn app_name(service: SourceService) -> &'static str {
    match service {
        SourceService::Ssh => "sshd",
        SourceService::Ftp => "vsftpd",
        SourceService::Rsync => "rsyncd",
        SourceService::Mysql => "mysql-general",
        SourceService::Redis => "redis-monitor",
    }
}

/// The facility records of `service` get when the source does not say.
fn facility(service: SourceService) -> u8 {
    match service {
        SourceService::Ssh | SourceService::Ftp => FACILITY_AUTHPRIV,
        _ => FACILITY_DAEMON,
    }
}

/// A record id from `parts`: the first 128 bits of SHA-256 over the parts,
/// each length-prefixed (so no two part lists hash the same bytes), in hex.
pub fn stable_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What one source reports in heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Working as configured (false while waiting for a file, while
    /// journalctl or Redis is down, …).
    pub healthy: bool,
    /// One line saying what the source is doing or what is wrong.
    pub detail: String,
    /// Records pushed to the queue since the agent started.
    pub lines: u64,
    /// When the last record was pushed.
    pub last_line: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct HealthState {
    healthy: bool,
    detail: String,
    last_line: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct HealthInner {
    name: String,
    state: Mutex<HealthState>,
    lines: AtomicU64,
}

/// A source's health, shared between the source (which sets it) and the
/// heartbeat (which reads it). Changes are logged once, not on every retry.
#[derive(Debug, Clone)]
pub struct Health(Arc<HealthInner>);

impl Health {
    /// Health of the source `name`, initially "starting".
    pub fn new(name: &str) -> Self {
        Health(Arc::new(HealthInner {
            name: name.to_owned(),
            state: Mutex::new(HealthState {
                healthy: false,
                detail: "starting".into(),
                last_line: None,
            }),
            lines: AtomicU64::new(0),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the state; logs it when it changed.
    pub fn set(&self, healthy: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let mut s = self.lock();
        if s.healthy == healthy && s.detail == detail {
            return;
        }
        if healthy {
            tracing::info!(source = %self.0.name, "{detail}");
        } else {
            tracing::warn!(source = %self.0.name, "{detail}");
        }
        s.healthy = healthy;
        s.detail = detail;
    }

    /// Counts `n` records pushed at `at`.
    pub fn shipped(&self, n: u64, at: DateTime<Utc>) {
        if n == 0 {
            return;
        }
        self.0.lines.fetch_add(n, Ordering::Relaxed);
        self.lock().last_line = Some(at);
    }

    /// The current state.
    pub fn snapshot(&self) -> HealthSnapshot {
        let s = self.lock();
        HealthSnapshot {
            healthy: s.healthy,
            detail: s.detail.clone(),
            lines: self.0.lines.load(Ordering::Relaxed),
            last_line: s.last_line,
        }
    }
}

/// Everything a running source needs.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source's configuration.
    pub config: SourceConfig,
    /// The agent's id (part of file record ids, so two hosts never share
    /// one).
    pub agent_id: String,
    /// Host name for records that carry none.
    pub hostname: String,
    /// Where records go.
    pub queue: QueueHandle,
    /// Directory for this agent's source checkpoints.
    pub state_dir: PathBuf,
    /// Where the source reports.
    pub health: Health,
}

impl SourceContext {
    /// The source's checkpoint file, `<state_dir>/<name>.<suffix>`.
    pub fn state_file(&self, suffix: &str) -> PathBuf {
        self.state_dir
            .join(format!("{}.{suffix}", self.config.name))
    }

    /// A record with the source's defaults: agent host, the service's
    /// program name and facility, severity info, read time.
    fn record(&self, id: String, message: Vec<u8>) -> Record {
        Record {
            timestamp: Utc::now(),
            facility: facility(self.config.service),
            severity: SEVERITY_INFO,
            hostname: self.hostname.clone(),
            app_name: app_name(self.config.service).to_owned(),
            procid: None,
            msgid: None,
            id,
            message,
        }
    }

    /// Pushes `records` in order on the blocking pool (a push is a file
    /// write). A failing queue (disk full) is retried every second, with the
    /// source marked unhealthy, until it works or `cancel` fires. Returns
    /// how many were pushed: only those may be acknowledged.
    async fn push(&self, records: Vec<Record>, cancel: &CancellationToken) -> usize {
        let total = records.len();
        let mut pushed = 0;
        let mut records = Some(records);
        loop {
            let Some(batch) = records.take() else {
                return pushed;
            };
            let queue = self.queue.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut n = 0;
                for r in &batch {
                    if let Err(e) = queue.push(r) {
                        return (n, Some(e), batch);
                    }
                    n += 1;
                }
                (n, None, batch)
            })
            .await;
            let (n, err, mut batch) = match result {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            pushed += n;
            self.health.shipped(n as u64, Utc::now());
            let Some(e) = err else {
                return pushed;
            };
            self.queue_failed(&e);
            tokio::select! {
                _ = cancel.cancelled() => return pushed,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            batch.drain(..n);
            debug_assert_eq!(pushed + batch.len(), total);
            records = Some(batch);
        }
    }

    fn queue_failed(&self, e: &QueueError) {
        self.health
            .set(false, format!("cannot queue records (retrying): {e}"));
    }

    /// Syncs the queue to disk on the blocking pool, so that a checkpoint
    /// written next never points past records a power loss could take.
    async fn sync_queue(&self) -> Result<(), QueueError> {
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || queue.sync())
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// Runs the source described by `ctx` until `cancel` fires; returns after
/// its final checkpoint.
pub async fn run(ctx: SourceContext, cancel: CancellationToken) {
    match ctx.config.kind {
        SourceKind::File => file::run(&ctx, &cancel).await,
        SourceKind::Journald => journald::run(&ctx, &cancel).await,
        SourceKind::RedisMonitor => redis_monitor::run(&ctx, &cancel).await,
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), for
/// small state files.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Sleeps for `backoff` (or until cancelled: returns false) and doubles it
/// up to `max`.
async fn back_off(backoff: &mut Duration, max: Duration, cancel: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(max);
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// First delay of a retry loop.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_separate_parts() {
        let a = stable_id(&[b"ab", b"c"]);
        assert_eq!(a, stable_id(&[b"ab", b"c"]));
        assert_ne!(a, stable_id(&[b"a", b"bc"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn app_names_are_what_the_server_maps() {
        use mirage_logparse::Service;
        for (ours, theirs) in [
            (SourceService::Ssh, Service::Ssh),
            (SourceService::Ftp, Service::Ftp),
            (SourceService::Rsync, Service::Rsync),
            (SourceService::Mysql, Service::Mysql),
            (SourceService::Redis, Service::Redis),
        ] {
            assert_eq!(Service::from_app_name(app_name(ours)), Some(theirs));
            assert_eq!(ours.as_str(), theirs.as_str());
        }
    }
}
