//! A local certificate authority that issues server certificates on the fly
//! for whatever name a TLS client asks for.
//!
//! The all-port listener and the HTTPS honeypot terminate TLS for names they
//! cannot know in advance: a scanner connecting to `203.0.113.7:8443` with
//! SNI `vpn.corp.example` should get a certificate for `vpn.corp.example`.
//! [`CertAuthority`] holds one CA (ECDSA P-256, made once with rcgen and
//! kept in a data directory as `ca.crt`, world-readable so operators can
//! add it to a trust store, and `ca.key`, mode 0600; never regenerated when
//! present, an operator may also put their own CA there) and answers
//! rustls' certificate lookup ([`rustls::server::ResolvesServerCert`]) with
//! a leaf for the ClientHello's SNI, or for a default name when there is
//! none.
//!
//! SNI is attacker input: a name is used only when it is DNS-shaped (see
//! [`mirage_proto::tls_hello::dns_name`]: letters, digits, `-`, `_`, at most
//! 253 bytes, lower-cased); anything else gets the default certificate.
//! Leaves are cached by name in a bounded cache ([`LEAF_CACHE`] names,
//! oldest dropped first), so a flood of random names costs CPU for signing
//! but no memory growth. All leaves share one in-memory key pair (as
//! intercepting proxies do): issuing is one signature, not a key
//! generation.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, SigningKey};

use crate::tls::write_private;

/// Most leaf certificates kept; the oldest is dropped first.
pub const LEAF_CACHE: usize = 1024;
/// Name of the certificate issued to clients that send no usable SNI,
/// unless [`CertAuthority::load_or_create_with`] sets another.
pub const DEFAULT_NAME: &str = "localhost";
/// A cached leaf older than this is issued again (leaves are valid for
/// [`LEAF_VALIDITY_DAYS`], so a long-running sensor never serves an
/// expired one).
const LEAF_REISSUE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Validity of a leaf, under the 398 days browsers accept.
pub const LEAF_VALIDITY_DAYS: i64 = 397;
/// Validity of a new CA.
const CA_VALIDITY_DAYS: i64 = 3650;
/// The CA's subject. A bland enterprise-looking name: the issuer is the
/// first thing an attacker inspecting the certificate sees.
const CA_COMMON_NAME: &str = "Internal Root CA";
const CA_ORGANIZATION: &str = "IT Services";

/// The CA and its cache of issued leaves.
pub struct CertAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<CryptoProvider>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    ca_path: PathBuf,
    leaf_key: rcgen::KeyPair,
    leaf_signer: Arc<dyn SigningKey>,
    default_name: String,
    cache: Mutex<LeafCache>,
}

#[derive(Default)]
struct LeafCache {
    map: HashMap<String, (Arc<CertifiedKey>, Instant)>,
    order: VecDeque<String>,
    issued: u64,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority")
            .field("ca", &self.inner.ca_path)
            .field("default_name", &self.inner.default_name)
            .finish()
    }
}

fn err(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {what}", path.display()))
}

impl CertAuthority {
    /// Load the CA from `dir/ca.crt` and `dir/ca.key`, or make and store one
    /// when neither exists. One of the two missing, or either unreadable or
    /// not matching the other, is an error naming the file: a CA operators
    /// may already trust is never replaced behind their back.
    pub fn load_or_create(dir: &Path) -> io::Result<Arc<CertAuthority>> {
        Self::load_or_create_with(dir, DEFAULT_NAME)
    }

    /// As [`CertAuthority::load_or_create`], with the name (DNS name or IP
    /// address) certified for clients that send no usable SNI.
    pub fn load_or_create_with(dir: &Path, default_name: &str) -> io::Result<Arc<CertAuthority>> {
        // The default name is configuration: refuse what a client's SNI
        // would not be allowed to be either.
        let default_name = match default_name.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => mirage_proto::tls_hello::dns_name(default_name.as_bytes()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("default TLS name '{default_name}' is neither a DNS name nor an IP address"),
                )
            })?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let crt = dir.join("ca.crt");
        let key = dir.join("ca.key");
        match (crt.exists(), key.exists()) {
            (false, false) => create_ca(&provider, dir, &crt, &key)?,
            (true, false) => {
                return Err(err(
                    &key,
                    "missing while ca.crt exists; restore it or remove both to make a new CA",
                ));
            }
            (false, true) => {
                return Err(err(
                    &crt,
                    "missing while ca.key exists; restore it or remove both to make a new CA",
                ));
            }
            (true, true) => {}
        }
        let ca_pem = std::fs::read_to_string(&crt).map_err(|e| err(&crt, e))?;
        let key_pem = std::fs::read_to_string(&key).map_err(|e| err(&key, e))?;
        let ca_key = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|e| err(&key, format!("no usable private key: {e}")))?;
        // The key must be the one the certificate certifies, or every leaf
        // would fail verification.
        let ca_der = pem_cert(&ca_pem).ok_or_else(|| err(&crt, "no certificate found"))?;
        let ca_signer = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                ca_key.serialize_der(),
            )))
            .map_err(|e| err(&key, format!("unsupported key: {e}")))?;
        CertifiedKey::new(vec![ca_der], ca_signer)
            .keys_match()
            .map_err(|e| err(&key, format!("does not match ca.crt: {e}")))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)
            .map_err(|e| err(&crt, format!("not a usable CA certificate: {e}")))?;
        let leaf_key = rcgen::KeyPair::generate()
            .map_err(|e| io::Error::other(format!("key generation: {e}")))?;
        let leaf_signer = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                leaf_key.serialize_der(),
            )))
            .map_err(|e| io::Error::other(format!("leaf key: {e}")))?;
        let ca = CertAuthority {
            inner: Arc::new(Inner {
                provider,
                issuer,
                ca_pem,
                ca_path: crt,
                leaf_key,
                leaf_signer,
                default_name,
                cache: Mutex::new(LeafCache::default()),
            }),
        };
        // Fail at start, not at the first handshake, on a bad default name.
        ca.leaf_for(None)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Arc::new(ca))
    }

    /// A rustls server config whose certificate is issued per ClientHello,
    /// offering `alpn` (e.g. `[b"h2", b"http/1.1"]`; empty for none).
    pub fn server_config(&self, alpn: Vec<Vec<u8>>) -> Arc<rustls::ServerConfig> {
        let resolver = Arc::new(Resolver(self.inner.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(self.inner.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = alpn;
        Arc::new(config)
    }

    /// The certificate and key served for `sni` (`None`: no usable SNI).
    /// Names that are not DNS-shaped get the default name's certificate.
    pub fn leaf_for(&self, sni: Option<&str>) -> Result<Arc<CertifiedKey>, String> {
        self.inner.leaf_for(sni)
    }

    /// The name a leaf for `sni` certifies: `sni` normalised when it is a
    /// DNS name, else the default name.
    pub fn name_for(&self, sni: Option<&str>) -> String {
        self.inner.name_for(sni)
    }

    /// The CA certificate (PEM), for operators and tests.
    pub fn ca_cert_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// Where the CA certificate is stored.
    pub fn ca_cert_path(&self) -> &Path {
        &self.inner.ca_path
    }

    /// How many leaves were issued so far (cache misses).
    pub fn issued(&self) -> u64 {
        self.inner.cache.lock().map(|c| c.issued).unwrap_or(0)
    }

    /// How many leaves the cache holds.
    pub fn cached(&self) -> usize {
        self.inner.cache.lock().map(|c| c.map.len()).unwrap_or(0)
    }
}

fn pem_cert(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

/// Valid from yesterday (clients with a slow clock) until `days` from
/// today, midnight UTC.
fn set_validity(params: &mut rcgen::CertificateParams, days: i64) {
    use chrono::Datelike;
    let ymd = |offset: i64| {
        let d = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(-1);
    params.not_after = ymd(days);
}

/// A random positive serial number of 16 bytes (RFC 5280: at most 20,
/// unique per issuer).
fn serial(provider: &CryptoProvider) -> Result<rcgen::SerialNumber, String> {
    let mut b = [0u8; 16];
    provider
        .secure_random
        .fill(&mut b)
        .map_err(|_| "no randomness for a serial number".to_owned())?;
    // Positive and without a leading zero byte, so the DER INTEGER is minimal.
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&b))
}

fn create_ca(provider: &CryptoProvider, dir: &Path, crt: &Path, key: &Path) -> io::Result<()> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, CA_ORGANIZATION);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY_DAYS);
    params.serial_number = Some(serial(provider).map_err(io::Error::other)?);
    let ca_key =
        rcgen::KeyPair::generate().map_err(|e| io::Error::other(format!("key generation: {e}")))?;
    let cert = params
        .self_signed(&ca_key)
        .map_err(|e| io::Error::other(format!("CA certificate: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    // Written under temporary names and renamed, key first: an interrupted
    // start leaves no half-written file under the real names.
    let key_tmp = dir.join("ca.key.tmp");
    let crt_tmp = dir.join("ca.crt.tmp");
    write_private(&key_tmp, ca_key.serialize_pem().as_bytes()).map_err(io::Error::other)?;
    std::fs::write(&crt_tmp, cert.pem()).map_err(|e| err(&crt_tmp, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&crt_tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| err(&crt_tmp, e))?;
    std::fs::rename(&key_tmp, key).map_err(|e| err(key, e))?;
    std::fs::rename(&crt_tmp, crt).map_err(|e| err(crt, e))?;
    tracing::info!(ca = %crt.display(), "made a new local CA for on-the-fly TLS certificates");
    Ok(())
}

impl Inner {
    fn name_for(&self, sni: Option<&str>) -> String {
        sni.and_then(|s| mirage_proto::tls_hello::dns_name(s.as_bytes()))
            .unwrap_or_else(|| self.default_name.clone())
    }

    fn leaf_for(&self, sni: Option<&str>) -> Result<Arc<CertifiedKey>, String> {
        let name = self.name_for(sni);
        if let Ok(cache) = self.cache.lock()
            && let Some((leaf, made)) = cache.map.get(&name)
            && made.elapsed() < LEAF_REISSUE
        {
            return Ok(leaf.clone());
        }
        // Sign outside the lock; two handshakes racing for a new name both
        // sign, and the second insert wins. Harmless, and rare.
        let leaf = Arc::new(self.issue(&name)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.issued += 1;
            if cache
                .map
                .insert(name.clone(), (leaf.clone(), Instant::now()))
                .is_none()
            {
                cache.order.push_back(name);
            }
            while cache.map.len() > LEAF_CACHE {
                let Some(old) = cache.order.pop_front() else {
                    break;
                };
                cache.map.remove(&old);
            }
        }
        Ok(leaf)
    }

    fn issue(&self, name: &str) -> Result<CertifiedKey, String> {
        // An IP address becomes an IP SAN, anything else a DNS SAN.
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .map_err(|e| format!("certificate for '{name}': {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALIDITY_DAYS);
        params.serial_number = Some(serial(&self.provider)?);
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| format!("certificate for '{name}': {e}"))?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone()],
            self.leaf_signer.clone(),
        ))
    }
}

#[derive(Debug)]
struct Resolver(Arc<Inner>);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertAuthority")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.0.leaf_for(hello.server_name()) {
            Ok(leaf) => Some(leaf),
            Err(e) => {
                // Only a name rcgen refuses gets here, and names are
                // checked first: worth a warning, not an error.
                tracing::warn!(error = %e, "cannot issue a certificate; aborting the handshake");
                None
            }
        }
    }
}
