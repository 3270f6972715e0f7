//! UDP capture: one `payload` event per datagram flow.
//!
//! A flow is (source address and port, original destination address and
//! port). Its first datagram is written as a `payload` event (at most
//! `udp_max_datagram_bytes` of it, with its own session id); later
//! datagrams of the same flow only refresh it, until it has been quiet for
//! `udp_flow_idle_secs`. Two caps bound the cost of a flood of spoofed
//! sources: the flow table holds at most `udp_max_flows` flows (when full,
//! expired flows are swept; if none has expired, a new flow is recorded but
//! not remembered), and at most `udp_max_events_per_sec` flow events are
//! written per second (the rest are counted and reported in the log).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use mirage_config::CatchallConfig;
use mirage_core::{EventKind, PayloadData, Transport};
use mirage_net::{DivertedUdp, EventTx, envelope};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The flow table and rate limiter, apart from the socket so that tests
/// can drive it.
pub struct Flows {
    seen: HashMap<(SocketAddr, SocketAddr), Instant>,
    max_flows: usize,
    idle: Duration,
    per_sec: u32,
    window_start: Instant,
    in_window: u32,
    /// When a full table was last swept for expired flows.
    last_sweep: Option<Instant>,
    /// New flows not recorded because of the rate cap.
    pub rate_dropped: u64,
}

impl Flows {
    /// A table with the caps of `cfg`.
    pub fn new(cfg: &CatchallConfig) -> Flows {
        Flows {
            seen: HashMap::new(),
            max_flows: cfg.udp_max_flows,
            idle: Duration::from_secs(cfg.udp_flow_idle_secs),
            per_sec: cfg.udp_max_events_per_sec,
            window_start: Instant::now(),
            in_window: 0,
            last_sweep: None,
            rate_dropped: 0,
        }
    }

    /// A datagram of (`src`, `dst`) arrived at `now`: true when it starts
    /// a flow that should be recorded.
    pub fn arrive(&mut self, src: SocketAddr, dst: SocketAddr, now: Instant) -> bool {
        let key = (src, dst);
        if let Some(last) = self.seen.get_mut(&key)
            && now.duration_since(*last) < self.idle
        {
            *last = now;
            return false;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window >= self.per_sec {
            self.rate_dropped += 1;
            return false;
        }
        self.in_window += 1;
        // A full table is swept at most once a second: a spoofed flood
        // that keeps it full must not cost a full pass per datagram.
        let swept_lately = self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
        if self.seen.len() >= self.max_flows && !self.seen.contains_key(&key) && !swept_lately {
            let idle = self.idle;
            self.seen.retain(|_, last| now.duration_since(*last) < idle);
            self.last_sweep = Some(now);
        }
        if self.seen.len() < self.max_flows || self.seen.contains_key(&key) {
            self.seen.insert(key, now);
        }
        true
    }

    /// Flows remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no flow is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Receive on `socket` until shutdown, writing one event per new flow.
pub async fn run(
    socket: DivertedUdp,
    cfg: std::sync::Arc<CatchallConfig>,
    sensor: String,
    events: EventTx,
    shutdown: CancellationToken,
) {
    let mut flows = Flows::new(&cfg);
    let mut buf = vec![0u8; cfg.udp_max_datagram_bytes.max(1)];
    let mut errors = 0u64;
    let mut reported = 0u64;
    loop {
        let r = tokio::select! {
            r = socket.recv(&mut buf) => r,
            _ = shutdown.cancelled() => break,
        };
        let d = match r {
            Ok(d) => d,
            Err(e) => {
                errors += 1;
                if errors.is_power_of_two() {
                    tracing::debug!(error = %e, count = errors, "udp receive failed");
                }
                continue;
            }
        };
        if !flows.arrive(d.src, d.dst, Instant::now()) {
            if flows.rate_dropped > reported && flows.rate_dropped.is_power_of_two() {
                reported = flows.rate_dropped;
                tracing::warn!(
                    dropped = flows.rate_dropped,
                    "UDP flow events over udp_max_events_per_sec; new flows counted, not recorded"
                );
            }
            continue;
        }
        let data = &buf[..d.len.min(buf.len())];
        let mut e = envelope(
            &sensor,
            "catchall",
            Transport::Udp,
            d.src,
            d.dst,
            Some(mirage_core::new_id()),
            EventKind::Payload {
                data: PayloadData::new(data, cfg.inline_bytes),
                stored: None,
            },
        );
        if d.truncated {
            e.tags.push("datagram_truncated".into());
        }
        events.send(e).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_event_per_flow_until_idle() {
        let cfg = CatchallConfig {
            udp_flow_idle_secs: 10,
            ..Default::default()
        };
        let mut f = Flows::new(&cfg);
        let t0 = Instant::now();
        assert!(f.arrive(a("10.0.0.1:5000"), a("10.0.0.2:53"), t0));
        assert!(!f.arrive(a("10.0.0.1:5000"), a("10.0.0.2:53"), t0));
        assert!(f.arrive(a("10.0.0.1:5000"), a("10.0.0.2:161"), t0));
        assert!(!f.arrive(
            a("10.0.0.1:5000"),
            a("10.0.0.2:53"),
            t0 + Duration::from_secs(9)
        ));
        assert!(f.arrive(
            a("10.0.0.1:5000"),
            a("10.0.0.2:53"),
            t0 + Duration::from_secs(20)
        ));
    }

    #[test]
    fn table_and_rate_are_capped() {
        let cfg = CatchallConfig {
            udp_max_flows: 100,
            udp_max_events_per_sec: 150,
            ..Default::default()
        };
        let mut f = Flows::new(&cfg);
        let t0 = Instant::now();
        let mut recorded = 0;
        for port in 1..=1000u16 {
            if f.arrive(
                SocketAddr::from(([10, 0, 0, 1], port)),
                a("10.0.0.2:53"),
                t0,
            ) {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 150);
        assert_eq!(f.rate_dropped, 850);
        assert_eq!(f.len(), 100);
        // the next second allows more
        assert!(f.arrive(
            a("10.0.0.9:1"),
            a("10.0.0.2:53"),
            t0 + Duration::from_millis(1001)
        ));
        // Once the flows have gone idle, a sweep makes room again.
        let later = t0 + Duration::from_secs(cfg.udp_flow_idle_secs + 1);
        assert!(f.arrive(a("10.0.0.9:2"), a("10.0.0.2:53"), later));
        assert_eq!(f.len(), 1);
    }
}
