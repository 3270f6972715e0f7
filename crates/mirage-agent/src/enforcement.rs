//! The agent's enforcement loop: the policy client ([`crate::policy_client`])
//! feeding the nftables backend ([`crate::firewall::Nft`]).
//!
//! The agent's settings (mode, whitelist, redirects) go to the server at
//! enrollment; what comes back, snapshot then deltas, is applied as one nft
//! transaction each. The addresses the agent itself talks to (the policy
//! server and the syslog server) are always protected, so a decision can
//! never cut the agent off from the server. On a clean stop the table is
//! removed; after a crash it stays, and the next start's snapshot
//! reconciles it with the server's decisions.
//!
//! Once a second the agent also reads back which connections the table
//! steered ([`crate::firewall::hits`]) and queues one record per new
//! (source, destination, port) in its syslog stream: APP-NAME
//! `mirage-agent`, MSGID `steer`, and a JSON body
//!
//! ```json
//! {"agent_id":"…","hostname":"web1","action":"deceive","src_ip":"10.99.0.2",
//!  "dst_ip":"10.99.0.1","proto":"tcp","dst_port":22,"service":"ssh",
//!  "to":"10.98.0.2:2222"}
//! ```
//!
//! which the server stores as a `steer` event: the host and service the
//! attacker was aiming at, to set beside what the honeypot recorded.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use mirage_config::AgentConfig;
use mirage_core::policy::{
    AgentSettings, Mode, Policy, PolicyDelta, PortRef, ServiceMap, Whitelist,
};
use tokio_util::sync::CancellationToken;

use crate::firewall::hits::{Hit, HitLister, HitTracker};
use crate::firewall::{Action, Nft, NftConfig};
use crate::output::{QueueHandle, Record};
use crate::policy_client::{Enforcer, PolicyClientConfig, PolicyError};
use crate::runner::Identity;

fn convert<T: serde::de::DeserializeOwned>(v: &impl serde::Serialize) -> Result<T, String> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("policy not applicable: {e}"))
}

/// The nft backend plus the service map last received, which the steering
/// reports name services and honeypots from.
struct Steering {
    nft: Nft,
    services: Arc<Mutex<Vec<ServiceMap>>>,
}

impl Enforcer for Steering {
    fn apply_snapshot(&mut self, policy: &Policy) -> Result<(), String> {
        let p: crate::firewall::Policy = convert(policy)?;
        // nft runs as a child process for a few milliseconds: keep the
        // runtime's other tasks going meanwhile.
        tokio::task::block_in_place(|| self.nft.apply_snapshot(&p))
            .map(|_| ())
            .map_err(|e| e.to_string())?;
        if let Ok(mut s) = self.services.lock() {
            s.clone_from(&policy.settings.services);
        }
        Ok(())
    }

    fn apply_delta(&mut self, delta: &PolicyDelta) -> Result<(), String> {
        let d: crate::firewall::Delta = convert(delta)?;
        tokio::task::block_in_place(|| self.nft.apply_delta(&d))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The JSON body of a steering report (see the module docs).
pub fn steer_json(identity: &Identity, hit: &Hit, services: &[ServiceMap]) -> serde_json::Value {
    let proto = hit.proto.as_str();
    // The honeypot of this port and of the source's address family: the
    // one the DNAT chose.
    let mapped = services.iter().find(|s| {
        s.proto == proto
            && s.port == hit.port
            && s.honeypot
                .parse::<SocketAddr>()
                .is_ok_and(|h| h.is_ipv4() == hit.src.is_ipv4())
    });
    let service = mapped
        .map(|s| s.service.clone())
        .unwrap_or_else(|| service_name(hit.port));
    let to = match hit.action {
        Action::Deceive => mapped.map(|s| s.honeypot.clone()),
        Action::Reflect => Some(SocketAddr::new(hit.src, hit.port).to_string()),
        Action::Block => None,
    };
    let mut body = serde_json::json!({
        "agent_id": identity.agent_id,
        "hostname": identity.hostname,
        "action": hit.action.as_str(),
        "src_ip": hit.src.to_string(),
        "dst_ip": hit.dst.to_string(),
        "proto": proto,
        "dst_port": hit.port,
        "service": service,
    });
    if let Some(to) = to {
        body["to"] = to.into();
    }
    body
}

fn steer_record(identity: &Identity, hit: &Hit, services: &[ServiceMap]) -> Record {
    let now = Utc::now();
    let body = steer_json(identity, hit, services).to_string();
    Record {
        timestamp: now,
        facility: 4,
        severity: 5,
        hostname: identity.hostname.clone(),
        app_name: "mirage-agent".into(),
        procid: Some(std::process::id().to_string()),
        msgid: Some("steer".into()),
        id: crate::sources::stable_id(&[
            b"steer",
            identity.agent_id.as_bytes(),
            body.as_bytes(),
            &now.timestamp_micros().to_le_bytes(),
        ]),
        message: body.into_bytes(),
    }
}

/// Once a second, queue a `steer` record for each connection the table
/// noted since the last look.
async fn report_steering(
    lister: HitLister,
    services: Arc<Mutex<Vec<ServiceMap>>>,
    identity: Identity,
    queue: QueueHandle,
    cancel: CancellationToken,
) {
    let mut tracker = HitTracker::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let l = lister.clone();
        let listed = match tokio::task::spawn_blocking(move || l.list()).await {
            Ok(Ok(v)) => v,
            // Before the first snapshot there is no table: nothing to read.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot read the steering notes");
                continue;
            }
            Err(_) => continue,
        };
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let fresh = tracker.update(now_ms, &listed);
        if fresh.is_empty() {
            continue;
        }
        let services = services.lock().map(|s| s.clone()).unwrap_or_default();
        let records: Vec<Record> = fresh
            .iter()
            .map(|h| steer_record(&identity, h, &services))
            .collect();
        let q = queue.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            records.iter().try_for_each(|r| q.push(r).map(|_| ()))
        })
        .await;
        if let Ok(Err(e)) = pushed {
            tracing::warn!(error = %e, "cannot queue a steering report");
        }
    }
}

/// The well-known service on a port, for the server's view of redirects.
pub fn service_name(port: u16) -> String {
    match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        80 | 443 | 8080 => "http",
        873 => "rsync",
        3306 => "mysql",
        6379 => "redis",
        9200 => "elasticsearch",
        27017 => "mongodb",
        _ => return format!("tcp{port}"),
    }
    .to_owned()
}

/// The settings the agent enrolls with, from `[policy]`.
pub fn settings(config: &AgentConfig) -> Result<AgentSettings, String> {
    let p = &config.policy;
    let mode = match p.mode.as_str() {
        "honeypot" => Mode::Honeypot,
        "reflect" => Mode::Reflect,
        "firewall" => Mode::Firewall,
        _ => Mode::Deception,
    };
    let services = p
        .redirects()?
        .into_iter()
        .map(|(port, honeypot)| ServiceMap {
            proto: "tcp".into(),
            port,
            service: service_name(port),
            honeypot,
        })
        .collect();
    Ok(AgentSettings {
        mode,
        whitelist: Whitelist {
            sources: p.whitelist.clone(),
            ports: p
                .whitelist_ports
                .iter()
                .map(|&port| PortRef {
                    proto: "tcp".into(),
                    port,
                })
                .collect(),
        },
        services,
    })
}

/// Operators' addresses (SSH session clients the agent was started or
/// enrolled from), kept across starts.
const OPERATORS_FILE: &str = "operators.json";
/// Most operator addresses remembered.
const MAX_OPERATORS: usize = 16;

/// The operators' addresses: those remembered in the state directory, plus
/// the client of the SSH session this agent runs in, which is added to the
/// file (so a later start under systemd, without that session, still
/// protects it).
fn operators(state_dir: &std::path::Path) -> Vec<IpAddr> {
    let path = state_dir.join(OPERATORS_FILE);
    let mut known: Vec<IpAddr> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some((client, ..)) = mirage_net::host::ssh_connection() {
        let client = client.to_canonical();
        if !known.contains(&client) {
            known.insert(0, client);
            known.truncate(MAX_OPERATORS);
            let tmp = path.with_extension("tmp");
            let written = serde_json::to_vec(&known)
                .map_err(std::io::Error::other)
                .and_then(|b| std::fs::write(&tmp, b))
                .and_then(|()| std::fs::rename(&tmp, &path));
            match written {
                Ok(()) => {
                    tracing::info!(%client, "the SSH session's client is protected from now on")
                }
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "cannot remember the operator's address")
                }
            }
        }
    }
    known
}

/// Every source the agent never steers: see `[policy] protect` in the
/// example config.
fn protected(config: &AgentConfig) -> Vec<crate::firewall::Cidr> {
    use crate::firewall::Cidr;
    let p = &config.policy;
    let host = |ip: IpAddr| {
        let ip = ip.to_canonical();
        Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 })
    };
    let mut out: Vec<Cidr> = addresses_of(&p.server)
        .into_iter()
        .chain(addresses_of(&config.output.address))
        .chain(mirage_net::host::addresses())
        .chain(mirage_net::host::gateways())
        .chain(operators(&config.agent.state_dir))
        .filter_map(host)
        .collect();
    out.extend(p.protect.iter().filter_map(|c| c.parse::<Cidr>().ok()));
    if p.protect_private {
        for c in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"] {
            out.extend(c.parse::<Cidr>().ok());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn addresses_of(host_port: &str) -> Vec<IpAddr> {
    host_port
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

/// Why enforcement stopped.
#[derive(Debug, thiserror::Error)]
pub enum EnforcementError {
    /// The policy client gave up (not enrolled, token refused, key file).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// nftables cannot be used.
    #[error("nftables: {0}")]
    Firewall(String),
    /// The configuration cannot be turned into settings.
    #[error("policy: {0}")]
    Config(String),
}

/// Enroll if needed and enforce the server's policy until `cancel`; then
/// remove the table.
pub async fn run(
    config: &AgentConfig,
    identity: &Identity,
    queue: QueueHandle,
    cancel: CancellationToken,
) -> Result<(), EnforcementError> {
    let p = &config.policy;
    let settings = settings(config).map_err(EnforcementError::Config)?;
    let token = match &p.enroll_token {
        Some(t) => Some(t.clone()),
        None if !p.enroll_token_file.as_os_str().is_empty() => {
            std::fs::read_to_string(&p.enroll_token_file)
                .ok()
                .map(|t| t.trim().to_owned())
        }
        None => None,
    };
    let protect = protected(config);
    tracing::info!(
        protected = protect.len(),
        "never steered: this host's addresses, gateways, the servers, the operators' sessions{}",
        if p.protect.is_empty() {
            ""
        } else {
            ", policy.protect"
        }
    );
    let nft = Nft::new(NftConfig {
        protect,
        max_ttl_secs: i64::try_from(p.max_decision_ttl_secs).unwrap_or(i64::MAX),
        ..NftConfig::default()
    })
    .map_err(|e| EnforcementError::Firewall(e.to_string()))?;
    let client = PolicyClientConfig {
        server: p.server.clone(),
        agent_id: identity.agent_id.clone(),
        hostname: identity.hostname.clone(),
        settings,
        enroll_token: token,
        key_file: config.agent.state_dir.join("policy.key"),
        wait_secs: p.wait_secs,
    };
    let services = Arc::new(Mutex::new(Vec::new()));
    let reporter_cancel = cancel.child_token();
    let reporter = tokio::spawn(report_steering(
        nft.hit_lister(),
        services.clone(),
        identity.clone(),
        queue,
        reporter_cancel.clone(),
    ));
    let steering = Steering { nft, services };
    let result = crate::policy_client::run(client, steering, cancel).await;
    reporter_cancel.cancel();
    let _ = reporter.await;
    let mut nft = result?.nft;
    // Clean stop: nothing of ours stays in the kernel.
    let removed = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || nft.remove()),
    )
    .await;
    match removed {
        Ok(Ok(Ok(()))) => tracing::info!("nftables table removed"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot remove the nftables table"),
        _ => tracing::warn!("removing the nftables table timed out"),
    }
    Ok(())
}
