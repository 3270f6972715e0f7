//! The sender's RELP session ([`mirage_proto::relp`]): records go out as
//! `syslog` commands, at most [`WINDOW`] unanswered at a time, and the queue
//! is acknowledged up to the last record the server answered `200 OK` for.
//! `mirage server` answers only once the record is stored, so what the
//! queue forgets is on the server's disk; a crash of either side can only
//! make the sender send again what the server already has (dropped there by
//! the record id), never lose it.
//!
//! Any answer other than 200 (the server's store cannot write, say), a
//! `serverclose` hint, an answer out of order, or no answer within the
//! sender's `ack_timeout` ends the session; the sender reconnects with
//! backoff and resends from the first unacknowledged record.

use std::collections::VecDeque;
use std::time::Instant;

use mirage_proto::relp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::sender::{SenderError, with_timeout};
use super::{QueueHandle, SenderConfig, SenderStats};

/// Most unanswered commands (the server reads no further beyond its own
/// window of the same size).
pub const WINDOW: usize = 1024;
/// Largest answer accepted (the `open` answer with its offers is the
/// longest).
const MAX_ANSWER: usize = 4096;

/// Reads RELP frames from the server.
struct Answers {
    buf: Vec<u8>,
    chunk: Box<[u8; 4096]>,
}

/// What the server answered.
struct Answer {
    txnr: u32,
    command: String,
    data: Vec<u8>,
}

impl Answers {
    fn new() -> Self {
        Answers {
            buf: Vec::new(),
            chunk: Box::new([0; 4096]),
        }
    }

    /// The next complete frame already read, if any.
    fn take(&mut self) -> Result<Option<Answer>, SenderError> {
        match relp::decode(&self.buf, MAX_ANSWER) {
            Ok(Some((n, f))) => {
                let a = Answer {
                    txnr: f.txnr,
                    command: f.command.to_owned(),
                    data: f.data.to_vec(),
                };
                self.buf.drain(..n);
                Ok(Some(a))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(SenderError::Protocol(format!("server's RELP: {e}"))),
        }
    }

    /// Read more from the server (cancel-safe: a read either happened or
    /// did not).
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), SenderError> {
        let n = r.read(&mut self.chunk[..]).await?;
        if n == 0 {
            return Err(SenderError::Closed);
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
        Ok(())
    }

    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Answer, SenderError> {
        loop {
            if let Some(a) = self.take()? {
                return Ok(a);
            }
            self.fill(r).await?;
        }
    }
}

fn next_txnr(t: u32) -> u32 {
    if t >= relp::MAX_TXNR { 1 } else { t + 1 }
}

/// One RELP session over `r`/`w`, until cancelled (`Ok`) or it fails.
pub(super) async fn session<R, W>(
    queue: &QueueHandle,
    cfg: &SenderConfig,
    stats: &SenderStats,
    mut r: R,
    mut w: W,
    cancel: &CancellationToken,
) -> Result<(), SenderError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut answers = Answers::new();
    let mut frame = Vec::new();
    let offers = format!(
        "relp_version=0\nrelp_software=mirage,{},https://example.invalid/mirage\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    );
    relp::encode(&mut frame, 1, "open", offers.as_bytes());
    write(&mut w, &frame, cfg).await?;
    let open = match tokio::time::timeout(cfg.io_timeout, answers.next(&mut r)).await {
        Ok(a) => a?,
        Err(_) => return Err(SenderError::Timeout),
    };
    let rsp = relp::parse_response(&open.data)
        .filter(|_| open.txnr == 1 && open.command == "rsp")
        .ok_or_else(|| SenderError::Protocol("no RELP answer to open".into()))?;
    if rsp.code != 200 {
        return Err(SenderError::Refused(format!("{} {}", rsp.code, rsp.text)));
    }
    if !relp::parse_offers(rsp.data)
        .iter()
        .any(|o| o.name == "commands" && o.values.contains(&"syslog"))
    {
        return Err(SenderError::Protocol(
            "the server does not take RELP syslog".into(),
        ));
    }

    let mut txnr = 1;
    // (txnr, queue seq) of every command not answered yet, in order.
    let mut inflight: VecDeque<(u32, u64)> = VecDeque::new();
    let mut waiting_since = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return close(queue, cfg, &mut answers, r, w, inflight, next_txnr(txnr)).await;
        }
        let room = WINDOW - inflight.len();
        if room > 0 {
            let batch = queue
                .lock()
                .read_batch(room.min(cfg.batch_records), cfg.batch_bytes)?;
            if !batch.is_empty() {
                frame.clear();
                if inflight.is_empty() {
                    waiting_since = Instant::now();
                }
                for rec in &batch {
                    txnr = next_txnr(txnr);
                    relp::encode(&mut frame, txnr, "syslog", &rec.payload);
                    inflight.push_back((txnr, rec.seq));
                }
                write(&mut w, &frame, cfg).await?;
                stats
                    .sent
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                // Answers that came meanwhile are read on the next turn.
                settle(queue, &mut answers, &mut inflight, &mut waiting_since)?;
                continue;
            }
        }
        let notified = queue.notified();
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = notified, if room > 0 => {}
            _ = tokio::time::sleep(cfg.idle_poll) => {
                if !inflight.is_empty() && waiting_since.elapsed() > cfg.ack_timeout {
                    return Err(SenderError::Timeout);
                }
            }
            res = answers.fill(&mut r) => {
                res?;
                settle(queue, &mut answers, &mut inflight, &mut waiting_since)?;
            }
        }
    }
}

/// Take every complete answer read so far and acknowledge the queue up to
/// the last record answered 200.
fn settle(
    queue: &QueueHandle,
    answers: &mut Answers,
    inflight: &mut VecDeque<(u32, u64)>,
    waiting_since: &mut Instant,
) -> Result<(), SenderError> {
    let mut acked = None;
    let result = loop {
        let a = match answers.take() {
            Ok(Some(a)) => a,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if a.txnr == 0 {
            if a.command == "serverclose" {
                break Err(SenderError::Closed);
            }
            continue;
        }
        let Some(&(t, seq)) = inflight.front() else {
            break Err(SenderError::Protocol(format!(
                "RELP answer to {} that was not asked",
                a.txnr
            )));
        };
        if a.command != "rsp" || a.txnr != t {
            break Err(SenderError::Protocol(format!(
                "RELP answer {} {} where {t} was due",
                a.txnr, a.command
            )));
        }
        match relp::parse_response(&a.data) {
            Some(rsp) if rsp.code == 200 => {
                inflight.pop_front();
                acked = Some(seq);
                *waiting_since = Instant::now();
            }
            Some(rsp) => break Err(SenderError::Refused(format!("{} {}", rsp.code, rsp.text))),
            None => break Err(SenderError::Protocol("unreadable RELP answer".into())),
        }
    };
    // What was answered 200 before a failure is stored: keep that.
    if let Some(seq) = acked {
        queue.lock().ack(seq)?;
    }
    result
}

/// On shutdown: wait (briefly) for the outstanding answers, acknowledge
/// what they confirm, then `close`.
async fn close<R, W>(
    queue: &QueueHandle,
    cfg: &SenderConfig,
    answers: &mut Answers,
    mut r: R,
    mut w: W,
    mut inflight: VecDeque<(u32, u64)>,
    close_txnr: u32,
) -> Result<(), SenderError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut since = Instant::now();
    let drained = tokio::time::timeout(cfg.io_timeout.min(super::sender::FINISH_WAIT), async {
        while !inflight.is_empty() {
            answers.fill(&mut r).await?;
            settle(queue, answers, &mut inflight, &mut since)?;
        }
        let mut frame = Vec::new();
        relp::encode(&mut frame, close_txnr, "close", b"");
        w.write_all(&frame).await?;
        w.flush().await?;
        let _ = answers.next(&mut r).await;
        let _ = w.shutdown().await;
        Ok::<(), SenderError>(())
    })
    .await;
    match drained {
        // Unanswered records stay queued: sent again next time.
        Ok(Err(SenderError::Queue(e))) => Err(SenderError::Queue(e)),
        _ => Ok(()),
    }
}

async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
    cfg: &SenderConfig,
) -> Result<(), SenderError> {
    with_timeout(cfg.io_timeout, async {
        w.write_all(frame).await?;
        w.flush().await
    })
    .await
}
