//! Event emission from sessions to sinks.
//!
//! A bounded channel: when sinks fall behind, sessions wait instead of the
//! sensor growing without limit or dropping events (backpressure slows the
//! attacker, which a honeypot can afford).

use mirage_core::Event;
use tokio::sync::mpsc;

/// Sending half, cloned into every session.
#[derive(Clone, Debug)]
pub struct EventTx {
    tx: mpsc::Sender<Event>,
}

/// Receiving half, owned by the sink writer.
pub type EventRx = mpsc::Receiver<Event>;

/// A channel holding at most `capacity` events in memory.
pub fn event_channel(capacity: usize) -> (EventTx, EventRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (EventTx { tx }, rx)
}

impl EventTx {
    /// Queue an event, waiting while the queue is full. Dropped only if the
    /// sink has already stopped (the process is exiting).
    pub async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }
}
