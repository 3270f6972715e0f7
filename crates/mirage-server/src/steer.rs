//! Agents' steering reports: which connection of a decided source the
//! agent's firewall sent where. Agents send them in their syslog stream as
//! RFC 5424 messages with APP-NAME `mirage-agent`, MSGID `steer` and a JSON
//! body (documented in `mirage_agent::enforcement`); the server stores each
//! as a `steer` event, so an attacker's events in a honeypot can be read
//! beside the host and service it was aiming at.

use chrono::{DateTime, Utc};
use mirage_core::event::{Event, EventKind, SCHEMA_VERSION, Transport};
use mirage_proto::syslog::SyslogMessage;
use serde::Deserialize;
use std::net::IpAddr;

/// APP-NAME of agent messages.
pub const APP_NAME: &str = crate::heartbeat::APP_NAME;
/// MSGID of steering reports.
pub const MSGID: &str = "steer";
/// Longest body kept.
const MAX_BODY: usize = 4096;
/// Longest text field kept (agent id, host name, service, `to`).
const MAX_FIELD: usize = 128;

#[derive(Deserialize)]
struct Body {
    agent_id: String,
    #[serde(default)]
    hostname: String,
    action: String,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    proto: String,
    dst_port: u16,
    #[serde(default)]
    service: String,
    #[serde(default)]
    to: Option<String>,
}

/// Whether `msg` is a steering report.
pub fn is_steer(msg: &SyslogMessage<'_>) -> bool {
    msg.app_name == Some(APP_NAME) && msg.msgid == Some(MSGID)
}

/// The `steer` event for a report sent at `ts`; `None` when the body is not
/// a report (counted as malformed by the caller).
pub fn parse(msg: &SyslogMessage<'_>, ts: DateTime<Utc>) -> Option<Event> {
    if msg.message.len() > MAX_BODY {
        return None;
    }
    let b: Body = serde_json::from_slice(msg.message).ok()?;
    let fields = [&b.agent_id, &b.hostname, &b.service];
    if b.agent_id.is_empty()
        || fields.iter().any(|f| f.len() > MAX_FIELD)
        || b.to.as_ref().is_some_and(|t| t.len() > MAX_FIELD)
    {
        return None;
    }
    if !matches!(b.action.as_str(), "deceive" | "reflect" | "block") {
        return None;
    }
    let transport = match b.proto.as_str() {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        _ => return None,
    };
    let sensor = if b.hostname.is_empty() {
        msg.hostname.unwrap_or_default().to_owned()
    } else {
        b.hostname
    };
    Some(Event {
        schema: SCHEMA_VERSION,
        id: mirage_core::new_id(),
        ts,
        sensor,
        service: if b.service.is_empty() {
            format!("{}{}", b.proto, b.dst_port)
        } else {
            b.service
        },
        transport,
        src_ip: b.src_ip.to_canonical(),
        src_port: None,
        dst_ip: Some(b.dst_ip.to_canonical()),
        dst_port: Some(b.dst_port),
        session: None,
        tags: Vec::new(),
        kind: EventKind::Steer {
            agent: b.agent_id,
            action: b.action,
            to: b.to,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> Vec<u8> {
        format!(
            "<37>1 2026-11-21T10:00:00Z web1 mirage-agent 42 steer [mirage@32473 id=\"x\"] {body}"
        )
        .into_bytes()
    }

    #[test]
    fn a_report_becomes_a_steer_event() {
        let f = frame(
            r#"{"agent_id":"a1","hostname":"web1","action":"deceive","src_ip":"10.99.0.2","dst_ip":"10.99.0.1","proto":"tcp","dst_port":22,"service":"ssh","to":"10.98.0.2:2222"}"#,
        );
        let msg = mirage_proto::syslog::parse(&f).unwrap();
        assert!(is_steer(&msg));
        let e = parse(&msg, Utc::now()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["kind"], "steer");
        assert_eq!(v["sensor"], "web1");
        assert_eq!(v["service"], "ssh");
        assert_eq!(v["src_ip"], "10.99.0.2");
        assert_eq!(v["dst_ip"], "10.99.0.1");
        assert_eq!(v["dst_port"], 22);
        assert_eq!(v["agent"], "a1");
        assert_eq!(v["action"], "deceive");
        assert_eq!(v["to"], "10.98.0.2:2222");
    }

    #[test]
    fn anything_else_is_refused() {
        for body in [
            "not json",
            r#"{"agent_id":"a1","action":"explode","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":22}"#,
            r#"{"agent_id":"a1","action":"block","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"icmp","dst_port":0}"#,
            r#"{"agent_id":"","action":"block","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":22}"#,
            r#"{"agent_id":"a1","action":"block","src_ip":"nope","dst_ip":"10.0.0.2","proto":"tcp","dst_port":22}"#,
        ] {
            let f = frame(body);
            let msg = mirage_proto::syslog::parse(&f).unwrap();
            assert!(parse(&msg, Utc::now()).is_none(), "{body}");
        }
    }
}
