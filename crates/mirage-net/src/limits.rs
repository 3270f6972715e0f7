//! Connection limits: a global cap and a per-source-address cap.
//!
//! The per-source table holds only addresses with live connections, so its
//! size is bounded by the global cap however many sources an attacker spoofs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits applied by the harness to every session of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most concurrent sessions for this service; further connections wait in
    /// the kernel's accept backlog.
    pub max_connections: usize,
    /// Most concurrent sessions from one source address; more are accepted,
    /// recorded as `session.reject` and closed.
    pub max_connections_per_ip: usize,
    /// Time allowed before the client's first byte (None: no limit).
    pub handshake_timeout: Option<Duration>,
    /// Time allowed without any byte in either direction.
    pub idle_timeout: Option<Duration>,
    /// Longest a session may last.
    pub max_session: Option<Duration>,
    /// Most bytes read from one client before the session is cut.
    pub byte_budget: u64,
    /// Time allowed for a write to the client to complete.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            handshake_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(300)),
            max_session: Some(Duration::from_secs(3600)),
            byte_budget: 16 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Tracks live sessions against [`Limits`].
#[derive(Clone)]
pub struct ConnLimiter {
    global: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

/// Held for the life of a session; releases its slots on drop.
pub struct ConnSlot {
    _global: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &Limits) -> Self {
        ConnLimiter {
            global: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            max_per_ip: limits.max_connections_per_ip.max(1),
        }
    }

    /// Wait for a global slot (called before `accept`, so a full sensor
    /// leaves new connections in the backlog instead of in memory).
    pub async fn global_slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquisition only fails never.
        match self.global.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => unreachable_closed(),
        }
    }

    /// Claim a per-source slot with an already-held global slot; `None` when
    /// this source is at its cap.
    pub fn claim(&self, global: OwnedSemaphorePermit, ip: IpAddr) -> Option<ConnSlot> {
        let mut map = lock(&self.per_ip);
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            _global: global,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }

    /// Live sessions from `ip`.
    pub fn live_from(&self, ip: IpAddr) -> usize {
        lock(&self.per_ip).get(&ip).copied().unwrap_or(0)
    }

    /// Distinct sources with live sessions.
    pub fn tracked_sources(&self) -> usize {
        lock(&self.per_ip).len()
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.per_ip);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the limiter down with it: the map stays
    // consistent because every critical section is a single update.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cold]
fn unreachable_closed() -> ! {
    panic!("connection semaphore closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_ip_cap_and_release() {
        let l = ConnLimiter::new(&Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = l.claim(l.global_slot().await, ip).unwrap();
        let _b = l.claim(l.global_slot().await, ip).unwrap();
        assert!(l.claim(l.global_slot().await, ip).is_none());
        assert!(
            l.claim(l.global_slot().await, "10.0.0.2".parse().unwrap())
                .is_some()
        );
        drop(a);
        assert_eq!(l.live_from(ip), 1);
        assert!(l.claim(l.global_slot().await, ip).is_some());
    }

    #[tokio::test]
    async fn table_forgets_idle_sources() {
        let l = ConnLimiter::new(&Limits::default());
        for i in 0..100u8 {
            let s = l
                .claim(l.global_slot().await, IpAddr::from([10, 0, 0, i]))
                .unwrap();
            drop(s);
        }
        assert_eq!(l.tracked_sources(), 0);
    }
}
