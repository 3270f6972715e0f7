//! What the agent ships, and its RFC 5424 encoding.
//!
//! A [`Record`] is one log line (or journald entry, or MONITOR line) plus a
//! stable id chosen by the source, e.g. agent id + file fingerprint + offset.
//! Delivery is at-least-once (see [`super::queue`]), so the server needs the id
//! to drop the copies a reconnect can produce; it travels in structured data
//! as `[mirage@32473 id="…"]`.
//!
//! [`encode`] produces the message alone (`<PRI>1 TIMESTAMP HOST APP PROCID
//! MSGID [SD] MSG`); the transport adds the framing (RFC 6587 octet counting
//! on TCP, nothing on UDP). Encoding happens once, when the record is queued,
//! so what is on disk is exactly what goes on the wire.

use chrono::{DateTime, SecondsFormat, Utc};

/// SD-ID of mirage's structured-data element. 32473 is the private enterprise
/// number RFC 5612 reserves for documentation; a registered PEN can replace
/// it without changing the server, which matches on the `mirage@` prefix.
pub const SD_ID: &str = "mirage@32473";

/// Default cap on an encoded message: 64 KiB, the largest frame
/// `mirage_proto::syslog` accepts by default, so the server never skips an
/// agent's message as oversized.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// Header field limits from RFC 5424 §6 (also what the server's parser
/// enforces).
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;

/// One log record to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the event happened (or was read, if the source has no time).
    pub timestamp: DateTime<Utc>,
    /// Syslog facility, 0..=23 (values above are clamped to 23). 4 = auth,
    /// 10 = authpriv, 16..=23 = local0..local7.
    pub facility: u8,
    /// Syslog severity, 0..=7 (values above are clamped to 7).
    pub severity: u8,
    /// The host the record comes from.
    pub hostname: String,
    /// The application (`sshd`, `vsftpd`, …).
    pub app_name: String,
    /// Process id, if known.
    pub procid: Option<String>,
    /// RFC 5424 MSGID, if any (e.g. the source kind).
    pub msgid: Option<String>,
    /// Stable id the server deduplicates on; the same record read twice must
    /// get the same id.
    pub id: String,
    /// The message bytes as read (not necessarily UTF-8).
    pub message: Vec<u8>,
}

/// Encodes `record` as one RFC 5424 message of at most `max_len` bytes.
///
/// Header fields are made valid rather than rejected (a log line must not be
/// lost because a hostname has a space): characters outside printable
/// US-ASCII become `_`, an empty field becomes `-`, long fields are cut at
/// their RFC limit. A message that does not fit is cut (on a UTF-8 character
/// boundary when it is UTF-8) and marked with `trunc="ORIGINAL_LENGTH"` in the
/// structured data, so the server can tell a cut line from a short one.
/// `max_len` below the header size yields the header alone.
pub fn encode(record: &Record, max_len: usize) -> Vec<u8> {
    let pri = u16::from(record.facility.min(23)) * 8 + u16::from(record.severity.min(7));
    let mut out = Vec::with_capacity(128 + record.id.len() + record.message.len());
    out.extend_from_slice(format!("<{pri}>1 ").as_bytes());
    out.extend_from_slice(
        record
            .timestamp
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_bytes(),
    );
    out.push(b' ');
    push_field(&mut out, &record.hostname, MAX_HOSTNAME);
    out.push(b' ');
    push_field(&mut out, &record.app_name, MAX_APP_NAME);
    out.push(b' ');
    push_field(&mut out, record.procid.as_deref().unwrap_or(""), MAX_PROCID);
    out.push(b' ');
    push_field(&mut out, record.msgid.as_deref().unwrap_or(""), MAX_MSGID);
    out.push(b' ');
    let mut sd = Vec::with_capacity(32 + record.id.len());
    sd.extend_from_slice(b"[");
    sd.extend_from_slice(SD_ID.as_bytes());
    sd.extend_from_slice(b" id=\"");
    push_param_value(&mut sd, &record.id);
    sd.push(b'"');

    // Room left for the message after the header, SD and the space.
    let fixed = out.len() + sd.len() + 2;
    let msg = &record.message;
    if fixed + msg.len() <= max_len {
        out.extend_from_slice(&sd);
        out.extend_from_slice(b"] ");
        out.extend_from_slice(msg);
        return out;
    }
    let trunc = format!(" trunc=\"{}\"", msg.len());
    sd.extend_from_slice(trunc.as_bytes());
    let room = max_len.saturating_sub(out.len() + sd.len() + 2);
    out.extend_from_slice(&sd);
    out.extend_from_slice(b"] ");
    out.extend_from_slice(&msg[..cut_point(msg, room)]);
    out
}

/// Largest `n <= room` such that `msg[..n]` does not split a UTF-8 character
/// (when `msg` is UTF-8 up to there; arbitrary bytes are cut at `room`).
fn cut_point(msg: &[u8], room: usize) -> usize {
    let mut n = room.min(msg.len());
    if std::str::from_utf8(&msg[..n]).is_err() {
        // Back off at most 3 bytes: the longest partial character.
        for back in 1..=3.min(n) {
            if std::str::from_utf8(&msg[..n - back]).is_ok() {
                n -= back;
                break;
            }
        }
    }
    n
}

/// A header field: PRINTUSASCII (33..=126) only, at most `max` bytes, `-`
/// when empty (the RFC's NILVALUE).
fn push_field(out: &mut Vec<u8>, value: &str, max: usize) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    for c in value.chars().take(max) {
        out.push(if c.is_ascii_graphic() { c as u8 } else { b'_' });
    }
}

/// A PARAM-VALUE: RFC 5424 §6.3.3 requires `"`, `\` and `]` escaped with a
/// backslash; anything else (UTF-8) is allowed as is.
fn push_param_value(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mirage_proto::syslog::{Format, parse};

    fn record(id: &str, message: &[u8]) -> Record {
        Record {
            timestamp: Utc.with_ymd_and_hms(2026, 11, 21, 11, 9, 34).unwrap()
                + chrono::Duration::microseconds(324_895),
            facility: 10,
            severity: 6,
            hostname: "vm".into(),
            app_name: "sshd".into(),
            procid: Some("1234".into()),
            msgid: None,
            id: id.into(),
            message: message.to_vec(),
        }
    }

    #[test]
    fn exact_bytes() {
        let out = encode(
            &record("a1", b"Failed password for root"),
            DEFAULT_MAX_MESSAGE,
        );
        assert_eq!(
            out,
            b"<86>1 2026-11-21T11:09:34.324895Z vm sshd 1234 - [mirage@32473 id=\"a1\"] Failed password for root"
        );
    }

    #[test]
    fn id_escaping_round_trips_through_the_server_parser() {
        let id = r#"we"ird\id]x"#;
        let out = encode(&record(id, b"msg"), DEFAULT_MAX_MESSAGE);
        let m = parse(&out).expect("parses");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.facility, Some(10));
        assert_eq!(m.severity, Some(6));
        assert_eq!(m.hostname, Some("vm"));
        assert_eq!(m.app_name, Some("sshd"));
        assert_eq!(m.procid, Some("1234"));
        assert_eq!(m.msgid, None);
        assert_eq!(m.structured_data.len(), 1);
        assert_eq!(m.structured_data[0].id, SD_ID);
        assert_eq!(m.structured_data[0].params[0].0, "id");
        assert_eq!(m.structured_data[0].params[0].1, id);
        assert_eq!(m.message, b"msg");
    }

    #[test]
    fn bad_header_fields_are_made_valid() {
        let mut r = record("x", b"m");
        r.hostname = "my host".into();
        r.app_name = "a".repeat(100);
        r.procid = Some(String::new());
        r.facility = 200;
        r.severity = 9;
        let out = encode(&r, DEFAULT_MAX_MESSAGE);
        let m = parse(&out).expect("parses");
        assert_eq!(m.hostname, Some("my_host"));
        assert_eq!(m.app_name.map(str::len), Some(MAX_APP_NAME));
        assert_eq!(m.procid, None);
        assert_eq!((m.facility, m.severity), (Some(23), Some(7)));
    }

    #[test]
    fn long_message_is_capped_and_marked() {
        // 'é' is two bytes: the cut must not split it.
        let msg = "é".repeat(1000).into_bytes();
        let out = encode(&record("id", &msg), 301);
        assert!(out.len() <= 301, "{}", out.len());
        let m = parse(&out).expect("parses");
        let sd = &m.structured_data[0].params;
        assert_eq!(sd[1].0, "trunc");
        assert_eq!(sd[1].1, "2000");
        assert!(std::str::from_utf8(m.message).is_ok());
        assert!(!m.message.is_empty());
        // One more byte of room can only keep or grow the kept message.
        assert!(encode(&record("id", &msg), 302).len() >= out.len());
    }

    #[test]
    fn binary_message_is_cut_at_the_cap() {
        let msg = vec![0xffu8; 500];
        let out = encode(&record("id", &msg), 200);
        assert_eq!(out.len(), 200);
    }
}
