//! The HTTP/1.1 core shared by the web honeypots (`http`, `elasticsearch`)
//! and the `http` fake site itself.
//!
//! [`HttpEmulator`] owns the connection: it buffers bytes through the
//! session (byte budget, idle timeout), parses requests with the bounded
//! [`mirage_proto::http`] parser, answers pipelined requests in order, keeps
//! the connection alive as HTTP/1.1 wants, and cuts a client that takes
//! longer than `request_timeout` to send one request (slowloris). It
//! records every request as a `command` event (method, path, query,
//! headers, capped body, status sent), the credentials an app found as
//! `auth.attempt`, exploits and scanners (see [`attacks`]) as `attack`
//! events and tags, and malformed requests as `protocol.error` after the
//! error page a real server sends.
//!
//! An [`HttpApp`] supplies only the answers: [`site`] is the fake web site
//! (nginx or Apache look), `crate::elasticsearch` the search API.
//! [`response`] writes heads and error pages byte for byte as nginx and
//! Apache do.

pub mod attacks;
pub mod response;
pub mod site;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use mirage_core::event::hex;
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::http::{HttpLimits, Request, parse_request};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use attacks::Finding;

/// Cap on the escaped request line in `raw`.
pub const RAW_CAP: usize = 4096;
/// Cap on each escaped header value and path kept in an event.
pub const FIELD_CAP: usize = 2048;

/// Where a request arrived.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
}

/// A credential an app saw in a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// `http-form` or `http-basic`.
    pub method: &'static str,
    /// User name as sent.
    pub username: Vec<u8>,
    /// Password as sent.
    pub password: Vec<u8>,
    /// Facts about the attempt (path, form field names).
    pub details: Map<String, Value>,
}

/// What an app answers to one request.
#[derive(Debug, Default)]
pub struct Answer {
    /// The whole response (head and body) as sent.
    pub bytes: Vec<u8>,
    /// Its status code.
    pub status: u16,
    /// Close the connection after it.
    pub close: bool,
    /// Credentials found in the request.
    pub credentials: Vec<Credential>,
    /// App-specific attacks (in addition to the shared [`attacks::inspect`]).
    pub findings: Vec<Finding>,
}

/// Per-service settings the core enforces.
#[derive(Debug, Clone, Copy)]
pub struct CoreLimits {
    /// Parser limits.
    pub parse: HttpLimits,
    /// Body bytes kept in the event.
    pub body_capture: usize,
    /// Time allowed for one whole request once it has started.
    pub request_timeout: Duration,
    /// Requests per keep-alive connection.
    pub keepalive_requests: u32,
}

/// An HTTP application: answers requests, the core does the rest.
pub trait HttpApp: Send + Sync + 'static {
    /// Service name written into events.
    fn service(&self) -> &str;
    /// Limits for this service.
    fn limits(&self) -> CoreLimits;
    /// Answer one parsed request; `keep_alive` says whether the connection
    /// will stay open (the `Connection` header to write).
    fn handle(&self, req: &Request, keep_alive: bool, conn: &Conn) -> Answer;
    /// The response to a request the parser refused with `status`
    /// (the connection is closed after it).
    fn refuse(&self, status: u16, conn: &Conn) -> Vec<u8>;
}

/// Drives an [`HttpApp`] over each connection.
pub struct HttpEmulator<A: HttpApp> {
    app: A,
}

impl<A: HttpApp> HttpEmulator<A> {
    /// Wrap an app.
    pub fn new(app: A) -> Self {
        HttpEmulator { app }
    }
    /// The app.
    pub fn app(&self) -> &A {
        &self.app
    }
}

#[async_trait]
impl<A: HttpApp> Emulator for HttpEmulator<A> {
    fn service(&self) -> &str {
        self.app.service()
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        self.serve_with(session, &Map::new()).await
    }
}

impl<A: HttpApp> HttpEmulator<A> {
    /// Serve the connection, adding `extra` to the details of every request's
    /// `command` event (HTTPS: the `tls` object).
    pub async fn serve_with(
        &self,
        session: &mut Session,
        extra: &Map<String, Value>,
    ) -> Result<(), SessionEnd> {
        let lim = self.app.limits();
        let conn = Conn {
            peer: session.peer(),
            local: session.local(),
        };
        let mut buf = BytesMut::new();
        let mut out: Vec<u8> = Vec::new();
        let mut served: u32 = 0;
        // When the request now being received must be complete.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            // Answer every complete request buffered (pipelining), in order.
            loop {
                match parse_request(&buf, &lim.parse) {
                    Ok(Some((req, used))) => {
                        buf.advance(used);
                        deadline = None;
                        served += 1;
                        let keep = req.keep_alive() && served < lim.keepalive_requests;
                        let answer = self.app.handle(&req, keep, &conn);
                        record(session, &req, &answer, lim.body_capture, extra).await;
                        out.extend_from_slice(&answer.bytes);
                        if !keep || answer.close {
                            session.write_all(&out).await?;
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        out.extend_from_slice(&self.app.refuse(e.status(), &conn));
                        // What was sent is recorded even when the write fails.
                        let head = &buf[..buf.len().min(4096)];
                        session
                            .emit(EventKind::ProtocolError {
                                error: e.to_string(),
                                data: PayloadData::new(head, 1024),
                            })
                            .await;
                        session.write_all(&out).await?;
                        return Err(SessionEnd::ProtocolError);
                    }
                }
            }
            if !out.is_empty() {
                session.write_all(&out).await?;
                out.clear();
            }
            let read = match deadline {
                Some(d) => match tokio::time::timeout_at(d, session.read_some(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => {
                        // nginx drops a client that is too slow with its
                        // header (client_header_timeout) without an answer.
                        let head = &buf[..buf.len().min(4096)];
                        session
                            .emit(EventKind::ProtocolError {
                                error: "request not complete within the request timeout".into(),
                                data: PayloadData::new(head, 1024),
                            })
                            .await;
                        return Err(SessionEnd::IdleTimeout);
                    }
                },
                None => session.read_some(&mut buf).await,
            };
            read?;
            if deadline.is_none() && !buf.is_empty() {
                deadline = Some(tokio::time::Instant::now() + lim.request_timeout);
            }
        }
    }
}

/// Write the request's events: `command` (tagged), then `auth.attempt`s,
/// then `attack`s.
async fn record(
    session: &Session,
    req: &Request,
    answer: &Answer,
    body_cap: usize,
    extra: &Map<String, Value>,
) {
    let mut findings = attacks::inspect(req);
    findings.extend(answer.findings.iter().cloned());
    let scanners = attacks::scanner_tags(req);
    let mut kind = command_event(req, answer.status, body_cap);
    if let EventKind::Command { details, .. } = &mut kind {
        details.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut ev = session.event(kind);
    for f in &findings {
        if !ev.tags.iter().any(|t| t == "attack") {
            ev.tags.push("attack".into());
        }
        ev.tags.push(f.technique.to_owned());
    }
    ev.tags.extend(scanners.iter().cloned());
    session.emit_event(ev).await;
    for c in &answer.credentials {
        session
            .emit(EventKind::AuthAttempt {
                method: c.method.into(),
                username: Some(BytesText::capped(&c.username, 256).0),
                password: Some(BytesText::capped(&c.password, 256).0),
                key_fingerprint: None,
                result: AuthResult::Failure,
                details: c.details.clone(),
            })
            .await;
    }
    for f in findings {
        let mut ev = session.event(EventKind::Attack {
            technique: f.technique.into(),
            summary: f.summary,
            evidence: f.evidence,
        });
        ev.tags = scanners.clone();
        session.emit_event(ev).await;
    }
}

/// The `command` event for a request.
pub fn command_event(req: &Request, status: u16, body_cap: usize) -> EventKind {
    let (path, cut_path) = BytesText::capped(req.path(), FIELD_CAP);
    let mut args = vec![path];
    let mut truncated = cut_path;
    if let Some(q) = req.query() {
        let (q, cut) = BytesText::capped(q, FIELD_CAP);
        args.push(q);
        truncated |= cut;
    }
    let line = [
        req.method.as_bytes(),
        b" ",
        &req.target,
        if req.minor == 0 {
            b" HTTP/1.0"
        } else {
            b" HTTP/1.1"
        },
    ]
    .concat();
    let (raw, cut) = BytesText::capped(&line, RAW_CAP);
    truncated |= cut;
    let mut details = Map::new();
    details.insert(
        "version".into(),
        Value::from(if req.minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }),
    );
    let headers: Vec<Value> = req
        .headers
        .iter()
        .map(|(n, v)| json!([n, BytesText::capped(v, FIELD_CAP).0]))
        .collect();
    details.insert("headers".into(), Value::Array(headers));
    if !req.body.is_empty() {
        let (body, cut) = BytesText::capped(&req.body, body_cap);
        details.insert("body".into(), json!(body));
        details.insert("body_len".into(), json!(req.body.len()));
        details.insert("body_sha256".into(), json!(hex(&Sha256::digest(&req.body))));
        if cut {
            details.insert("body_truncated".into(), json!(true));
        }
    }
    details.insert("status".into(), json!(status));
    let method: String = req.method.chars().take(32).collect::<String>();
    EventKind::Command {
        command: method.to_ascii_lowercase(),
        args,
        raw,
        truncated,
        error: status >= 400,
        details,
    }
}
