//! `mirage agent` as a whole: one output queue and sender, one task per
//! source, and a heartbeat, until cancelled.
//!
//! # Heartbeat
//! Two seconds after start (sooner if `heartbeat_secs` is 1), then every
//! `heartbeat_secs`, the agent queues a record with
//! APP-NAME `mirage-agent`, MSGID `heartbeat`, and as message one JSON
//! object (a stable contract the server parses):
//!
//! ```json
//! {"agent_id":"0193…","hostname":"web1","version":"0.1.0",
//!  "sources":[{"name":"auth","kind":"file","service":"ssh","healthy":true,
//!              "detail":"following /var/log/auth.log","lines":42,
//!              "last_line":"2026-11-21T11:09:34.324895Z"}],
//!  "queue":{"depth":0,"dropped":0}}
//! ```
//!
//! `sources` lists the enabled sources in config order; `lines` counts
//! records queued since the agent started; `last_line` is when the last one
//! was queued (RFC 3339, UTC, or `null`); `queue.depth` is records queued
//! and not yet acknowledged by the sender, `queue.dropped` records dropped
//! because the queue was full, since start. Keys may be added in later
//! versions, never renamed or removed.
//!
//! # Shutdown
//! When `cancel` fires, sources stop reading and write their final
//! checkpoints, the queue is synced, and the sender stops: whatever it had
//! not sent stays queued on disk for the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use mirage_config::agent::{AgentConfig, OutputTransport, SourceConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::output::{
    DiskQueue, QueueConfig, QueueError, QueueHandle, Record, Sender, SenderConfig, SenderError,
    TlsSettings, TlsSetupError, Transport,
};
use crate::sources::{self, Health, SourceContext, stable_id};

/// Delay of the first heartbeat after start (at most `heartbeat_secs`).
const FIRST_HEARTBEAT: Duration = Duration::from_secs(2);

/// File in the state directory holding the generated agent id.
const AGENT_ID_FILE: &str = "agent-id";

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The TLS files are unusable (a configuration problem).
    #[error("output.tls: {0}")]
    Tls(#[from] TlsSetupError),
    /// The state directory or the agent id file cannot be used.
    #[error("{}: {message}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The output queue cannot be opened or failed.
    #[error("output queue: {0}")]
    Queue(#[from] QueueError),
    /// The sender stopped for good.
    #[error("output: {0}")]
    Sender(#[from] SenderError),
    /// Enforcement stopped for good (not enrolled, token refused, no
    /// nftables).
    #[error("policy: {0}")]
    Enforcement(#[from] crate::enforcement::EnforcementError),
}

impl AgentError {
    /// Whether the error is the configuration's fault (the CLI exits 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AgentError::Tls(_)
                | AgentError::Enforcement(crate::enforcement::EnforcementError::Policy(
                    crate::policy_client::PolicyError::NotEnrolled(_)
                        | crate::policy_client::PolicyError::EnrollRefused { .. }
                ))
        )
    }
}

/// Identity the agent runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `agent.id`, or the generated one.
    pub agent_id: String,
    /// `agent.hostname`, or the system's.
    pub hostname: String,
}

/// Runs the agent described by `config` until `cancel` fires.
pub async fn run(config: AgentConfig, cancel: CancellationToken) -> Result<(), AgentError> {
    // Tailed files, the queue, the sender and nft each hold descriptors.
    if let Err(e) = mirage_net::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let state_dir = config.agent.state_dir.clone();
    let sources_dir = state_dir.join("sources");
    std::fs::create_dir_all(&sources_dir).map_err(|e| AgentError::State {
        path: sources_dir.clone(),
        message: e.to_string(),
    })?;
    let identity = identity(&config, &state_dir)?;
    let sender_cfg = sender_config(&config)?;

    let o = &config.output;
    let queue_cfg = QueueConfig {
        max_bytes: o.queue.max_bytes,
        segment_bytes: (o.queue.max_bytes / 4).min(8 * 1024 * 1024),
        max_record_bytes: o.max_message,
    };
    let queue_dir = state_dir.join("queue");
    let queue = tokio::task::spawn_blocking(move || DiskQueue::open(queue_dir, queue_cfg))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let queue = QueueHandle::new(queue, o.max_message);
    tracing::info!(
        agent_id = %identity.agent_id,
        hostname = %identity.hostname,
        output = %o.address,
        "agent started"
    );

    let sender_cancel = CancellationToken::new();
    let mut sender_task =
        tokio::spawn(Sender::new(queue.clone(), sender_cfg).run(sender_cancel.clone()));

    let sources_cancel = cancel.child_token();
    let mut running: Vec<(SourceConfig, Health)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for s in config.sources.iter().filter(|s| s.enabled) {
        let health = Health::new(&s.name);
        running.push((s.clone(), health.clone()));
        let ctx = SourceContext {
            config: s.clone(),
            agent_id: identity.agent_id.clone(),
            hostname: identity.hostname.clone(),
            queue: queue.clone(),
            state_dir: sources_dir.clone(),
            health,
        };
        tasks.spawn(sources::run(ctx, sources_cancel.clone()));
    }
    if running.is_empty() {
        tracing::warn!("no source is enabled: only heartbeats will be sent");
    }

    // Enforcement of the server's decisions, when [policy] names a server.
    let enforce_cancel = cancel.child_token();
    let mut enforcement = if config.policy.enabled() {
        let (cfg, id, c) = (config.clone(), identity.clone(), enforce_cancel.clone());
        let q = queue.clone();
        Some(tokio::spawn(async move {
            crate::enforcement::run(&cfg, &id, q, c).await
        }))
    } else {
        None
    };

    let period = Duration::from_secs(config.agent.heartbeat_secs);
    // The first heartbeat comes once the sources had a moment to start (and
    // report something better than "starting"), then every period.
    let first = period.min(FIRST_HEARTBEAT);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failure = loop {
        tokio::select! {
            _ = cancel.cancelled() => break None,
            r = &mut sender_task => {
                break Some(match r {
                    Ok(Ok(())) => AgentError::Sender(SenderError::Misconfigured("sender stopped")),
                    Ok(Err(e)) => AgentError::Sender(e),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                });
            }
            r = async { enforcement.as_mut().expect("guarded").await }, if enforcement.is_some() => {
                enforcement = None;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Some(AgentError::Enforcement(e)),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            _ = beat.tick() => {
                let record = heartbeat(&identity, &running, &queue);
                let q = queue.clone();
                let pushed = tokio::task::spawn_blocking(move || q.push(&record))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                if let Err(e) = pushed {
                    tracing::warn!(error = %e, "cannot queue a heartbeat");
                }
            }
        }
    };

    tracing::info!("stopping: checkpointing sources and syncing the queue");
    enforce_cancel.cancel();
    if let Some(task) = enforcement {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "enforcement stopped with an error"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => {}
        }
    }
    sources_cancel.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let q = queue.clone();
    let synced = tokio::task::spawn_blocking(move || q.sync())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    sender_cancel.cancel();
    if failure.is_none() {
        match sender_task.await {
            Ok(Err(e)) => return Err(e.into()),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => {}
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    synced?;
    Ok(())
}

/// The sender's settings from `[output]`, TLS files read and checked.
fn sender_config(config: &AgentConfig) -> Result<SenderConfig, AgentError> {
    let o = &config.output;
    let transport = match o.transport {
        OutputTransport::Relp => Transport::Relp,
        OutputTransport::RelpTls => Transport::RelpTls,
        OutputTransport::Tcp => Transport::Tcp,
        OutputTransport::Udp => Transport::Udp,
        OutputTransport::Tls => Transport::Tls,
    };
    let mut cfg = SenderConfig::new(transport, o.address.clone());
    if matches!(transport, Transport::Tls | Transport::RelpTls) {
        let t = &o.tls;
        let client = (!t.cert_file.as_os_str().is_empty())
            .then_some((t.cert_file.as_path(), t.key_file.as_path()));
        let name = if t.server_name.is_empty() {
            config.output_host()
        } else {
            t.server_name.as_str()
        };
        cfg.tls = Some(Arc::new(TlsSettings::from_files(&t.ca_file, client, name)?));
    }
    Ok(cfg)
}

/// The configured identity, or the system host name and the id kept in
/// the state directory (generated on first start).
pub fn identity(config: &AgentConfig, state_dir: &Path) -> Result<Identity, AgentError> {
    let hostname = if config.agent.hostname.is_empty() {
        system_hostname()
    } else {
        config.agent.hostname.clone()
    };
    let agent_id = if config.agent.id.is_empty() {
        stored_agent_id(state_dir)?
    } else {
        config.agent.id.clone()
    };
    Ok(Identity { agent_id, hostname })
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Reads `state_dir/agent-id`, creating it with a new UUID on first start.
fn stored_agent_id(state_dir: &Path) -> Result<String, AgentError> {
    let path = state_dir.join(AGENT_ID_FILE);
    let err = |e: std::io::Error| AgentError::State {
        path: path.clone(),
        message: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            if !mirage_config::agent::valid_agent_id(id) {
                return Err(AgentError::State {
                    path: path.clone(),
                    message: "not an agent id (remove the file to get a new one)".into(),
                });
            }
            Ok(id.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::now_v7().to_string();
            sources::write_atomic(&path, format!("{id}\n").as_bytes()).map_err(err)?;
            Ok(id)
        }
        Err(e) => Err(err(e)),
    }
}

/// The heartbeat's JSON message (see the module docs).
pub fn heartbeat_json(
    identity: &Identity,
    sources: &[(SourceConfig, Health)],
    queue: &crate::output::QueueStats,
) -> serde_json::Value {
    let sources: Vec<serde_json::Value> = sources
        .iter()
        .map(|(cfg, health)| {
            let h = health.snapshot();
            json!({
                "name": cfg.name,
                "kind": cfg.kind.as_str(),
                "service": cfg.service.as_str(),
                "healthy": h.healthy,
                "detail": h.detail,
                "lines": h.lines,
                "last_line": h.last_line.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            })
        })
        .collect();
    json!({
        "agent_id": identity.agent_id,
        "hostname": identity.hostname,
        "version": env!("CARGO_PKG_VERSION"),
        "sources": sources,
        "queue": { "depth": queue.pending, "dropped": queue.dropped },
    })
}

fn heartbeat(
    identity: &Identity,
    sources: &[(SourceConfig, Health)],
    queue: &QueueHandle,
) -> Record {
    let now = Utc::now();
    let message = heartbeat_json(identity, sources, &queue.stats()).to_string();
    Record {
        timestamp: now,
        facility: 3,
        severity: 6,
        hostname: identity.hostname.clone(),
        app_name: "mirage-agent".into(),
        procid: Some(std::process::id().to_string()),
        msgid: Some("heartbeat".into()),
        id: stable_id(&[
            b"heartbeat",
            identity.agent_id.as_bytes(),
            &now.timestamp_micros().to_le_bytes(),
        ]),
        message: message.into_bytes(),
    }
}
