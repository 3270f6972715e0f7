//! Counters of what the server received and did, shared by the receivers
//! and the pipeline (relaxed atomics: they are telemetry, not control).

use std::sync::atomic::{AtomicU64, Ordering};

/// Server counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Syslog messages received (all transports).
    pub syslog_messages: AtomicU64,
    /// Frames skipped because they exceeded the size limit.
    pub oversized: AtomicU64,
    /// Messages that were not syslog.
    pub malformed: AtomicU64,
    /// Messages or events dropped because their id was seen before.
    pub duplicates: AtomicU64,
    /// Messages from programs no parser knows (counted, not stored).
    pub ignored: AtomicU64,
    /// Events stored (parsed log records and sensor events).
    pub events: AtomicU64,
    /// Alerts raised.
    pub alerts: AtomicU64,
    /// Decisions made or renewed by rules.
    pub decisions: AtomicU64,
    /// Agent heartbeats received.
    pub heartbeats: AtomicU64,
    /// Sensor events received over HTTP.
    pub ingested_events: AtomicU64,
    /// HTTP requests refused (authentication or format).
    pub ingest_refused: AtomicU64,
    /// Messages from untrusted senders (stored, deciding nothing).
    pub untrusted: AtomicU64,
    /// Events dropped because their sender was over its budget.
    pub over_budget: AtomicU64,
    /// Quiet syslog connections closed to make room for new ones.
    pub reaped: AtomicU64,
    /// Rule file reloads that succeeded.
    pub rule_reloads: AtomicU64,
    /// Rule file reloads refused because the file was broken.
    pub rule_reload_errors: AtomicU64,
}

impl ServerStats {
    /// Add `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Read a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
