//! On-demand TLS for the catch-all: fingerprint the ClientHello, terminate
//! TLS with a certificate the local CA issues for its SNI, and detect again
//! on the decrypted stream.
//!
//! The catch-all has already read the first bytes (it had to, to see they
//! were TLS), so the hello is completed by reading on
//! ([`Session::read_client_hello`], bounded in bytes and by the peek
//! window), given back with [`Session::unread`] and fed
//! to rustls by [`Session::start_tls`]. The `tls.client_hello` event is the
//! one the `https` service writes (SNI, ALPN, JA3, JA4, handshake outcome).
//! The decrypted stream then goes through detection like a plain one: HTTP
//! is handed to the `http` emulator (over the TLS session), anything else
//! to its emulator or to raw capture, which records the plaintext.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mirage_net::tls::TlsAcceptor;
use mirage_net::{CertAuthority, Session, SessionEnd};
use mirage_proto::detect::Protocol;

use super::{Catchall, Peeked, peek};

/// TLS termination with certificates from the local CA.
pub struct TlsTermination {
    acceptor: TlsAcceptor,
}

impl TlsTermination {
    /// Terminate with certificates issued by `ca`. Only HTTP/1.1 is offered
    /// in ALPN (what the emulators behind speak); clients that offer no
    /// ALPN are served too.
    pub fn new(ca: &CertAuthority) -> TlsTermination {
        TlsTermination {
            acceptor: TlsAcceptor::from(ca.server_config(vec![b"http/1.1".to_vec()])),
        }
    }

    pub(crate) async fn serve(
        &self,
        catchall: &Catchall,
        session: &mut Session,
        mut buf: BytesMut,
    ) -> Result<(), SessionEnd> {
        let window = Duration::from_millis(catchall.cfg.peek_ms.max(1000));
        let deadline = tokio::time::Instant::now() + window;
        let hello = match session.read_client_hello(&mut buf, deadline).await {
            Ok(parsed) => parsed.and_then(Result::ok),
            Err(end) => {
                catchall.capture_only(session, &buf).await;
                return Err(end);
            }
        };
        let Some(hello) = hello else {
            // Not a hello after all (or one too large or too slow): the
            // bytes are captured raw.
            return catchall
                .detected(session, Protocol::Tls, "bytes", buf)
                .await;
        };
        // `tls`, without a hand-off: the decrypted stream gets its own
        // `detect` event once TLS is up.
        session
            .emit(mirage_core::EventKind::Detect {
                protocol: Protocol::Tls.name().into(),
                by: "bytes".into(),
                handoff: None,
            })
            .await;
        session.unread(buf);
        let done = session.start_tls(&self.acceptor).await;
        session.emit(crate::https::hello_event(&hello, &done)).await;
        match done {
            Ok(()) => {}
            // A client refusing the certificate is its decision, not ours.
            Err(SessionEnd::Io(_)) => return Err(SessionEnd::ProtocolError),
            Err(e) => return Err(e),
        }
        let inner_window = Duration::from_millis(catchall.cfg.peek_ms);
        match Box::pin(peek(session, inner_window)).await {
            Err((end, buf)) => {
                catchall.capture_only(session, &buf).await;
                Err(end)
            }
            Ok(Peeked::Known(p, buf)) => {
                Box::pin(catchall.detected(session, p, "bytes", buf)).await
            }
            Ok(Peeked::Unknown(buf)) => Box::pin(catchall.raw(session, buf, None)).await,
            Ok(Peeked::Silent) => Box::pin(catchall.raw(session, BytesMut::new(), None)).await,
        }
    }
}

/// Give `catchall` TLS termination with the local CA in `<log_dir>/tls`
/// (the one the `https` service uses).
pub fn attach(catchall: Catchall, config: &mirage_config::Config) -> anyhow::Result<Catchall> {
    let ca: Arc<CertAuthority> =
        crate::https::cert_authority(&config.sensor.log_dir, &config.services.https.default_name)?;
    Ok(catchall.with_tls(TlsTermination::new(&ca)))
}
