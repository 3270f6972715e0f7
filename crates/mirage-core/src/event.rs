//! Event schema v1: one JSON object per thing that happened.
//!
//! Every event carries the same envelope (schema version, id, time, sensor,
//! service, transport, addresses, session) and one `kind` with its own fields,
//! flattened into the same object so a line reads naturally:
//!
//! ```json
//! {"schema":1,"id":"…","ts":"2026-11-21T11:09:34.324895Z","sensor":"hp1",
//!  "service":"redis","transport":"tcp","src_ip":"10.0.0.9","src_port":51544,
//!  "dst_ip":"10.0.0.2","dst_port":6379,"session":"…","kind":"command",
//!  "command":"config","args":["set","dir","/root/.ssh"],"raw":"CONFIG set dir /root/.ssh"}
//! ```
//!
//! `docs/events.md` documents every kind with a real example. Adding a field
//! with a default is compatible; renaming or removing one bumps
//! [`SCHEMA_VERSION`].

use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::text::BytesText;

/// The schema version written in every event's `schema` field.
pub const SCHEMA_VERSION: u32 = 1;

/// One event: the shared envelope plus its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version ([`SCHEMA_VERSION`] when written by this build).
    pub schema: u32,
    /// Unique id of this event (UUID v7, time-ordered).
    pub id: Uuid,
    /// When it happened: RFC 3339, UTC, microseconds.
    #[serde(with = "rfc3339_micros")]
    pub ts: DateTime<Utc>,
    /// Name of the sensor (or agent host) that saw it.
    pub sensor: String,
    /// Service name (`redis`, `ssh`, `catchall`, …).
    pub service: String,
    /// Transport protocol.
    pub transport: Transport,
    /// Source (peer) address.
    pub src_ip: IpAddr,
    /// Source port; absent when the origin (e.g. some logs) does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination address: the original destination where known (catch-all),
    /// else the local address the connection arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// Destination port, as for `dst_ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Session id (UUID v7) shared by all events of one connection; always
    /// present in sensor events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    /// Free-form classification tags (`scanner`, `bruteforce`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What happened, with the kind's own fields.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Transport protocol of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client closed (EOF) or reset the connection.
    ClientClosed,
    /// The emulator ended the session (e.g. QUIT).
    ServerClosed,
    /// Nothing was received before the handshake timeout.
    HandshakeTimeout,
    /// No activity within the idle timeout.
    IdleTimeout,
    /// The session reached its maximum duration.
    MaxDuration,
    /// The client sent more than the per-session byte budget.
    ByteBudget,
    /// The session's buffered input would have passed the sensor's memory
    /// budget (shared by all sessions, `[limits] memory_budget`).
    MemoryBudget,
    /// The client broke the protocol badly enough to be cut off.
    ProtocolError,
    /// The sensor was shutting down.
    Shutdown,
    /// A local I/O error other than the above.
    Error,
}

/// Outcome of an authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    /// The honeypot accepted the credentials.
    Success,
    /// The honeypot rejected them.
    Failure,
}

/// The first bytes of some data (inline, base64) plus its full length and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadData {
    /// The first bytes, base64 (standard alphabet, padded).
    pub data_b64: String,
    /// sha256 of all `len` bytes (hex), not only the inline part.
    pub sha256: String,
    /// Full length in bytes.
    pub len: u64,
    /// True when `data_b64` holds fewer than `len` bytes.
    pub truncated: bool,
}

impl PayloadData {
    /// Describe `data`, keeping at most `inline_cap` bytes inline.
    pub fn new(data: &[u8], inline_cap: usize) -> Self {
        let inline = &data[..data.len().min(inline_cap)];
        PayloadData {
            data_b64: base64::engine::general_purpose::STANDARD.encode(inline),
            sha256: hex(&Sha256::digest(data)),
            len: data.len() as u64,
            truncated: inline.len() < data.len(),
        }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The kinds of event, each with its own fields (flattened into the event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum EventKind {
    /// A connection was accepted.
    #[serde(rename = "session.connect")]
    SessionConnect {},
    /// A connection ended.
    #[serde(rename = "session.close")]
    SessionClose {
        /// Session length in milliseconds.
        duration_ms: u64,
        /// Bytes received from the client.
        bytes_in: u64,
        /// Bytes sent to the client.
        bytes_out: u64,
        /// Why it ended.
        reason: CloseReason,
    },
    /// A connection was refused by a limit before any emulator saw it.
    #[serde(rename = "session.reject")]
    SessionReject {
        /// Which limit (`per_ip_limit`, …).
        reason: String,
    },
    /// The client tried to authenticate.
    #[serde(rename = "auth.attempt")]
    AuthAttempt {
        /// Method: `password`, `publickey`, `keyboard-interactive`, …
        method: String,
        /// User name, when the protocol has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<BytesText>,
        /// Password as sent, when the protocol reveals it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<BytesText>,
        /// Public key fingerprint (`SHA256:…`) for key attempts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_fingerprint: Option<String>,
        /// Accepted or rejected.
        result: AuthResult,
        /// Protocol-specific facts about the attempt (MySQL: database,
        /// client plugin, auth response in hex, capability flags, connect
        /// attributes); absent when empty.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        details: serde_json::Map<String, serde_json::Value>,
    },
    /// The client issued a command.
    #[serde(rename = "command")]
    Command {
        /// Command name, lower-cased (`config`, `get`, `uname`).
        command: String,
        /// Arguments, escaped; each capped, see `truncated`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<BytesText>,
        /// The command as one line (arguments joined by spaces), escaped, capped.
        raw: BytesText,
        /// True when an argument or `raw` was cut to its cap.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// True when the emulator answered with an error.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        error: bool,
        /// Protocol-specific facts about the command (HTTP: version, headers,
        /// captured body, status sent); absent when empty.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        details: serde_json::Map<String, serde_json::Value>,
    },
    /// Raw data the client sent (or would have written), by hash.
    #[serde(rename = "payload")]
    Payload {
        /// The data.
        #[serde(flatten)]
        data: PayloadData,
        /// Where the full data is stored, relative to the data dir, if stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stored: Option<String>,
    },
    /// A recognised attack technique, with its evidence.
    #[serde(rename = "attack")]
    Attack {
        /// Technique id, dotted: `redis.config_write`, `redis.rogue_master`, …
        technique: String,
        /// One human line describing what was attempted.
        summary: String,
        /// Technique-specific evidence (paths, hosts, written bytes…).
        evidence: serde_json::Map<String, serde_json::Value>,
    },
    /// The client sent something the protocol parser rejected.
    #[serde(rename = "protocol.error")]
    ProtocolError {
        /// The parser's message (what a real server would answer, where it has one).
        error: String,
        /// The offending bytes (first bytes, base64).
        #[serde(flatten)]
        data: PayloadData,
    },
    /// The catch-all recognised the protocol of a connection (from its first
    /// bytes, or from the port when the client stayed silent) and, when the
    /// matching emulator is enabled, handed the session to it: later events
    /// of the session carry that emulator's `service`.
    #[serde(rename = "detect")]
    Detect {
        /// `tls`, `http`, `ssh`, `redis`, `mongodb`, `telnet`, `rsync`,
        /// `ftp`, `smtp`, `mysql`, … .
        protocol: String,
        /// `bytes` (the client's first bytes) or `port` (silent client, a
        /// server-speaks-first port).
        by: String,
        /// The service the session was handed to; absent when none is
        /// enabled for the protocol (raw capture goes on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handoff: Option<String>,
    },
    /// A TCP SYN the firewall diverted to the catch-all, seen whether or not
    /// the connection completes (a SYN scan never does); one per SYN.
    #[serde(rename = "probe")]
    Probe {
        /// IP TTL (hop limit) of the SYN.
        ttl: u8,
        /// TCP window of the SYN (scanners use telltale values: nmap 1024).
        window: u16,
    },
    /// An agent's firewall steered a connection of a decided source: the
    /// envelope's `dst_ip`/`dst_port` are what the source aimed at on the
    /// agent's host, `service` the service mapped to that port, `sensor` the
    /// agent's host name. Joined with the honeypot's own events (same
    /// `src_ip`, the honeypot at `to`), it tells which host and service an
    /// attacker in a honeypot believed it was on.
    #[serde(rename = "steer")]
    Steer {
        /// The agent's id.
        agent: String,
        /// `deceive` (sent to a honeypot), `reflect` (sent back to itself)
        /// or `block` (dropped).
        action: String,
        /// Where the connection was sent (`ip:port`); absent for `block`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// The sensor deleted its oldest event files to stay within its disk
    /// quota (`[sensor] events_max_bytes`); written by the sensor itself
    /// (`service` `sensor`, `src_ip` `0.0.0.0`: no client).
    #[serde(rename = "storage.evict")]
    StorageEvict {
        /// The files deleted, oldest first.
        files: Vec<String>,
        /// Their size in all.
        bytes: u64,
        /// The quota in bytes.
        quota: u64,
    },
}

impl EventKind {
    /// The `kind` string as written in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::SessionConnect {} => "session.connect",
            EventKind::SessionClose { .. } => "session.close",
            EventKind::SessionReject { .. } => "session.reject",
            EventKind::AuthAttempt { .. } => "auth.attempt",
            EventKind::Command { .. } => "command",
            EventKind::Payload { .. } => "payload",
            EventKind::Attack { .. } => "attack",
            EventKind::ProtocolError { .. } => "protocol.error",
            EventKind::Steer { .. } => "steer",
            EventKind::Detect { .. } => "detect",
            EventKind::Probe { .. } => "probe",
            EventKind::StorageEvict { .. } => "storage.evict",
        }
    }
}

impl Event {
    /// Serialize as one JSON line (no trailing newline). Serialization of
    /// these types cannot fail: every map key is a string.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Unreachable for this schema; keep the line whole and say why.
            format!(
                "{{\"schema\":{SCHEMA_VERSION},\"kind\":\"internal.error\",\"error\":{:?}}}",
                e.to_string()
            )
        })
    }
}

mod rfc3339_micros {
    //! `ts` is always written with exactly six fractional digits and `Z`, so
    //! lines sort and compare as text.
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: EventKind) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            id: crate::new_id(),
            ts: DateTime::parse_from_rfc3339("2026-11-21T11:09:34.324895Z")
                .unwrap()
                .with_timezone(&Utc),
            sensor: "hp1".into(),
            service: "redis".into(),
            transport: Transport::Tcp,
            src_ip: "10.0.0.9".parse().unwrap(),
            src_port: Some(51544),
            dst_ip: Some("10.0.0.2".parse().unwrap()),
            dst_port: Some(6379),
            session: Some(crate::new_id()),
            tags: vec![],
            kind,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds = vec![
            EventKind::SessionConnect {},
            EventKind::SessionClose {
                duration_ms: 12,
                bytes_in: 3,
                bytes_out: 4,
                reason: CloseReason::ClientClosed,
            },
            EventKind::SessionReject {
                reason: "per_ip_limit".into(),
            },
            EventKind::AuthAttempt {
                method: "password".into(),
                username: Some("root".into()),
                password: Some("123456".into()),
                key_fingerprint: None,
                result: AuthResult::Failure,
                details: serde_json::Map::new(),
            },
            EventKind::Command {
                command: "config".into(),
                args: vec!["set".into(), "dir".into()],
                raw: "CONFIG set dir".into(),
                truncated: false,
                error: false,
                details: Default::default(),
            },
            EventKind::Payload {
                data: PayloadData::new(b"GET / HTTP/1.0\r\n", 4),
                stored: None,
            },
            EventKind::Attack {
                technique: "redis.config_write".into(),
                summary: "x".into(),
                evidence: serde_json::Map::new(),
            },
            EventKind::ProtocolError {
                error: "ERR Protocol error: invalid bulk length".into(),
                data: PayloadData::new(b"$x", 64),
            },
            EventKind::Steer {
                agent: "0193a1b2-web1".into(),
                action: "deceive".into(),
                to: Some("10.98.0.2:2222".into()),
            },
            EventKind::Detect {
                protocol: "redis".into(),
                by: "bytes".into(),
                handoff: Some("redis".into()),
            },
            EventKind::Probe {
                ttl: 64,
                window: 1024,
            },
        ];
        for k in kinds {
            let e = sample(k);
            let line = e.to_json();
            assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["kind"], e.kind.name());
            assert_eq!(v["schema"], 1);
            assert_eq!(v["ts"], "2026-11-21T11:09:34.324895Z");
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn payload_hash_covers_all_bytes() {
        let p = PayloadData::new(b"abcdef", 2);
        assert_eq!(p.data_b64, "YWI=");
        assert!(p.truncated);
        assert_eq!(p.len, 6);
        assert_eq!(
            p.sha256,
            "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"
        );
    }
}
