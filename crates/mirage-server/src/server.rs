//! Starting and stopping the server: open the store, bind the receivers,
//! start the pipeline, and on shutdown stop receiving, drain the channel
//! into the store, and close the database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mirage_config::ServerConfig;
use mirage_core::request_auth::MIN_KEY_LEN;
use mirage_store::{SqliteStore, Store};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Pipeline, PipelineConfig};
use crate::receiver::stream::{StreamLimits, accept_loop};
use crate::receiver::{bind_syslog, bind_tcp, udp};
use crate::rules_file::RuleSource;
use crate::stats::ServerStats;

/// Messages buffered between receivers and the pipeline.
const CHANNEL: usize = 16 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration or files it names (exit code 2).
    #[error("{0}")]
    Config(String),
    /// A runtime failure (exit code 1).
    #[error("{0}")]
    Runtime(String),
}

/// A started server.
pub struct RunningServer {
    /// TCP syslog addresses actually bound.
    pub syslog_tcp: Vec<SocketAddr>,
    /// UDP syslog addresses actually bound.
    pub syslog_udp: Vec<SocketAddr>,
    /// TLS syslog address, when on.
    pub syslog_tls: Option<SocketAddr>,
    /// Ingest HTTP address, when on.
    pub ingest: Option<SocketAddr>,
    /// Policy API address, when on.
    pub api: Option<SocketAddr>,
    /// The pin of the policy API's certificate, when it speaks TLS.
    pub api_pin: Option<mirage_net::Pin>,
    /// Counters.
    pub stats: Arc<ServerStats>,
    /// Names of the rules running at start.
    pub rules: Vec<String>,
    cancel: CancellationToken,
    abandon: CancellationToken,
    receivers: JoinSet<()>,
    pipeline: tokio::task::JoinHandle<()>,
    store: SqliteStore,
}

/// How long shutdown waits for receivers to hand over what they hold.
const RECEIVERS_DEADLINE: Duration = Duration::from_secs(2);
/// How long it then waits for the pipeline to store what was received,
/// before it stops retrying a store that cannot write.
const STORE_DEADLINE: Duration = Duration::from_secs(5);
/// How long the pipeline then has to count and report what it drops.
const REPORT_DEADLINE: Duration = Duration::from_secs(3);

/// Open the store, bind everything and start. Returns once listening.
pub async fn start(config: &ServerConfig) -> Result<RunningServer, ServerError> {
    let cfg_err = ServerError::Config;
    // Each syslog sender, API client and ingest connection is a descriptor;
    // at the distribution's 1,024 a few slow clients starve everyone else.
    if let Err(e) = mirage_net::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let stats = Arc::new(ServerStats::default());
    let cancel = CancellationToken::new();

    // Everything that can fail on configuration first, before binding.
    let tls = match config.syslog.tls.listen_addr() {
        Some(addr) => {
            let t = &config.syslog.tls;
            let ca =
                (!t.client_ca_file.as_os_str().is_empty()).then_some(t.client_ca_file.as_path());
            let sc = crate::tls::server_config(&t.cert_file, &t.key_file, ca).map_err(cfg_err)?;
            Some((addr, tokio_rustls::TlsAcceptor::from(sc)))
        }
        None => None,
    };
    // One certificate serves the policy API and ingest: made (or loaded)
    // once, its pin carried by enrollment tokens and sensors' configs.
    let server_tls = if (config.ingest.tls && config.ingest.listen_addr().is_some())
        || (config.api.tls && config.api.listen_addr().is_some())
    {
        Some(crate::identity::api_tls(&config.server.data_dir).map_err(ServerError::Runtime)?)
    } else {
        None
    };
    let tls_for = |on: bool| {
        server_tls
            .as_ref()
            .filter(|_| on)
            .map(|(tls, pin)| (tokio_rustls::TlsAcceptor::from(tls.clone()), *pin))
    };
    let verifier = match config.ingest.listen_addr() {
        Some(addr) => {
            let key = std::fs::read(&config.ingest.key_file).map_err(|e| {
                cfg_err(format!(
                    "{}: cannot read ingest key: {e}",
                    config.ingest.key_file.display()
                ))
            })?;
            let key = key.trim_ascii().to_vec();
            if key.len() < MIN_KEY_LEN {
                return Err(cfg_err(format!(
                    "{}: ingest key must be at least {MIN_KEY_LEN} bytes",
                    config.ingest.key_file.display()
                )));
            }
            Some((
                addr,
                crate::ingest::IngestConfig {
                    key,
                    max_skew_secs: config.ingest.max_skew_secs,
                    tls: tls_for(config.ingest.tls).map(|(tls, _)| tls),
                    limits: crate::http::HttpLimits::default(),
                },
            ))
        }
        None => None,
    };
    let rule_file = (!config.rules.file.as_os_str().is_empty()).then(|| config.rules.file.clone());
    let rules = RuleSource::new(rule_file, config.rules.whitelist.clone());

    let store = SqliteStore::open_dir(&config.server.data_dir)
        .await
        .map_err(|e| ServerError::Runtime(format!("store: {e}")))?;
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let last_seq = store
        .last_change_seq()
        .await
        .map_err(|e| ServerError::Runtime(format!("store: {e}")))?;
    let (changes_tx, changes_rx) = tokio::sync::watch::channel(last_seq);
    let changes_tx = Arc::new(changes_tx);
    let mut pipeline = Pipeline::new(
        shared.clone(),
        rules,
        stats.clone(),
        PipelineConfig {
            reload_every: Duration::from_secs(config.rules.reload_check_secs),
            sender_rate: config.syslog.sender_events_per_sec,
            sender_burst: config.syslog.sender_burst,
        },
    )
    .await
    .map_err(cfg_err)?;
    pipeline.notify_changes(changes_tx.clone());
    let rule_names = pipeline.rule_names();
    let health = pipeline.health();
    let abandon = pipeline.abandon_token();

    let s = &config.syslog;
    let bound =
        bind_syslog(&s.listen, s.tcp, s.udp, s.fallback_port).map_err(ServerError::Runtime)?;
    let limits = StreamLimits {
        max_message: s.max_message_bytes,
        idle: Duration::from_secs(s.idle_timeout_secs),
        max_connections: s.max_connections,
    };
    let trust = crate::receiver::trust::Trust::new(&s.trusted_sources, s.udp_decides);
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL);
    let mut receivers = JoinSet::new();
    let mut syslog_tcp = Vec::new();
    let mut syslog_udp = Vec::new();
    let stream_shared = |client_certs| crate::receiver::stream::Shared {
        tx: tx.clone(),
        stats: stats.clone(),
        limits: limits.clone(),
        health: health.clone(),
        trust: trust.clone(),
        client_certs,
    };
    for l in bound.tcp {
        let addr = l
            .local_addr()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        tracing::info!("syslog: listening on tcp {addr}");
        syslog_tcp.push(addr);
        receivers.spawn(accept_loop(l, None, stream_shared(false), cancel.clone()));
    }
    for u in bound.udp {
        let addr = u
            .local_addr()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        tracing::info!("syslog: listening on udp {addr}");
        syslog_udp.push(addr);
        receivers.spawn(udp::recv_loop(
            u,
            tx.clone(),
            stats.clone(),
            s.max_message_bytes,
            trust.clone(),
            cancel.clone(),
        ));
    }
    let mut syslog_tls = None;
    if let Some((addr, acceptor)) = tls {
        let l =
            bind_tcp(addr).map_err(|e| ServerError::Runtime(format!("syslog tls: {addr}: {e}")))?;
        let addr = l
            .local_addr()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        tracing::info!("syslog: listening on tls {addr}");
        syslog_tls = Some(addr);
        receivers.spawn(accept_loop(
            l,
            Some(acceptor),
            stream_shared(!config.syslog.tls.client_ca_file.as_os_str().is_empty()),
            cancel.clone(),
        ));
    }
    receivers.spawn(trust.clone().refresh(shared.clone(), cancel.clone()));
    if config.server.retention_days > 0 {
        let keep = Duration::from_secs(u64::from(config.server.retention_days) * 86_400);
        receivers.spawn(crate::retention::run(shared.clone(), keep, cancel.clone()));
    }
    let mut ingest = None;
    if let Some((addr, verifier)) = verifier {
        let l = bind_tcp(addr).map_err(|e| ServerError::Runtime(format!("ingest: {addr}: {e}")))?;
        let addr = l
            .local_addr()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        if let (true, Some((_, pin))) = (config.ingest.tls, &server_tls) {
            tracing::info!(
                "ingest: listening on https://{addr}{} (certificate SHA-256 {pin}: sensors' [sensor.ship] server_pin)",
                crate::ingest::EVENTS_PATH
            );
        } else {
            tracing::warn!(
                "ingest: listening on http://{addr}{} without TLS: events cross the network in clear",
                crate::ingest::EVENTS_PATH
            );
        }
        ingest = Some(addr);
        let (tx, stats, health, cancel) =
            (tx.clone(), stats.clone(), health.clone(), cancel.clone());
        receivers.spawn(crate::ingest::serve(
            l,
            verifier,
            shared.clone(),
            tx,
            stats,
            health,
            cancel,
        ));
    }
    let mut api = None;
    let mut api_pin = None;
    if let Some(addr) = config.api.listen_addr() {
        let l = bind_tcp(addr).map_err(|e| ServerError::Runtime(format!("api: {addr}: {e}")))?;
        let addr = l
            .local_addr()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        let secret = crate::identity::ServerSecret::load_or_create(&config.server.data_dir)
            .map_err(ServerError::Runtime)?;
        match crate::identity::seal_legacy_keys(&*shared, &secret).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "policy API: sealed {n} agent key(s) stored in clear by an older version"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "policy API: cannot seal agent keys stored in clear")
            }
        }
        let tls = if let Some((tls, pin)) = tls_for(config.api.tls) {
            tracing::info!(
                "policy API: listening on https://{addr} (certificate SHA-256 {pin}, carried by enrollment tokens)"
            );
            api_pin = Some(pin);
            Some(tls)
        } else {
            tracing::warn!(
                "policy API: listening on http://{addr} without TLS: enrollment trusts the network"
            );
            None
        };
        api = Some(addr);
        let state = Arc::new(crate::policy::PolicyApi::new(
            shared.clone(),
            secret,
            changes_rx.clone(),
            config.api.max_skew_secs,
            config.api.max_wait_secs,
        ));
        let api_cancel = cancel.clone();
        receivers.spawn(crate::policy::serve(
            l,
            state,
            tls,
            crate::http::HttpLimits::default(),
            api_cancel,
        ));
        // Operators' changes (CLI) land in the store from another process:
        // look for them four times a second.
        let (store, tx, cancel) = (shared.clone(), changes_tx.clone(), cancel.clone());
        receivers.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        if let Ok(seq) = store.last_change_seq().await {
                            crate::pipeline::publish_change(&tx, seq);
                        }
                    }
                }
            }
        });
    }
    drop(changes_rx);
    // The pipeline ends when the last sender (held by receivers) is gone.
    drop(tx);
    let pipeline = tokio::spawn(pipeline.run(rx));
    tracing::info!("rules: {} running", rule_names.len());
    Ok(RunningServer {
        syslog_tcp,
        syslog_udp,
        syslog_tls,
        ingest,
        api,
        api_pin,
        stats,
        rules: rule_names,
        cancel,
        abandon,
        receivers,
        pipeline,
        store,
    })
}

impl RunningServer {
    /// Stop receiving, store everything already received, close the store.
    /// Ends within about ten seconds even when the store cannot write:
    /// senders that wait for acknowledgements (agents, sensors) keep what
    /// was not acknowledged, and what others sent is counted in the log.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let receivers = async { while self.receivers.join_next().await.is_some() {} };
        if tokio::time::timeout(RECEIVERS_DEADLINE, receivers)
            .await
            .is_err()
        {
            // Blocked handing messages to a pipeline that cannot store them.
            self.receivers.abort_all();
            while self.receivers.join_next().await.is_some() {}
        }
        if tokio::time::timeout(STORE_DEADLINE, &mut self.pipeline)
            .await
            .is_err()
        {
            self.abandon.cancel();
            if tokio::time::timeout(REPORT_DEADLINE, &mut self.pipeline)
                .await
                .is_err()
            {
                self.pipeline.abort();
                tracing::warn!(
                    "shutdown: gave up waiting for the store; messages still queued were not stored"
                );
            }
        }
        if tokio::time::timeout(REPORT_DEADLINE, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: the store did not close in time");
        }
    }
}
