//! Syslog receivers: binding (with a fallback port when 514 is taken or
//! privileged), the TCP/TLS connection loop ([`stream`]) and UDP
//! ([`udp`]).
//!
//! Every received message becomes an [`Inbound`] on one bounded channel to
//! the pipeline. Receivers `send().await`, so when the pipeline (or the
//! disk under it) is slower than the senders, TCP connections stop being
//! read and the senders' own queues absorb the burst; nothing is dropped
//! inside the server.

pub mod idle_reaper;
pub mod relp;
pub mod stream;
pub mod trust;
pub mod udp;

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use crate::store_health::StoreRefusal;

/// One message for the pipeline.
#[derive(Debug)]
pub struct Inbound {
    /// Who sent it.
    pub peer: SocketAddr,
    /// When it arrived (Unix microseconds).
    pub received_micros: i64,
    /// Whether it may feed the rules ([`trust`]); signed sensor events
    /// always may.
    pub trusted: bool,
    /// What it is.
    pub payload: Payload,
}

/// The content of an [`Inbound`].
#[derive(Debug)]
pub enum Payload {
    /// One syslog message (a frame or a datagram, framing removed).
    Syslog {
        /// The message.
        bytes: Vec<u8>,
        /// For a sender that waits for an acknowledgement (RELP): answered
        /// once the message is stored (or refused).
        ack: Option<Ack>,
    },
    /// A batch of sensor events from the HTTP ingest; the pipeline answers
    /// on `done` once they are stored (or refused).
    Events {
        /// The events.
        events: Vec<mirage_core::Event>,
        /// Where to report how many were new.
        done: tokio::sync::oneshot::Sender<Result<crate::pipeline::IngestReceipt, StoreRefusal>>,
    },
}

/// The answer to a message whose sender waits for it: `Ok` once the store
/// committed what the message produced.
pub type Ack = tokio::sync::oneshot::Sender<Result<(), StoreRefusal>>;

/// The sending half of the pipeline channel.
pub type InboundTx = tokio::sync::mpsc::Sender<Inbound>;

/// Now, Unix microseconds.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Bind a TCP listener (IPv6 sockets are v6-only, so `0.0.0.0` and `[::]`
/// can share a port).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// Bind a UDP socket with a large receive buffer (bursts from many hosts
/// arrive faster than one task reads them).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    // The kernel caps this at net.core.rmem_max; a smaller buffer is fine.
    let _ = s.set_recv_buffer_size(8 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// What [`bind_syslog`] bound.
#[derive(Debug, Default)]
pub struct Bound {
    /// TCP listeners.
    pub tcp: Vec<TcpListener>,
    /// UDP sockets.
    pub udp: Vec<UdpSocket>,
}

/// Bind TCP and/or UDP on every address. When an address cannot be bound
/// because the port is taken or privileged, the same host with
/// `fallback_port` is tried (0: no fallback). An IPv6 address on a host
/// without IPv6 is skipped. Fails only when nothing could be bound, or on
/// other errors.
pub fn bind_syslog(
    addrs: &[SocketAddr],
    tcp: bool,
    udp: bool,
    fallback_port: u16,
) -> Result<Bound, String> {
    let mut bound = Bound::default();
    for &addr in addrs {
        match bind_pair(addr, tcp, udp) {
            Ok((t, u)) => {
                bound.tcp.extend(t);
                bound.udp.extend(u);
            }
            Err(e) if addr.is_ipv6() && is_no_ipv6(&e) => {
                tracing::info!("syslog: {addr}: IPv6 unavailable, skipped");
            }
            Err(e)
                if fallback_port != 0
                    && addr.port() != fallback_port
                    && matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                    ) =>
            {
                let alt = SocketAddr::new(addr.ip(), fallback_port);
                tracing::info!("syslog: cannot bind {addr} ({e}); using {alt}");
                let (t, u) = bind_pair(alt, tcp, udp).map_err(|e| format!("syslog: {alt}: {e}"))?;
                bound.tcp.extend(t);
                bound.udp.extend(u);
            }
            Err(e) => return Err(format!("syslog: {addr}: {e}")),
        }
    }
    if bound.tcp.is_empty() && bound.udp.is_empty() && (tcp || udp) {
        return Err("syslog: no listen address could be bound".into());
    }
    Ok(bound)
}

fn bind_pair(
    addr: SocketAddr,
    tcp: bool,
    udp: bool,
) -> io::Result<(Option<TcpListener>, Option<UdpSocket>)> {
    let t = if tcp { Some(bind_tcp(addr)?) } else { None };
    // Port 0 means "any": bind UDP on the port TCP got, so one address
    // serves both like the fixed ports do.
    let udp_addr = match &t {
        Some(l) if addr.port() == 0 => l.local_addr()?,
        _ => addr,
    };
    let u = if udp { Some(bind_udp(udp_addr)?) } else { None };
    Ok((t, u))
}

fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT
}
