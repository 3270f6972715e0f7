//! Agent heartbeats. Agents send them in their syslog stream (so they share
//! its transport, queue and authentication) as RFC 5424 messages with
//! APP-NAME `mirage-agent`, MSGID `heartbeat` and a JSON body:
//!
//! ```json
//! {"agent_id":"…","hostname":"web1","version":"0.1.0",
//!  "sources":[{"name":"auth","kind":"file","service":"ssh","healthy":true,"detail":"","lines":120}],
//!  "queue":{"depth":0,"dropped":0}}
//! ```
//!
//! The server keeps the newest heartbeat per agent id (by the agent's send
//! time: a heartbeat delivered late from the agent's disk queue does not
//! replace a newer one).

use mirage_proto::syslog::SyslogMessage;
use mirage_store::AgentRow;
use serde::Deserialize;

/// APP-NAME of agent heartbeats.
pub const APP_NAME: &str = "mirage-agent";
/// MSGID of agent heartbeats.
pub const MSGID: &str = "heartbeat";
/// Longest heartbeat body kept.
const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
struct Body {
    agent_id: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    version: String,
}

/// Whether `msg` is an agent heartbeat.
pub fn is_heartbeat(msg: &SyslogMessage<'_>) -> bool {
    msg.app_name == Some(APP_NAME) && msg.msgid == Some(MSGID)
}

/// The agent row for a heartbeat; `None` when the body is not a heartbeat
/// (counted as malformed by the caller).
pub fn parse(
    msg: &SyslogMessage<'_>,
    sent_micros: i64,
    seen_micros: i64,
    peer: &str,
) -> Option<AgentRow> {
    if msg.message.len() > MAX_BODY {
        return None;
    }
    let body: Body = serde_json::from_slice(msg.message).ok()?;
    if body.agent_id.is_empty() || body.agent_id.len() > 128 {
        return None;
    }
    let hostname = if body.hostname.is_empty() {
        msg.hostname.unwrap_or_default().to_owned()
    } else {
        body.hostname
    };
    Some(AgentRow {
        agent_id: body.agent_id,
        hostname,
        version: body.version,
        sent_micros,
        seen_micros,
        peer: peer.to_owned(),
        status_json: String::from_utf8_lossy(msg.message).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_body() {
        let frame = br#"<110>1 2026-11-21T10:00:00Z web1 mirage-agent 42 heartbeat [mirage@32473 id="x"] {"agent_id":"a1","hostname":"web1","version":"0.1.0","sources":[],"queue":{"depth":0,"dropped":0}}"#;
        let msg = mirage_proto::syslog::parse(frame).unwrap();
        assert!(is_heartbeat(&msg));
        let row = parse(&msg, 1, 2, "10.0.0.1:5000").unwrap();
        assert_eq!(row.agent_id, "a1");
        assert_eq!(row.hostname, "web1");
        assert_eq!(row.version, "0.1.0");
        assert!(row.status_json.contains("\"queue\""));
        let bad = mirage_proto::syslog::parse(
            b"<110>1 2026-11-21T10:00:00Z web1 mirage-agent 42 heartbeat - {\"nope\":1}",
        )
        .unwrap();
        assert!(parse(&bad, 1, 2, "p").is_none());
    }
}
