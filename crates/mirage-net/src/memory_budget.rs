//! The sensor's global memory budget: bytes held in sessions' read buffers,
//! counted across every listener.
//!
//! Per-session byte budgets alone do not bound memory: 300 connections each
//! holding a partial 8 MiB Redis bulk stay inside their own budgets and
//! still take 2.4 GB together. Every session's read buffer is charged here
//! as it grows; once the total would pass the budget, a session that wants
//! more than [`FREE_BYTES`] is cut (`session.close` with reason
//! `memory_budget`), while sessions holding less keep working, so a flood
//! of large partial requests cannot starve a scanner's `PING`.

use std::sync::atomic::{AtomicU64, Ordering};

/// What any one session may hold whatever the total: enough for a whole
/// ordinary request and one read chunk on top.
pub const FREE_BYTES: u64 = 64 * 1024;

/// The shared counter (one per sensor, shared by all its listeners).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    held: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (at least [`FREE_BYTES`]).
    pub fn new(limit: u64) -> Self {
        MemoryBudget {
            limit: limit.max(FREE_BYTES),
            held: AtomicU64::new(0),
        }
    }

    /// Bytes charged now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Move one session's charge from `from` to `to` bytes. A growth is
    /// refused (false, nothing charged) when `to` is above [`FREE_BYTES`]
    /// and the total would pass the budget; shrinking always succeeds.
    pub fn try_resize(&self, from: u64, to: u64) -> bool {
        if to <= from {
            self.release(from - to);
            return true;
        }
        let grow = to - from;
        if to <= FREE_BYTES {
            self.held.fetch_add(grow, Ordering::Relaxed);
            return true;
        }
        let limit = self.limit;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(grow).filter(|&t| t <= limit)
            })
            .is_ok()
    }

    /// Charge `to - from` bytes already allocated (a buffer that grew more
    /// than predicted), whatever the total.
    pub fn force_resize(&self, from: u64, to: u64) {
        if to >= from {
            self.held.fetch_add(to - from, Ordering::Relaxed);
        } else {
            self.release(from - to);
        }
    }

    /// Give back `n` bytes a session no longer holds.
    pub fn release(&self, n: u64) {
        // Never below zero: a release is always of bytes charged before.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// True when the total is past the budget (a forced charge overshot).
    pub fn exceeded(&self) -> bool {
        self.held() > self.limit
    }
}

impl Default for MemoryBudget {
    /// The sensor's default budget, 256 MiB.
    fn default() -> Self {
        MemoryBudget::new(256 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sessions_always_fit_large_ones_stop_at_the_limit() {
        let b = MemoryBudget::new(1 << 20);
        // Large holders fill the budget.
        assert!(b.try_resize(0, 512 << 10));
        assert!(b.try_resize(0, 512 << 10));
        assert!(!b.try_resize(0, 128 << 10));
        assert_eq!(b.held(), 1 << 20, "a refused growth charges nothing");
        // A small one still gets its free allowance.
        assert!(b.try_resize(0, FREE_BYTES));
        assert!(b.exceeded());
        // Releasing makes room again.
        b.release(512 << 10);
        assert!(b.try_resize(0, 256 << 10));
        assert!(b.try_resize(256 << 10, 0));
        b.release(u64::MAX);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn forced_charges_are_counted() {
        let b = MemoryBudget::new(FREE_BYTES);
        b.force_resize(0, 3 * FREE_BYTES);
        assert!(b.exceeded());
        b.force_resize(3 * FREE_BYTES, FREE_BYTES);
        assert_eq!(b.held(), FREE_BYTES);
    }
}
