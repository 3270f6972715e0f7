//! The catch-all: one listener for every port the firewall diverts to it.
//!
//! Each connection arrives with its original destination already in the
//! session (`local`, from `SO_ORIGINAL_DST` or the transparent socket).
//! The catch-all then:
//! 1. peeks at the first bytes for up to `peek_ms`
//!    ([`mirage_proto::detect`]): TLS, HTTP, SSH, RESP, MongoDB, Telnet,
//!    rsync; a silent client is judged by its port (FTP, SMTP, MySQL…);
//! 2. hands a recognised session to the matching emulator when it is
//!    enabled (the same emulator instance that serves its own port): the
//!    peeked bytes are given back to the session, its events are re-labelled
//!    with the emulator's service, and the session id stays;
//! 3. otherwise captures raw bytes until the client closes, goes quiet for
//!    `data_timeout_secs` or spends the payload budget, answering first
//!    with the port's configured banner if the client said nothing.
//!
//! In every case what the client sent (decrypted, under TLS) is captured up
//! to the budget ([`capture`]) and written as one `payload` event at the
//! end; SSH is the exception after hand-off (its stream is encrypted, and
//! the SSH emulator records the session itself).
//!
//! UDP ([`udp`]) and the SYN probes the firewall logs ([`probes`]) run as
//! background tasks beside the TCP listener.

pub mod capture;
pub mod probes;
pub mod setup;
pub mod tls;
pub mod udp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_config::CatchallConfig;
use mirage_core::EventKind;
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::detect::{Detection, PEEK_MAX, Protocol, by_port, detect};

use crate::quarantine::Quarantine;
use capture::Capture;

/// The payload store's directory under the data dir.
pub const PAYLOAD_DIR: &str = "payloads";

/// Emulators the catch-all may hand sessions to, by service name.
pub type Emulators = HashMap<String, Arc<dyn Emulator>>;

/// The catch-all TCP emulator.
pub struct Catchall {
    cfg: Arc<CatchallConfig>,
    emulators: Emulators,
    store: Arc<Quarantine>,
    tls: Option<tls::TlsTermination>,
}

impl Catchall {
    /// A catch-all handing sessions to `emulators` (the enabled ones the
    /// runner built; those not in `handoff` are ignored), storing long
    /// captures in `store`.
    pub fn new(cfg: CatchallConfig, emulators: &Emulators, store: Arc<Quarantine>) -> Catchall {
        let emulators = emulators
            .iter()
            .filter(|(name, _)| cfg.handoff.iter().any(|h| h == *name))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        Catchall {
            cfg: Arc::new(cfg),
            emulators,
            store,
            tls: None,
        }
    }

    /// Terminate TLS on a ClientHello with `tls` (certificates issued per
    /// SNI); without it, TLS connections are captured raw.
    pub fn with_tls(mut self, tls: tls::TlsTermination) -> Catchall {
        self.tls = Some(tls);
        self
    }

    /// Write a `payload` event for bytes read before the session ended.
    async fn capture_only(&self, session: &Session, data: &[u8]) {
        if !data.is_empty() {
            let c = self.capture();
            c.feed(data);
            emit_capture(session, &c).await;
        }
    }

    /// The emulator for `protocol` on `port`, if enabled and allowed.
    fn target(&self, protocol: Protocol, port: u16) -> Option<(&str, &Arc<dyn Emulator>)> {
        let name = match protocol {
            Protocol::Http if port == 9200 && self.emulators.contains_key("elasticsearch") => {
                "elasticsearch"
            }
            Protocol::Http => "http",
            Protocol::Ssh => "ssh",
            Protocol::Redis => "redis",
            Protocol::Mongodb => "mongodb",
            Protocol::Telnet => "telnet",
            Protocol::Rsync => "rsync",
            Protocol::Ftp => "ftp",
            Protocol::Mysql => "mysql",
            _ => return None,
        };
        self.emulators
            .get_key_value(name)
            .map(|(n, e)| (n.as_str(), e))
    }

    fn capture(&self) -> Capture {
        Capture::new(
            self.store.clone(),
            self.cfg.inline_bytes,
            self.cfg.payload_budget,
        )
    }

    /// Give `session` to `emu` with `peeked` bytes given back, capturing
    /// (except for SSH) what the client sends, and write the capture.
    async fn hand_off(
        &self,
        session: &mut Session,
        name: &str,
        emu: &Arc<dyn Emulator>,
        peeked: BytesMut,
    ) -> Result<(), SessionEnd> {
        let capture = (name != "ssh").then(|| self.capture());
        if let Some(c) = &capture {
            c.feed(&peeked);
            session.set_tap(Some(c.tap()));
        }
        session.unread(peeked);
        session.set_service(Arc::from(name));
        let result = emu.serve(session).await;
        session.set_tap(None);
        if let Some(c) = capture {
            emit_capture(session, &c).await;
        }
        result
    }

    /// Raw capture until close, silence or budget. A client that sent
    /// nothing yet is parked in [`Session::wait_readable`] first, with no
    /// capture and no buffer: what an idle connection costs is this.
    async fn raw(
        &self,
        session: &mut Session,
        peeked: BytesMut,
        banner: Option<&str>,
    ) -> Result<(), SessionEnd> {
        if let Some(text) = banner {
            Box::pin(session.write_all(text.as_bytes())).await?;
        }
        let wait = Duration::from_secs(self.cfg.data_timeout_secs);
        if peeked.is_empty() {
            Box::pin(session.wait_readable(wait)).await?;
        }
        let capture = self.capture();
        capture.feed(&peeked);
        drop(peeked);
        let result = Box::pin(self.raw_loop(session, &capture, wait)).await;
        Box::pin(emit_capture(session, &capture)).await;
        result
    }

    async fn raw_loop(
        &self,
        session: &mut Session,
        capture: &Capture,
        wait: Duration,
    ) -> Result<(), SessionEnd> {
        if capture.exhausted() {
            return Err(SessionEnd::ByteBudget);
        }
        session.set_tap(Some(capture.tap()));
        let mut buf = BytesMut::new();
        let result = loop {
            match tokio::time::timeout(wait, session.read_some(&mut buf)).await {
                Err(_) if session.bytes_in() == 0 => break Err(SessionEnd::HandshakeTimeout),
                Err(_) => break Err(SessionEnd::IdleTimeout),
                Ok(Err(end)) => break Err(end),
                Ok(Ok(_)) => {
                    // The tap has seen the bytes; nothing is kept here.
                    buf.clear();
                    if capture.exhausted() {
                        break Err(SessionEnd::ByteBudget);
                    }
                }
            }
        };
        session.set_tap(None);
        result
    }

    async fn detected(
        &self,
        session: &mut Session,
        protocol: Protocol,
        by: &str,
        peeked: BytesMut,
    ) -> Result<(), SessionEnd> {
        let port = session.local().port();
        let target = self.target(protocol, port);
        session
            .emit(EventKind::Detect {
                protocol: protocol.name().into(),
                by: by.into(),
                handoff: target.map(|(n, _)| n.to_owned()),
            })
            .await;
        match target {
            Some((name, emu)) => self.hand_off(session, name, emu, peeked).await,
            None => {
                let banner = if peeked.is_empty() {
                    self.cfg.banner_for(port)
                } else {
                    None
                };
                self.raw(session, peeked, banner).await
            }
        }
    }
}

/// What the peek window gave.
enum Peeked {
    /// The first bytes name a protocol.
    Known(Protocol, BytesMut),
    /// Bytes of no known protocol (or still undecided at the window's end).
    Unknown(BytesMut),
    /// Nothing within the window.
    Silent,
}

async fn peek(session: &mut Session, window: Duration) -> Result<Peeked, (SessionEnd, BytesMut)> {
    let deadline = tokio::time::Instant::now() + window;
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, session.read_some(&mut buf)).await {
            Err(_) if buf.is_empty() => return Ok(Peeked::Silent),
            Err(_) => return Ok(Peeked::Unknown(buf)),
            Ok(Err(end)) => return Err((end, buf)),
            Ok(Ok(_)) => match detect(&buf) {
                Detection::Known(p) => return Ok(Peeked::Known(p, buf)),
                Detection::NeedMore if buf.len() < PEEK_MAX => {}
                _ => return Ok(Peeked::Unknown(buf)),
            },
        }
    }
}

/// Write the capture's `payload` event, if the client sent anything.
async fn emit_capture(session: &Session, capture: &Capture) {
    if let Some((kind, over)) = capture.finish() {
        let mut e = session.event(kind);
        if over {
            e.tags.push("payload_budget".into());
        }
        session.emit_event(e).await;
    }
}

#[async_trait]
impl Emulator for Catchall {
    fn service(&self) -> &str {
        "catchall"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        // Every branch is boxed: this future lives as long as the session,
        // and inline it would be as large as its largest branch.
        let window = Duration::from_millis(self.cfg.peek_ms);
        let port = session.local().port();
        match Box::pin(peek(session, window)).await {
            Err((end, buf)) => {
                // Gone (or cut) while still undecided: keep what it sent.
                Box::pin(self.capture_only(session, &buf)).await;
                Err(end)
            }
            Ok(Peeked::Known(Protocol::Tls, buf)) => match &self.tls {
                Some(t) => Box::pin(t.serve(self, session, buf)).await,
                None => Box::pin(self.detected(session, Protocol::Tls, "bytes", buf)).await,
            },
            Ok(Peeked::Known(p, buf)) => Box::pin(self.detected(session, p, "bytes", buf)).await,
            Ok(Peeked::Unknown(buf)) => Box::pin(self.raw(session, buf, None)).await,
            Ok(Peeked::Silent) => match by_port(port) {
                Some(p) => Box::pin(self.detected(session, p, "port", BytesMut::new())).await,
                None => {
                    // The idle connection's resting place: parked here,
                    // inline, with no capture and no buffer yet.
                    if let Some(text) = self.cfg.banner_for(port) {
                        Box::pin(session.write_all(text.as_bytes())).await?;
                    }
                    let wait = Duration::from_secs(self.cfg.data_timeout_secs);
                    session.wait_readable(wait).await?;
                    Box::pin(self.raw(session, BytesMut::new(), None)).await
                }
            },
        }
    }
}
