//! RELP on the syslog TCP/TLS listeners ([`mirage_proto::relp`]): every
//! `syslog` command is answered `200 OK` only after the pipeline stored
//! what it produced, so a sender (`mirage agent`, rsyslog's `omrelp`) can
//! forget a message exactly when it is safe to.
//!
//! The connection is told apart from plain syslog on its first bytes
//! ([`mirage_proto::relp::looks_like_relp`]), so one port serves both.
//! Answers go out in the order the commands came, as RELP requires; a
//! message the store cannot take is answered `500` with the reason, and the
//! sender keeps it. At most [`WINDOW`] answers are outstanding per
//! connection: beyond that the connection is not read until the store
//! catches up, which holds the sender back. On shutdown the server sends
//! the `serverclose` hint after the answers it has.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use mirage_proto::relp::{self, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Inbound, Payload, now_micros};
use crate::stats::ServerStats;
use crate::store_health::StoreRefusal;

/// Most unanswered commands per connection (librelp's default window is
/// 128; mirage's sender uses up to 1,024).
pub const WINDOW: usize = 1024;
/// Longest a write of answers may take before the client counts as gone
/// (a client that stops reading its answers would otherwise hold them
/// here).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer in the making.
enum Reply {
    /// Known now (open, close, errors).
    Ready(Vec<u8>),
    /// Known once the pipeline stored the message.
    Stored(oneshot::Receiver<Result<(), StoreRefusal>>),
}

/// What every syslog connection (plain or RELP) needs: what its listener
/// shares, and its own end and activity clock.
pub struct ReceiverContext {
    /// The listener's channel, counters, limits, store health and trust.
    pub shared: super::stream::Shared,
    /// This connection's end: server shutdown, or reaped for a newer
    /// connection when every slot is taken.
    pub cancel: CancellationToken,
    /// This connection's place among the listener's (its activity clock).
    pub conn: Arc<super::idle_reaper::Registered>,
    /// Whether its sender may make decisions (decided once, at accept).
    pub trusted: bool,
}

/// Serve one RELP session; `buf` holds what was read while telling the
/// protocol apart.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mut buf: Vec<u8>,
    peer: SocketAddr,
    cx: &ReceiverContext,
) {
    let trusted = cx.trusted;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut pending: VecDeque<(u32, Reply)> = VecDeque::new();
    let mut opened = false;
    let mut close_txnr: Option<u32> = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let mut used = 0;
        while pending.len() < WINDOW && close_txnr.is_none() {
            let frame = match relp::decode(&buf[used..], cx.shared.limits.max_message) {
                Ok(Some((n, f))) => {
                    used += n;
                    f
                }
                Ok(None) => break,
                Err(e) => {
                    ServerStats::add(&cx.shared.stats.malformed, 1);
                    tracing::debug!("relp: {peer}: closing: {e}");
                    return;
                }
            };
            match command(frame, &mut opened, peer, trusted, cx).await {
                Command::Reply(r) => pending.push_back((frame.txnr, r)),
                Command::Close => close_txnr = Some(frame.txnr),
                Command::Hint => {}
                Command::Abort => return,
            }
        }
        buf.drain(..used);

        // Answers that are known, in order.
        out.clear();
        while let Some(data) = pending.front_mut().and_then(|(_, r)| ready(r)) {
            let (txnr, _) = pending.pop_front().unwrap_or((0, Reply::Ready(Vec::new())));
            relp::encode(&mut out, txnr, "rsp", &data);
        }
        if let Some(txnr) = close_txnr.filter(|_| pending.is_empty()) {
            relp::encode(&mut out, txnr, "rsp", b"");
        }
        if !out.is_empty() && !write(&mut wr, &out).await {
            return;
        }
        if close_txnr.is_some() && pending.is_empty() {
            let _ = wr.shutdown().await;
            return;
        }

        let reading = pending.len() < WINDOW && close_txnr.is_none();
        tokio::select! {
            () = next_answer(&mut pending), if !pending.is_empty() => {}
            r = tokio::time::timeout(cx.shared.limits.idle, rd.read(&mut chunk)), if reading => match r {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => {
                    cx.conn.touch();
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok(Err(e)) => {
                    tracing::debug!("relp: {peer}: {e}");
                    return;
                }
                Err(_) if pending.is_empty() => {
                    tracing::debug!("relp: {peer}: idle, closing");
                    let _ = write(&mut wr, b"0 serverclose 0\n").await;
                    return;
                }
                Err(_) => {}
            },
            _ = cx.cancel.cancelled() => {
                let _ = write(&mut wr, b"0 serverclose 0\n").await;
                return;
            }
        }
    }
}

enum Command {
    Reply(Reply),
    Close,
    Hint,
    Abort,
}

async fn command(
    frame: Frame<'_>,
    opened: &mut bool,
    peer: SocketAddr,
    trusted: bool,
    cx: &ReceiverContext,
) -> Command {
    let ready = |text: &str| Command::Reply(Reply::Ready(text.as_bytes().to_vec()));
    if frame.txnr == 0 {
        // Hints from the client get no answer; none is defined for it.
        return Command::Hint;
    }
    match frame.command {
        "open" if !*opened => {
            let offers = relp::parse_offers(frame.data);
            if !offers.iter().any(|o| o.name == "relp_version") {
                tracing::debug!("relp: {peer}: open without relp_version");
                return Command::Abort;
            }
            let syslog = offers
                .iter()
                .any(|o| o.name == "commands" && o.values.contains(&"syslog"));
            if !syslog {
                return ready("500 required command not supported by client");
            }
            *opened = true;
            Command::Reply(Reply::Ready(
                format!(
                    "200 OK\nrelp_version=0\nrelp_software=mirage,{},https://example.invalid/mirage\ncommands=syslog",
                    env!("CARGO_PKG_VERSION")
                )
                .into_bytes(),
            ))
        }
        "open" => Command::Abort,
        _ if !*opened => {
            tracing::debug!("relp: {peer}: command before open");
            Command::Abort
        }
        "syslog" => {
            ServerStats::add(&cx.shared.stats.syslog_messages, 1);
            if cx.shared.health.is_failing() {
                return ready(&format!("500 {}", cx.shared.health.refusal()));
            }
            let mut message = frame.data;
            while let [rest @ .., b'\n' | b'\r'] = message {
                message = rest;
            }
            let (ack, stored) = oneshot::channel();
            let sent = cx
                .shared
                .tx
                .send(Inbound {
                    peer,
                    received_micros: now_micros(),
                    trusted,
                    payload: Payload::Syslog {
                        bytes: message.to_vec(),
                        ack: Some(ack),
                    },
                })
                .await;
            if sent.is_err() {
                return ready("500 server shutting down");
            }
            Command::Reply(Reply::Stored(stored))
        }
        "close" => Command::Close,
        _ => ready("500 command not supported"),
    }
}

/// The answer's DATA when it is known.
fn ready(reply: &mut Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Ready(data) => Some(std::mem::take(data)),
        Reply::Stored(rx) => match rx.try_recv() {
            Ok(Ok(())) => Some(b"200 OK".to_vec()),
            Ok(Err(why)) => Some(format!("500 {why}").into_bytes()),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(b"500 server shutting down".to_vec()),
        },
    }
}

/// Wait until the oldest outstanding answer is known (without taking it).
async fn next_answer(pending: &mut VecDeque<(u32, Reply)>) {
    poll_fn(|cx| match pending.front_mut() {
        Some((_, Reply::Stored(rx))) => match Pin::new(rx).poll(cx) {
            // A polled oneshot yields its value once: keep it as a ready
            // answer for the writer.
            Poll::Ready(r) => {
                if let Some((_, reply)) = pending.front_mut() {
                    *reply = Reply::Ready(match r {
                        Ok(Ok(())) => b"200 OK".to_vec(),
                        Ok(Err(why)) => format!("500 {why}").into_bytes(),
                        Err(_) => b"500 server shutting down".to_vec(),
                    });
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        },
        _ => Poll::Ready(()),
    })
    .await
}

async fn write<W: AsyncWrite + Unpin>(wr: &mut W, data: &[u8]) -> bool {
    let w = async {
        wr.write_all(data).await?;
        wr.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, w).await, Ok(Ok(())))
}
