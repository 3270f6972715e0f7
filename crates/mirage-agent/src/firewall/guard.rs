//! Decisions the agent never enforces, whatever the server (or someone
//! posing as it) sends: none on a protected address (this host's own, its
//! gateways, the servers it talks to, the operator's management session,
//! the policy's whitelist), none on an address that is not a unicast
//! source (unspecified, broadcast, multicast, loopback, `0.0.0.0/8`,
//! `240.0.0.0/4`), and none longer than a cap. Refused entries are dropped
//! one by one, the rest of the policy applies.

use std::net::IpAddr;

use super::policy::{Cidr, Decision};

/// Default longest decision enforced: seven days.
pub const DEFAULT_MAX_TTL_SECS: i64 = 7 * 24 * 3600;

/// The filter.
#[derive(Debug, Clone)]
pub struct Guard {
    never: Vec<Cidr>,
    max_ttl_secs: i64,
}

/// What [`Guard::filter`] left out or changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Dropped: on a protected address.
    pub protected: usize,
    /// Dropped: not a unicast source.
    pub not_unicast: usize,
    /// Kept with their expiry cut to the cap.
    pub clamped: usize,
    /// One dropped address, for the log.
    pub example: Option<IpAddr>,
}

impl Filtered {
    /// Decisions dropped.
    pub fn dropped(&self) -> usize {
        self.protected + self.not_unicast
    }
}

/// Whether `ip` can be a packet's source worth steering.
pub fn is_unicast_source(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let first = a.octets()[0];
            !(a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_loopback()
                || first == 0
                || first >= 240)
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    }
}

impl Guard {
    /// Never steer `protect` or `whitelist`; cut expiries to
    /// `max_ttl_secs` from now.
    pub fn new(protect: &[Cidr], whitelist: &[Cidr], max_ttl_secs: i64) -> Guard {
        Guard {
            never: protect.iter().chain(whitelist).copied().collect(),
            max_ttl_secs: max_ttl_secs.max(1),
        }
    }

    /// Drop what must not be enforced from `decisions`, cap the rest.
    pub fn filter(&self, decisions: &mut Vec<Decision>, now_unix: i64) -> Filtered {
        let mut f = Filtered::default();
        let cap = now_unix.saturating_add(self.max_ttl_secs);
        decisions.retain_mut(|d| {
            let ip = d.ip.to_canonical();
            let why = if !is_unicast_source(ip) {
                &mut f.not_unicast
            } else if self.never.iter().any(|c| c.contains(ip)) {
                &mut f.protected
            } else {
                if d.expires_unix > cap {
                    d.expires_unix = cap;
                    f.clamped += 1;
                }
                return true;
            };
            *why += 1;
            f.example.get_or_insert(ip);
            false
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::DecisionType;

    fn d(ip: &str, expires: i64) -> Decision {
        Decision {
            ip: ip.parse().unwrap(),
            decision: DecisionType::Block,
            expires_unix: expires,
        }
    }

    #[test]
    fn protected_and_non_unicast_addresses_are_dropped_and_long_ones_cut() {
        let g = Guard::new(
            &["10.0.0.5".parse().unwrap()],
            &["192.168.0.0/16".parse().unwrap()],
            3600,
        );
        let mut v = vec![
            d("203.0.113.7", 2000),
            d("10.0.0.5", 2000),
            d("::ffff:10.0.0.5", 2000),
            d("192.168.7.7", 2000),
            d("0.0.0.0", 2000),
            d("255.255.255.255", 2000),
            d("224.0.0.1", 2000),
            d("127.0.0.1", 2000),
            d("::", 2000),
            d("ff02::1", 2000),
            d("240.1.2.3", 2000),
            d("2001:db8::7", 1000 + 10 * 365 * 86400),
        ];
        let f = g.filter(&mut v, 1000);
        assert_eq!(
            v.iter().map(|d| d.ip.to_string()).collect::<Vec<_>>(),
            ["203.0.113.7", "2001:db8::7"]
        );
        assert_eq!((f.protected, f.not_unicast, f.clamped), (3, 7, 1));
        assert_eq!(v[1].expires_unix, 1000 + 3600);
    }
}
