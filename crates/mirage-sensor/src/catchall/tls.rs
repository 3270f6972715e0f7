//! On-demand TLS for the catch-all: fingerprint the ClientHello, terminate
//! TLS with a certificate issued for its SNI, and detect again on the
//! decrypted stream.

use bytes::BytesMut;
use mirage_net::{Session, SessionEnd};
use mirage_proto::detect::Protocol;

use super::Catchall;

/// TLS termination settings (the certificate authority issuing per-SNI
/// certificates).
pub struct TlsTermination {
    _private: (),
}

impl TlsTermination {
    pub(crate) async fn serve(
        &self,
        catchall: &Catchall,
        session: &mut Session,
        hello: BytesMut,
    ) -> Result<(), SessionEnd> {
        catchall
            .detected(session, Protocol::Tls, "bytes", hello, None)
            .await
    }
}

/// Give `catchall` TLS termination (nothing yet: TLS is captured raw).
pub fn attach(catchall: Catchall, _config: &mirage_config::Config) -> anyhow::Result<Catchall> {
    let _ = TlsTermination { _private: () };
    Ok(catchall)
}
