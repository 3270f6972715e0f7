//! Shared pieces of the agent's integration tests: a syslog receiver that
//! decodes exactly as the server does (`mirage_proto::syslog`), over TCP or
//! TLS; a test PKI made with rcgen; and a running agent.

#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mirage_agent::output::SD_ID;
use mirage_config::agent::{AgentConfig, SourceConfig};
use mirage_proto::syslog::{FrameDecoder, FrameEvent, parse};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One received syslog message, decoded.
#[derive(Debug, Clone)]
pub struct Frame {
    pub app: String,
    pub msgid: String,
    pub host: String,
    pub procid: String,
    pub id: String,
    pub micros: Option<i64>,
    pub message: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }
}

#[derive(Debug, Default)]
pub struct Got {
    pub frames: Vec<Frame>,
    /// Frames that did not parse.
    pub bad: usize,
    /// Connections accepted (TLS: handshakes completed).
    pub connections: usize,
}

pub type Shared = Arc<Mutex<Got>>;

/// A syslog receiver on 127.0.0.1; aborted on drop.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Shared,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Plain TCP.
    pub async fn tcp() -> Receiver {
        Receiver::start(None).await
    }

    /// TLS with `config`.
    pub async fn tls(config: Arc<rustls::ServerConfig>) -> Receiver {
        Receiver::start(Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Shared::default();
        let g = got.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let g = g.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(s).await {
                                g.lock().unwrap().connections += 1;
                                read_frames(s, g).await;
                            }
                        }
                        None => {
                            g.lock().unwrap().connections += 1;
                            read_frames(s, g).await;
                        }
                    }
                });
            }
        });
        Receiver { addr, got, task }
    }

    pub fn frames(&self) -> Vec<Frame> {
        self.got.lock().unwrap().frames.clone()
    }

    /// Frames of program `app`.
    pub fn of_app(&self, app: &str) -> Vec<Frame> {
        self.frames().into_iter().filter(|f| f.app == app).collect()
    }

    /// Waits until `f` holds for the frames received so far.
    pub async fn wait(&self, what: &str, limit: Duration, f: impl Fn(&[Frame]) -> bool) {
        let start = Instant::now();
        loop {
            if f(&self.frames()) {
                return;
            }
            if start.elapsed() > limit {
                let frames: Vec<(String, String)> = self
                    .frames()
                    .iter()
                    .map(|f| (f.app.clone(), f.text()))
                    .collect();
                panic!("timed out waiting for {what}; got {frames:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn read_frames(mut s: impl AsyncRead + Unpin, got: Shared) {
    let mut dec = FrameDecoder::new(64 * 1024);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut at = 0;
        loop {
            let (n, ev) = dec.decode(&buf[at..]).expect("framing");
            if n == 0 {
                break;
            }
            if let Some(FrameEvent::Frame { data, .. }) = ev {
                let mut g = got.lock().unwrap();
                match decode(data) {
                    Some(f) => g.frames.push(f),
                    None => g.bad += 1,
                }
            }
            at += n;
        }
        buf.drain(..at);
    }
}

fn decode(data: &[u8]) -> Option<Frame> {
    let m = parse(data).ok()?;
    let sd = m.structured_data.iter().find(|e| e.id == SD_ID)?;
    let id = sd.params.iter().find(|(k, _)| *k == "id")?.1.to_string();
    Some(Frame {
        app: m.app_name.unwrap_or_default().to_owned(),
        msgid: m.msgid.unwrap_or_default().to_owned(),
        host: m.hostname.unwrap_or_default().to_owned(),
        procid: m.procid.unwrap_or_default().to_owned(),
        id,
        micros: m.timestamp.and_then(|t| t.to_unix_micros(1970, 0)),
        message: m.message.to_vec(),
    })
}

/// An agent config with no sources, its state in `state`, shipping plain
/// syslog over TCP (not the default RELP: the receivers here are plain
/// collectors) to `to`, a heartbeat every `heartbeat_secs`.
pub fn config(state: &Path, to: SocketAddr, heartbeat_secs: u64) -> AgentConfig {
    let mut c = AgentConfig::default();
    c.agent.state_dir = state.to_owned();
    c.agent.id = "test-agent".into();
    c.agent.hostname = "agent-host".into();
    c.agent.heartbeat_secs = heartbeat_secs;
    c.output.address = to.to_string();
    c.output.transport = mirage_config::agent::OutputTransport::Tcp;
    c.output.queue.max_bytes = 4 * 1024 * 1024;
    c.sources = Vec::new();
    c
}

/// Checks `c` the way the CLI does, then runs it.
pub fn start(c: AgentConfig) -> RunningAgent {
    c.validate().expect("valid config");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mirage_agent::run(c, cancel.clone()));
    RunningAgent { cancel, task }
}

pub struct RunningAgent {
    pub cancel: CancellationToken,
    pub task: JoinHandle<Result<(), mirage_agent::AgentError>>,
}

impl RunningAgent {
    /// Graceful stop (as on SIGTERM); panics if the agent failed.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("agent stops")
            .expect("agent task")
            .expect("agent ran without error");
    }
}

/// The latest heartbeat's JSON.
pub fn last_heartbeat(frames: &[Frame]) -> Option<serde_json::Value> {
    frames
        .iter()
        .rev()
        .find(|f| f.app == "mirage-agent" && f.msgid == "heartbeat")
        .map(|f| serde_json::from_slice(&f.message).expect("heartbeat JSON"))
}

/// The heartbeat entry of source `name`.
pub fn source_health(hb: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    hb["sources"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// A file source following `paths` from their start.
pub fn file_source(
    name: &str,
    service: mirage_config::agent::SourceService,
    paths: &[&Path],
    format: mirage_config::agent::LineFormat,
) -> SourceConfig {
    let mut s = SourceConfig::new(name, mirage_config::agent::SourceKind::File, service);
    s.paths = Some(paths.iter().map(|p| p.to_path_buf()).collect());
    s.format = Some(format);
    s.read_from = Some(mirage_config::agent::StartAt::Start);
    s
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, all made with rcgen; PEM files written to `dir`.
pub struct Pki {
    pub ca_pem: std::path::PathBuf,
    pub client_cert_pem: std::path::PathBuf,
    pub client_key_pem: std::path::PathBuf,
    pub server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub server_key: rustls::pki_types::PrivateKeyDer<'static>,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
}

impl Pki {
    pub fn new(dir: &Path, ca_name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["agent.test".to_owned()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "agent.test");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let ca_pem = dir.join(format!("{ca_name}-ca.pem"));
        std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
        let client_cert_pem = dir.join(format!("{ca_name}-client.pem"));
        std::fs::write(&client_cert_pem, client_cert.pem()).unwrap();
        let client_key_pem = dir.join(format!("{ca_name}-client-key.pem"));
        std::fs::write(&client_key_pem, client_key.serialize_pem()).unwrap();
        Pki {
            ca_pem,
            client_cert_pem,
            client_key_pem,
            server_chain: vec![server_cert.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
                .unwrap(),
            ca_der: ca_cert.der().clone(),
        }
    }

    /// A rustls server config; with `require_client`, only clients with a
    /// certificate from this CA are accepted.
    pub fn server_config(&self, require_client: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
                .unwrap(),
        )
    }
}
