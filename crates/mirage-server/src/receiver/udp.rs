//! Syslog over UDP: one message per datagram (RFC 5426). A trailing LF
//! (rsyslog adds none, some senders do) is removed.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::trust::Trust;
use super::{Inbound, InboundTx, Payload, now_micros};
use crate::stats::ServerStats;

/// Receive datagrams until `cancel`. Datagrams longer than `max_message`
/// are counted and skipped.
pub async fn recv_loop(
    socket: UdpSocket,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    max_message: usize,
    trust: Arc<Trust>,
    cancel: CancellationToken,
) {
    // One byte more than the limit tells an oversized datagram from a
    // maximal one.
    let mut buf = vec![0u8; max_message.saturating_add(1).min(65536)];
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors surface here on some kernels; not fatal.
                    tracing::debug!("syslog udp: {e}");
                    continue;
                }
            },
        };
        if n > max_message {
            ServerStats::add(&stats.oversized, 1);
            continue;
        }
        let mut data = &buf[..n];
        while let [rest @ .., b'\n' | b'\r' | b'\0'] = data {
            data = rest;
        }
        if data.is_empty() {
            continue;
        }
        ServerStats::add(&stats.syslog_messages, 1);
        let sent = tx
            .send(Inbound {
                peer,
                received_micros: now_micros(),
                trusted: trust.datagram(peer.ip()),
                payload: Payload::Syslog {
                    bytes: data.to_vec(),
                    ack: None,
                },
            })
            .await;
        if sent.is_err() {
            return;
        }
    }
}
