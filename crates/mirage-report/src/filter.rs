//! Record filters from the command line: time range, source networks,
//! destination ports, services. A record passes when it satisfies every
//! given filter; repeated flags of one kind are alternatives.

use ipnet::IpNet;

use crate::parse::Record;

/// The filters of one report.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep records at or after this time (µs since the epoch).
    pub since: Option<i64>,
    /// Keep records before this time (µs since the epoch).
    pub until: Option<i64>,
    /// Keep records whose source is in one of these networks.
    pub src: Vec<IpNet>,
    /// Keep records whose destination port is one of these.
    pub ports: Vec<u16>,
    /// Keep records whose service is one of these.
    pub services: Vec<String>,
}

impl Filter {
    /// Whether `r` passes.
    #[inline]
    pub fn matches(&self, r: &Record<'_>) -> bool {
        if self.since.is_some_and(|t| r.ts < t) || self.until.is_some_and(|t| r.ts >= t) {
            return false;
        }
        if !self.src.is_empty() && !self.src.iter().any(|n| n.contains(&r.src)) {
            return false;
        }
        if !self.ports.is_empty() && !r.dst_port.is_some_and(|p| self.ports.contains(&p)) {
            return false;
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| s == r.service) {
            return false;
        }
        true
    }
}

/// Parse `--src`: a CIDR network or a single address.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid --src '{s}': expected an address or CIDR network"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Kind;

    fn rec(ts: i64, src: &str, port: Option<u16>, service: &'static str) -> Record<'static> {
        Record {
            ts,
            src: src.parse().unwrap(),
            src_port: None,
            dst: None,
            dst_port: port,
            service,
            session: None,
            kind: Kind::Connect,
            payload: None,
            detail: None,
        }
    }

    #[test]
    fn filters_combine() {
        let f = Filter {
            since: Some(10),
            until: Some(20),
            src: vec![parse_net("10.1.0.0/16").unwrap(), parse_net("::1").unwrap()],
            ports: vec![22, 23],
            services: vec!["ssh".into()],
        };
        assert!(f.matches(&rec(10, "10.1.2.3", Some(22), "ssh")));
        assert!(f.matches(&rec(19, "::1", Some(23), "ssh")));
        assert!(!f.matches(&rec(20, "10.1.2.3", Some(22), "ssh")));
        assert!(!f.matches(&rec(9, "10.1.2.3", Some(22), "ssh")));
        assert!(!f.matches(&rec(15, "10.2.0.1", Some(22), "ssh")));
        assert!(!f.matches(&rec(15, "10.1.2.3", None, "ssh")));
        assert!(!f.matches(&rec(15, "10.1.2.3", Some(22), "redis")));
        assert!(parse_net("10.0.0.1/33").is_err());
        assert_eq!(parse_net("10.0.0.9/8").unwrap().to_string(), "10.0.0.0/8");
    }
}
