//! The TCP/TLS connection loop: read, split into frames with
//! [`FrameDecoder`] (octet counting or LF framing, detected per message),
//! hand each message to the pipeline.
//!
//! Bounded: the buffer never holds more than one maximal frame plus one
//! read, oversized frames are skipped without buffering, and an idle
//! connection is closed after the configured timeout. A framing error
//! (an octet count that cannot be right) closes the connection, because
//! the stream can no longer be split reliably.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mirage_proto::syslog::{FrameDecoder, FrameEvent};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{Inbound, InboundTx, Payload, now_micros};
use crate::stats::ServerStats;

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

/// Accept connections on `listener` until `cancel`, optionally wrapping
/// them in TLS.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    limits: StreamLimits,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // Take a slot before accepting: extra connections wait in the
        // kernel backlog instead of being accepted and starved.
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
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
        let (tx, stats, limits, cancel, tls) = (
            tx.clone(),
            stats.clone(),
            limits.clone(),
            cancel.clone(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve(sock, peer, tx, stats, limits, cancel).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        limits.idle.min(Duration::from_secs(30)),
                        acceptor.accept(sock),
                    );
                    match handshake.await {
                        Ok(Ok(s)) => serve(s, peer, tx, stats, limits, cancel).await,
                        Ok(Err(e)) => tracing::debug!("syslog tls: {peer}: handshake failed: {e}"),
                        Err(_) => tracing::debug!("syslog tls: {peer}: handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serve one connection until EOF, error, idle timeout or `cancel`.
pub async fn serve<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    limits: StreamLimits,
    cancel: CancellationToken,
) {
    let mut decoder = FrameDecoder::new(limits.max_message);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
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
            if !deliver(&tx, &stats, peer, message).await {
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
                    deliver(&tx, &stats, peer, last).await;
                }
                return;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
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

async fn deliver(tx: &InboundTx, stats: &ServerStats, peer: SocketAddr, message: Vec<u8>) -> bool {
    ServerStats::add(&stats.syslog_messages, 1);
    tx.send(Inbound {
        peer,
        received_micros: now_micros(),
        payload: Payload::Syslog {
            bytes: message,
            ack: None,
        },
    })
    .await
    .is_ok()
}
