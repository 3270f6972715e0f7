//! The `https` service: the HTTP honeypot's site behind TLS.
//!
//! Each connection's ClientHello is read first
//! ([`Session::read_client_hello`]) and parsed by
//! [`mirage_proto::tls_hello`] for SNI, ALPN, JA3 and JA4, then given back
//! ([`Session::unread`]) so rustls reads the same bytes; rustls then
//! terminates TLS with a certificate the local [`CertAuthority`] issues for
//! that SNI, and the decrypted stream goes to the same [`HttpEmulator`] as
//! plain HTTP. One `command` event `tls.client_hello` per connection carries
//! the fingerprints and the handshake outcome (a scanner that only collects
//! the certificate, or a client that refuses it, is recorded too), and every
//! request's `command` event carries the short form under `details.tls`
//! (see `docs/events.md`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_core::{BytesText, EventKind, PayloadData};
use mirage_net::tls::TlsAcceptor;
use mirage_net::{CertAuthority, Emulator, Session, SessionEnd};
use mirage_proto::tls_hello::{ClientHello, HelloError};
use serde_json::{Map, Value, json};

use crate::http::HttpEmulator;
use crate::http::site::Site;

/// Most ALPN names written into an event.
const ALPN_IN_EVENT: usize = 8;

/// The HTTPS honeypot.
pub struct HttpsEmulator {
    http: HttpEmulator<Site>,
    acceptor: TlsAcceptor,
}

impl HttpsEmulator {
    /// Serve `site` over TLS with certificates from `ca`. Only HTTP/1.1 is
    /// offered in ALPN: the HTTP core speaks nothing else.
    pub fn new(site: Site, ca: &CertAuthority) -> Self {
        let config = ca.server_config(vec![b"http/1.1".to_vec()]);
        HttpsEmulator {
            http: HttpEmulator::new(site),
            acceptor: TlsAcceptor::from(config),
        }
    }
}

/// The `tls` object of the `tls.client_hello` event.
pub fn tls_details(h: &ClientHello) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(sni) = h.sni() {
        m.insert("sni".into(), json!(sni));
    }
    // A server name that is not DNS-shaped is kept, escaped, for analysis.
    if let Some(raw) = h.server_name_raw()
        && h.sni().is_none()
    {
        m.insert("sni_raw".into(), json!(BytesText::new(raw)));
    }
    if !h.alpn().is_empty() {
        let alpn: Vec<BytesText> = h
            .alpn()
            .iter()
            .take(ALPN_IN_EVENT)
            .map(|a| BytesText::capped(a.as_bytes(), 64).0)
            .collect();
        m.insert("alpn".into(), json!(alpn));
    }
    m.insert("ja3".into(), json!(h.ja3_hash()));
    m.insert("ja3_string".into(), json!(h.ja3_string()));
    m.insert("ja4".into(), json!(h.ja4()));
    m.insert("ja4_r".into(), json!(h.ja4_r()));
    m
}

/// The `tls.client_hello` command event for `hello` and how the handshake
/// ended (shared with the catch-all, which terminates TLS the same way).
pub fn hello_event(hello: &ClientHello, done: &Result<(), SessionEnd>) -> EventKind {
    let mut tls = tls_details(hello);
    match done {
        Ok(()) => {
            tls.insert("handshake".into(), json!("ok"));
        }
        Err(e) => {
            tls.insert("handshake".into(), json!("failed"));
            let why = match e {
                SessionEnd::Io(io) => io.to_string(),
                other => other.to_string(),
            };
            tls.insert(
                "error".into(),
                json!(BytesText::capped(why.as_bytes(), 256).0),
            );
        }
    }
    let sni = hello.server_name_raw().unwrap_or_default();
    let mut details = Map::new();
    details.insert("tls".into(), Value::Object(tls));
    EventKind::Command {
        command: "tls.client_hello".into(),
        args: Vec::new(),
        raw: BytesText::capped(sni, 256).0,
        truncated: sni.len() > 256,
        error: done.is_err(),
        details,
    }
}

/// The short form each request's `command` event carries.
fn request_tls(h: &ClientHello) -> Map<String, Value> {
    let mut t = Map::new();
    if let Some(sni) = h.sni() {
        t.insert("sni".into(), json!(sni));
    }
    t.insert("ja3".into(), json!(h.ja3_hash()));
    t.insert("ja4".into(), json!(h.ja4()));
    let mut m = Map::new();
    m.insert("tls".into(), Value::Object(t));
    m
}

#[async_trait]
impl Emulator for HttpsEmulator {
    fn service(&self) -> &str {
        "https"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let wait = session
            .limits()
            .handshake_timeout
            .unwrap_or(std::time::Duration::from_secs(60));
        let mut buf = BytesMut::new();
        let read = session
            .read_client_hello(&mut buf, tokio::time::Instant::now() + wait)
            .await?;
        let hello = match read {
            Some(Ok(h)) => h,
            None => return Err(SessionEnd::HandshakeTimeout),
            Some(Err(e)) => {
                // Plain HTTP or garbage on the TLS port: recorded, then the
                // connection is dropped as a TLS server would.
                let why = match e {
                    HelloError::Invalid(why) => why,
                    _ => "ClientHello larger than the cap",
                };
                session
                    .emit(EventKind::ProtocolError {
                        error: format!("not a TLS ClientHello: {why}"),
                        data: PayloadData::new(&buf, 1024),
                    })
                    .await;
                return Err(SessionEnd::ProtocolError);
            }
        };
        session.unread(buf);
        let done = session.start_tls(&self.acceptor).await;
        session.emit(hello_event(&hello, &done)).await;
        match done {
            Ok(()) => {}
            // A client refusing the certificate (an unknown CA alert) is a
            // peer's decision, not our failure.
            Err(SessionEnd::Io(_)) => return Err(SessionEnd::ProtocolError),
            Err(e) => return Err(e),
        }
        let extra = request_tls(&hello);
        self.http.serve_with(session, &extra).await
    }
}

/// The CA the TLS services share, in `<log_dir>/tls`.
pub fn cert_authority(
    log_dir: &std::path::Path,
    default_name: &str,
) -> anyhow::Result<Arc<CertAuthority>> {
    let dir = log_dir.join("tls");
    CertAuthority::load_or_create_with(&dir, default_name)
        .map_err(|e| anyhow::anyhow!("local TLS CA: {e}"))
}
