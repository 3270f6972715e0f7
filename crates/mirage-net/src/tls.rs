//! TLS for emulators: a self-signed server certificate made once and kept,
//! and the rustls acceptor built from it.
//!
//! A honeypot that offers TLS (FTP's `AUTH TLS`, and later SMTP STARTTLS,
//! HTTPS, IMAPS…) needs a certificate but has no CA to ask. The first start
//! makes one with rcgen (ECDSA P-256, the host name as CN and SAN) and
//! stores it under `dir/<name>.crt` and `dir/<name>.key` (key mode 0600),
//! so every later start, and every scanner that records certificate
//! fingerprints, sees the same certificate, as with a real server. One
//! crypto provider (ring) is used across rustls and rcgen.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use tokio_rustls::{self, TlsAcceptor};

/// Load `dir/<name>.crt` and `dir/<name>.key`, or make and store a
/// self-signed pair for `hostname` when they do not exist yet, and build a
/// server config from them. Errors are one line naming the file.
pub fn self_signed_server_config(
    dir: &Path,
    name: &str,
    hostname: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if !cert_path.exists() || !key_path.exists() {
        let (cert_pem, key_pem) = generate(hostname)?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_private(&key_path, key_pem.as_bytes())?;
        std::fs::write(&cert_path, cert_pem)
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: no usable private key: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{}: certificate and key do not fit: {e}",
                cert_path.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A self-signed certificate and its key (PEM) for `hostname`.
pub fn generate(hostname: &str) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()])
        .map_err(|e| format!("certificate for '{hostname}': {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate for '{hostname}': {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write `data` to `path` readable by the owner only (mode 0600).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tls");
        self_signed_server_config(&d, "ftp", "ftp01").unwrap();
        let first = std::fs::read(d.join("ftp.crt")).unwrap();
        self_signed_server_config(&d, "ftp", "ftp01").unwrap();
        assert_eq!(std::fs::read(d.join("ftp.crt")).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("ftp.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
