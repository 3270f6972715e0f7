//! Whether the store can write right now, shared by the pipeline (which
//! learns it from every write) and the inputs that acknowledge (signed
//! ingest, RELP syslog), so they refuse at once while it cannot instead
//! of holding a sender until its timeout.
//!
//! A failure episode is logged once when it starts (naming a full disk as
//! such) and once when it ends, however many retries lie between.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use mirage_store::StoreError;

/// Why an input's messages were not stored; the sender keeps them and
/// tries again (ingest: `503`; RELP: a `500` response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreRefusal {
    /// The store cannot write (disk full, I/O error).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The server is stopping.
    #[error("server shutting down")]
    ShuttingDown,
}

/// The store's writability.
#[derive(Debug, Default)]
pub struct StoreHealth {
    failing: AtomicBool,
    retries: AtomicU64,
    episode: Mutex<Option<(Instant, String)>>,
}

impl StoreHealth {
    /// Whether the last write failed (and no later one succeeded).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// What inputs answer while failing.
    pub fn refusal(&self) -> StoreRefusal {
        let why = self
            .episode
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or_else(|| "write failed".to_owned(), |(_, w)| w.clone());
        StoreRefusal::Unavailable(why)
    }

    /// A write failed with `e`.
    pub fn failed(&self, e: &StoreError) {
        let mut ep = self.episode.lock().unwrap_or_else(|e| e.into_inner());
        if ep.is_none() {
            let what = if e.is_disk_full() {
                "disk full"
            } else {
                "write failed"
            };
            tracing::error!(
                "store: {what} ({e}); refusing acknowledged input (ingest, RELP) and holding the rest until it can write again"
            );
            *ep = Some((Instant::now(), what.to_owned()));
            self.retries.store(0, Ordering::Relaxed);
        } else {
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("store: still failing: {e}");
        }
        self.failing.store(true, Ordering::Release);
    }

    /// A write succeeded.
    pub fn succeeded(&self) {
        if !self.failing.load(Ordering::Acquire) {
            return;
        }
        let mut ep = self.episode.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((since, _)) = ep.take() {
            tracing::info!(
                "store: writable again after {:.1}s ({} retries)",
                since.elapsed().as_secs_f64(),
                self.retries.load(Ordering::Relaxed)
            );
        }
        self.failing.store(false, Ordering::Release);
    }
}
