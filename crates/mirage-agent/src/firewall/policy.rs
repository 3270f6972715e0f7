//! The policy the server sends an agent, as it travels (serde, JSON), and
//! the checks that make it safe to turn into nftables text.
//!
//! A full snapshot:
//!
//! ```json
//! {"version": 42,
//!  "mode": "deception",
//!  "whitelist": {"sources": ["10.0.0.0/8", "2001:db8::/32"],
//!                "ports": [{"proto": "tcp", "port": 2200}]},
//!  "services": [{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "10.98.0.2:2222"}],
//!  "decisions": [{"ip": "203.0.113.7", "decision": "deceive", "expires_unix": 1795000000}]}
//! ```
//!
//! and a delta on top of it:
//!
//! ```json
//! {"version": 43, "new": [{"ip": "...", "decision": "block", "expires_unix": 1795000000}],
//!  "deleted": [{"ip": "...", "decision": "deceive"}]}
//! ```
//!
//! Every address is parsed into [`IpAddr`], [`Cidr`] or [`SocketAddr`] here,
//! so nothing reaches the nft text as a string someone else wrote: the
//! renderer prints these types, never the text the server sent.
//!
//! Decisions are parsed leniently: one decision with an address that does
//! not parse, or a decision type this agent does not know (a newer server),
//! is skipped (and logged) instead of failing the whole snapshot, because
//! an unparsable entry must not switch enforcement off for every other
//! attacker. The static part (mode, whitelist, services) is strict: a
//! whitelist that cannot be read must never be half applied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::de::{Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize, Serializer};

/// A full policy snapshot: what the agent enforces, replacing everything
/// enforced before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Version of the server's decision log this snapshot reflects; deltas
    /// with a version at or below it are already included.
    pub version: u64,
    /// How this agent treats attackers (and, in `honeypot` mode, everyone).
    pub mode: Mode,
    /// Sources and local ports that are never redirected, reflected or
    /// dropped.
    #[serde(default)]
    pub whitelist: Whitelist,
    /// Local service ports and the honeypot that stands in for each.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Current decisions (unparsable entries skipped, see the module docs).
    #[serde(default, deserialize_with = "lenient_decisions")]
    pub decisions: Vec<Decision>,
}

/// Changes since the previous version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Version after these changes.
    pub version: u64,
    /// Decisions added or renewed (a renewal carries the new expiry).
    #[serde(default, deserialize_with = "lenient_decisions")]
    pub new: Vec<Decision>,
    /// Decisions withdrawn before their expiry.
    #[serde(default, deserialize_with = "lenient_deleted")]
    pub deleted: Vec<DeletedDecision>,
}

/// The agent's mode (the seed system's four postures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everyone (except whitelisted sources and ports) who reaches a mapped
    /// service port lands on its honeypot.
    Honeypot,
    /// Only decided sources land on the honeypot of a mapped service port;
    /// everyone else reaches the real service.
    Deception,
    /// Decided sources are sent back to their own address, same port.
    Reflect,
    /// Decided sources are dropped.
    Firewall,
}

impl Mode {
    /// The lower-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Honeypot => "honeypot",
            Mode::Deception => "deception",
            Mode::Reflect => "reflect",
            Mode::Firewall => "firewall",
        }
    }

    /// What this mode does to a source with `decision`.
    ///
    /// `block` and `reflect` are explicit and override every mode. `deceive`
    /// is what the server's rules decide by default ("this is an
    /// attacker"), so it means "this agent's way of handling attackers":
    /// the honeypot in `honeypot` and `deception` mode, reflection in
    /// `reflect` mode, a drop in `firewall` mode (hosts in those modes
    /// usually have no honeypot to send anyone to). Reading `deceive` as an
    /// override too would make the `reflect` and `firewall` modes do
    /// nothing at all.
    pub fn action_for(self, decision: DecisionType) -> Action {
        match decision {
            DecisionType::Block => Action::Block,
            DecisionType::Reflect => Action::Reflect,
            DecisionType::Deceive => match self {
                Mode::Honeypot | Mode::Deception => Action::Deceive,
                Mode::Reflect => Action::Reflect,
                Mode::Firewall => Action::Block,
            },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server decided about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionType {
    /// An attacker: steer it the way the agent's mode says (see
    /// [`Mode::action_for`]).
    Deceive,
    /// Drop its traffic, whatever the mode.
    Block,
    /// Send its traffic back to itself, whatever the mode.
    Reflect,
}

impl DecisionType {
    /// The lower-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionType::Deceive => "deceive",
            DecisionType::Block => "block",
            DecisionType::Reflect => "reflect",
        }
    }
}

/// What the kernel does to a source: one set per action and family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// DNAT its connections to mapped service ports to their honeypot.
    Deceive,
    /// DNAT its TCP/UDP to its own address, same port (and masquerade, so
    /// the reflected packets are not dropped as martians).
    Reflect,
    /// Drop its packets.
    Block,
}

impl Action {
    /// Every action, in the order rules apply them (the first wins).
    pub const ALL: [Action; 3] = [Action::Block, Action::Reflect, Action::Deceive];

    /// The stem of the set names (`deceive_v4`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deceive => "deceive",
            Action::Reflect => "reflect",
            Action::Block => "block",
        }
    }
}

/// Sources and local ports never touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whitelist {
    /// Source networks (IPv4 or IPv6 CIDR, or a bare address).
    #[serde(default)]
    pub sources: Vec<Cidr>,
    /// Local ports (the destination port of incoming traffic).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

/// A transport protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// 1-65535.
    pub port: u16,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The nft keyword (also the wire name).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One local service and the honeypot that stands in for it.
///
/// A port may be listed twice, once with an IPv4 and once with an IPv6
/// honeypot: NAT cannot change the address family, so an IPv6 attacker can
/// only be sent to an IPv6 honeypot. A source to be deceived on a port with
/// no honeypot of its family is dropped rather than let through to the real
/// service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Protocol of the local port.
    pub proto: Proto,
    /// Local port (as attackers see it; a Docker-published port counts).
    pub port: u16,
    /// Name of the service (`ssh`, `redis`, ...): reported, never rendered.
    pub service: String,
    /// Where deceived traffic goes: the honeypot's address and port. It sees
    /// the attacker's real source address (no masquerade), so its replies
    /// must route back through this host.
    pub honeypot: SocketAddr,
}

/// One decision about one source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// The source. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as
    /// dual-stack daemons log them) are enforced as the IPv4 address.
    pub ip: IpAddr,
    /// What to do with it.
    pub decision: DecisionType,
    /// When it ends (Unix seconds); the kernel drops the element then, even
    /// if the agent is gone.
    pub expires_unix: i64,
}

/// A decision withdrawn before it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeletedDecision {
    /// The source.
    pub ip: IpAddr,
    /// Which of its decisions.
    pub decision: DecisionType,
}

/// An IPv4 or IPv6 network: an address with its host bits cleared and a
/// prefix length. Written `10.0.0.0/8`, `2001:db8::/32`, or a bare address
/// (`/32` or `/128`). Host bits in the text (`10.1.2.3/8`) are cleared, as
/// the notation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `addr/prefix`; `None` when `prefix` is longer than the
    /// address. An IPv4-mapped IPv6 network of prefix 96 or more becomes the
    /// IPv4 network it maps.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) => {
                if prefix > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                if prefix > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(Cidr { addr, prefix })
    }

    /// The network address (host bits clear).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Cidr::new(ip.to_canonical(), self.prefix).is_some_and(|c| c.addr == self.addr)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let prefix: u8 = p
                    .parse()
                    .map_err(|_| format!("bad prefix length in {s:?}"))?;
                (a, Some(prefix))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address in {s:?}"))?;
        let prefix = prefix.unwrap_or(match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        });
        Cidr::new(addr, prefix).ok_or_else(|| format!("prefix too long in {s:?}"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A policy that must not be applied, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

impl Policy {
    /// Checks what serde cannot: ports are not 0, honeypots are addresses
    /// DNAT can reach from prerouting, and no port has two honeypots of one
    /// family.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for p in &self.whitelist.ports {
            if p.port == 0 {
                return Err(PolicyError("whitelist port 0".into()));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.port == 0 {
                return Err(PolicyError(format!("services[{i}]: port 0")));
            }
            let hp = s.honeypot.ip().to_canonical();
            // DNAT from prerouting to loopback needs route_localnet, and
            // the others cannot carry a connection at all.
            if hp.is_loopback() || hp.is_unspecified() || hp.is_multicast() {
                return Err(PolicyError(format!(
                    "services[{i}]: honeypot {} is not a routable address (a honeypot on this host must listen on one of its non-loopback addresses)",
                    s.honeypot
                )));
            }
            if s.honeypot.port() == 0 {
                return Err(PolicyError(format!("services[{i}]: honeypot port 0")));
            }
            let family = hp.is_ipv4();
            if let Some(j) = self.services[..i].iter().position(|o| {
                o.proto == s.proto
                    && o.port == s.port
                    && o.honeypot.ip().to_canonical().is_ipv4() == family
            }) {
                return Err(PolicyError(format!(
                    "services[{i}]: {}/{} already has an IPv{} honeypot in services[{j}]",
                    s.proto.as_str(),
                    s.port,
                    if family { 4 } else { 6 }
                )));
            }
        }
        Ok(())
    }
}

/// A list element that either parsed or did not; what did not is counted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Ok(T),
    Bad(IgnoredAny),
}

fn lenient<'de, D, T>(d: D, what: &str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw = Vec::<Lenient<T>>::deserialize(d)?;
    let total = raw.len();
    let good: Vec<T> = raw
        .into_iter()
        .filter_map(|e| match e {
            Lenient::Ok(t) => Some(t),
            Lenient::Bad(_) => None,
        })
        .collect();
    if good.len() < total {
        tracing::warn!(
            skipped = total - good.len(),
            list = what,
            "policy entries that do not parse were skipped"
        );
    }
    Ok(good)
}

fn lenient_decisions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Decision>, D::Error> {
    lenient(d, "decisions")
}

fn lenient_deleted<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeletedDecision>, D::Error> {
    lenient(d, "deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"version": 42,
 "mode": "deception",
 "whitelist": {"sources": ["10.0.0.0/8", "2001:db8::/32"], "ports": [{"proto": "tcp", "port": 2200}]},
 "services": [{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "10.98.0.2:2222"}],
 "decisions": [{"ip": "203.0.113.7", "decision": "deceive", "expires_unix": 1795000000}]}"#;

    #[test]
    fn the_documented_snapshot_parses() {
        let p: Policy = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(p.version, 42);
        assert_eq!(p.mode, Mode::Deception);
        assert_eq!(p.whitelist.sources[0].to_string(), "10.0.0.0/8");
        assert_eq!(p.whitelist.sources[1].to_string(), "2001:db8::/32");
        assert_eq!(
            p.whitelist.ports,
            vec![PortSpec {
                proto: Proto::Tcp,
                port: 2200
            }]
        );
        assert_eq!(p.services[0].honeypot, "10.98.0.2:2222".parse().unwrap());
        assert_eq!(p.decisions[0].decision, DecisionType::Deceive);
        assert_eq!(p.decisions[0].expires_unix, 1_795_000_000);
        p.validate().unwrap();
        // And it round-trips.
        let again: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn a_delta_parses_with_missing_lists_empty() {
        let d: Delta = serde_json::from_str(
            r#"{"version": 43, "new": [{"ip": "2001:db8::7", "decision": "block", "expires_unix": 5}],
                "deleted": [{"ip": "203.0.113.7", "decision": "deceive"}]}"#,
        )
        .unwrap();
        assert_eq!(d.new[0].ip, "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(d.deleted[0].decision, DecisionType::Deceive);
        let d: Delta = serde_json::from_str(r#"{"version": 44}"#).unwrap();
        assert!(d.new.is_empty() && d.deleted.is_empty());
    }

    #[test]
    fn bad_decisions_are_skipped_not_fatal() {
        let p: Policy = serde_json::from_str(
            r#"{"version": 1, "mode": "firewall", "decisions": [
                {"ip": "203.0.113.7; flush ruleset", "decision": "block", "expires_unix": 5},
                {"ip": "203.0.113.8", "decision": "throttle", "expires_unix": 5},
                {"ip": "203.0.113.9", "decision": "block"},
                {"ip": "203.0.113.10", "decision": "block", "expires_unix": 5}]}"#,
        )
        .unwrap();
        assert_eq!(p.decisions.len(), 1);
        assert_eq!(p.decisions[0].ip.to_string(), "203.0.113.10");
    }

    #[test]
    fn a_bad_whitelist_fails_the_whole_policy() {
        for bad in [
            r#"{"version": 1, "mode": "firewall", "whitelist": {"sources": ["10.0.0.0/33"]}}"#,
            r#"{"version": 1, "mode": "firewall", "whitelist": {"sources": ["10.0.0.0/8 }"]}}"#,
            r#"{"version": 1, "mode": "firewall", "whitelist": {"ports": [{"proto": "icmp", "port": 1}]}}"#,
            r#"{"version": 1, "mode": "stealth"}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_rejects_unusable_services() {
        let base: Policy = serde_json::from_str(EXAMPLE).unwrap();
        let with = |f: &dyn Fn(&mut Policy)| {
            let mut p = base.clone();
            f(&mut p);
            p.validate()
        };
        assert!(with(&|p| p.services[0].port = 0).is_err());
        assert!(with(&|p| p.services[0].honeypot = "127.0.0.1:2222".parse().unwrap()).is_err());
        assert!(with(&|p| p.services[0].honeypot = "[::1]:2222".parse().unwrap()).is_err());
        assert!(with(&|p| p.services[0].honeypot = "10.98.0.2:0".parse().unwrap()).is_err());
        assert!(with(&|p| p.whitelist.ports[0].port = 0).is_err());
        // A second IPv4 honeypot for tcp/22 is ambiguous; an IPv6 one is not.
        let dup = |hp: &str| {
            let hp = hp.parse().unwrap();
            with(&move |p: &mut Policy| {
                let mut s = p.services[0].clone();
                s.honeypot = hp;
                p.services.push(s);
            })
        };
        assert!(dup("10.98.0.3:22").is_err());
        assert!(dup("[fd98::2]:2222").is_ok());
    }

    #[test]
    fn cidr_parsing_and_normalising() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(
            "192.0.2.1".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            "2001:db8::1".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            "2001:db8:ffff::/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        assert_eq!(
            "::ffff:10.0.0.0/104".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn deceive_follows_the_mode_block_and_reflect_override_it() {
        use Action as A;
        use DecisionType as D;
        let table = [
            (Mode::Honeypot, [A::Deceive, A::Block, A::Reflect]),
            (Mode::Deception, [A::Deceive, A::Block, A::Reflect]),
            (Mode::Reflect, [A::Reflect, A::Block, A::Reflect]),
            (Mode::Firewall, [A::Block, A::Block, A::Reflect]),
        ];
        for (mode, want) in table {
            let got = [D::Deceive, D::Block, D::Reflect].map(|d| mode.action_for(d));
            assert_eq!(got, want, "{mode}");
        }
    }
}
