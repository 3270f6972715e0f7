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
//! an attacker's: the parser lives in `mirage_proto::nflog`, with its fuzz
//! target.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self as nsock, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use mirage_proto::nflog::NFNL_SUBSYS_ULOG;
pub use mirage_proto::nflog::{Probe, parse_batch, parse_ip_tcp};

const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 3;
const NFULA_CFG_QTHRESH: u16 = 4;
const NFULA_CFG_NLBUFSIZ: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
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
