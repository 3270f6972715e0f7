//! What this host is on the network: its own addresses, its default
//! gateways, and the SSH session a command runs in. The agent never steers
//! any of them (a decision on the host's own address or its gateway would
//! cut it off; one on the operator's address would lock them out).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address on this host's interfaces (both families, loopback
/// included), in the caller's network namespace.
pub fn addresses() -> Vec<IpAddr> {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = ifs
        .filter_map(|i| {
            let a = i.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The default gateways (`/proc/net/route`, `/proc/net/ipv6_route`).
pub fn gateways() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        out.extend(t.lines().skip(1).filter_map(gateway_v4));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
        out.extend(t.lines().filter_map(gateway_v6));
    }
    out.sort();
    out.dedup();
    out
}

/// One `/proc/net/route` line's gateway, when it is a default route:
/// `Iface Destination Gateway Flags …`, addresses as little-endian hex.
fn gateway_v4(line: &str) -> Option<IpAddr> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (dest, gw) = (f.get(1)?, f.get(2)?);
    if *dest != "00000000" {
        return None;
    }
    let gw = u32::from_str_radix(gw, 16).ok()?;
    (gw != 0).then(|| IpAddr::V4(Ipv4Addr::from(gw.swap_bytes())))
}

/// One `/proc/net/ipv6_route` line's next hop for `::/0`: `dest plen src
/// splen nexthop …`, addresses as 32 hex digits.
fn gateway_v6(line: &str) -> Option<IpAddr> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.first()? != &"0".repeat(32) || f.get(1)? != &"00" {
        return None;
    }
    let hop = u128::from_str_radix(f.get(4)?, 16).ok()?;
    (hop != 0).then(|| IpAddr::V6(Ipv6Addr::from(hop)))
}

/// The SSH session this process runs in: `(client address, client port,
/// server address, server port)` from `SSH_CONNECTION`, in our environment
/// or an ancestor's (sudo resets the environment, its parent shell still
/// has it).
pub fn ssh_connection() -> Option<(IpAddr, u16, IpAddr, u16)> {
    fn parse(v: &str) -> Option<(IpAddr, u16, IpAddr, u16)> {
        let mut f = v.split_whitespace();
        Some((
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
            f.next()?.parse().ok()?,
        ))
    }
    if let Some(c) = std::env::var("SSH_CONNECTION")
        .ok()
        .as_deref()
        .and_then(parse)
    {
        return Some(c);
    }
    let mut pid = std::process::id();
    for _ in 0..32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The parent pid follows the command name, which is in parentheses
        // and may itself hold spaces.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        if ppid <= 1 {
            return None;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{ppid}/environ")) {
            for var in env.split(|b| *b == 0) {
                if let Some(v) = var.strip_prefix(b"SSH_CONNECTION=")
                    && let Some(c) = std::str::from_utf8(v).ok().and_then(parse)
                {
                    return Some(c);
                }
            }
        }
        pid = ppid;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_are_read_from_proc_lines() {
        assert_eq!(
            gateway_v4("eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            gateway_v4("eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"),
            None
        );
        let v6 = format!(
            "{} 00 {} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0",
            "0".repeat(32),
            "0".repeat(32)
        );
        assert_eq!(gateway_v6(&v6), Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn loopback_is_among_the_addresses() {
        assert!(addresses().contains(&"127.0.0.1".parse().unwrap()));
    }
}
