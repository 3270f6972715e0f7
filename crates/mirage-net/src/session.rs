//! One accepted connection as an emulator sees it.
//!
//! Reads and writes go through [`Session`] so that the byte budget, the
//! handshake/idle timeouts, the maximum duration and shutdown apply to every
//! emulator the same way. A read buffer is grown only once the socket is
//! readable, so an idle connection holds no buffer at all.
//!
//! Three hooks exist for the catch-all, which looks at the first bytes
//! before it knows which emulator should have the connection:
//! [`Session::unread`] gives bytes back so the next read returns them first
//! (and [`Session::start_tls`] feeds them to rustls, so a ClientHello already
//! read still starts the handshake); [`Session::set_service`] re-labels the
//! session's events when it is handed to another emulator; and a [`Tap`]
//! sees every byte the client sends from then on (decrypted, under TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use chrono::Utc;
use mirage_core::{Event, EventKind, SCHEMA_VERSION, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::emit::EventTx;
use crate::limits::Limits;
use crate::memory_budget::MemoryBudget;

/// Why a session stopped, as seen from a read or a write.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client closed or reset the connection.
    #[error("client closed")]
    ClientClosed,
    /// No first byte within the handshake timeout.
    #[error("handshake timeout")]
    HandshakeTimeout,
    /// No activity within the idle timeout.
    #[error("idle timeout")]
    IdleTimeout,
    /// The session reached its maximum duration.
    #[error("maximum session duration")]
    MaxDuration,
    /// The client exceeded the session byte budget.
    #[error("byte budget exhausted")]
    ByteBudget,
    /// The session's buffer would have grown past the sensor's memory
    /// budget (shared by all sessions).
    #[error("memory budget exhausted")]
    MemoryBudget,
    /// The client broke the protocol and the emulator cut it off.
    #[error("protocol error")]
    ProtocolError,
    /// The sensor is shutting down.
    #[error("shutdown")]
    Shutdown,
    /// Another socket error.
    #[error("i/o: {0}")]
    Io(std::io::Error),
}

impl SessionEnd {
    /// The `session.close` reason for this end.
    pub fn reason(&self) -> mirage_core::CloseReason {
        use mirage_core::CloseReason as R;
        match self {
            SessionEnd::ClientClosed => R::ClientClosed,
            SessionEnd::HandshakeTimeout => R::HandshakeTimeout,
            SessionEnd::IdleTimeout => R::IdleTimeout,
            SessionEnd::MaxDuration => R::MaxDuration,
            SessionEnd::ByteBudget => R::ByteBudget,
            SessionEnd::MemoryBudget => R::MemoryBudget,
            SessionEnd::ProtocolError => R::ProtocolError,
            SessionEnd::Shutdown => R::Shutdown,
            SessionEnd::Io(_) => R::Error,
        }
    }

    fn from_io(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            // A reset or broken pipe is the client going away, not our failure.
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                SessionEnd::ClientClosed
            }
            _ => SessionEnd::Io(e),
        }
    }
}

/// Largest single read; bigger inputs arrive over several reads.
const READ_CHUNK: usize = 16 * 1024;

/// A read that would have to grow the caller's buffer by this much or more
/// first checks that bytes are really there ([`has_bytes`]).
const PROBE_BELOW: usize = 512;

/// Whether the socket has a byte to read, by a one-byte `MSG_PEEK`;
/// `false` clears tokio's readiness so the next `readable()` waits for a
/// real event, and the client's FIN ends the session here, before any
/// buffer was grown for it. tokio reports every new socket
/// readable once before anything arrives, and reserving the read buffer on
/// that report would give each silent connection a 16 KiB buffer for as
/// long as it stays silent: a flood of idle connections would cost
/// 16 KiB each instead of the few hundred bytes of their tasks.
fn has_bytes(stream: &TcpStream) -> Result<bool, SessionEnd> {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match stream.try_io(tokio::io::Interest::READABLE, || {
        socket2::SockRef::from(stream).peek(&mut probe)
    }) {
        Ok(0) => Err(SessionEnd::ClientClosed),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(SessionEnd::from_io(e)),
    }
}

/// Sees the client's bytes as they are read (after TLS decryption), once
/// each: bytes given back with [`Session::unread`] are not shown again.
pub trait Tap: Send + Sync {
    /// `data` was just read from the client.
    fn observe(&mut self, data: &[u8]);
}

/// The connection, in clear or after a TLS upgrade.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<Rewind>>),
    /// Only while an upgrade is in progress (or after it failed).
    Gone,
}

/// An accepted connection with its context.
pub struct Session {
    stream: Stream,
    id: Uuid,
    service: Arc<str>,
    sensor: Arc<str>,
    peer: SocketAddr,
    local: SocketAddr,
    started: Instant,
    deadline: Option<tokio::time::Instant>,
    bytes_in: u64,
    bytes_out: u64,
    limits: Arc<Limits>,
    events: EventTx,
    shutdown: CancellationToken,
    /// Bytes given back by [`Session::unread`], returned by the next read.
    pushback: Option<BytesMut>,
    tap: Option<Box<dyn Tap>>,
    /// The sensor-wide budget this session's read buffer is charged to.
    memory: Arc<MemoryBudget>,
    /// Bytes charged for this session's read buffer now.
    charged: u64,
    /// Bytes the emulator holds besides the read buffer ([`Session::hold`]).
    held: u64,
}

impl Session {
    /// Wrap an accepted stream. `local` is the original destination where
    /// known, else the local address.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        stream: TcpStream,
        service: Arc<str>,
        sensor: Arc<str>,
        peer: SocketAddr,
        local: SocketAddr,
        limits: Arc<Limits>,
        memory: Arc<MemoryBudget>,
        events: EventTx,
        shutdown: CancellationToken,
    ) -> Self {
        let deadline = limits.max_session.map(|d| tokio::time::Instant::now() + d);
        Session {
            stream: Stream::Plain(stream),
            id: mirage_core::new_id(),
            service,
            sensor,
            peer,
            local,
            started: Instant::now(),
            deadline,
            bytes_in: 0,
            bytes_out: 0,
            limits,
            events,
            shutdown,
            pushback: None,
            tap: None,
            memory,
            charged: 0,
            held: 0,
        }
    }

    /// Give `data` back: the next read returns it (before anything new from
    /// the socket), and [`Session::start_tls`] hands it to the TLS server
    /// as the start of the handshake. Given-back bytes were already counted
    /// in [`Session::bytes_in`] and are not counted again. Called twice
    /// without a read in between, the second call's bytes come first.
    pub fn unread(&mut self, data: BytesMut) {
        if data.is_empty() {
            return;
        }
        self.pushback = Some(match self.pushback.take() {
            Some(rest) => {
                let mut d = data;
                d.extend_from_slice(&rest);
                d
            }
            None => data,
        });
    }

    /// Re-label this session's later events (the catch-all handing the
    /// connection to an emulator); the session id stays.
    pub fn set_service(&mut self, service: Arc<str>) {
        self.service = service;
    }

    /// The service name written into this session's events.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Show every byte read from now on to `tap`; returns the previous tap.
    pub fn set_tap(&mut self, tap: Option<Box<dyn Tap>>) -> Option<Box<dyn Tap>> {
        std::mem::replace(&mut self.tap, tap)
    }

    /// Session id shared by all its events.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The client's address (IPv4-mapped IPv6 shown as IPv4).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// The destination the client connected to.
    pub fn local(&self) -> SocketAddr {
        self.local
    }
    /// Bytes received so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }
    /// Bytes sent so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }
    /// Time since accept.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Read what is available (at least one byte) into `buf`, appending.
    ///
    /// Waits under the handshake timeout before the first byte and the idle
    /// timeout after it; returns the [`SessionEnd`] that stopped the wait.
    /// Never reads past the byte budget: once it is spent, returns
    /// [`SessionEnd::ByteBudget`].
    pub async fn read_some(&mut self, buf: &mut BytesMut) -> Result<usize, SessionEnd> {
        if let Some(back) = self.pushback.take() {
            buf.extend_from_slice(&back);
            return Ok(back.len());
        }
        let before = buf.len();
        let r = self.read_socket(buf).await;
        if let (Ok(_), Some(tap)) = (&r, self.tap.as_mut()) {
            tap.observe(&buf[before..]);
        }
        r
    }

    async fn read_socket(&mut self, buf: &mut BytesMut) -> Result<usize, SessionEnd> {
        let remaining = self.limits.byte_budget.saturating_sub(self.bytes_in);
        if remaining == 0 {
            return Err(SessionEnd::ByteBudget);
        }
        let (wait, on_timeout) = if self.bytes_in == 0 {
            (self.limits.handshake_timeout, SessionEnd::HandshakeTimeout)
        } else {
            (self.limits.idle_timeout, SessionEnd::IdleTimeout)
        };
        let now = tokio::time::Instant::now();
        // The earlier of the inactivity deadline and the session deadline wins.
        let (deadline, end) = match (wait.map(|w| now + w), self.deadline) {
            (Some(a), Some(b)) if b < a => (Some(b), SessionEnd::MaxDuration),
            (Some(a), _) => (Some(a), on_timeout),
            (None, Some(b)) => (Some(b), SessionEnd::MaxDuration),
            (None, None) => (None, on_timeout),
        };
        let want = (READ_CHUNK as u64).min(remaining) as usize;
        let stream = match &mut self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(tls) => {
                let read = async {
                    let mut limited = (&mut *buf).limit(want);
                    tls.read_buf(&mut limited).await
                };
                let timed = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, read).await.ok(),
                        None => Some(read.await),
                    }
                };
                let r = tokio::select! {
                    r = timed => r,
                    _ = self.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
                };
                return match r {
                    None => Err(end),
                    Some(Ok(0)) => Err(SessionEnd::ClientClosed),
                    Some(Ok(n)) => {
                        self.bytes_in += n as u64;
                        self.settle(buf)?;
                        Ok(n)
                    }
                    Some(Err(e)) => Err(SessionEnd::from_io(e)),
                };
            }
            Stream::Gone => return Err(SessionEnd::ClientClosed),
        };
        loop {
            let ready = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, stream.readable()).await.ok(),
                    None => Some(stream.readable().await),
                }
            };
            let ready = tokio::select! {
                r = ready => r,
                _ = self.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
            };
            match ready {
                None => return Err(end),
                Some(Err(e)) => return Err(SessionEnd::from_io(e)),
                Some(Ok(())) => {}
            }
            if buf.capacity() - buf.len() < PROBE_BELOW && !has_bytes(stream)? {
                // Readiness was stale (tokio reports a fresh socket readable
                // before any byte arrives): the probe cleared it; wait again
                // without having grown the buffer.
                continue;
            }
            // Charge the growth before making it: past the budget, the
            // buffer is never grown.
            if buf.capacity() - buf.len() < want {
                let to = (buf.len() + want).max(buf.capacity()) as u64;
                if to > self.charged {
                    if !self.memory.try_resize(self.charged, to) {
                        return Err(SessionEnd::MemoryBudget);
                    }
                    self.charged = to;
                }
            }
            buf.reserve(want);
            let mut limited = (&mut *buf).limit(want);
            match stream.try_read_buf(&mut limited) {
                Ok(0) => return Err(SessionEnd::ClientClosed),
                Ok(n) => {
                    self.bytes_in += n as u64;
                    self.settle(buf)?;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(SessionEnd::from_io(e)),
            }
        }
    }

    /// Bring this session's charge to what `buf` really holds now (it may
    /// have grown more than asked, or shrunk since the emulator consumed
    /// it); past the budget, a session holding more than its free
    /// allowance is cut.
    fn settle(&mut self, buf: &BytesMut) -> Result<(), SessionEnd> {
        let now = buf.capacity() as u64;
        if now != self.charged {
            // Most reads land in room already charged: no shared write then.
            self.memory.force_resize(self.charged, now);
            self.charged = now;
        }
        if now > crate::memory_budget::FREE_BYTES && self.memory.exceeded() {
            return Err(SessionEnd::MemoryBudget);
        }
        Ok(())
    }

    /// Charge `n` more bytes the emulator keeps in memory outside the read
    /// buffer (an upload kept to serve back); false when they do not fit
    /// the sensor's budget, and then the emulator should not keep them.
    pub fn hold(&mut self, n: u64) -> bool {
        let from = self.charged + self.held;
        if self.memory.try_resize(from, from + n) {
            self.held += n;
            true
        } else {
            false
        }
    }

    /// Give back `n` bytes taken with [`Session::hold`].
    pub fn unhold(&mut self, n: u64) {
        let n = n.min(self.held);
        self.held -= n;
        self.memory.release(n);
    }

    /// Wait, holding no buffer, until the client has sent something (or
    /// closed), up to `wait`; then [`Session::read_some`] returns at once.
    /// An idle connection parked here costs little memory. Ends with
    /// [`SessionEnd::HandshakeTimeout`] (nothing received yet) or
    /// [`SessionEnd::IdleTimeout`] when `wait` passes.
    pub async fn wait_readable(&mut self, wait: std::time::Duration) -> Result<(), SessionEnd> {
        let end = if self.bytes_in == 0 {
            SessionEnd::HandshakeTimeout
        } else {
            SessionEnd::IdleTimeout
        };
        if self.pushback.is_some() {
            return Ok(());
        }
        let Stream::Plain(s) = &self.stream else {
            // Under TLS buffered plaintext may be waiting: let the read tell.
            return Ok(());
        };
        // Readiness is polled, not awaited through a `readable()` future,
        // so this wait stores only the timer and the shutdown watch.
        let ready = std::future::poll_fn(|cx| s.poll_read_ready(cx));
        tokio::select! {
            r = tokio::time::timeout(wait, ready) => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SessionEnd::from_io(e)),
                Err(_) => Err(end),
            },
            _ = self.shutdown.cancelled() => Err(SessionEnd::Shutdown),
        }
    }

    /// Switch the connection to TLS as its server (after a STARTTLS-style
    /// command was answered, or on a ClientHello the catch-all read and gave
    /// back with [`Session::unread`]: given-back bytes are the start of the
    /// handshake). A STARTTLS emulator must not call this with pipelined
    /// data after the command given back: a client that did that broke the
    /// protocol, and the caller should refuse first. On failure the session
    /// is unusable and the caller should end it.
    pub async fn start_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
    ) -> Result<(), SessionEnd> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(SessionEnd::ProtocolError);
        };
        let wait = self
            .limits
            .handshake_timeout
            .unwrap_or(std::time::Duration::from_secs(60));
        let rewind = Rewind {
            prefix: self.pushback.take(),
            inner: tcp,
        };
        let accept = tokio::time::timeout(wait, acceptor.accept(rewind));
        let done = tokio::select! {
            r = accept => r,
            _ = self.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
        };
        match done {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(SessionEnd::Io(e)),
            Err(_) => Err(SessionEnd::HandshakeTimeout),
        }
    }

    /// Reads on until `buf` (what the client sent first; it may already
    /// hold bytes) is a whole TLS ClientHello or cannot be one, and returns
    /// the parse. `None` when `deadline` passes first. The bytes stay in
    /// `buf` either way: give them back with [`Session::unread`] before
    /// [`Session::start_tls`], or record them. Reads stop at
    /// [`mirage_proto::tls_hello::MAX_WIRE_LEN`], where every hello has a
    /// final answer.
    pub async fn read_client_hello(
        &mut self,
        buf: &mut BytesMut,
        deadline: tokio::time::Instant,
    ) -> Result<
        Option<Result<mirage_proto::tls_hello::ClientHello, mirage_proto::tls_hello::HelloError>>,
        SessionEnd,
    > {
        use mirage_proto::tls_hello::{HelloError, MAX_WIRE_LEN, parse_client_hello};
        loop {
            match parse_client_hello(buf) {
                Err(HelloError::Incomplete) if buf.len() < MAX_WIRE_LEN => {
                    match tokio::time::timeout_at(deadline, self.read_some(buf)).await {
                        Ok(read) => {
                            read?;
                        }
                        Err(_) => return Ok(None),
                    }
                }
                parsed => return Ok(Some(parsed)),
            }
        }
    }

    /// True once [`Session::start_tls`] succeeded.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Write all of `data` to the client within the write timeout.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), SessionEnd> {
        let write = async {
            match &mut self.stream {
                Stream::Plain(s) => s.write_all(data).await,
                Stream::Tls(s) => {
                    s.write_all(data).await?;
                    s.flush().await
                }
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        match tokio::time::timeout(self.limits.write_timeout, write).await {
            Ok(Ok(())) => {
                self.bytes_out += data.len() as u64;
                Ok(())
            }
            Ok(Err(e)) => Err(SessionEnd::from_io(e)),
            Err(_) => Err(SessionEnd::IdleTimeout),
        }
    }

    /// A new event of `kind` with this session's envelope, to adjust (tags)
    /// before [`Session::emit_event`].
    pub fn event(&self, kind: EventKind) -> Event {
        tcp_event(
            &self.sensor,
            &self.service,
            self.peer,
            self.local,
            self.id,
            kind,
        )
    }

    /// Emit an event of `kind` for this session.
    pub async fn emit(&self, kind: EventKind) {
        self.events.send(self.event(kind)).await;
    }

    /// Emit a prepared event (see [`Session::event`]).
    pub async fn emit_event(&self, event: Event) {
        self.events.send(event).await;
    }

    /// True once the sensor has begun shutting down.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Close the write side politely (FIN), ignoring errors.
    pub(crate) async fn close(&mut self) {
        let shut = async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Gone => Ok(()),
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), shut).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The buffer goes with the emulator's frame; its charge with us.
        self.memory.release(self.charged + self.held);
    }
}

/// A TCP stream that first replays bytes already read from it (a ClientHello
/// the catch-all looked at), so rustls sees the handshake from its start.
struct Rewind {
    prefix: Option<BytesMut>,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Rewind {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(prefix) = self.prefix.as_mut() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if prefix.is_empty() {
                self.prefix = None;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Rewind {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP event stamped now with the shared envelope: what [`Session::event`]
/// writes, and what the harness writes for a connection it refuses before a
/// session exists.
pub(crate) fn tcp_event(
    sensor: &str,
    service: &str,
    peer: SocketAddr,
    local: SocketAddr,
    session: Uuid,
    kind: EventKind,
) -> Event {
    envelope(
        sensor,
        service,
        Transport::Tcp,
        peer,
        local,
        Some(session),
        kind,
    )
}

/// An event stamped now, for emitters outside a [`Session`] (UDP flows,
/// probes seen by the firewall): `src` is the client, `dst` where it aimed.
pub fn envelope(
    sensor: &str,
    service: &str,
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
    session: Option<Uuid>,
    kind: EventKind,
) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        id: mirage_core::new_id(),
        ts: Utc::now(),
        sensor: sensor.to_owned(),
        service: service.to_owned(),
        transport,
        src_ip: src.ip(),
        src_port: Some(src.port()),
        dst_ip: Some(dst.ip()),
        dst_port: Some(dst.port()),
        session,
        tags: Vec::new(),
        kind,
    }
}
