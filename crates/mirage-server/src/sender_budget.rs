//! A per-sender event budget: each sending address may add events at a
//! steady rate with a burst on top (a token bucket); beyond it events are
//! dropped and counted, so one sender (a log flood, a forged
//! `message repeated` storm) cannot fill the database or drown the rules.
//! At most [`MAX_SENDERS`] buckets are kept; a new sender beyond that takes
//! the place of the one seen longest ago.

use std::collections::HashMap;
use std::net::IpAddr;

/// Most senders with a bucket of their own.
pub const MAX_SENDERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_micros: i64,
}

/// The buckets.
#[derive(Debug)]
pub struct SenderBudget {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl SenderBudget {
    /// `rate` events per second on average, `burst` above it.
    pub fn new(rate: u32, burst: u32) -> Self {
        SenderBudget {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Take one event's worth from `ip`'s bucket at `now_micros`; false
    /// when it is empty (drop the event).
    pub fn take(&mut self, ip: IpAddr, now_micros: i64) -> bool {
        let ip = ip.to_canonical();
        if !self.buckets.contains_key(&ip)
            && self.buckets.len() >= MAX_SENDERS
            && let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last_micros)
                .map(|(k, _)| *k)
        {
            self.buckets.remove(&oldest);
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last_micros: now_micros,
        });
        let elapsed = (now_micros - b.last_micros).max(0) as f64 / 1e6;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last_micros = now_micros;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = SenderBudget::new(10, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let taken = (0..1000).filter(|_| b.take(a, 0)).count();
        assert_eq!(taken, 100);
        // One second later: ten more.
        let taken = (0..1000).filter(|_| b.take(a, 1_000_000)).count();
        assert_eq!(taken, 10);
        // Another sender has its own bucket.
        assert!(b.take("192.0.2.2".parse().unwrap(), 1_000_000));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut b = SenderBudget::new(1, 1);
        for i in 0..(MAX_SENDERS as u32 + 50) {
            b.take(IpAddr::from(i.to_be_bytes()), i64::from(i));
        }
        assert_eq!(b.buckets.len(), MAX_SENDERS);
    }
}
