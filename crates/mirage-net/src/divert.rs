//! Receiving traffic the firewall diverted to one port: the original
//! destination of each TCP connection and UDP datagram.
//!
//! Two kernel mechanisms exist and the catch-all supports both:
//! - **REDIRECT** (nftables `redirect`, a NAT): the connection arrives on
//!   the listener's own address; conntrack remembers where it was going,
//!   and `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` read it back.
//! - **TPROXY** (nftables `tproxy`): packets keep their destination and are
//!   delivered to a socket bound with `IP_TRANSPARENT` / `IPV6_TRANSPARENT`;
//!   an accepted connection's local address *is* the original destination,
//!   and a datagram's comes with `IP_RECVORIGDSTADDR` /
//!   `IPV6_RECVORIGDSTADDR` as a control message.
//!
//! Socket options go through socket2 and nix, which wrap the calls safely.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self as nsock, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket};

/// How diverted connections reach a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divert {
    /// Not diverted: the local address is the destination.
    None,
    /// NAT redirect: read the original destination from conntrack.
    Redirect,
    /// TPROXY: a transparent socket; the local address is the destination.
    Tproxy,
}

/// Make `socket` transparent (TPROXY) before it is bound. Needs
/// CAP_NET_ADMIN (root); the error says so.
pub fn set_transparent(socket: &Socket, ipv6: bool) -> io::Result<()> {
    let r = if ipv6 {
        socket.set_ip_transparent_v6(true)
    } else {
        socket.set_ip_transparent_v4(true)
    };
    r.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("IP_TRANSPARENT (tproxy mode needs CAP_NET_ADMIN): {e}"),
        )
    })
}

/// The destination the client of `stream` aimed at.
///
/// Under [`Divert::Redirect`] this asks conntrack; a connection that was not
/// redirected (a client that reached the listener's own port) has no NAT
/// entry, and its local address is returned. Otherwise the local address.
pub fn original_dst(stream: &TcpStream, divert: Divert) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    if divert != Divert::Redirect {
        return Ok(local);
    }
    let sock = SockRef::from(stream);
    let v6 = match local.ip() {
        IpAddr::V4(_) => false,
        // A v4 client on a dual-stack socket is NATed in the IPv4 table.
        IpAddr::V6(a) => a.to_ipv4_mapped().is_none(),
    };
    let r = if v6 {
        sock.original_dst_v6()
    } else {
        sock.original_dst_v4()
    };
    match r.ok().and_then(|a| a.as_socket()) {
        Some(a) => Ok(a),
        None => Ok(local),
    }
}

/// A UDP socket that receives datagrams for any port and address the
/// firewall diverts to it (TPROXY), with each one's original destination.
pub struct DivertedUdp {
    socket: UdpSocket,
    v6: bool,
}

/// One received datagram's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes received (at most the buffer's length; see `truncated`).
    pub len: usize,
    /// True when the datagram was longer than the buffer.
    pub truncated: bool,
    /// The sender.
    pub src: SocketAddr,
    /// Where it was sent: the original destination under TPROXY, else the
    /// socket's own address.
    pub dst: SocketAddr,
}

impl DivertedUdp {
    /// Bind `addr`; with `transparent`, as a TPROXY target (needs root).
    pub fn bind(addr: SocketAddr, transparent: bool) -> io::Result<DivertedUdp> {
        let v6 = addr.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if v6 {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        if transparent {
            set_transparent(&socket, v6)?;
        }
        // Ask for each datagram's original destination (a cmsg); harmless
        // when nothing is diverted: it is then the socket's own address.
        if v6 {
            nsock::setsockopt(&socket, sockopt::Ipv6OrigDstAddr, &true)
        } else {
            nsock::setsockopt(&socket, sockopt::Ipv4OrigDstAddr, &true)
        }
        .map_err(io::Error::from)?;
        // Scans arrive in bursts: a larger queue rides them out.
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        Ok(DivertedUdp { socket, v6 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Wait for the next datagram; its first bytes go into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        let local = self.socket.local_addr()?;
        let v6 = self.v6;
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || recv_one(fd, buf, v6, local))
            .await
    }
}

fn recv_one(fd: i32, buf: &mut [u8], v6: bool, local: SocketAddr) -> io::Result<Datagram> {
    let mut cmsg = if v6 {
        nix::cmsg_space!(nix::libc::sockaddr_in6)
    } else {
        nix::cmsg_space!(nix::libc::sockaddr_in)
    };
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        nsock::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
            .map_err(io::Error::from)?;
    let src = msg
        .address
        .as_ref()
        .and_then(storage_to_std)
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let mut dst = local;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4OrigDstAddr(a) => {
                    dst = SocketAddr::from(nsock::SockaddrIn::from(a));
                }
                ControlMessageOwned::Ipv6OrigDstAddr(a) => {
                    dst = SocketAddr::from(nsock::SockaddrIn6::from(a));
                }
                _ => {}
            }
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    Ok(Datagram {
        len: msg.bytes,
        truncated,
        src: SocketAddr::new(src.ip().to_canonical(), src.port()),
        dst: SocketAddr::new(dst.ip().to_canonical(), dst.port()),
    })
}

fn storage_to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*a));
    }
    s.as_sockaddr_in6().map(|a| SocketAddr::from(*a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_without_divert_reports_its_own_address() {
        let s = DivertedUdp::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = s.local_addr().unwrap();
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"hello", addr).unwrap();
        let mut buf = [0u8; 3];
        let d = s.recv(&mut buf).await.unwrap();
        assert_eq!(d.src, c.local_addr().unwrap());
        assert_eq!(d.dst, addr);
        assert_eq!(&buf, b"hel");
        assert!(d.truncated);
    }

    #[tokio::test]
    async fn tcp_without_nat_is_its_local_address() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(original_dst(&s, Divert::Redirect).unwrap(), addr);
    }
}
