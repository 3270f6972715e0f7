//! The agent's output: records go to `mirage server` as RFC 5424 syslog,
//! through a disk-backed queue so that nothing is lost while the server is
//! down or restarting.
//!
//! ```text
//! sources ──Record──> QueueHandle::push ──encode──> DiskQueue (segments on disk)
//!                                                      │ read_batch / ack / rewind
//!                                                   Sender ──RELP, TCP or TLS (octet counting), UDP──> server
//! ```
//!
//! * [`record`]: the [`Record`] and its RFC 5424 encoding, with the record's
//!   stable id in structured data so the server can drop duplicates.
//! * [`queue`]: the crash-safe, size-bounded [`DiskQueue`].
//! * [`sender`]: the async loop that drains the queue to the server,
//!   reconnecting with capped backoff.
//! * [`tls`]: the TLS client settings (RFC 5425) the sender uses.
//!
//! * [`relp`]: the RELP session (the default transport), where the server
//!   acknowledges each record once it stored it.
//!
//! Delivery is at-least-once: see [`queue`] for where duplicates can come
//! from. Over RELP a record leaves the queue only once stored; over plain
//! TCP the sender can only guess (see [`sender`]).

pub mod queue;
pub mod record;
pub mod relp;
pub mod sender;
pub mod tls;

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

pub use queue::{DiskQueue, QueueConfig, QueueError, QueueStats, QueuedRecord};
pub use record::{DEFAULT_MAX_MESSAGE, Record, SD_ID, encode};
pub use sender::{Sender, SenderConfig, SenderError, SenderStats, Transport};
pub use tls::{TlsSettings, TlsSetupError};

/// A shared handle on a [`DiskQueue`]: sources push through it, the
/// [`Sender`] drains it, and a push wakes the sender.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    queue: Arc<Mutex<DiskQueue>>,
    notify: Arc<Notify>,
    max_message: usize,
}

impl QueueHandle {
    /// Wraps `queue`; pushed records are encoded to at most `max_message`
    /// bytes (use [`DEFAULT_MAX_MESSAGE`] unless the server is configured for
    /// less; for UDP keep it under the path's datagram size).
    pub fn new(queue: DiskQueue, max_message: usize) -> Self {
        QueueHandle {
            queue: Arc::new(Mutex::new(queue)),
            notify: Arc::new(Notify::new()),
            max_message,
        }
    }

    /// Encodes and queues `record`; returns its queue sequence number. Once
    /// this returns, the record survives an agent crash: the source may
    /// acknowledge the line it came from.
    pub fn push(&self, record: &Record) -> Result<u64, QueueError> {
        let bytes = encode(record, self.max_message);
        let seq = self.lock().append(&bytes)?;
        // notify_one stores a permit when the sender is not waiting, so a push
        // between its empty read and its wait is not missed.
        self.notify.notify_one();
        Ok(seq)
    }

    /// Queue counters.
    pub fn stats(&self) -> QueueStats {
        self.lock().stats()
    }

    /// Flushes queued records to stable storage.
    pub fn sync(&self) -> Result<(), QueueError> {
        self.lock().sync()
    }

    /// Direct access to the queue (the sender's reads and acks).
    pub fn lock(&self) -> MutexGuard<'_, DiskQueue> {
        // A panic while holding the lock cannot leave the queue half-updated
        // in a way that loses data on disk; keep going.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}
