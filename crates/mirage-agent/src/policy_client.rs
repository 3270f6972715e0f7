//! The agent's policy client: enroll once, then long-poll the server's
//! policy API and hand every snapshot and delta to the enforcer.
//!
//! Enrollment trades the one-time token for the agent's own HMAC key,
//! kept in `<state_dir>/policy.key` (mode 0600, never logged). A token of
//! the form `SECRET.PIN` carries the SHA-256 of the server's certificate:
//! the agent then speaks TLS to exactly that server from the enrollment on
//! and keeps the pin in `policy.pin`. Every answer must carry the server's
//! signature for the request it answers (a fake server's snapshot is
//! refused, not applied).
//!
//! A server that answers at once, again and again (a long poll that is not
//! held: a broken or fake server), is polled less and less often, up to
//! once every 30 s, and a snapshot equal to the one applied last is not
//! applied again: the firewall is not rewritten in a loop. Every start
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
use mirage_net::Pin;
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
    /// The key file; the pin file (`policy.pin`) is beside it.
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

fn pin_file(key_file: &Path) -> PathBuf {
    key_file.with_file_name("policy.pin")
}

fn read_pin(path: &Path) -> Result<Option<Pin>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Pin::parse(&text)
            .map(Some)
            .ok_or_else(|| PolicyError::KeyFile {
                path: path.display().to_string(),
                message: "not a certificate pin (64 hex digits)".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PolicyError::KeyFile {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
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

/// The secret part of a token and the pin it carries (`SECRET.PIN`).
fn split_token(token: &str) -> Result<(&str, Option<Pin>), PolicyError> {
    let token = token.trim();
    match token.split_once('.') {
        None => Ok((token, None)),
        Some((secret, pin)) => match Pin::parse(pin) {
            Some(p) => Ok((secret, Some(p))),
            None => Err(PolicyError::EnrollRefused {
                server: String::new(),
                reason: "the token's certificate pin is not 64 hex digits".into(),
            }),
        },
    }
}

/// Enroll if needed; returns the key and the server's pin (`None`: the
/// server speaks plain HTTP).
pub async fn ensure_key(cfg: &PolicyClientConfig) -> Result<(Vec<u8>, Option<Pin>), PolicyError> {
    let pin_path = pin_file(&cfg.key_file);
    if let Some(key) = read_key(&cfg.key_file)? {
        return Ok((key, read_pin(&pin_path)?));
    }
    let Some(token) = &cfg.enroll_token else {
        return Err(PolicyError::NotEnrolled(cfg.server.clone()));
    };
    let (secret, pin) = split_token(token)?;
    if pin.is_none() {
        tracing::warn!(server = %cfg.server, "the enrollment token pins no certificate: enrolling over plain HTTP trusts the network");
    }
    let body = serde_json::to_vec(&EnrollRequest {
        token: secret.to_owned(),
        agent_id: cfg.agent_id.clone(),
        hostname: cfg.hostname.clone(),
        settings: cfg.settings.clone(),
    })
    .unwrap_or_default();
    let mut backoff = Duration::from_millis(500);
    loop {
        match mirage_net::signed_post::post(
            &cfg.server,
            pin,
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
                let key = mirage_core::request_auth::decode_hex(&reply.key).ok_or_else(|| {
                    PolicyError::EnrollRefused {
                        server: cfg.server.clone(),
                        reason: "the key is not hex".into(),
                    }
                })?;
                // The pin first: a key without its pin would make the next
                // start talk plain HTTP to a TLS server.
                if let Some(p) = pin {
                    write_key(&pin_path, &p.hex())?;
                }
                write_key(&cfg.key_file, &reply.key)?;
                tracing::info!(server = %cfg.server, tls = pin.is_some(), "enrolled");
                return Ok((key, pin));
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
    let (key, pin) = tokio::select! {
        _ = cancel.cancelled() => return Ok(enforcer),
        k = ensure_key(&cfg) => k?,
    };
    let mut version: Option<i64> = None;
    let mut settings_id: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    // The kind of the last failure (the text before its first ':'), so a
    // new kind of failure in one outage (refused, then a fake server's
    // certificate) is reported too, once.
    let mut failing: Option<String> = None;
    // Answers to long polls that came back at once, in a row, and the
    // pause they earn; and what the last applied snapshot was.
    let mut quick_answers = 0u32;
    let mut pace = Duration::ZERO;
    let mut last_snapshot: Option<Vec<u8>> = None;
    // The pages of a snapshot read so far, when it comes in several.
    let mut pages: Option<Policy> = None;
    loop {
        if !pace.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(enforcer),
                _ = tokio::time::sleep(pace) => {}
            }
        }
        let asked = std::time::Instant::now();
        let long_poll = version.is_some() && cfg.wait_secs > 0;
        let body = serde_json::to_vec(&PolicyRequest {
            since: version,
            wait_secs: if version.is_some() { cfg.wait_secs } else { 0 },
            settings_id: settings_id.clone(),
            snapshot_after: pages.as_ref().and_then(|p| p.next.clone()),
        })
        .unwrap_or_default();
        let agent_header = [(HEADER_AGENT, cfg.agent_id.as_str())];
        let answer = tokio::select! {
            _ = cancel.cancelled() => return Ok(enforcer),
            a = mirage_net::signed_post::post(
                &cfg.server,
                pin,
                POLICY_PATH,
                Some(&key[..]),
                &agent_header,
                "application/json",
                body,
                Duration::from_secs(cfg.wait_secs + 15),
            ) => a,
        };
        let mut changed = false;
        let outcome = match answer {
            Ok((200, reply)) => match serde_json::from_slice::<PolicyReply>(&reply) {
                Ok(PolicyReply::Snapshot(p)) if p.next.is_some() || pages.is_some() => {
                    match gather(&mut pages, p) {
                        // More pages to read, at once.
                        None => Ok(None),
                        Some(p) => enforcer.apply_snapshot(&p).map(|()| {
                            tracing::info!(
                                version = p.version,
                                mode = ?p.settings.mode,
                                decisions = p.decisions.len(),
                                "policy snapshot applied (paged)"
                            );
                            settings_id.clone_from(&p.settings_id);
                            last_snapshot = None;
                            changed = true;
                            Some(p.version)
                        }),
                    }
                }
                Ok(PolicyReply::Snapshot(p)) if last_snapshot.as_deref() == Some(&reply[..]) => {
                    // The same snapshot again: the firewall holds it.
                    Ok(Some(p.version))
                }
                Ok(PolicyReply::Snapshot(p)) => enforcer.apply_snapshot(&p).map(|()| {
                    tracing::info!(
                        version = p.version,
                        mode = ?p.settings.mode,
                        decisions = p.decisions.len(),
                        "policy snapshot applied"
                    );
                    settings_id.clone_from(&p.settings_id);
                    last_snapshot = Some(reply.to_vec());
                    changed = true;
                    Some(p.version)
                }),
                Ok(PolicyReply::Delta(d)) if d.new.is_empty() && d.deleted.is_empty() => {
                    Ok(Some(d.version))
                }
                Ok(PolicyReply::Delta(d)) => enforcer.apply_delta(&d).map(|()| {
                    last_snapshot = None;
                    changed = true;
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
        // A held long poll comes back when something changed or after the
        // wait; one that comes back at once with nothing new, time after
        // time, is a server to be polled less often. (Answers that carry
        // changes never slow the agent down: a flood of decisions is
        // enforced as fast as it comes.)
        if long_poll && !changed && asked.elapsed() < Duration::from_millis(500) {
            quick_answers += 1;
            if quick_answers >= 3 {
                pace = (pace * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                if quick_answers == 3 {
                    tracing::warn!(server = %cfg.server, "the server answers long polls at once; polling less often");
                }
            }
        } else {
            quick_answers = 0;
            pace = Duration::ZERO;
        }
        match outcome {
            Ok(v) => {
                if failing.take().is_some() {
                    tracing::info!(server = %cfg.server, "policy server reachable again");
                }
                version = v;
                backoff = Duration::from_millis(250);
            }
            Err(e) => {
                let kind = e.split(':').next().unwrap_or_default().to_owned();
                if failing.as_ref() != Some(&kind) {
                    tracing::warn!(server = %cfg.server, error = %e, "policy update failed; retrying");
                    failing = Some(kind);
                }
                // Start over from a snapshot: the enforcer's state is not
                // known to match any version after a failure.
                version = None;
                last_snapshot = None;
                pages = None;
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(enforcer),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Add one page of a paged snapshot to those read so far; the whole
/// snapshot once the last page (no `next`) is in. It is at the first
/// page's version (the oldest), so the deltas after it cover whatever
/// changed while the pages were read; settings are the last page's.
fn gather(pages: &mut Option<Policy>, page: Policy) -> Option<Policy> {
    let next = page.next.clone();
    match pages {
        None => *pages = Some(page),
        Some(acc) => {
            acc.decisions.extend(page.decisions);
            acc.version = acc.version.min(page.version);
            acc.settings = page.settings;
            acc.settings_id = page.settings_id;
            acc.next = next.clone();
        }
    }
    if next.is_some() {
        return None;
    }
    pages.take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_core::policy::PolicyDecision;

    fn page(version: i64, ips: &[&str], next: Option<&str>) -> Policy {
        Policy {
            version,
            settings: AgentSettings::default(),
            decisions: ips
                .iter()
                .map(|ip| PolicyDecision {
                    ip: ip.parse().unwrap(),
                    decision: "block".into(),
                    expires_unix: 2_000_000_000,
                })
                .collect(),
            settings_id: Some(format!("s{version}")),
            next: next.map(str::to_owned),
        }
    }

    #[test]
    fn pages_make_one_snapshot_at_the_first_pages_version() {
        let mut pages = None;
        assert!(
            gather(
                &mut pages,
                page(7, &["192.0.2.1", "192.0.2.2"], Some("192.0.2.2 block"))
            )
            .is_none()
        );
        assert_eq!(
            pages.as_ref().unwrap().next.as_deref(),
            Some("192.0.2.2 block")
        );
        assert!(gather(&mut pages, page(9, &["192.0.2.3"], Some("192.0.2.3 block"))).is_none());
        let all = gather(&mut pages, page(8, &["192.0.2.4"], None)).unwrap();
        assert!(pages.is_none());
        assert_eq!(all.version, 7);
        assert_eq!(all.decisions.len(), 4);
        assert_eq!(all.settings_id.as_deref(), Some("s8"));
        assert!(all.next.is_none());
        // A snapshot in one page passes through.
        let one = gather(&mut pages, page(3, &["192.0.2.9"], None)).unwrap();
        assert_eq!((one.version, one.decisions.len()), (3, 1));
    }
}
