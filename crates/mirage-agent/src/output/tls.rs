//! TLS for the syslog output (RFC 5425): the client half, on rustls with the
//! ring provider (the one crypto provider mirage uses everywhere).
//!
//! The server is verified against a configured CA (a private CA is the
//! normal case for syslog, so the system roots are not used), under a
//! configured name; a client certificate can be added for mutual TLS. The
//! files are read once at start: a bad file is a start-up error, not a retry
//! loop.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Why the TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name '{0}'")]
    ServerName(String),
    /// rustls refused the configuration (e.g. a key that does not match
    /// the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ready TLS client: what to trust and whom to expect.
#[derive(Clone)]
pub struct TlsSettings {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds key material: show only whom we talk to.
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Trust the CA certificates in the PEM file `ca_file`, expect
    /// `server_name` on the server's certificate, and present `client` (PEM
    /// chain, PEM key) when given.
    pub fn from_files(
        ca_file: &Path,
        client: Option<(&Path, &Path)>,
        server_name: &str,
    ) -> Result<Self, TlsSetupError> {
        let file_err = |path: &Path, message: String| TlsSetupError::File {
            path: path.to_owned(),
            message,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(ca_file)? {
            roots
                .add(cert)
                .map_err(|e| file_err(ca_file, format!("unusable CA certificate: {e}")))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let config = match client {
            Some((cert_file, key_file)) => {
                let chain = read_certs(cert_file)?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| file_err(key_file, format!("no usable private key: {e}")))?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        Self::new(Arc::new(config), server_name)
    }

    /// Use a ready rustls client configuration.
    pub fn new(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Self, TlsSetupError> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsSetupError::ServerName(server_name.to_owned()))?;
        Ok(TlsSettings {
            connector: TlsConnector::from(config),
            server_name,
        })
    }

    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let err = |message: String| TlsSetupError::File {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}
