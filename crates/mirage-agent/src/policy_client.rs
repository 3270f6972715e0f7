//! The agent's policy client: enroll once, then long-poll the server's
//! policy API and hand every snapshot and delta to the enforcer.
//!
//! Enrollment trades the one-time token for the agent's own HMAC key,
//! kept in `<state_dir>/policy.key` (mode 0600, never logged). Every start
//! begins with a snapshot, so whatever the firewall holds after a crash or
//! a kill is reconciled with the server's decisions before any delta; a
//! failed apply also falls back to a snapshot. The long poll returns as
//! soon as the server stores a decision, so enforcement follows detection
//! within one round trip instead of a polling interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mirage_core::policy::{
    AgentSettings, ENROLL_PATH, EnrollReply, EnrollRequest, HEADER_AGENT, POLICY_PATH, Policy,
    PolicyDelta, PolicyReply, PolicyRequest,
};
use tokio_util::sync::CancellationToken;

/// Applies policies to the host (nftables in production).
pub trait Enforcer: Send {
    /// Replace everything with `policy`.
    fn apply_snapshot(&mut self, policy: &Policy) -> Result<(), String>;
    /// Apply a change on top of the last snapshot.
    fn apply_delta(&mut self, delta: &PolicyDelta) -> Result<(), String>;
}

/// Where and who.
#[derive(Debug, Clone)]
pub struct PolicyClientConfig {
    /// The server's policy API, host:port.
    pub server: String,
    /// This agent's id.
    pub agent_id: String,
    /// Its host name.
    pub hostname: String,
    /// Settings sent at enrollment.
    pub settings: AgentSettings,
    /// One-time token, needed only until the key file exists.
    pub enroll_token: Option<String>,
    /// The key file.
    pub key_file: PathBuf,
    /// Seconds the server may hold a poll.
    pub wait_secs: u64,
}

/// Why the client stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// No key and no token: the agent must be enrolled.
    #[error(
        "not enrolled with {0}: run once with --enroll TOKEN (from `mirage server tokens create`)"
    )]
    NotEnrolled(String),
    /// The server refused the token.
    #[error("enrollment refused by {server}: {reason}")]
    EnrollRefused {
        /// Server.
        server: String,
        /// Its answer.
        reason: String,
    },
    /// The key file cannot be read or written.
    #[error("{path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

fn read_key(path: &Path) -> Result<Option<Vec<u8>>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => mirage_core::request_auth::decode_hex(text.trim())
            .map(Some)
            .ok_or_else(|| PolicyError::KeyFile {
                path: path.display().to_string(),
                message: "not a hex key".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PolicyError::KeyFile {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn write_key(path: &Path, hex: &str) -> Result<(), PolicyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| PolicyError::KeyFile {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(hex.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Enroll if needed; returns the key.
pub async fn ensure_key(cfg: &PolicyClientConfig) -> Result<Vec<u8>, PolicyError> {
    if let Some(key) = read_key(&cfg.key_file)? {
        return Ok(key);
    }
    let Some(token) = &cfg.enroll_token else {
        return Err(PolicyError::NotEnrolled(cfg.server.clone()));
    };
    let body = serde_json::to_vec(&EnrollRequest {
        token: token.clone(),
        agent_id: cfg.agent_id.clone(),
        hostname: cfg.hostname.clone(),
        settings: cfg.settings.clone(),
    })
    .unwrap_or_default();
    let mut backoff = Duration::from_millis(500);
    loop {
        match mirage_net::signed_post::post(
            &cfg.server,
            ENROLL_PATH,
            None,
            &[],
            "application/json",
            body.clone(),
            Duration::from_secs(30),
        )
        .await
        {
            Ok((200, reply)) => {
                let reply: EnrollReply =
                    serde_json::from_slice(&reply).map_err(|e| PolicyError::EnrollRefused {
                        server: cfg.server.clone(),
                        reason: format!("unreadable answer: {e}"),
                    })?;
                write_key(&cfg.key_file, &reply.key)?;
                tracing::info!(server = %cfg.server, "enrolled");
                return mirage_core::request_auth::decode_hex(&reply.key).ok_or_else(|| {
                    PolicyError::EnrollRefused {
                        server: cfg.server.clone(),
                        reason: "the key is not hex".into(),
                    }
                });
            }
            Ok((status, reply)) if (400..500).contains(&status) => {
                return Err(PolicyError::EnrollRefused {
                    server: cfg.server.clone(),
                    reason: format!("{status} {}", String::from_utf8_lossy(&reply)),
                });
            }
            Ok((status, _)) => {
                tracing::warn!(server = %cfg.server, status, "enrollment failed; retrying")
            }
            Err(e) => {
                tracing::warn!(server = %cfg.server, error = %e, "enrollment failed; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Run until `cancel`: poll, apply, repeat, then hand the enforcer back (to
/// be cleaned up). Transport errors and refusals are retried with backoff
/// (logged once per outage).
pub async fn run<E: Enforcer>(
    cfg: PolicyClientConfig,
    mut enforcer: E,
    cancel: CancellationToken,
) -> Result<E, PolicyError> {
    let key = tokio::select! {
        _ = cancel.cancelled() => return Ok(enforcer),
        k = ensure_key(&cfg) => k?,
    };
    let mut version: Option<i64> = None;
    let mut settings_id: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    loop {
        let body = serde_json::to_vec(&PolicyRequest {
            since: version,
            wait_secs: if version.is_some() { cfg.wait_secs } else { 0 },
            settings_id: settings_id.clone(),
        })
        .unwrap_or_default();
        let agent_header = [(HEADER_AGENT, cfg.agent_id.as_str())];
        let answer = tokio::select! {
            _ = cancel.cancelled() => return Ok(enforcer),
            a = mirage_net::signed_post::post(
                &cfg.server,
                POLICY_PATH,
                Some(&key),
                &agent_header,
                "application/json",
                body,
                Duration::from_secs(cfg.wait_secs + 15),
            ) => a,
        };
        let outcome = match answer {
            Ok((200, reply)) => match serde_json::from_slice::<PolicyReply>(&reply) {
                Ok(PolicyReply::Snapshot(p)) => enforcer.apply_snapshot(&p).map(|()| {
                    tracing::info!(
                        version = p.version,
                        mode = ?p.settings.mode,
                        decisions = p.decisions.len(),
                        "policy snapshot applied"
                    );
                    settings_id.clone_from(&p.settings_id);
                    Some(p.version)
                }),
                Ok(PolicyReply::Delta(d)) if d.new.is_empty() && d.deleted.is_empty() => {
                    Ok(Some(d.version))
                }
                Ok(PolicyReply::Delta(d)) => enforcer.apply_delta(&d).map(|()| {
                    tracing::info!(
                        version = d.version,
                        new = d.new.len(),
                        deleted = d.deleted.len(),
                        "policy delta applied"
                    );
                    Some(d.version)
                }),
                Err(e) => Err(format!("unreadable policy: {e}")),
            },
            Ok((status, reply)) => Err(format!(
                "server answered {status}: {}",
                String::from_utf8_lossy(&reply[..reply.len().min(200)])
            )),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(v) => {
                if failing {
                    tracing::info!(server = %cfg.server, "policy server reachable again");
                    failing = false;
                }
                version = v;
                backoff = Duration::from_millis(250);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(server = %cfg.server, error = %e, "policy update failed; retrying");
                    failing = true;
                }
                // Start over from a snapshot: the enforcer's state is not
                // known to match any version after a failure.
                version = None;
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(enforcer),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
