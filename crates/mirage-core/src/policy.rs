//! The policy an agent enforces, as the server's policy API sends it.
//!
//! A policy is the agent's own settings (mode, whitelist, service map) plus
//! the decisions in force. The first answer is a [`PolicyReply::Snapshot`];
//! later answers are [`PolicyReply::Delta`]s holding the net change since
//! the version the agent last saw, so an agent that reconnects gets exactly
//! what it missed. Versions are the server's decision change-log sequence
//! numbers.
//!
//! ```json
//! {"type":"snapshot","version":42,"mode":"deception",
//!  "whitelist":{"sources":["10.0.0.0/8"],"ports":[{"proto":"tcp","port":2200}]},
//!  "services":[{"proto":"tcp","port":22,"service":"ssh","honeypot":"10.98.0.2:2222"}],
//!  "decisions":[{"ip":"203.0.113.7","decision":"deceive","expires_unix":1795000000}]}
//! {"type":"delta","version":43,"new":[…],"deleted":[{"ip":"203.0.113.7","decision":"deceive"}]}
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How an agent treats traffic to its mapped service ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything but whitelisted sources and ports goes to the honeypot.
    Honeypot,
    /// Only decided sources go to the honeypot; everyone else reaches the
    /// real service.
    #[default]
    Deception,
    /// Decided sources' traffic is sent back to themselves.
    Reflect,
    /// Decided sources are dropped.
    Firewall,
}

/// A port on the agent's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRef {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The port.
    pub port: u16,
}

/// What is never touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whitelist {
    /// Source CIDRs (or single addresses).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Local ports.
    #[serde(default)]
    pub ports: Vec<PortRef>,
}

/// A local service port and the honeypot that stands in for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMap {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The local port.
    pub port: u16,
    /// The service name (`ssh`, `redis`, …).
    pub service: String,
    /// The honeypot, `host:port`.
    pub honeypot: String,
}

/// An agent's own part of the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSettings {
    /// Enforcement mode.
    #[serde(default)]
    pub mode: Mode,
    /// Never touched.
    #[serde(default)]
    pub whitelist: Whitelist,
    /// Service ports and their honeypots.
    #[serde(default)]
    pub services: Vec<ServiceMap>,
}

/// One decision in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// The source address.
    pub ip: IpAddr,
    /// `deceive`, `block` or `reflect`.
    pub decision: String,
    /// When it ends, Unix seconds.
    pub expires_unix: i64,
}

/// A decision that ended early (deleted by an operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedDecision {
    /// The source address.
    pub ip: IpAddr,
    /// Its type.
    pub decision: String,
}

/// A full policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Version (change-log sequence number) it reflects.
    pub version: i64,
    /// The agent's settings.
    #[serde(flatten)]
    pub settings: AgentSettings,
    /// Decisions in force (entries that do not parse are skipped, so one
    /// bad address cannot switch enforcement off for every other one).
    #[serde(default, deserialize_with = "lenient")]
    pub decisions: Vec<PolicyDecision>,
    /// Identifies these settings ([`settings_id`]); the agent sends it back
    /// in every request, and the server answers with a new snapshot when
    /// the settings it holds for the agent differ (an operator changed
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_id: Option<String>,
    /// Present when this snapshot is one page of several: ask again with
    /// [`PolicyRequest::snapshot_after`] set to it for the next page. The
    /// whole snapshot is the union of the pages, at the first page's
    /// version (later pages may already hold newer changes; the deltas
    /// after the first version bring the same changes again, which is
    /// harmless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A list whose elements that do not parse are skipped (with one warning
/// saying how many), instead of failing the whole list.
fn lenient<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry<T> {
        Ok(T),
        Bad(serde::de::IgnoredAny),
    }
    let raw = Vec::<Entry<T>>::deserialize(d)?;
    let total = raw.len();
    let good: Vec<T> = raw
        .into_iter()
        .filter_map(|e| match e {
            Entry::Ok(t) => Some(t),
            Entry::Bad(_) => None,
        })
        .collect();
    if good.len() < total {
        tracing::warn!(
            skipped = total - good.len(),
            "policy entries that do not parse were skipped"
        );
    }
    Ok(good)
}

/// A short digest of `settings` (16 hex digits of the SHA-256 of their
/// JSON): equal settings, equal id.
pub fn settings_id(settings: &AgentSettings) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(settings).unwrap_or_default();
    crate::event::hex(&Sha256::digest(&json)[..8])
}

/// The net change between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDelta {
    /// The new version.
    pub version: i64,
    /// Decisions added or extended (unparsable entries skipped).
    #[serde(default, deserialize_with = "lenient")]
    pub new: Vec<PolicyDecision>,
    /// Decisions deleted (unparsable entries skipped).
    #[serde(default, deserialize_with = "lenient")]
    pub deleted: Vec<DeletedDecision>,
}

/// An answer of the policy API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PolicyReply {
    /// Everything.
    Snapshot(Policy),
    /// What changed.
    Delta(PolicyDelta),
}

/// The body of a policy request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// The last version the agent applied; absent (or null) asks for a
    /// snapshot. Version 0 is a real version: no change made yet.
    #[serde(default)]
    pub since: Option<i64>,
    /// Seconds the server may hold the request open waiting for a change
    /// (long poll); capped by the server. 0 answers at once.
    #[serde(default)]
    pub wait_secs: u64,
    /// The `settings_id` of the last snapshot applied; when the server's
    /// copy of the settings differs, it answers with a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_id: Option<String>,
    /// The `next` of the snapshot page the agent has: answer the page after
    /// it, at once (`since` and `wait_secs` are then ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_after: Option<String>,
}

/// The body of an enrollment request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time token from `mirage server tokens create`.
    pub token: String,
    /// The agent's id.
    pub agent_id: String,
    /// Its host name.
    pub hostname: String,
    /// Its initial settings.
    #[serde(default)]
    pub settings: AgentSettings,
}

/// The answer to an enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollReply {
    /// The agent's id.
    pub agent_id: String,
    /// Its HMAC key for every later request, hex.
    pub key: String,
}

/// Header naming the agent a policy request is signed by.
pub const HEADER_AGENT: &str = "x-mirage-agent";
/// Enrollment path.
pub const ENROLL_PATH: &str = "/api/v1/enroll";
/// Policy path.
pub const POLICY_PATH: &str = "/api/v1/policy";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_the_documented_one() {
        let snap = PolicyReply::Snapshot(Policy {
            version: 42,
            settings: AgentSettings {
                mode: Mode::Deception,
                whitelist: Whitelist {
                    sources: vec!["10.0.0.0/8".into()],
                    ports: vec![PortRef {
                        proto: "tcp".into(),
                        port: 2200,
                    }],
                },
                services: vec![ServiceMap {
                    proto: "tcp".into(),
                    port: 22,
                    service: "ssh".into(),
                    honeypot: "10.98.0.2:2222".into(),
                }],
            },
            decisions: vec![PolicyDecision {
                ip: "203.0.113.7".parse().unwrap(),
                decision: "deceive".into(),
                expires_unix: 1_795_000_000,
            }],
            settings_id: Some("0011223344556677".into()),
            next: None,
        });
        let text = serde_json::to_string(&snap).unwrap();
        assert_eq!(
            text,
            r#"{"type":"snapshot","version":42,"mode":"deception","whitelist":{"sources":["10.0.0.0/8"],"ports":[{"proto":"tcp","port":2200}]},"services":[{"proto":"tcp","port":22,"service":"ssh","honeypot":"10.98.0.2:2222"}],"decisions":[{"ip":"203.0.113.7","decision":"deceive","expires_unix":1795000000}],"settings_id":"0011223344556677"}"#
        );
        assert_eq!(serde_json::from_str::<PolicyReply>(&text).unwrap(), snap);
    }

    #[test]
    fn one_bad_decision_does_not_fail_the_reply() {
        let text = r#"{"type":"snapshot","version":1,"mode":"firewall","decisions":[
            {"ip":"203.0.113.7; flush ruleset","decision":"block","expires_unix":5},
            {"ip":"203.0.113.8","decision":"block","expires_unix":5}]}"#;
        let PolicyReply::Snapshot(p) = serde_json::from_str(text).unwrap() else {
            panic!("not a snapshot")
        };
        assert_eq!(p.decisions.len(), 1);
        let text = r#"{"type":"delta","version":2,"new":[{"ip":"x"}],"deleted":[{"ip":"::1","decision":"block"},7]}"#;
        let PolicyReply::Delta(d) = serde_json::from_str(text).unwrap() else {
            panic!("not a delta")
        };
        assert_eq!((d.new.len(), d.deleted.len()), (0, 1));
    }

    #[test]
    fn settings_ids_follow_the_settings() {
        let mut s = AgentSettings::default();
        let a = settings_id(&s);
        assert_eq!(a.len(), 16);
        assert_eq!(a, settings_id(&s.clone()));
        s.mode = Mode::Firewall;
        assert_ne!(a, settings_id(&s));
    }
}
