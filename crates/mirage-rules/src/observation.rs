//! What the engine looks at: an [`Observation`] is anything with a time, a
//! service, a kind and named fields.
//!
//! Two kinds of input feed the same rules: sensor events
//! (`mirage_core::Event`, from the JSON ingest) and parsed log records
//! ([`LogEvent`], a `mirage_logparse::LogRecord` plus the host that logged
//! it and the time). Rules name fields by the strings of [`Field`]; names
//! are resolved once, when a rule file is loaded, so an unknown name is a
//! load error with a line and column, not a silent never-match.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use mirage_core::{AuthResult, Event, EventKind};
use mirage_logparse::{LogRecord, RecordKind};

/// A field a rule may match on or group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `service`: `ssh`, `ftp`, `redis`, `catchall`, …
    Service,
    /// `kind`: `auth.attempt`, `session.connect`, `command`, …
    Kind,
    /// `origin`: `sensor` (a honeypot saw it) or `log` (a production
    /// service logged it).
    Origin,
    /// `host`: the sensor name or the agent host that logged the line.
    Host,
    /// `src_ip`.
    SrcIp,
    /// `src_port`.
    SrcPort,
    /// `dst_ip`.
    DstIp,
    /// `dst_port`.
    DstPort,
    /// `username` (auth attempts, attack evidence).
    Username,
    /// `password` (auth attempts that reveal it).
    Password,
    /// `method` (auth attempts).
    Method,
    /// `result`: `success` or `failure` (auth attempts).
    Result,
    /// `key_fingerprint` (auth attempts).
    KeyFingerprint,
    /// `command`: lower-cased command name.
    Command,
    /// `args`: the arguments joined by single spaces.
    Args,
    /// `raw`: the command line as sent.
    Raw,
    /// `technique` (attack events).
    Technique,
    /// `tags`: the tags joined by commas.
    Tags,
}

impl Field {
    /// Every field with its name in rule files.
    pub const ALL: [(&'static str, Field); 18] = [
        ("service", Field::Service),
        ("kind", Field::Kind),
        ("origin", Field::Origin),
        ("host", Field::Host),
        ("src_ip", Field::SrcIp),
        ("src_port", Field::SrcPort),
        ("dst_ip", Field::DstIp),
        ("dst_port", Field::DstPort),
        ("username", Field::Username),
        ("password", Field::Password),
        ("method", Field::Method),
        ("result", Field::Result),
        ("key_fingerprint", Field::KeyFingerprint),
        ("command", Field::Command),
        ("args", Field::Args),
        ("raw", Field::Raw),
        ("technique", Field::Technique),
        ("tags", Field::Tags),
    ];

    /// The field for a name used in a rule file.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The field's name in rule files.
    pub fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A mirage sensor (honeypot): any contact is suspicious.
    Sensor,
    /// A production service's log, shipped by an agent.
    Log,
}

/// One thing the engine can evaluate rules against.
pub trait Observation {
    /// Event time, Unix microseconds. Windows and TTLs run on this clock,
    /// never on the wall clock, so a replay gives the same decisions.
    fn time_micros(&self) -> i64;
    /// Where it came from.
    fn origin(&self) -> Origin;
    /// The client address decisions would target.
    fn src_ip(&self) -> Option<IpAddr>;
    /// A field's value, if the observation has it.
    fn field(&self, field: Field) -> Option<Cow<'_, str>>;
    /// Append a field's value (the text [`Observation::field`] gives) to
    /// `out`; false, appending nothing, if the observation lacks it. The
    /// engine builds group keys with this, so implementations can write
    /// numbers and addresses without an intermediate string.
    fn write_field(&self, field: Field, out: &mut String) -> bool {
        match self.field(field) {
            Some(v) => {
                out.push_str(&v);
                true
            }
            None => false,
        }
    }
}

fn ip_text(ip: IpAddr) -> Cow<'static, str> {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, ip);
    Cow::Owned(s)
}

/// Append `ip` as its `Display` form (dotted decimal for IPv4, without
/// going through the formatting machinery).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    buf[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    buf[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + o % 10;
                n += 1;
            }
            // Digits and dots only.
            out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Append `n` in decimal, as `Display` writes it.
fn push_u16(out: &mut String, n: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// The cheap fields of either kind of observation, written straight into
/// `out`; `None` for the others.
fn write_common(
    field: Field,
    src_ip: IpAddr,
    src_port: Option<u16>,
    dst_ip: Option<IpAddr>,
    dst_port: Option<u16>,
    out: &mut String,
) -> Option<bool> {
    let port = |p: Option<u16>, out: &mut String| match p {
        Some(p) => {
            push_u16(out, p);
            true
        }
        None => false,
    };
    Some(match field {
        Field::SrcIp => {
            push_ip(out, src_ip);
            true
        }
        Field::SrcPort => port(src_port, out),
        Field::DstIp => match dst_ip {
            Some(ip) => {
                push_ip(out, ip);
                true
            }
            None => false,
        },
        Field::DstPort => port(dst_port, out),
        _ => return None,
    })
}

fn result_text(r: AuthResult) -> &'static str {
    match r {
        AuthResult::Success => "success",
        AuthResult::Failure => "failure",
    }
}

impl Observation for Event {
    fn time_micros(&self) -> i64 {
        self.ts.timestamp_micros()
    }

    fn origin(&self) -> Origin {
        // Log records converted to events keep the `from_log` tag.
        if self.tags.iter().any(|t| t == "from_log") {
            Origin::Log
        } else {
            Origin::Sensor
        }
    }

    fn src_ip(&self) -> Option<IpAddr> {
        Some(self.src_ip)
    }

    fn field(&self, field: Field) -> Option<Cow<'_, str>> {
        let b = |s: &str| Some(Cow::Owned(s.to_owned()));
        match (field, &self.kind) {
            (Field::Service, _) => Some(Cow::Borrowed(&self.service)),
            (Field::Kind, k) => Some(Cow::Borrowed(k.name())),
            (Field::Origin, _) => Some(Cow::Borrowed(match self.origin() {
                Origin::Sensor => "sensor",
                Origin::Log => "log",
            })),
            (Field::Host, _) => Some(Cow::Borrowed(&self.sensor)),
            (Field::SrcIp, _) => Some(ip_text(self.src_ip)),
            (Field::SrcPort, _) => self.src_port.map(|p| Cow::Owned(p.to_string())),
            (Field::DstIp, _) => self.dst_ip.map(ip_text),
            (Field::DstPort, _) => self.dst_port.map(|p| Cow::Owned(p.to_string())),
            (Field::Tags, _) => Some(Cow::Owned(self.tags.join(","))),
            (Field::Username, EventKind::AuthAttempt { username, .. }) => {
                username.as_ref().map(|u| Cow::Borrowed(u.as_str()))
            }
            (Field::Username, EventKind::Attack { evidence, .. }) => evidence
                .get("username")
                .and_then(|v| v.as_str())
                .and_then(b),
            (Field::Password, EventKind::AuthAttempt { password, .. }) => {
                password.as_ref().map(|u| Cow::Borrowed(u.as_str()))
            }
            (Field::Method, EventKind::AuthAttempt { method, .. }) => Some(Cow::Borrowed(method)),
            (Field::Result, EventKind::AuthAttempt { result, .. }) => {
                Some(Cow::Borrowed(result_text(*result)))
            }
            (
                Field::KeyFingerprint,
                EventKind::AuthAttempt {
                    key_fingerprint, ..
                },
            ) => key_fingerprint.as_deref().map(Cow::Borrowed),
            (Field::Command, EventKind::Command { command, .. }) => Some(Cow::Borrowed(command)),
            (Field::Args, EventKind::Command { args, .. }) => Some(Cow::Owned(
                args.iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            (Field::Raw, EventKind::Command { raw, .. }) => Some(Cow::Borrowed(raw.as_str())),
            (Field::Technique, EventKind::Attack { technique, .. }) => {
                Some(Cow::Borrowed(technique))
            }
            _ => None,
        }
    }

    fn write_field(&self, field: Field, out: &mut String) -> bool {
        if let Some(written) = write_common(
            field,
            self.src_ip,
            self.src_port,
            self.dst_ip,
            self.dst_port,
            out,
        ) {
            return written;
        }
        match self.field(field) {
            Some(v) => {
                out.push_str(&v);
                true
            }
            None => false,
        }
    }
}

/// A parsed log record as seen on one host at one time.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    /// The record.
    pub record: &'a LogRecord,
    /// The host that logged it (syslog HOSTNAME, or the agent's name).
    pub host: &'a str,
    /// Its time: the record's own if it has one, else the syslog header's.
    pub ts_micros: i64,
}

impl<'a> LogEvent<'a> {
    /// Attach a host and a fallback time (used when the record has no time
    /// of its own) to a record.
    pub fn new(record: &'a LogRecord, host: &'a str, fallback_ts_micros: i64) -> Self {
        LogEvent {
            record,
            host,
            ts_micros: record.ts_micros.unwrap_or(fallback_ts_micros),
        }
    }
}

impl Observation for LogEvent<'_> {
    fn time_micros(&self) -> i64 {
        self.ts_micros
    }

    fn origin(&self) -> Origin {
        Origin::Log
    }

    fn src_ip(&self) -> Option<IpAddr> {
        Some(self.record.src_ip)
    }

    fn field(&self, field: Field) -> Option<Cow<'_, str>> {
        let r = self.record;
        match (field, &r.kind) {
            (Field::Service, _) => Some(Cow::Borrowed(r.service.as_str())),
            (Field::Kind, k) => Some(Cow::Borrowed(k.name())),
            (Field::Origin, _) => Some(Cow::Borrowed("log")),
            (Field::Host, _) => Some(Cow::Borrowed(self.host)),
            (Field::SrcIp, _) => Some(ip_text(r.src_ip)),
            (Field::SrcPort, _) => r.src_port.map(|p| Cow::Owned(p.to_string())),
            (Field::DstIp, _) => r.dst_ip.map(ip_text),
            (Field::DstPort, _) => r.dst_port.map(|p| Cow::Owned(p.to_string())),
            (Field::Tags, _) => Some(Cow::Owned(r.tags.join(","))),
            (Field::Username, RecordKind::AuthAttempt { username, .. })
            | (Field::Username, RecordKind::Attack { username, .. }) => {
                username.as_deref().map(Cow::Borrowed)
            }
            (Field::Password, RecordKind::AuthAttempt { password, .. }) => {
                password.as_deref().map(Cow::Borrowed)
            }
            (Field::Method, RecordKind::AuthAttempt { method, .. }) => Some(Cow::Borrowed(method)),
            (Field::Result, RecordKind::AuthAttempt { result, .. }) => {
                Some(Cow::Borrowed(result_text(*result)))
            }
            (
                Field::KeyFingerprint,
                RecordKind::AuthAttempt {
                    key_fingerprint, ..
                },
            ) => key_fingerprint.as_deref().map(Cow::Borrowed),
            (Field::Command, RecordKind::Command { command, .. }) => Some(Cow::Borrowed(command)),
            (Field::Args, RecordKind::Command { args, .. }) => Some(Cow::Owned(args.join(" "))),
            (Field::Raw, RecordKind::Command { raw, .. }) => Some(Cow::Borrowed(raw)),
            (Field::Technique, RecordKind::Attack { technique, .. }) => {
                Some(Cow::Borrowed(technique))
            }
            _ => None,
        }
    }

    fn write_field(&self, field: Field, out: &mut String) -> bool {
        let r = self.record;
        if let Some(written) = write_common(field, r.src_ip, r.src_port, r.dst_ip, r.dst_port, out)
        {
            return written;
        }
        match self.field(field) {
            Some(v) => {
                out.push_str(&v);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (n, f) in Field::ALL {
            assert_eq!(Field::from_name(n), Some(f));
            assert_eq!(f.name(), n);
        }
        assert_eq!(Field::from_name("nope"), None);
    }

    #[test]
    fn write_field_matches_field() {
        use mirage_logparse::Service;
        for (src, dst) in [
            ("0.0.0.0", Some("255.255.255.255")),
            ("10.20.3.199", None),
            ("2001:db8::1", Some("::ffff:1.2.3.4")),
        ] {
            for port in [None, Some(0), Some(9), Some(10), Some(65535)] {
                let mut r = LogRecord::new(
                    Service::Ssh,
                    src.parse().unwrap(),
                    RecordKind::AuthAttempt {
                        method: "password".into(),
                        username: Some("a|b".into()),
                        password: None,
                        key_fingerprint: None,
                        result: AuthResult::Failure,
                    },
                );
                r.src_port = port;
                r.dst_port = port;
                r.dst_ip = dst.map(|d| d.parse().unwrap());
                let e = LogEvent::new(&r, "h", 1);
                for (_, f) in Field::ALL {
                    let mut out = String::from("x");
                    let written = e.write_field(f, &mut out);
                    match e.field(f) {
                        Some(v) => {
                            assert!(written);
                            assert_eq!(out, format!("x{v}"));
                        }
                        None => assert!(!written && out == "x"),
                    }
                }
            }
        }
    }
}
