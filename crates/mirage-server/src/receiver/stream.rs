//! The TCP/TLS connection loop: read, split into frames with
//! [`FrameDecoder`] (octet counting or LF framing, detected per message),
//! hand each message to the pipeline. A connection that starts with a RELP
//! `open` is handed to [`super::relp`] instead, which acknowledges each
//! message once it is stored.
//!
//! Bounded: the buffer never holds more than one maximal frame plus one
//! read, oversized frames are skipped without buffering, and an idle
//! connection is closed after the configured timeout. A framing error
//! (an octet count that cannot be right) closes the connection, because
//! the stream can no longer be split reliably. With every slot taken, the
//! longest-quiet connection is closed for the next ([`super::idle_reaper`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mirage_proto::syslog::{FrameDecoder, FrameEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::idle_reaper::{Connections, MIN_IDLE};
use super::relp::{self, ReceiverContext};
use super::{Inbound, InboundTx, Payload, now_micros};
use crate::stats::ServerStats;
use crate::store_health::StoreHealth;

/// Settings shared by every connection.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Longest message.
    pub max_message: usize,
    /// Idle timeout.
    pub idle: Duration,
    /// Connections at once.
    pub max_connections: usize,
}

/// What a listener's connections share.
#[derive(Clone)]
pub struct Shared {
    /// Where messages go.
    pub tx: InboundTx,
    /// Counters.
    pub stats: Arc<ServerStats>,
    /// Sizes and timeouts.
    pub limits: StreamLimits,
    /// Whether the store writes.
    pub health: Arc<StoreHealth>,
    /// Who may make decisions.
    pub trust: Arc<super::trust::Trust>,
    /// Whether TLS clients had to show a certificate the client CA signed.
    pub client_certs: bool,
}

/// Accept connections on `listener` until `cancel`, optionally wrapping
/// them in TLS.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Shared,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let conns = Connections::new();
    loop {
        // Take a slot before accepting: extra connections wait in the
        // kernel backlog instead of being accepted and starved. With every
        // slot taken, the longest-quiet connection makes room.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if conns.reap_idlest(MIN_IDLE) {
                    ServerStats::add(&shared.stats.reaped, 1);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    // Re-check every second: a connection that was busy
                    // may have gone quiet since.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                }
            }
        };
        let (sock, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("syslog: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = sock.set_nodelay(true);
        let trusted = shared.trust.stream(peer.ip(), shared.client_certs);
        let conn = Arc::new(conns.register(trusted, &cancel));
        let cx = ReceiverContext {
            shared: shared.clone(),
            cancel: conn.cancel.clone(),
            conn,
            trusted,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let limits = &cx.shared.limits;
            match tls {
                None => serve(sock, peer, &cx).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        limits.idle.min(Duration::from_secs(30)),
                        acceptor.accept(sock),
                    );
                    match handshake.await {
                        Ok(Ok(s)) => serve(s, peer, &cx).await,
                        Ok(Err(e)) => tracing::debug!("syslog tls: {peer}: handshake failed: {e}"),
                        Err(_) => tracing::debug!("syslog tls: {peer}: handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serve one connection until EOF, error, idle timeout or `cancel`: RELP
/// when it starts like RELP, else plain syslog.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    cx: &ReceiverContext,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match mirage_proto::relp::looks_like_relp(&buf) {
            Some(true) => return relp::serve(stream, buf, peer, cx).await,
            Some(false) => break,
            None => {}
        }
        let read = tokio::select! {
            _ = cx.cancel.cancelled() => return,
            r = tokio::time::timeout(cx.shared.limits.idle, stream.read(&mut chunk)) => r,
        };
        match read {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                cx.conn.touch();
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(_)) | Err(_) => return,
        }
    }
    plain(stream, buf, chunk, peer, cx).await
}

async fn plain<S: AsyncRead + Unpin>(
    mut stream: S,
    mut buf: Vec<u8>,
    mut chunk: Vec<u8>,
    peer: SocketAddr,
    cx: &ReceiverContext,
) {
    let Shared {
        tx, stats, limits, ..
    } = &cx.shared;
    let cancel = &cx.cancel;
    let trusted = cx.trusted;
    let mut decoder = FrameDecoder::new(limits.max_message);
    loop {
        let mut used = 0;
        loop {
            let (n, event) = match decoder.decode(&buf[used..]) {
                Ok(x) => x,
                Err(e) => {
                    ServerStats::add(&stats.malformed, 1);
                    tracing::debug!("syslog: {peer}: closing: {e}");
                    return;
                }
            };
            if n == 0 && event.is_none() {
                break;
            }
            used += n;
            let message = match event {
                Some(FrameEvent::Frame { data, .. }) => data.to_vec(),
                Some(FrameEvent::Oversized { .. }) => {
                    ServerStats::add(&stats.oversized, 1);
                    continue;
                }
                None => continue,
            };
            if !deliver(tx, stats, peer, trusted, message).await {
                return;
            }
        }
        buf.drain(..used);
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(limits.idle, stream.read(&mut chunk)) => r,
        };
        match read {
            Ok(Ok(0)) => {
                // logger without a final LF: the last message ends at EOF.
                if let Some(last) = decoder.finish(&buf) {
                    let last = last.to_vec();
                    deliver(tx, stats, peer, trusted, last).await;
                }
                return;
            }
            Ok(Ok(n)) => {
                cx.conn.touch();
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(e)) => {
                tracing::debug!("syslog: {peer}: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("syslog: {peer}: idle, closing");
                return;
            }
        }
    }
}

async fn deliver(
    tx: &InboundTx,
    stats: &ServerStats,
    peer: SocketAddr,
    trusted: bool,
    message: Vec<u8>,
) -> bool {
    ServerStats::add(&stats.syslog_messages, 1);
    tx.send(Inbound {
        peer,
        received_micros: now_micros(),
        trusted,
        payload: Payload::Syslog {
            bytes: message,
            ack: None,
        },
    })
    .await
    .is_ok()
}
