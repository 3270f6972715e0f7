//! The sender: drains the [`DiskQueue`](super::DiskQueue) to the server over
//! TCP (RFC 6587 octet counting), TLS (RFC 5425, the same framing inside
//! TLS) or UDP, forever, until cancelled.
//!
//! A batch is acknowledged in the queue once it has been written to the
//! socket and the connection is still open [`SenderConfig::ack_delay`] later.
//! On any error the connection is dropped, the queue rewound to the
//! last acknowledged record and the connection retried with exponential
//! backoff (capped), so records queued while the server is down are sent as
//! soon as it is back. Before each batch the TCP socket is polled for the
//! server having closed it; with the ack delay this narrows (but cannot close:
//! TCP syslog has no application ack, and a silent network partition is not
//! seen until the send buffer fills and a write times out) the window where a
//! batch written into a dead connection is lost; the server deduplicates by record id, and the queue makes
//! delivery at-least-once. On shutdown the sender half-closes the stream and
//! waits (briefly) for the server to close its side, which proves the server
//! read everything: the batches still held back are then acknowledged, so a
//! graceful restart sends nothing twice.
//!
//! TCP frames follow rsyslog: `LEN SP MSG LF` where LEN counts the LF, which
//! `mirage server` and rsyslog both accept. TLS carries the same frames
//! (RFC 5425 octet counting; the LF is part of the counted message), and a
//! certificate the server's CA did not sign is a connection failure, retried
//! like any other. UDP sends one message per datagram; a datagram the server
//! is not listening for is lost (an ICMP error only shows up on a later
//! send), so UDP is best-effort.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::{QueueError, QueueHandle, QueuedRecord, TlsSettings};

/// Largest UDP payload over IPv4.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// How records travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RELP over TCP: records leave the queue when the server answers that
    /// it stored them ([`super::relp`]).
    Relp,
    /// RELP inside TLS; needs [`SenderConfig::tls`].
    RelpTls,
    /// TCP with RFC 6587 octet counting.
    Tcp,
    /// One datagram per record (best-effort).
    Udp,
    /// TLS over TCP (RFC 5425), octet counting; needs
    /// [`SenderConfig::tls`].
    Tls,
}

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Transport.
    pub transport: Transport,
    /// Server address, `host:port` (resolved on every connect, so a DNS
    /// change is picked up on reconnect).
    pub address: String,
    /// First reconnect delay. Default 100 ms.
    pub backoff_min: Duration,
    /// Largest reconnect delay. Default 30 s.
    pub backoff_max: Duration,
    /// Most records per write. Default 512.
    pub batch_records: usize,
    /// About the most bytes per write. Default 256 KiB.
    pub batch_bytes: usize,
    /// Longest wait for a connect or a write before the connection is
    /// considered dead. Default 10 s.
    pub io_timeout: Duration,
    /// How often an idle sender looks at the queue and the socket even
    /// without a wake-up. Default 1 s.
    pub idle_poll: Duration,
    /// How long a written batch stays unacknowledged in the queue while the
    /// connection stays open. A server that dies discards what sat unread in
    /// its socket buffer, and the sender only learns of it when the FIN or
    /// RST arrives; holding the ack this long means such a batch is re-sent
    /// instead of lost. Costs at most this much traffic in duplicates after
    /// a reconnect. Default 1 s.
    pub ack_delay: Duration,
    /// With RELP: how long the oldest unanswered record may wait for its
    /// answer before the session counts as dead. Longer than the server's
    /// own wait for a busy store. Default 60 s.
    pub ack_timeout: Duration,
    /// Trust and identity for [`Transport::Tls`] and [`Transport::RelpTls`].
    /// Default none.
    pub tls: Option<Arc<TlsSettings>>,
}

impl SenderConfig {
    /// Defaults for `transport` to `address`.
    pub fn new(transport: Transport, address: impl Into<String>) -> Self {
        SenderConfig {
            transport,
            address: address.into(),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            batch_records: 512,
            batch_bytes: 256 * 1024,
            io_timeout: Duration::from_secs(10),
            idle_poll: Duration::from_secs(1),
            ack_delay: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Why a connection ended (each is retried) or the sender stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SenderError {
    /// Connecting, writing or reading failed.
    #[error("network: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// A connect or write took longer than `io_timeout` (or, with RELP, an
    /// answer longer than `ack_timeout`).
    #[error("timed out")]
    Timeout,
    /// The server broke the protocol (RELP framing, answers out of order).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server refused records (RELP `500`: its store cannot write);
    /// they stay queued and go again after the backoff.
    #[error("server refused: {0}")]
    Refused(String),
    /// The queue failed; the sender stops (the disk is the problem, not the
    /// network).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The configuration cannot work (TLS transport without TLS settings);
    /// the sender stops.
    #[error("sender misconfigured: {0}")]
    Misconfigured(&'static str),
}

/// Counters of a running [`Sender`].
#[derive(Debug, Default)]
pub struct SenderStats {
    /// Records written to a socket (including re-sends).
    pub sent: AtomicU64,
    /// Successful connects.
    pub connects: AtomicU64,
    /// Connections lost or refused.
    pub failures: AtomicU64,
}

/// Drains a [`QueueHandle`] to the server.
#[derive(Debug)]
pub struct Sender {
    queue: QueueHandle,
    cfg: SenderConfig,
    stats: Arc<SenderStats>,
}

enum Conn {
    Tcp(OwnedReadHalf, OwnedWriteHalf),
    Tls(
        ReadHalf<TlsStream<TcpStream>>,
        WriteHalf<TlsStream<TcpStream>>,
    ),
    Udp(UdpSocket),
}

impl Sender {
    /// A sender for `queue` with `cfg`.
    pub fn new(queue: QueueHandle, cfg: SenderConfig) -> Self {
        Sender {
            queue,
            cfg,
            stats: Arc::new(SenderStats::default()),
        }
    }

    /// Shared counters, readable while [`Sender::run`] runs.
    pub fn stats(&self) -> Arc<SenderStats> {
        self.stats.clone()
    }

    /// Sends until `cancel` fires (returns `Ok`) or the queue fails.
    /// Network errors never end it: they are retried with backoff.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), SenderError> {
        if matches!(self.cfg.transport, Transport::Tls | Transport::RelpTls)
            && self.cfg.tls.is_none()
        {
            return Err(SenderError::Misconfigured(
                "TLS transport without TLS settings",
            ));
        }
        let mut backoff = self.cfg.backoff_min;
        // One warning per outage, not per attempt.
        let mut outage = false;
        while !cancel.is_cancelled() {
            let result = match self.connect().await {
                Ok(conn) => {
                    self.stats.connects.fetch_add(1, Ordering::Relaxed);
                    if outage {
                        tracing::info!(address = %self.cfg.address, "syslog output reconnected");
                        outage = false;
                    }
                    backoff = self.cfg.backoff_min;
                    // Resume at the first record not acknowledged: whatever
                    // was handed out on the last connection goes again.
                    self.queue.lock().rewind();
                    match (self.cfg.transport, conn) {
                        (Transport::Relp | Transport::RelpTls, Conn::Tcp(r, w)) => {
                            super::relp::session(&self.queue, &self.cfg, &self.stats, r, w, &cancel)
                                .await
                        }
                        (Transport::Relp | Transport::RelpTls, Conn::Tls(r, w)) => {
                            super::relp::session(&self.queue, &self.cfg, &self.stats, r, w, &cancel)
                                .await
                        }
                        (_, conn) => self.pump(conn, &cancel).await,
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e @ (SenderError::Queue(_) | SenderError::Misconfigured(_))) => return Err(e),
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if outage {
                        tracing::debug!(address = %self.cfg.address, error = %e, "syslog output still down");
                    } else {
                        tracing::warn!(address = %self.cfg.address, error = %e, "syslog output down; queueing on disk");
                        outage = true;
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Conn, SenderError> {
        let fut = async {
            match self.cfg.transport {
                Transport::Tcp | Transport::Relp => {
                    let s = TcpStream::connect(self.cfg.address.as_str()).await?;
                    s.set_nodelay(true)?;
                    let (r, w) = s.into_split();
                    Ok::<_, io::Error>(Conn::Tcp(r, w))
                }
                Transport::Tls | Transport::RelpTls => {
                    let tls = self.cfg.tls.as_ref().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "no TLS settings")
                    })?;
                    let s = TcpStream::connect(self.cfg.address.as_str()).await?;
                    s.set_nodelay(true)?;
                    // Certificate problems come back as io::Error wrapping
                    // the rustls error, whose text names the cause.
                    let s = tls.connector().connect(tls.server_name(), s).await?;
                    let (r, w) = tokio::io::split(s);
                    Ok(Conn::Tls(r, w))
                }
                Transport::Udp => {
                    let addr = tokio::net::lookup_host(self.cfg.address.as_str())
                        .await?
                        .next()
                        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                    let local = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let s = UdpSocket::bind(local).await?;
                    // Connected, so ICMP errors are reported on later sends.
                    s.connect(addr).await?;
                    Ok(Conn::Udp(s))
                }
            }
        };
        match tokio::time::timeout(self.cfg.io_timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(SenderError::Timeout),
        }
    }

    /// Sends batches until cancelled (`Ok`) or the connection fails.
    async fn pump(&self, mut conn: Conn, cancel: &CancellationToken) -> Result<(), SenderError> {
        let mut scratch = [0u8; 512];
        let mut frame = Vec::new();
        // Written batches not yet acknowledged: (when written, last seq).
        let mut unacked: VecDeque<(Instant, u64)> = VecDeque::new();
        loop {
            match &mut conn {
                Conn::Tcp(r, _) => check_open(r, &mut scratch)?,
                Conn::Tls(r, _) => check_open_tls(r, &mut scratch).await?,
                Conn::Udp(_) => {}
            }
            // The connection is still open: batches written long enough ago
            // were not sitting in a dying server's buffer.
            let mut ack_upto = None;
            while let Some(&(at, seq)) = unacked.front() {
                if at.elapsed() < self.cfg.ack_delay {
                    break;
                }
                ack_upto = Some(seq);
                unacked.pop_front();
            }
            if let Some(seq) = ack_upto {
                self.queue.lock().ack(seq)?;
            }
            if cancel.is_cancelled() {
                return self.finish(conn, unacked.back().map(|&(_, seq)| seq)).await;
            }
            let batch = self
                .queue
                .lock()
                .read_batch(self.cfg.batch_records, self.cfg.batch_bytes)?;
            let Some(last) = batch.last().map(|r| r.seq) else {
                let notified = self.queue.notified();
                let wait = unacked.front().map_or(self.cfg.idle_poll, |(at, _)| {
                    self.cfg
                        .ack_delay
                        .saturating_sub(at.elapsed())
                        .min(self.cfg.idle_poll)
                });
                match &mut conn {
                    Conn::Tcp(r, _) => tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                        // The server closing an idle connection is seen at
                        // once, not on the next write.
                        res = r.readable() => { res?; check_open(r, &mut scratch)?; }
                    },
                    // A read also processes the server's TLS records
                    // (session tickets, close_notify); the server sends no
                    // application data, so whatever arrives is dropped.
                    Conn::Tls(r, _) => tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                        res = r.read(&mut scratch) => if res? == 0 { return Err(SenderError::Closed) },
                    },
                    Conn::Udp(_) => tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = notified => {}
                        _ = tokio::time::sleep(wait) => {}
                    },
                }
                continue;
            };
            let n = batch.len() as u64;
            match &mut conn {
                Conn::Tcp(_, w) => {
                    frame.clear();
                    for r in &batch {
                        octet_frame(&mut frame, &r.payload);
                    }
                    with_timeout(self.cfg.io_timeout, w.write_all(&frame)).await?;
                }
                Conn::Tls(_, w) => {
                    frame.clear();
                    for r in &batch {
                        octet_frame(&mut frame, &r.payload);
                    }
                    // rustls holds records until flushed.
                    with_timeout(self.cfg.io_timeout, async {
                        w.write_all(&frame).await?;
                        w.flush().await
                    })
                    .await?;
                }
                Conn::Udp(s) => {
                    for QueuedRecord { payload, .. } in &batch {
                        let dgram = &payload[..payload.len().min(MAX_UDP_PAYLOAD)];
                        with_timeout(self.cfg.io_timeout, s.send(dgram)).await?;
                    }
                }
            }
            self.stats.sent.fetch_add(n, Ordering::Relaxed);
            unacked.push_back((Instant::now(), last));
        }
    }
}

pub(super) async fn with_timeout<T>(
    limit: Duration,
    fut: impl Future<Output = io::Result<T>>,
) -> Result<T, SenderError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SenderError::Timeout),
    }
}

/// Longest wait at shutdown for the server to confirm it read everything.
pub(super) const FINISH_WAIT: Duration = Duration::from_secs(2);

impl Sender {
    /// Ends the connection on shutdown and, when the server confirms it read
    /// everything, acknowledges the batches still held for `ack_delay`, so a
    /// graceful restart sends nothing twice.
    ///
    /// The confirmation is the server closing its side after ours: it has
    /// then read up to our end of stream (for TLS, after close_notify, so it
    /// is also a clean end rather than a truncation). A server that does not
    /// close within [`FINISH_WAIT`] leaves the batches unacknowledged; they
    /// are sent again on the next start. UDP has nothing to confirm: it is
    /// best-effort anyway.
    async fn finish(&self, conn: Conn, last_unacked: Option<u64>) -> Result<(), SenderError> {
        let limit = self.cfg.io_timeout.min(FINISH_WAIT);
        let mut scratch = [0u8; 512];
        let confirmed = tokio::time::timeout(limit, async {
            match conn {
                Conn::Tcp(mut r, mut w) => {
                    w.shutdown().await.ok()?;
                    read_to_end(&mut r, &mut scratch).await
                }
                Conn::Tls(mut r, mut w) => {
                    w.shutdown().await.ok()?;
                    read_to_end(&mut r, &mut scratch).await
                }
                Conn::Udp(_) => Some(()),
            }
        })
        .await;
        if let (Ok(Some(())), Some(seq)) = (confirmed, last_unacked) {
            self.queue.lock().ack(seq)?;
        }
        Ok(())
    }
}

/// Reads (and drops) until the peer's end of stream; `None` on an error.
/// A TLS peer that closes TCP without close_notify is an end of stream too
/// (rustls reports it as `UnexpectedEof`): the FIN still shows that it read
/// everything, while a reset (unread data discarded) does not.
async fn read_to_end(r: &mut (impl AsyncReadExt + Unpin), scratch: &mut [u8]) -> Option<()> {
    loop {
        match r.read(scratch).await {
            Ok(0) => return Some(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Some(()),
            Err(_) => return None,
        }
    }
}

/// [`check_open`] for TLS, where there is no non-blocking read: a read is
/// polled once (a zero timeout polls its future before looking at the
/// clock) and, when nothing is there, dropped, which rustls allows.
async fn check_open_tls(
    r: &mut ReadHalf<TlsStream<TcpStream>>,
    scratch: &mut [u8],
) -> Result<(), SenderError> {
    loop {
        match tokio::time::timeout(Duration::ZERO, r.read(scratch)).await {
            Err(_) => return Ok(()),
            Ok(Ok(0)) => return Err(SenderError::Closed),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// Fails if the server has closed (or reset) the connection. The server never
/// sends on a syslog connection, so bytes it does send are discarded.
fn check_open(r: &OwnedReadHalf, scratch: &mut [u8]) -> Result<(), SenderError> {
    loop {
        match r.try_read(scratch) {
            Ok(0) => return Err(SenderError::Closed),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Appends `LEN SP MSG LF`, LEN counting the LF (rsyslog's layout).
pub fn octet_frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(format!("{} ", msg.len() + 1).as_bytes());
    out.extend_from_slice(msg);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_proto::syslog::{FrameDecoder, FrameEvent, Framing};

    #[test]
    fn octet_frame_counts_the_lf_and_decodes() {
        let mut out = Vec::new();
        octet_frame(&mut out, b"<14>1 - - - - - - hi");
        octet_frame(&mut out, b"<14>1 - - - - - - there\nsecond line");
        assert!(out.starts_with(b"21 <14>1 - - - - - - hi\n"));
        let mut d = FrameDecoder::new(1024);
        let mut buf = &out[..];
        let mut frames = Vec::new();
        while !buf.is_empty() {
            let (n, ev) = d.decode(buf).expect("decodes");
            assert!(n > 0);
            if let Some(FrameEvent::Frame { framing, data }) = ev {
                assert_eq!(framing, Framing::OctetCounted);
                frames.push(data.to_vec());
            }
            buf = &buf[n..];
        }
        assert_eq!(
            frames,
            vec![
                b"<14>1 - - - - - - hi".to_vec(),
                b"<14>1 - - - - - - there\nsecond line".to_vec()
            ]
        );
    }
}
