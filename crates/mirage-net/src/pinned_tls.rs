//! TLS for mirage's own control channel (agents and sensors talking to the
//! server), trusted by pinning rather than by a CA.
//!
//! The server makes a self-signed certificate once and keeps it
//! ([`crate::tls::self_signed_server_config`]); its [`Pin`] is the SHA-256 of
//! that certificate. The pin travels inside the enrollment token (and in a
//! sensor's config), so the first connection is already authenticated:
//! an agent talks only to the server that made its token, whatever a
//! network attacker presents, with no CA to set up. The verifier still
//! checks the handshake signature with the pinned certificate's key, so
//! presenting the certificate without its key fails.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The SHA-256 of a server's certificate (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

impl Pin {
    /// The pin of `cert`.
    pub fn of(cert: &[u8]) -> Pin {
        use sha2::{Digest, Sha256};
        Pin(Sha256::digest(cert).into())
    }

    /// The pin of the first certificate in the PEM file `path`.
    pub fn of_pem_file(path: &Path) -> Result<Pin, String> {
        let cert = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .next()
            .ok_or_else(|| format!("{}: no certificate found", path.display()))?
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Pin::of(&cert))
    }

    /// Parse 64 hex digits.
    pub fn parse(hex: &str) -> Option<Pin> {
        let bytes = mirage_core::request_auth::decode_hex(hex.trim())?;
        Some(Pin(bytes.try_into().ok()?))
    }

    /// 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        mirage_core::event::hex(&self.0)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({})", self.hex())
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: Pin,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin replaces the chain, the name and the validity period: it
        // names exactly one certificate, the one the server made.
        if Pin::of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS client that accepts only the server holding the certificate `pin`
/// names.
pub fn client_config(pin: Pin) -> Arc<rustls::ClientConfig> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_print() {
        let p = Pin::of(b"certificate");
        assert_eq!(Pin::parse(&p.hex()), Some(p));
        assert_eq!(Pin::parse(&p.hex().to_uppercase()), Some(p));
        assert_eq!(Pin::parse("abcd"), None);
        assert_eq!(Pin::parse(&"zz".repeat(32)), None);
    }
}
