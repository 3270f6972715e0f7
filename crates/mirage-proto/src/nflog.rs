//! The nfnetlink_log messages (`linux/netfilter/nfnetlink_log.h`) that
//! carry the SYNs the firewall logs to an NFLOG group: a batch of netlink
//! messages, each with attributes, one of them the packet's IP and TCP
//! headers. The kernel sends them, but the headers inside are an
//! attacker's, so every length is checked, nothing panics, and
//! [`fuzz_nflog`] is the fuzz target. The socket that reads them is
//! `mirage_net::nflog`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// nfnetlink subsystem id of the log protocol.
pub const NFNL_SUBSYS_ULOG: u16 = 4;
/// Message type of a logged packet.
pub const NFULNL_MSG_PACKET: u16 = 0;
/// Attribute holding the packet itself.
pub const NFULA_PAYLOAD: u16 = 9;

/// One SYN seen by the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The scanner.
    pub src: SocketAddr,
    /// The address and port it probed (before any redirect).
    pub dst: SocketAddr,
    /// IP TTL / hop limit as received.
    pub ttl: u8,
    /// TCP window of the SYN (scanners use telltale values).
    pub window: u16,
}

/// Parse one `recv` of netlink messages; packets that are not a TCP
/// header over IPv4/IPv6 are skipped.
pub fn parse_batch(mut b: &[u8], out: &mut Vec<Probe>) {
    // struct nlmsghdr: length (header included), type, flags, seq, pid.
    while let Some((&[l0, l1, l2, l3, t0, t1, ..], _)) = b.split_first_chunk::<16>() {
        let len = u32::from_ne_bytes([l0, l1, l2, l3]) as usize;
        let ty = u16::from_ne_bytes([t0, t1]);
        // None when the length is shorter than the header or runs past the batch.
        let Some(msg) = b.get(16..len) else {
            return;
        };
        if ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
            && let Some(p) = parse_packet_msg(msg)
        {
            out.push(p);
        }
        b = after_padded(b, len);
    }
}

fn parse_packet_msg(m: &[u8]) -> Option<Probe> {
    // nfgenmsg (4 bytes), then attributes.
    let mut a = m.get(4..)?;
    // struct nlattr: length (header included), type.
    while let Some((&[l0, l1, t0, t1], _)) = a.split_first_chunk::<4>() {
        let alen = usize::from(u16::from_ne_bytes([l0, l1]));
        let aty = u16::from_ne_bytes([t0, t1]) & 0x3fff;
        // None when the length is shorter than the header or runs past the message.
        let body = a.get(4..alen)?;
        if aty == NFULA_PAYLOAD {
            return parse_ip_tcp(body);
        }
        a = after_padded(a, alen);
    }
    None
}

/// What follows the first `len` bytes of `b` padded to 4 (netlink aligns
/// messages and attributes so), or nothing when that is past the end.
fn after_padded(b: &[u8], len: usize) -> &[u8] {
    len.checked_next_multiple_of(4)
        .and_then(|next| b.get(next..))
        .unwrap_or(&[])
}

/// The addresses, TTL and window of an IP packet carrying TCP.
pub fn parse_ip_tcp(p: &[u8]) -> Option<Probe> {
    let first = *p.first()?;
    let version = first >> 4;
    let (src, dst, ttl, tcp) = match version {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || *p.get(9)? != 6 {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(12..16)?).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?);
            (IpAddr::V4(src), IpAddr::V4(dst), *p.get(8)?, p.get(ihl..)?)
        }
        6 => {
            // Extension headers before TCP are rare on a SYN; skipped.
            if *p.get(6)? != 6 {
                return None;
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(8..24)?).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(24..40)?).ok()?);
            (IpAddr::V6(src), IpAddr::V6(dst), *p.get(7)?, p.get(40..)?)
        }
        _ => return None,
    };
    let t = tcp.first_chunk::<16>()?;
    Some(Probe {
        src: SocketAddr::new(src.to_canonical(), u16::from_be_bytes([t[0], t[1]])),
        dst: SocketAddr::new(dst.to_canonical(), u16::from_be_bytes([t[2], t[3]])),
        ttl,
        window: u16::from_be_bytes([t[14], t[15]]),
    })
}

/// The fuzz target: parse arbitrary bytes as a batch and as a packet.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_nflog(data: &[u8]) {
    let mut out = Vec::new();
    parse_batch(data, &mut out);
    assert!(out.len() <= data.len() / 16);
    let _ = parse_ip_tcp(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_syn() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 44, 0, 0, 0x40, 0, 57, 6, 0, 0];
        p.extend_from_slice(&[10, 99, 0, 2, 10, 98, 0, 2]);
        p.extend_from_slice(&[0xc3, 0x50, 0x1f, 0x90]); // 50000 -> 8080
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0x60, 0x02, 0x04, 0x00]); // SYN, window 1024
        p.extend_from_slice(&[0; 4]);
        p
    }

    fn wrap(payload: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // an unrelated attribute first (hw protocol), then the payload
        attrs.extend_from_slice(&6u16.to_ne_bytes());
        attrs.extend_from_slice(&1u16.to_ne_bytes());
        attrs.extend_from_slice(&[8, 0, 0, 0]);
        attrs.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&NFULA_PAYLOAD.to_ne_bytes());
        attrs.extend_from_slice(payload);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let len = 16 + 4 + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&(NFNL_SUBSYS_ULOG << 8).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 0, 0, 7]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn parses_a_batch_of_two() {
        let one = wrap(&v4_syn());
        let mut b = one.clone();
        b.extend_from_slice(&one);
        let mut out = Vec::new();
        parse_batch(&b, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].src, "10.99.0.2:50000".parse().unwrap());
        assert_eq!(out[0].dst, "10.98.0.2:8080".parse().unwrap());
        assert_eq!(out[0].ttl, 57);
        assert_eq!(out[0].window, 1024);
    }

    #[test]
    fn truncated_and_garbage_input_is_skipped() {
        let one = wrap(&v4_syn());
        for cut in 0..one.len() {
            let mut out = Vec::new();
            parse_batch(&one[..cut], &mut out);
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        parse_batch(&[0xff; 64], &mut out);
        let mut state = 1u32;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..80)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            parse_batch(&wrap(&junk), &mut out);
            let _ = parse_ip_tcp(&junk);
        }
    }

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("nflog", fuzz_nflog);
    }
}
