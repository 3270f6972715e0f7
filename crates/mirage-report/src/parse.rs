//! Line parsers: one input line becomes zero or more [`Record`]s, or a
//! [`SkipReason`].
//!
//! Three shapes are recognised, by their first byte and content:
//! - mirage events (schema v1 JSONL, see `mirage-core`'s `event.rs`),
//! - tcppc-go sessions (the seed's all-port honeypot: `timestamp`, `flow`
//!   and base64 `payloads`; one line yields a connection plus one payload
//!   record per payload),
//! - netfilter `LOG` lines from iptables/nftables as syslog writes them
//!   (`... kernel: PREFIX IN=eth0 ... SRC=a DST=b ... PROTO=TCP SPT=x DPT=y`).
//!
//! Lines are attacker-influenced: every field is optional until proven,
//! numbers are range-checked by their types, base64 is validated, and any
//! failure skips the line with a reason instead of panicking.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use serde::Deserialize;

use crate::fastjson::{self, Fields, Scan};
use crate::time;

/// What an event was, reduced to what the analyses distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `session.connect`.
    Connect,
    /// `session.close`.
    Close,
    /// `session.reject`.
    Reject,
    /// `auth.attempt`.
    Auth,
    /// `command`.
    Command,
    /// `payload`.
    Payload,
    /// `attack`.
    Attack,
    /// `protocol.error`.
    ProtocolError,
    /// A connection seen by another tool (tcppc-go session, kernel LOG line).
    Connection,
    /// Any other kind.
    Other,
}

impl Kind {
    fn from_name(s: &str) -> Kind {
        match s {
            "session.connect" => Kind::Connect,
            "session.close" => Kind::Close,
            "session.reject" => Kind::Reject,
            "auth.attempt" => Kind::Auth,
            "command" => Kind::Command,
            "payload" => Kind::Payload,
            "attack" => Kind::Attack,
            "protocol.error" => Kind::ProtocolError,
            "connection" => Kind::Connection,
            _ => Kind::Other,
        }
    }

    /// Name as written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "session.connect",
            Kind::Close => "session.close",
            Kind::Reject => "session.reject",
            Kind::Auth => "auth.attempt",
            Kind::Command => "command",
            Kind::Payload => "payload",
            Kind::Attack => "attack",
            Kind::ProtocolError => "protocol.error",
            Kind::Connection => "connection",
            Kind::Other => "other",
        }
    }

    /// Whether this record stands for a new connection.
    pub fn is_connection(self) -> bool {
        matches!(self, Kind::Connect | Kind::Connection)
    }
}

/// One event, borrowed from its line (and the parser's decode buffer).
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// Time, microseconds since the epoch (UTC).
    pub ts: i64,
    /// Source address.
    pub src: IpAddr,
    /// Source port, if known.
    pub src_port: Option<u16>,
    /// Destination address, if known.
    pub dst: Option<IpAddr>,
    /// Destination port, if known.
    pub dst_port: Option<u16>,
    /// Service name (`catchall`, `redis`, `tcppc`, the LOG prefix, …).
    pub service: &'a str,
    /// Session id, if any.
    pub session: Option<&'a str>,
    /// Kind.
    pub kind: Kind,
    /// Decoded payload bytes (payload and protocol.error events, tcppc-go).
    pub payload: Option<&'a [u8]>,
    /// A one-line detail for session listings (command line, credentials,
    /// close reason, attack summary); attacker text, unescaped.
    pub detail: Option<Cow<'a, str>>,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Longer than the line limit.
    TooLong,
    /// Starts like JSON but does not parse (truncated, invalid, not UTF-8).
    InvalidJson,
    /// JSON without a usable time.
    BadTimestamp,
    /// JSON without a usable source address.
    BadAddress,
    /// A base64 field that does not decode.
    InvalidBase64,
    /// Neither JSON nor a netfilter LOG line.
    Unrecognised,
    /// The input ended in a truncated or corrupt compressed stream.
    CorruptInput,
}

impl SkipReason {
    /// Short description, as reported.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::TooLong => "line too long",
            SkipReason::InvalidJson => "invalid JSON",
            SkipReason::BadTimestamp => "missing or invalid timestamp",
            SkipReason::BadAddress => "missing or invalid source address",
            SkipReason::InvalidBase64 => "invalid base64",
            SkipReason::Unrecognised => "unrecognised line",
            SkipReason::CorruptInput => "truncated or corrupt compressed data",
        }
    }
}

#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(default)]
    src_port: Option<u16>,
    #[serde(borrow, default)]
    dst_ip: Option<Cow<'a, str>>,
    #[serde(default)]
    dst_port: Option<u16>,
    #[serde(borrow, default)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data_b64: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    raw: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    password: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    summary: Option<Cow<'a, str>>,
    // tcppc-go
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    flow: Option<TcppcFlow<'a>>,
    #[serde(borrow, default)]
    payloads: Option<Vec<TcppcPayload<'a>>>,
}

#[derive(Deserialize)]
struct TcppcFlow<'a> {
    #[serde(borrow)]
    src: Cow<'a, str>,
    #[serde(default)]
    sport: Option<u16>,
    #[serde(borrow, default)]
    dst: Option<Cow<'a, str>>,
    #[serde(default)]
    dport: Option<u16>,
}

#[derive(Deserialize)]
struct TcppcPayload<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

/// Turns lines into records; holds reusable buffers.
#[derive(Debug)]
pub struct LineParser {
    log_year: i32,
    buf: Vec<u8>,
    spans: Vec<(i64, usize, usize)>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl LineParser {
    /// A parser; `log_year` is the year assumed for BSD syslog stamps.
    pub fn new(log_year: i32) -> Self {
        LineParser {
            log_year,
            buf: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Parse one line (without its newline) and hand each record to `out`.
    /// Returns the number of records, or why the line was skipped.
    pub fn parse(
        &mut self,
        line: &[u8],
        out: &mut dyn FnMut(&Record<'_>),
    ) -> Result<usize, SkipReason> {
        let trimmed = line.trim_ascii();
        match trimmed.first() {
            Some(b'{') => self.parse_json(trimmed, out),
            Some(_) => parse_kernel_log(trimmed, self.log_year, out),
            None => Ok(0),
        }
    }

    fn parse_json(
        &mut self,
        line: &[u8],
        out: &mut dyn FnMut(&Record<'_>),
    ) -> Result<usize, SkipReason> {
        match fastjson::scan(line) {
            Scan::Done(f) => self.event(&f, out),
            Scan::Invalid => Err(SkipReason::InvalidJson),
            Scan::Slow => {
                let j: JsonLine<'_> =
                    serde_json::from_slice(line).map_err(|_| SkipReason::InvalidJson)?;
                if let Some(flow) = &j.flow {
                    return self.tcppc(&j, flow, out);
                }
                let f = Fields {
                    ts: j.ts.as_deref(),
                    src_ip: j.src_ip.as_deref(),
                    src_port: j.src_port,
                    dst_ip: j.dst_ip.as_deref(),
                    dst_port: j.dst_port,
                    service: j.service.as_deref(),
                    session: j.session.as_deref(),
                    kind: j.kind.as_deref(),
                    data_b64: j.data_b64.as_deref().map(str::as_bytes),
                    raw: j.raw.as_deref(),
                    username: j.username.as_deref(),
                    password: j.password.as_deref(),
                    reason: j.reason.as_deref(),
                    summary: j.summary.as_deref(),
                };
                self.event(&f, out)
            }
        }
    }

    fn event(
        &mut self,
        j: &Fields<'_>,
        out: &mut dyn FnMut(&Record<'_>),
    ) -> Result<usize, SkipReason> {
        let ts =
            j.ts.and_then(|t| time::parse_rfc3339(t.as_bytes()))
                .ok_or(SkipReason::BadTimestamp)?;
        let src = parse_ip(j.src_ip).ok_or(SkipReason::BadAddress)?;
        let dst = match j.dst_ip {
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| SkipReason::BadAddress)?),
            None => None,
        };
        let kind = Kind::from_name(j.kind.unwrap_or(""));
        let mut payload = None;
        if let Some(b) = j.data_b64 {
            self.buf.clear();
            B64.decode_vec(b, &mut self.buf)
                .map_err(|_| SkipReason::InvalidBase64)?;
            payload = Some(self.buf.as_slice());
        }
        let detail = match kind {
            Kind::Command => j.raw.map(Cow::Borrowed),
            Kind::Auth => Some(Cow::Owned(format!(
                "user={} password={}",
                j.username.unwrap_or("-"),
                j.password.unwrap_or("-")
            ))),
            Kind::Close | Kind::Reject => j.reason.map(Cow::Borrowed),
            Kind::Attack => j.summary.map(Cow::Borrowed),
            _ => None,
        };
        let rec = Record {
            ts,
            src,
            src_port: j.src_port,
            dst,
            dst_port: j.dst_port,
            service: j.service.unwrap_or("-"),
            session: j.session,
            kind,
            payload,
            detail,
        };
        out(&rec);
        Ok(1)
    }

    fn tcppc(
        &mut self,
        j: &JsonLine<'_>,
        flow: &TcppcFlow<'_>,
        out: &mut dyn FnMut(&Record<'_>),
    ) -> Result<usize, SkipReason> {
        let ts = j
            .timestamp
            .as_deref()
            .and_then(|t| time::parse_rfc3339(t.as_bytes()))
            .ok_or(SkipReason::BadTimestamp)?;
        let src = flow
            .src
            .parse::<IpAddr>()
            .map_err(|_| SkipReason::BadAddress)?;
        let dst = match flow.dst.as_deref() {
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| SkipReason::BadAddress)?),
            None => None,
        };
        // Decode every payload before emitting anything, so a bad one skips
        // the whole line.
        self.buf.clear();
        self.spans.clear();
        for p in j.payloads.iter().flatten() {
            let pts = p
                .timestamp
                .as_deref()
                .map(|t| time::parse_rfc3339(t.as_bytes()).ok_or(SkipReason::BadTimestamp))
                .transpose()?
                .unwrap_or(ts);
            let start = self.buf.len();
            if let Some(d) = p.data.as_deref() {
                B64.decode_vec(d.as_bytes(), &mut self.buf)
                    .map_err(|_| SkipReason::InvalidBase64)?;
            }
            self.spans.push((pts, start, self.buf.len()));
        }
        let mut rec = Record {
            ts,
            src,
            src_port: flow.sport,
            dst,
            dst_port: flow.dport,
            service: "tcppc",
            session: None,
            kind: Kind::Connection,
            payload: None,
            detail: None,
        };
        out(&rec);
        for &(pts, a, b) in &self.spans {
            rec.ts = pts;
            rec.kind = Kind::Payload;
            rec.payload = self.buf.get(a..b);
            out(&rec);
        }
        Ok(1 + self.spans.len())
    }
}

fn parse_ip(s: Option<&str>) -> Option<IpAddr> {
    s?.parse().ok()
}

/// Value of ` KEY=` in a netfilter LOG line (up to the next space).
fn log_field<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(line.get(from..)?, key) {
        let at = from + pos;
        if at == 0 || line[at - 1] == b' ' {
            let v = &line[at + key.len()..];
            let end = memchr::memchr(b' ', v).unwrap_or(v.len());
            return Some(&v[..end]);
        }
        from = at + key.len();
    }
    None
}

fn parse_kernel_log(
    line: &[u8],
    year: i32,
    out: &mut dyn FnMut(&Record<'_>),
) -> Result<usize, SkipReason> {
    let in_at = memchr::memmem::find(line, b"IN=").ok_or(SkipReason::Unrecognised)?;
    let fields = &line[in_at..];
    let src = log_field(fields, b"SRC=")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<IpAddr>().ok())
        .ok_or(SkipReason::Unrecognised)?;
    let dst = log_field(fields, b"DST=")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<IpAddr>().ok());
    let port = |k: &[u8]| {
        log_field(fields, k)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u16>().ok())
    };
    let ts = syslog_time(line, year).ok_or(SkipReason::BadTimestamp)?;
    // The LOG prefix sits between `kernel: ` (and an optional `[uptime]`)
    // and `IN=`; it names the rule, so it stands in for the service.
    let head = &line[..in_at];
    let mut prefix = match memchr::memmem::find(head, b"kernel:") {
        Some(k) => &head[k + 7..],
        None => &[][..],
    };
    prefix = prefix.trim_ascii();
    if prefix.first() == Some(&b'[')
        && let Some(close) = memchr::memchr(b']', prefix)
    {
        prefix = prefix[close + 1..].trim_ascii();
    }
    let service = std::str::from_utf8(prefix)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .unwrap_or("kernel-log");
    let rec = Record {
        ts,
        src,
        src_port: port(b"SPT="),
        dst,
        dst_port: port(b"DPT="),
        service,
        session: None,
        kind: Kind::Connection,
        payload: None,
        detail: None,
    };
    out(&rec);
    Ok(1)
}

/// Time at the start of a syslog line: RFC 3339 (rsyslog's high-precision
/// format) or BSD `Mmm dd hh:mm:ss` (read as UTC in `year`).
fn syslog_time(line: &[u8], year: i32) -> Option<i64> {
    let first = line.split(|&c| c == b' ').next()?;
    if first.len() >= 19 && first[0].is_ascii_digit() {
        return time::parse_rfc3339(first);
    }
    if line.len() < 15 || line[3] != b' ' || line[9] != b':' || line[12] != b':' {
        return None;
    }
    let month = time::month_from_abbrev(&line[..3])?;
    let day_txt = std::str::from_utf8(&line[4..6]).ok()?.trim();
    let day: u32 = day_txt.parse().ok()?;
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{}Z",
        std::str::from_utf8(&line[7..15]).ok()?
    );
    time::parse_rfc3339(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(line: &[u8]) -> Result<Vec<String>, SkipReason> {
        let mut p = LineParser::new(2020);
        let mut v = Vec::new();
        p.parse(line, &mut |r| {
            v.push(format!(
                "{} {} {:?} {:?} {:?} {} {:?} {:?}",
                time::fmt_micros(r.ts),
                r.src,
                r.src_port,
                r.dst,
                r.dst_port,
                r.service,
                r.kind,
                r.payload.map(|p| String::from_utf8_lossy(p).into_owned())
            ))
        })?;
        Ok(v)
    }

    #[test]
    fn mirage_event() {
        let line = br#"{"schema":1,"id":"x","ts":"2026-11-21T11:09:34.324895Z","sensor":"hp1","service":"catchall","transport":"tcp","src_ip":"10.0.0.9","src_port":51544,"dst_ip":"10.0.0.2","dst_port":8080,"session":"s","kind":"payload","data_b64":"R0VUIC8=","sha256":"00","len":5,"truncated":false}"#;
        assert_eq!(
            collect(line).unwrap(),
            vec![
                "2026-11-21T11:09:34.324895Z 10.0.0.9 Some(51544) Some(10.0.0.2) Some(8080) catchall Payload Some(\"GET /\")"
            ]
        );
    }

    #[test]
    fn command_with_bool_error_field_parses() {
        let line = br#"{"ts":"2026-11-21T11:09:34Z","src_ip":"::1","kind":"command","command":"get","args":["a"],"raw":"GET a","error":true,"truncated":true}"#;
        assert_eq!(collect(line).unwrap().len(), 1);
    }

    #[test]
    fn tcppc_session() {
        let line = br#"{"timestamp":"2020-05-24T18:00:00.1+08:00","flow":{"src":"1.2.3.4","sport":4444,"dst":"5.6.7.8","dport":8088},"payloads":[{"index":0,"timestamp":"2020-05-24T18:00:01+08:00","data":"d2dldA=="}]}"#;
        assert_eq!(
            collect(line).unwrap(),
            vec![
                "2020-05-24T10:00:00.100000Z 1.2.3.4 Some(4444) Some(5.6.7.8) Some(8088) tcppc Connection None",
                "2020-05-24T10:00:01.000000Z 1.2.3.4 Some(4444) Some(5.6.7.8) Some(8088) tcppc Payload Some(\"wget\")",
            ]
        );
    }

    #[test]
    fn kernel_log_lines() {
        let bsd = b"May 24 10:00:01 host kernel: [12345.678] port_for IN=eth0 OUT= MAC=00 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TOS=0x00 PROTO=TCP SPT=44444 DPT=445 WINDOW=1024 SYN URGP=0";
        assert_eq!(
            collect(bsd).unwrap(),
            vec![
                "2020-05-24T10:00:01.000000Z 1.2.3.4 Some(44444) Some(5.6.7.8) Some(445) port_for Connection None"
            ]
        );
        let rfc = b"2020-06-01T08:00:00.5+08:00 host kernel: IN=eth0 OUT= SRC=9.9.9.9 DST=5.6.7.8 PROTO=TCP SPT=1 DPT=22";
        assert_eq!(
            collect(rfc).unwrap(),
            vec![
                "2020-06-01T00:00:00.500000Z 9.9.9.9 Some(1) Some(5.6.7.8) Some(22) kernel-log Connection None"
            ]
        );
    }

    #[test]
    fn bad_lines_have_reasons() {
        assert_eq!(
            collect(br#"{"ts":"2026-11-21T11:09:34Z","src"#),
            Err(SkipReason::InvalidJson)
        );
        assert_eq!(
            collect(br#"{"src_ip":"1.2.3.4"}"#),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(
            collect(br#"{"ts":"2026-11-21T11:09:34Z","src_ip":"nope"}"#),
            Err(SkipReason::BadAddress)
        );
        assert_eq!(
            collect(br#"{"ts":"2026-11-21T11:09:34Z","src_ip":"1.2.3.4","data_b64":"!!"}"#),
            Err(SkipReason::InvalidBase64)
        );
        assert_eq!(
            collect(b"\x00\xff\xfegarbage"),
            Err(SkipReason::Unrecognised)
        );
        assert_eq!(collect(b"   "), Ok(vec![]));
    }
}
