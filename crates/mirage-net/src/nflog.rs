//! SYN probes the firewall logs to an NFLOG group.
//!
//! A SYN scan (`nmap -sS`, masscan, zmap) never completes a connection: the
//! kernel answers the SYN for the listener and the scanner resets, so no
//! `accept` ever returns and no socket-level honeypot can see it. The
//! diverting nftables rule therefore also logs each new SYN
//! (`log group N`), and this module reads those packets over
//! `NETLINK_NETFILTER` (the nfnetlink_log protocol, `linux/netfilter/
//! nfnetlink_log.h`): the IP and TCP headers as they arrived, before the
//! redirect rewrote them, so the destination is the original one in both
//! REDIRECT and TPROXY modes.
//!
//! The kernel is the only sender on this socket, but the headers inside are
//! an attacker's, so the parser checks every length and never panics.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self as nsock, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

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

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 3;
const NFULA_CFG_QTHRESH: u16 = 4;
const NFULA_CFG_NLBUFSIZ: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// Header bytes copied per packet: a full IPv6 header plus the TCP
/// fields we read (a v4 header with options is at most 60).
const SNAPLEN: u32 = 96;

/// A bound NFLOG group.
pub struct NflogReader {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
    /// Times the kernel reported lost messages (ENOBUFS).
    pub overruns: u64,
}

impl NflogReader {
    /// Bind `group` (needs CAP_NET_ADMIN). Only one process may bind a
    /// group at a time.
    pub fn open(group: u16) -> io::Result<NflogReader> {
        let fd = nsock::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(io::Error::from)?;
        nsock::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(io::Error::from)?;
        // A full-range scan is 65k SYNs in a few seconds; a large queue
        // keeps the kernel from dropping them while we catch up.
        if nsock::setsockopt(&fd, nsock::sockopt::RcvBufForce, &(16 << 20)).is_err() {
            let _ = nsock::setsockopt(&fd, nsock::sockopt::RcvBuf, &(16 << 20));
        }
        let mut seq = 0u32;
        let mut cmd = |attr_type: u16, payload: &[u8]| -> io::Result<()> {
            seq += 1;
            let msg = config_msg(group, seq, attr_type, payload);
            nsock::send(fd.as_raw_fd(), &msg, nsock::MsgFlags::empty()).map_err(io::Error::from)?;
            wait_ack(&fd)
        };
        cmd(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])?;
        let mut mode = SNAPLEN.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        cmd(NFULA_CFG_MODE, &mode)?;
        // Batch up to 64 packets or 50 ms per message: fewer wakeups in a flood.
        cmd(NFULA_CFG_QTHRESH, &64u32.to_be_bytes())?;
        cmd(NFULA_CFG_TIMEOUT, &5u32.to_be_bytes())?;
        cmd(NFULA_CFG_NLBUFSIZ, &(64u32 << 10).to_be_bytes())?;
        socket2::SockRef::from(&fd).set_nonblocking(true)?;
        // SAFETY: `fd` is an open socket the AsyncFd takes ownership of, so
        // it stays open, and is the same descriptor, until the AsyncFd drops.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(NflogReader {
            fd,
            buf: vec![0u8; 256 << 10],
            overruns: 0,
        })
    }

    /// Wait for the next batch and append its probes to `out`.
    pub async fn next_batch(&mut self, out: &mut Vec<Probe>) -> io::Result<()> {
        loop {
            let buf = &mut self.buf;
            let r = self
                .fd
                .async_io(Interest::READABLE, |fd| {
                    nsock::recv(fd.as_raw_fd(), buf, nsock::MsgFlags::empty())
                        .map_err(io::Error::from)
                })
                .await;
            match r {
                Ok(n) => {
                    parse_batch(&self.buf[..n.min(self.buf.len())], out);
                    return Ok(());
                }
                // The kernel dropped messages: counted, and reading goes on.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    self.overruns += 1;
                    if self.overruns.is_power_of_two() {
                        tracing::warn!(
                            overruns = self.overruns,
                            "NFLOG queue overrun: some SYN probes were not recorded"
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn config_msg(group: u16, seq: u32, attr_type: u16, payload: &[u8]) -> Vec<u8> {
    let attr_len = 4 + payload.len();
    let padded = (attr_len + 3) & !3;
    let len = 16 + 4 + padded;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family (unspec), version 0, resource id = group (big-endian).
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&group.to_be_bytes());
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&attr_type.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(len, 0);
    m
}

fn wait_ack(fd: &OwnedFd) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    let n =
        nsock::recv(fd.as_raw_fd(), &mut buf, nsock::MsgFlags::empty()).map_err(io::Error::from)?;
    let b = &buf[..n];
    if b.len() >= 20 && u16::from_ne_bytes([b[4], b[5]]) == NLMSG_ERROR {
        let code = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
        if code != 0 {
            return Err(io::Error::from_raw_os_error(-code));
        }
    }
    Ok(())
}

/// Parse one `recv` of netlink messages; packets that are not a TCP
/// header over IPv4/IPv6 are skipped.
pub fn parse_batch(mut b: &[u8], out: &mut Vec<Probe>) {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            return;
        }
        if ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
            && let Some(p) = parse_packet_msg(&b[16..len])
        {
            out.push(p);
        }
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
}

fn parse_packet_msg(m: &[u8]) -> Option<Probe> {
    // nfgenmsg (4 bytes), then attributes.
    let mut a = m.get(4..)?;
    while a.len() >= 4 {
        let alen = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let aty = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        if alen < 4 || alen > a.len() {
            return None;
        }
        if aty == NFULA_PAYLOAD {
            return parse_ip_tcp(&a[4..alen]);
        }
        a = a.get((alen + 3) & !3..).unwrap_or(&[]);
    }
    None
}

/// The addresses, TTL and window of an IP packet carrying TCP.
pub fn parse_ip_tcp(p: &[u8]) -> Option<Probe> {
    let version = p.first()? >> 4;
    let (src, dst, ttl, tcp) = match version {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 || *p.get(9)? != 6 {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(12..16)?).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?);
            (IpAddr::V4(src), IpAddr::V4(dst), p[8], p.get(ihl..)?)
        }
        6 => {
            // Extension headers before TCP are rare on a SYN; skipped.
            if *p.get(6)? != 6 {
                return None;
            }
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(8..24)?).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(24..40)?).ok()?);
            (IpAddr::V6(src), IpAddr::V6(dst), p[7], p.get(40..)?)
        }
        _ => return None,
    };
    let t = tcp.get(..16)?;
    Some(Probe {
        src: SocketAddr::new(src.to_canonical(), u16::from_be_bytes([t[0], t[1]])),
        dst: SocketAddr::new(dst.to_canonical(), u16::from_be_bytes([t[2], t[3]])),
        ttl,
        window: u16::from_be_bytes([t[14], t[15]]),
    })
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
}
