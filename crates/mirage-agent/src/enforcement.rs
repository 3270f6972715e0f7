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

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use mirage_config::AgentConfig;
use mirage_core::policy::{
    AgentSettings, Mode, Policy, PolicyDelta, PortRef, ServiceMap, Whitelist,
};
use tokio_util::sync::CancellationToken;

use crate::firewall::{Nft, NftConfig};
use crate::policy_client::{Enforcer, PolicyClientConfig, PolicyError};
use crate::runner::Identity;

fn convert<T: serde::de::DeserializeOwned>(v: &impl serde::Serialize) -> Result<T, String> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("policy not applicable: {e}"))
}

impl Enforcer for Nft {
    fn apply_snapshot(&mut self, policy: &Policy) -> Result<(), String> {
        let p: crate::firewall::Policy = convert(policy)?;
        // nft runs as a child process for a few milliseconds: keep the
        // runtime's other tasks going meanwhile.
        tokio::task::block_in_place(|| Nft::apply_snapshot(self, &p))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn apply_delta(&mut self, delta: &PolicyDelta) -> Result<(), String> {
        let d: crate::firewall::Delta = convert(delta)?;
        tokio::task::block_in_place(|| Nft::apply_delta(self, &d))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The well-known service on a port, for the server's view of redirects.
fn service_name(port: u16) -> String {
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
    let mut protect = Vec::new();
    for ip in addresses_of(&p.server)
        .into_iter()
        .chain(addresses_of(&config.output.address))
    {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        if let Some(c) = crate::firewall::Cidr::new(ip, prefix) {
            protect.push(c);
        }
    }
    let nft = Nft::new(NftConfig {
        protect,
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
    let mut nft = crate::policy_client::run(client, nft, cancel).await?;
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
