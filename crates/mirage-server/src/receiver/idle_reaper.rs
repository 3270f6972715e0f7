//! Which syslog connection to close when every slot is taken.
//!
//! A listener holds at most `max_connections`; without this, that many
//! idle connections (a scanner, or an attacker who just connects) keep
//! every new sender, legitimate or not, waiting in the kernel's backlog
//! until the idle timeout, an hour by default. Under pressure the
//! listener instead closes the connection that has been quiet the
//! longest, untrusted senders before trusted ones, and never one that
//! sent something in the last [`MIN_IDLE`]. A closed sender that matters
//! (an agent) reconnects and resends what was not acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A connection must have been quiet this long to be closed for a newer
/// one: a sender in the middle of a burst is never cut.
pub const MIN_IDLE: Duration = Duration::from_secs(2);

/// The open connections of one listener.
#[derive(Debug)]
pub struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    trusted: bool,
    last_active: Arc<AtomicU64>,
    cancel: CancellationToken,
}

/// One registered connection: its cancel token (fired when it is reaped
/// or the server stops) and its activity clock. Unregisters on drop.
#[derive(Debug)]
pub struct Registered {
    id: u64,
    owner: Arc<Connections>,
    last_active: Arc<AtomicU64>,
    /// Fires when this connection should close.
    pub cancel: CancellationToken,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Connections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Register a connection; `shutdown` is the listener's token.
    pub fn register(self: &Arc<Self>, trusted: bool, shutdown: &CancellationToken) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let last_active = Arc::new(AtomicU64::new(self.now_ms()));
        let cancel = shutdown.child_token();
        self.lock().insert(
            id,
            Entry {
                trusted,
                last_active: last_active.clone(),
                cancel: cancel.clone(),
            },
        );
        Registered {
            id,
            owner: self.clone(),
            last_active,
            cancel,
        }
    }

    /// Close the connection quiet the longest (untrusted first), if one
    /// has been quiet for at least `min_idle`. True when one was closed.
    pub fn reap_idlest(&self, min_idle: Duration) -> bool {
        let now = self.now_ms();
        let min_idle = min_idle.as_millis() as u64;
        let open = self.lock();
        let victim = open
            .iter()
            .filter(|(_, e)| !e.cancel.is_cancelled())
            .map(|(id, e)| {
                (
                    *id,
                    e,
                    now.saturating_sub(e.last_active.load(Ordering::Relaxed)),
                )
            })
            .filter(|(_, _, idle)| *idle >= min_idle)
            // Untrusted before trusted, then the longest quiet.
            .max_by_key(|(_, e, idle)| (!e.trusted, *idle));
        match victim {
            Some((_, e, _)) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding this lock cannot leave the map half
        // updated (each operation is one insert/remove/scan).
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registered {
    /// The connection did something (read or answered).
    pub fn touch(&self) {
        self.last_active
            .store(self.owner.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.owner.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaps_untrusted_first_then_the_longest_quiet_and_never_a_busy_one() {
        let conns = Connections::new();
        let stop = CancellationToken::new();
        let trusted_old = conns.register(true, &stop);
        std::thread::sleep(Duration::from_millis(30));
        let untrusted = conns.register(false, &stop);
        let trusted_new = conns.register(true, &stop);
        std::thread::sleep(Duration::from_millis(30));
        // Nobody has been quiet for a second: nobody is closed.
        assert!(!conns.reap_idlest(Duration::from_secs(1)));
        assert!(conns.reap_idlest(Duration::from_millis(20)));
        assert!(untrusted.cancel.is_cancelled());
        assert!(conns.reap_idlest(Duration::from_millis(20)));
        assert!(trusted_old.cancel.is_cancelled());
        trusted_new.touch();
        assert!(!conns.reap_idlest(Duration::from_millis(20)));
        assert!(!trusted_new.cancel.is_cancelled());
        drop(untrusted);
        assert_eq!(conns.len(), 2);
        // Shutdown reaches every registered connection.
        stop.cancel();
        assert!(trusted_new.cancel.is_cancelled());
    }
}
