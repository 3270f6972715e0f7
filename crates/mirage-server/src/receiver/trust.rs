//! Which syslog senders may make decisions. Anyone who can reach the
//! syslog port can write a line naming any address ("Failed password for
//! root from <the operator>"), and over UDP anyone can forge the sender
//! too; only lines from trusted senders feed the rules. Trusted are: the
//! configured CIDRs (`[syslog] trusted_sources`), the addresses enrolled
//! agents authenticate from on the policy API (refreshed from the store),
//! and TLS clients whose certificate the configured client CA signed. UDP
//! is trusted only when `[syslog] udp_decides` says so.
//!
//! Untrusted lines are still stored (tagged `untrusted`), so an analyst
//! sees what was sent; they only decide nothing.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mirage_rules::cidr::Cidr;
use mirage_store::Store;
use tokio_util::sync::CancellationToken;

/// How far back an agent's address counts as its own.
const AGENT_ADDRESS_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the agents' addresses are read again.
const REFRESH: Duration = Duration::from_secs(5);

/// The trusted senders.
#[derive(Debug, Default)]
pub struct Trust {
    cidrs: Vec<Cidr>,
    agents: RwLock<HashSet<IpAddr>>,
    udp: bool,
}

impl Trust {
    /// Trust `cidrs` (unparsable entries were refused by the config check
    /// and are skipped here), and UDP when `udp`.
    pub fn new(cidrs: &[String], udp: bool) -> Arc<Trust> {
        Arc::new(Trust {
            cidrs: cidrs.iter().filter_map(|c| c.parse().ok()).collect(),
            agents: RwLock::new(HashSet::new()),
            udp,
        })
    }

    /// Whether a stream (TCP, TLS) from `ip` is trusted; `client_cert`:
    /// the TLS client showed a certificate the client CA signed.
    pub fn stream(&self, ip: IpAddr, client_cert: bool) -> bool {
        client_cert || self.address(ip)
    }

    /// Whether a datagram claiming to come from `ip` is trusted.
    pub fn datagram(&self, ip: IpAddr) -> bool {
        self.udp && self.address(ip)
    }

    fn address(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.cidrs.iter().any(|c| c.contains(ip))
            || self
                .agents
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&ip)
    }

    /// Keep the agents' addresses current until `cancel`.
    pub async fn refresh(self: Arc<Self>, store: Arc<dyn Store>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let since = crate::receiver::now_micros()
                - i64::try_from(AGENT_ADDRESS_AGE.as_micros()).unwrap_or(i64::MAX);
            if let Ok(addrs) = store.agent_addresses(since).await {
                let set: HashSet<IpAddr> = addrs
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|a| a.to_canonical())
                    .collect();
                *self.agents.write().unwrap_or_else(|e| e.into_inner()) = set;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_agents_are_trusted_udp_only_when_asked() {
        let t = Trust::new(&["10.0.0.0/8".into()], false);
        assert!(t.stream("10.1.2.3".parse().unwrap(), false));
        assert!(!t.stream("203.0.113.7".parse().unwrap(), false));
        assert!(t.stream("203.0.113.7".parse().unwrap(), true));
        assert!(!t.datagram("10.1.2.3".parse().unwrap()));
        t.agents
            .write()
            .unwrap()
            .insert("203.0.113.9".parse().unwrap());
        assert!(t.stream("::ffff:203.0.113.9".parse().unwrap(), false));
        let u = Trust::new(&["10.0.0.0/8".into()], true);
        assert!(u.datagram("10.1.2.3".parse().unwrap()));
        assert!(!u.datagram("203.0.113.7".parse().unwrap()));
    }
}
