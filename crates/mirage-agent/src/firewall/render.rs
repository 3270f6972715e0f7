//! nftables text for a policy: pure functions from parsed types to the
//! input of `nft -f -`, so every ruleset can be printed (`--dry-run`),
//! compared in tests, and applied as one atomic transaction.
//!
//! One table (`table inet mirage` by default) holds everything: static
//! chains whose rules reference named sets, and the sets. Decisions are set
//! elements with timeouts; the rule count never depends on how many
//! attackers there are. The inet family carries NAT for both IPv4 and IPv6
//! on the kernels this targets (checked on 6.x, nft 1.0.6), so one table is
//! enough.
//!
//! Chains, in packet order:
//!
//! * `filter_pre` (prerouting, priority mangle, before NAT): whitelisted
//!   sources and ports return untouched; packets of sources in `block_v4` /
//!   `block_v6` are dropped, for traffic to this host and forwarded
//!   (container) traffic alike; so are sources to deceive on a service port
//!   whose honeypot is of the other address family (NAT cannot cross
//!   families, and letting them reach the real service would undo the
//!   decision). Only packets in the direction of the connection's
//!   originator are dropped (`ct direction reply return`), so connections
//!   this host opened (to the server, to a resolver) survive even if their
//!   peer is decided.
//! * `nat_pre` (prerouting, priority dstnat - 10, so it runs before Docker's
//!   DNAT and wins: the first DNAT of a connection is the one kept): for
//!   traffic to this host's own addresses (`fib daddr type local`, which
//!   covers Docker-published ports), `reflect_*` sources are DNATed to their
//!   own address (same port), `deceive_*` sources (everyone in `honeypot`
//!   mode) to the honeypot mapped for the destination port.
//! * `nat_post` (postrouting, srcnat - 10): reflected connections are
//!   masqueraded, or the attacker's kernel would drop packets carrying its
//!   own address as source. Deceived ones are not: the honeypot must see the
//!   attacker's real address.
//!
//! NAT chains see only the first packet of a connection; connections
//! established before a decision stay where conntrack put them (see
//! `docs/firewall.md`).
//!
//! Every steered connection is also noted, before its DNAT or drop, in a
//! dynamic set `hits_<action>_<family>` keyed by source, destination,
//! protocol and port (at most [`HITS_SIZE`] elements, each for
//! [`HITS_TIMEOUT_SECS`]): the agent reads them to tell the server which
//! host and service an attacker was aiming at. The note is a rule of its
//! own, because a full set stops the rule it is in, and that must never be
//! the rule that steers.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::policy::{Action, Cidr, Mode, PortSpec};
use super::state::{ElementOp, Enforcement, Layout};

/// Most elements in one `hits_*` set; when full, new connections are still
/// steered, just not reported until elements time out.
pub const HITS_SIZE: u32 = 65_536;

/// How long a `hits_*` element lives: one report per source, destination
/// and port per this many seconds.
pub const HITS_TIMEOUT_SECS: u32 = 60;

/// The name of the set that notes connections steered by `action` for one
/// address family (`v4` or `v6`).
pub fn hits_set_name(action: Action, v6: bool) -> String {
    format!("hits_{}_{}", action.as_str(), if v6 { "v6" } else { "v4" })
}

/// Longest element timeout rendered (10 years): a decision lasting longer is
/// enforced for 10 years, which nft and every kernel accept.
pub const MAX_TIMEOUT_MS: i64 = 3650 * 86_400_000;

/// Whether `name` can be the table's name: `mirage` followed by letters,
/// digits or `_`, at most 32 bytes. The prefix keeps it clear of nft
/// keywords and of other software's tables.
pub fn valid_table_name(name: &str) -> bool {
    name.len() <= 32
        && name.starts_with("mirage")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The complete transaction for a snapshot: create the table if missing,
/// delete it, recreate it with its sets and chains, and fill the decision
/// sets, all in one atomic commit (no packet ever sees a half-built table).
pub fn full(table: &str, state: &Enforcement, now_ms: i64) -> String {
    let mut out = header(table, state);
    // `table ... {}` first makes the delete succeed when there is no table.
    let _ = write!(
        out,
        "table inet {table} {{\n}}\ndelete table inet {table}\n"
    );
    out.push_str(&skeleton(table, state.layout()));
    push_elements(&mut out, table, state, now_ms);
    out
}

/// The transaction for a snapshot whose layout equals what the kernel has:
/// empty the decision sets and refill them, in one commit. Chains and
/// static sets are left alone.
pub fn refill(table: &str, state: &Enforcement, now_ms: i64) -> String {
    let mut out = header(table, state);
    for action in Action::ALL {
        for fam in [Family::V4, Family::V6] {
            let _ = writeln!(out, "flush set inet {table} {}", set_name(action, fam));
        }
    }
    push_elements(&mut out, table, state, now_ms);
    out
}

/// The transaction for a delta's element changes. A new element is added
/// with its timeout. An element whose expiry changed is added, deleted and
/// added again with the new timeout, because adding an existing element
/// does not renew its timeout on every kernel; a removed one is added then
/// deleted, because deleting a missing element (one that expired a moment
/// ago) would fail the whole batch, and the add makes the delete always
/// valid. (Adding an element that exists, or that expired but was not yet
/// collected, is never an error.)
pub fn ops(table: &str, ops: &[ElementOp], now_ms: i64) -> String {
    let mut touched: [Vec<IpAddr>; 6] = Default::default();
    let mut put: [Vec<(IpAddr, i64)>; 6] = Default::default();
    for op in ops {
        match *op {
            ElementOp::Put {
                action,
                ip,
                expires_unix,
                replaces,
            } => {
                let i = slot(action, Family::of(ip));
                if replaces {
                    touched[i].push(ip);
                }
                if let Some(ms) = timeout_ms(expires_unix, now_ms) {
                    put[i].push((ip, ms));
                }
            }
            ElementOp::Remove { action, ip } => touched[slot(action, Family::of(ip))].push(ip),
        }
    }
    let mut out = String::new();
    for (verb, with_timeout) in [("add", false), ("delete", false), ("add", true)] {
        for action in Action::ALL {
            for fam in [Family::V4, Family::V6] {
                let i = slot(action, fam);
                let set = set_name(action, fam);
                if with_timeout {
                    if !put[i].is_empty() {
                        let _ = writeln!(out, "add element inet {table} {set} {{");
                        push_timed(&mut out, &put[i]);
                        out.push_str("}\n");
                    }
                } else if !touched[i].is_empty() {
                    let _ = writeln!(out, "{verb} element inet {table} {set} {{");
                    let list: Vec<String> = touched[i].iter().map(|ip| format!("\t{ip}")).collect();
                    out.push_str(&list.join(",\n"));
                    out.push_str("\n}\n");
                }
            }
        }
    }
    out
}

/// The transaction that removes the table (and succeeds when it is already
/// gone).
pub fn remove(table: &str) -> String {
    format!("table inet {table} {{\n}}\ndelete table inet {table}\n")
}

/// The table definition: static sets (whitelist, service map) with their
/// elements, empty decision sets, and the chains.
pub fn skeleton(table: &str, layout: &Layout) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "table inet {table} {{");
    interval_set(&mut o, "allow_v4", "ipv4_addr", &layout.allow_v4);
    interval_set(&mut o, "allow_v6", "ipv6_addr", &layout.allow_v6);
    port_set(&mut o, "allow_ports", layout.allow_ports.iter());
    honeypot_map(&mut o, "honeypot_v4", "ipv4_addr", &layout.honeypot_v4);
    honeypot_map(&mut o, "honeypot_v6", "ipv6_addr", &layout.honeypot_v6);
    port_set(&mut o, "no_honeypot_v4", layout.no_honeypot_v4.iter());
    port_set(&mut o, "no_honeypot_v6", layout.no_honeypot_v6.iter());
    for action in [Action::Deceive, Action::Reflect, Action::Block] {
        for fam in [Family::V4, Family::V6] {
            let _ = write!(
                o,
                "\tset {} {{\n\t\ttype {}\n\t\tflags timeout\n\t}}\n",
                set_name(action, fam),
                fam.addr_type()
            );
        }
    }

    for action in [Action::Deceive, Action::Reflect, Action::Block] {
        for fam in [Family::V4, Family::V6] {
            let ty = fam.addr_type();
            let _ = write!(
                o,
                "\tset {} {{\n\t\ttype {ty} . {ty} . inet_proto . inet_service\n\t\tsize {HITS_SIZE}\n\t\tflags dynamic,timeout\n\t\ttimeout {HITS_TIMEOUT_SECS}s\n\t}}\n",
                hits_set_name(action, fam == Family::V6),
            );
        }
    }

    // Sources to deceive: a set, or in honeypot mode everyone.
    let (deceive4, deceive6) = match layout.mode {
        Mode::Honeypot => ("meta nfproto ipv4 ", "meta nfproto ipv6 "),
        Mode::Deception | Mode::Reflect | Mode::Firewall => {
            ("ip saddr @deceive_v4 ", "ip6 saddr @deceive_v6 ")
        }
    };
    let untouched = "\t\tiif \"lo\" return\n\
                     \t\tip saddr @allow_v4 return\n\
                     \t\tip6 saddr @allow_v6 return\n\
                     \t\tmeta l4proto . th dport @allow_ports return\n";

    o.push_str("\tchain filter_pre {\n");
    o.push_str("\t\ttype filter hook prerouting priority mangle; policy accept;\n");
    o.push_str("\t\tct direction reply return\n");
    o.push_str(untouched);
    // Dropped packets never get a conntrack entry: every retry is `new`,
    // and `add` keeps the first note without refreshing it.
    o.push_str(
        "\t\tmeta l4proto { tcp, udp } ct state new ip saddr @block_v4 add @hits_block_v4 { ip saddr . ip daddr . meta l4proto . th dport }\n",
    );
    o.push_str(
        "\t\tmeta l4proto { tcp, udp } ct state new ip6 saddr @block_v6 add @hits_block_v6 { ip6 saddr . ip6 daddr . meta l4proto . th dport }\n",
    );
    o.push_str("\t\tip saddr @block_v4 drop\n");
    o.push_str("\t\tip6 saddr @block_v6 drop\n");
    o.push_str("\t\tfib daddr type != local return\n");
    let _ = writeln!(
        o,
        "\t\t{deceive4}meta l4proto . th dport @no_honeypot_v4 drop"
    );
    let _ = writeln!(
        o,
        "\t\t{deceive6}meta l4proto . th dport @no_honeypot_v6 drop"
    );
    o.push_str("\t}\n");

    o.push_str("\tchain nat_pre {\n");
    o.push_str("\t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n");
    o.push_str(untouched);
    o.push_str("\t\tfib daddr type != local return\n");
    o.push_str(
        "\t\tmeta l4proto { tcp, udp } ip saddr @reflect_v4 add @hits_reflect_v4 { ip saddr . ip daddr . meta l4proto . th dport }\n",
    );
    o.push_str(
        "\t\tmeta l4proto { tcp, udp } ip6 saddr @reflect_v6 add @hits_reflect_v6 { ip6 saddr . ip6 daddr . meta l4proto . th dport }\n",
    );
    o.push_str("\t\tmeta l4proto { tcp, udp } ip saddr @reflect_v4 dnat ip to ip saddr\n");
    o.push_str("\t\tmeta l4proto { tcp, udp } ip6 saddr @reflect_v6 dnat ip6 to ip6 saddr\n");
    let _ = writeln!(
        o,
        "\t\t{deceive4}meta l4proto . th dport @honeypot_v4 add @hits_deceive_v4 {{ ip saddr . ip daddr . meta l4proto . th dport }}"
    );
    let _ = writeln!(
        o,
        "\t\t{deceive6}meta l4proto . th dport @honeypot_v6 add @hits_deceive_v6 {{ ip6 saddr . ip6 daddr . meta l4proto . th dport }}"
    );
    let _ = writeln!(
        o,
        "\t\t{deceive4}dnat ip to meta l4proto . th dport map @honeypot_v4"
    );
    let _ = writeln!(
        o,
        "\t\t{deceive6}dnat ip6 to meta l4proto . th dport map @honeypot_v6"
    );
    o.push_str("\t}\n");

    o.push_str("\tchain nat_post {\n");
    o.push_str("\t\ttype nat hook postrouting priority srcnat - 10; policy accept;\n");
    // After the reflecting DNAT source and destination are both the
    // attacker; nft cannot compare two fields, the two lookups can.
    o.push_str("\t\tct status dnat ip saddr @reflect_v4 ip daddr @reflect_v4 masquerade\n");
    o.push_str("\t\tct status dnat ip6 saddr @reflect_v6 ip6 daddr @reflect_v6 masquerade\n");
    o.push_str("\t}\n");
    o.push_str("}\n");
    o
}

/// Milliseconds left before `expires_unix`, capped at [`MAX_TIMEOUT_MS`];
/// `None` once it has passed.
pub fn timeout_ms(expires_unix: i64, now_ms: i64) -> Option<i64> {
    let left = expires_unix.saturating_mul(1000).saturating_sub(now_ms);
    (left > 0).then(|| left.min(MAX_TIMEOUT_MS))
}

/// nft's duration syntax. Each unit is written separately (`1d2h3m4s5ms`)
/// because nft rejects a single large count of seconds or milliseconds
/// (over about 49 days) that it accepts in days.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(1);
    let parts = [
        (ms / 86_400_000, "d"),
        (ms / 3_600_000 % 24, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
}

fn set_name(action: Action, fam: Family) -> String {
    let suffix = match fam {
        Family::V4 => "v4",
        Family::V6 => "v6",
    };
    format!("{}_{suffix}", action.as_str())
}

fn slot(action: Action, fam: Family) -> usize {
    let a = match action {
        Action::Block => 0,
        Action::Reflect => 1,
        Action::Deceive => 2,
    };
    a * 2 + usize::from(fam == Family::V6)
}

fn header(table: &str, state: &Enforcement) -> String {
    format!(
        "# mirage: table inet {table}, policy version {}, mode {}; managed by mirage agent, do not edit\n",
        state.version(),
        state.layout().mode
    )
}

fn push_elements(out: &mut String, table: &str, state: &Enforcement, now_ms: i64) {
    let mut groups: [Vec<(IpAddr, i64)>; 6] = Default::default();
    for ((action, ip), exp) in state.elements(now_ms) {
        if let Some(ms) = timeout_ms(exp, now_ms) {
            groups[slot(action, Family::of(ip))].push((ip, ms));
        }
    }
    for action in Action::ALL {
        for fam in [Family::V4, Family::V6] {
            let g = &groups[slot(action, fam)];
            if !g.is_empty() {
                let _ = writeln!(out, "add element inet {table} {} {{", set_name(action, fam));
                push_timed(out, g);
                out.push_str("}\n");
            }
        }
    }
}

fn push_timed(out: &mut String, elements: &[(IpAddr, i64)]) {
    for (i, (ip, ms)) in elements.iter().enumerate() {
        let sep = if i + 1 < elements.len() { "," } else { "" };
        let _ = writeln!(out, "\t{ip} timeout {}{sep}", duration(*ms));
    }
}

fn interval_set<'a>(
    o: &mut String,
    name: &str,
    ty: &str,
    nets: impl IntoIterator<Item = &'a Cidr>,
) {
    let _ = write!(
        o,
        "\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge\n"
    );
    let list: Vec<String> = nets.into_iter().map(|c| c.to_string()).collect();
    if !list.is_empty() {
        let _ = writeln!(o, "\t\telements = {{ {} }}", list.join(", "));
    }
    o.push_str("\t}\n");
}

fn port_set<'a>(o: &mut String, name: &str, ports: impl Iterator<Item = &'a PortSpec>) {
    let _ = write!(o, "\tset {name} {{\n\t\ttype inet_proto . inet_service\n");
    let list: Vec<String> = ports
        .map(|p| format!("{} . {}", p.proto.as_str(), p.port))
        .collect();
    if !list.is_empty() {
        let _ = writeln!(o, "\t\telements = {{ {} }}", list.join(", "));
    }
    o.push_str("\t}\n");
}

fn honeypot_map<'a>(
    o: &mut String,
    name: &str,
    ty: &str,
    map: impl IntoIterator<Item = (&'a PortSpec, &'a SocketAddr)>,
) {
    let _ = write!(
        o,
        "\tmap {name} {{\n\t\ttype inet_proto . inet_service : {ty} . inet_service\n"
    );
    let list: Vec<String> = map
        .into_iter()
        .map(|(p, hp)| {
            format!(
                "{} . {} : {} . {}",
                p.proto.as_str(),
                p.port,
                hp.ip(),
                hp.port()
            )
        })
        .collect();
    if !list.is_empty() {
        let _ = writeln!(o, "\t\telements = {{ {} }}", list.join(", "));
    }
    o.push_str("\t}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::policy::{Delta, Policy};

    /// 2026-11-18T22:13:20Z: the policy's expiries are 1 h, 1 d, 90 d after.
    const NOW_MS: i64 = 1_795_000_000_000;

    fn policy(mode: &str) -> Policy {
        serde_json::from_str(&format!(
            r#"{{"version": 42, "mode": "{mode}",
             "whitelist": {{"sources": ["10.0.0.0/8", "2001:db8:aaaa::/48"],
                           "ports": [{{"proto": "tcp", "port": 2200}}]}},
             "services": [
               {{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "10.98.0.2:2222"}},
               {{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "[fd98::2]:2222"}},
               {{"proto": "tcp", "port": 6379, "service": "redis", "honeypot": "10.98.0.2:6379"}}],
             "decisions": [
               {{"ip": "203.0.113.7", "decision": "deceive", "expires_unix": 1795003600}},
               {{"ip": "203.0.113.8", "decision": "block", "expires_unix": 1795086400}},
               {{"ip": "2001:db8:bad::1", "decision": "deceive", "expires_unix": 1802776000}},
               {{"ip": "2001:db8:bad::2", "decision": "reflect", "expires_unix": 1795003600}},
               {{"ip": "203.0.113.99", "decision": "block", "expires_unix": 1794999999}}]}}"#
        ))
        .unwrap()
    }

    /// Compares with `src/firewall/golden/NAME`; `MIRAGE_BLESS=1` rewrites
    /// the file instead (then review the diff).
    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/firewall/golden")
            .join(name);
        if std::env::var_os("MIRAGE_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (MIRAGE_BLESS=1 writes it)", path.display()));
        assert_eq!(got, want, "{name} differs; MIRAGE_BLESS=1 rewrites it");
    }

    #[test]
    fn golden_snapshot_per_mode() {
        for mode in ["honeypot", "deception", "reflect", "firewall"] {
            let p = policy(mode);
            let state = Enforcement::from_policy(&p, &[], NOW_MS).unwrap();
            golden(&format!("{mode}.nft"), &full("mirage", &state, NOW_MS));
        }
    }

    #[test]
    fn golden_refill_and_delta() {
        let p = policy("deception");
        let state = Enforcement::from_policy(&p, &["192.0.2.10".parse().unwrap()], NOW_MS).unwrap();
        golden("refill.nft", &refill("mirage_t", &state, NOW_MS));
        let delta: Delta = serde_json::from_str(
            r#"{"version": 43,
                "new": [{"ip": "198.51.100.1", "decision": "deceive", "expires_unix": 1795000002},
                        {"ip": "203.0.113.7", "decision": "deceive", "expires_unix": 1795007200},
                        {"ip": "2001:db8:bad::3", "decision": "block", "expires_unix": 1795003600}],
                "deleted": [{"ip": "203.0.113.8", "decision": "block"}]}"#,
        )
        .unwrap();
        let plan = state.plan(&delta, NOW_MS);
        golden("delta.nft", &ops("mirage_t", &plan.ops, NOW_MS));
    }

    #[test]
    fn the_modes_differ_only_where_they_must() {
        let text = |m: &str| {
            let s = Enforcement::from_policy(&policy(m), &[], NOW_MS).unwrap();
            skeleton("mirage", s.layout())
        };
        // Reflect and firewall differ from deception only in which set a
        // `deceive` decision lands in, not in the chains.
        assert_eq!(text("deception"), text("reflect"));
        assert_eq!(text("deception"), text("firewall"));
        let diff: Vec<_> = text("honeypot")
            .lines()
            .zip(text("deception").lines())
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.trim().to_owned())
            .collect();
        assert_eq!(
            diff,
            [
                "meta nfproto ipv4 meta l4proto . th dport @no_honeypot_v4 drop",
                "meta nfproto ipv6 meta l4proto . th dport @no_honeypot_v6 drop",
                "meta nfproto ipv4 meta l4proto . th dport @honeypot_v4 add @hits_deceive_v4 { ip saddr . ip daddr . meta l4proto . th dport }",
                "meta nfproto ipv6 meta l4proto . th dport @honeypot_v6 add @hits_deceive_v6 { ip6 saddr . ip6 daddr . meta l4proto . th dport }",
                "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @honeypot_v4",
                "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @honeypot_v6",
            ]
        );
    }

    #[test]
    fn the_rule_count_does_not_grow_with_decisions() {
        let mut p = policy("deception");
        let small = skeleton(
            "mirage",
            Enforcement::from_policy(&p, &[], NOW_MS).unwrap().layout(),
        );
        for i in 0..10_000u32 {
            p.decisions.push(crate::firewall::Decision {
                ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x6440_0000 + i)),
                decision: crate::firewall::DecisionType::Deceive,
                expires_unix: 1_795_003_600,
            });
        }
        let state = Enforcement::from_policy(&p, &[], NOW_MS).unwrap();
        assert_eq!(skeleton("mirage", state.layout()), small);
        let text = full("mirage", &state, NOW_MS);
        assert_eq!(text.matches(" timeout ").count(), 10_004);
    }

    #[test]
    fn durations_are_written_unit_by_unit() {
        assert_eq!(duration(1), "1ms");
        assert_eq!(duration(2_000), "2s");
        assert_eq!(duration(3_600_000), "1h");
        assert_eq!(duration(90 * 86_400_000 + 1_500), "90d1s500ms");
        assert_eq!(duration(MAX_TIMEOUT_MS), "3650d");
        assert_eq!(timeout_ms(10, 10_000), None);
        assert_eq!(timeout_ms(11, 10_000), Some(1_000));
        assert_eq!(timeout_ms(i64::MAX, 0), Some(MAX_TIMEOUT_MS));
        assert_eq!(timeout_ms(i64::MIN, 0), None);
    }

    #[test]
    fn table_names() {
        for ok in ["mirage", "mirage_t1", "mirageX"] {
            assert!(valid_table_name(ok), "{ok}");
        }
        for bad in [
            "",
            "filter",
            "mirage-x",
            "mirage x",
            "mirage;flush",
            &"mirage".repeat(6),
        ] {
            assert!(!valid_table_name(bad), "{bad}");
        }
    }
}
