//! mirage-logparse: turn one service log message into normalised records.
//!
//! The agent ships log lines of real services (sshd, vsftpd, rsyncd,
//! MySQL/MariaDB, Redis MONITOR) as syslog; after the syslog header is split
//! off (`mirage_proto::syslog`), [`LogParser::parse`] turns the message into
//! zero or more [`LogRecord`]s: authentication attempts, connections,
//! commands and recognised attack signs. A record converts into a
//! [`mirage_core::Event`] once the caller supplies the host and time
//! ([`LogRecord::to_event`]), so sensor events and log events feed one rule
//! engine and one store.
//!
//! Parsers are hand-written prefix and suffix matchers: linear in the line,
//! no backtracking, no allocation for lines they ignore. Attackers choose
//! parts of these lines (user names, SQL, Redis arguments), so matching is
//! anchored on the parts the daemon writes (the *last* ` from ` in an sshd
//! line, because a user name may contain ` from `), every captured field is
//! capped, and nothing panics on any input (see [`fuzz_logparse`]).
#![forbid(unsafe_code)]

pub mod mysql;
pub mod record;
pub mod redis;
pub mod rsyncd;
pub mod sshd;
pub mod vsftpd;

pub use record::{LogRecord, RecordKind, Service};

use std::net::IpAddr;

/// Longest user name kept (OpenSSH itself logs at most 100 bytes).
pub const MAX_USERNAME: usize = 128;
/// Longest command line, SQL query or path kept; longer ones are cut and
/// flagged `truncated`.
pub const MAX_RAW: usize = 4096;
/// Most records one `message repeated N times` line expands to: one more
/// than the default brute-force threshold (5 failures), so a real folded
/// burst still fires the rule, and a forged claim of millions costs six
/// records (the claimed N is kept in `repeat_claimed`).
pub const MAX_REPEAT: u32 = 6;

/// A stateful parser for one log source (one host's stream of one or more
/// services).
///
/// State is needed where a daemon spreads one session over several lines:
/// the MySQL general log names the client only on the `Connect` line of a
/// thread. That state is bounded (see [`mysql::MAX_THREADS`]); use one
/// `LogParser` per source host so thread ids of different servers do not
/// mix.
#[derive(Debug, Default)]
pub struct LogParser {
    mysql: mysql::MysqlState,
}

impl LogParser {
    /// A parser with empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one message of `service`, appending records to `out`.
    /// Returns how many were appended (0: the line is not interesting).
    pub fn parse(&mut self, service: Service, message: &[u8], out: &mut Vec<LogRecord>) -> usize {
        let before = out.len();
        // Lines are text; invalid UTF-8 (attacker bytes in a user name) is
        // escaped as `\xNN`, as the event schema writes attacker bytes,
        // rather than rejected, so the rest of the line still counts.
        let text = match std::str::from_utf8(message) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => std::borrow::Cow::Owned(mirage_core::text::escape_bytes(message)),
        };
        let text = text.trim_matches(|c: char| c == ' ' || c == '\n' || c == '\r' || c == '\0');
        match service {
            Service::Ssh => sshd::parse(text, out),
            Service::Ftp => vsftpd::parse(text, out),
            Service::Rsync => rsyncd::parse(text, out),
            Service::Mysql => self.mysql.parse(text, out),
            Service::Redis => redis::parse(text, out),
        }
        out.len() - before
    }

    /// Parse a syslog message whose APP-NAME (RFC 3164 tag) is `app_name`:
    /// the service is chosen by [`Service::from_app_name`]; messages of other
    /// programs are ignored.
    pub fn parse_app(&mut self, app_name: &str, message: &[u8], out: &mut Vec<LogRecord>) -> usize {
        match Service::from_app_name(app_name) {
            Some(s) => self.parse(s, message, out),
            None => 0,
        }
    }
}

/// Parse an address as daemons write it: IPv4, IPv6, IPv4-mapped IPv6
/// (`::ffff:1.2.3.4`, normalised to IPv4), optionally in brackets.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if s.is_empty() || s.len() > 45 {
        return None;
    }
    if let Some(v4) = parse_ipv4_fast(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Plain dotted-quad IPv4, the common case, without the general parser.
/// Accepts only what `Ipv4Addr`'s `FromStr` accepts with the same value
/// (four 1-3 digit octets up to 255, no leading zeros); `None` sends
/// anything else (IPv6, odd forms, garbage) to the general parser.
fn parse_ipv4_fast(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p[0] == b'0') {
            return None;
        }
        let mut v: u16 = 0;
        for &b in p {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(b - b'0');
        }
        *o = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(std::net::Ipv4Addr::from(octets))
}

/// Cut `s` to at most `max` bytes on a character boundary; says whether it
/// cut.
pub(crate) fn cap(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_owned(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_owned(), true)
}

/// Fuzz entry point: every service parser, fed any bytes, must not panic,
/// and records must carry capped fields.
pub fn fuzz_logparse(data: &[u8]) {
    let mut p = LogParser::new();
    let mut out = Vec::new();
    for s in Service::ALL {
        p.parse(s, data, &mut out);
        // Line by line too, so multi-line state (MySQL threads) is driven.
        for line in data.split(|&b| b == b'\n') {
            p.parse(s, line, &mut out);
        }
    }
    for r in &out {
        if let RecordKind::AuthAttempt {
            username: Some(u), ..
        } = &r.kind
        {
            assert!(u.len() <= MAX_USERNAME);
        }
        let _ = r.to_json();
    }
    assert!(out.len() <= (data.len() + 2) * Service::ALL.len() * MAX_REPEAT as usize * 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("::ffff:1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(
            parse_ip("[2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("host.example"), None);
        assert_eq!(parse_ip(""), None);
    }

    #[test]
    fn fast_ipv4_agrees_with_std() {
        for s in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.1.1.1",
            "10.0.0.255",
            "a.b.c.d",
            "::1",
        ] {
            assert_eq!(
                parse_ipv4_fast(s.as_bytes()),
                s.parse::<std::net::Ipv4Addr>().ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn cap_respects_char_boundaries() {
        assert_eq!(cap("héllo", 2), ("h".to_owned(), true));
        assert_eq!(cap("abc", 3), ("abc".to_owned(), false));
    }

    #[test]
    fn app_names_dispatch() {
        let mut p = LogParser::new();
        let mut out = Vec::new();
        let msg = b"Failed password for root from 10.0.0.9 port 51544 ssh2";
        assert_eq!(p.parse_app("sshd-session", msg, &mut out), 1);
        assert_eq!(p.parse_app("cron", msg, &mut out), 0);
    }

    #[test]
    fn invalid_utf8_is_escaped_as_the_schema_says() {
        let mut p = LogParser::new();
        let mut out = Vec::new();
        let msg = b"Failed password for invalid user r\xffo\xc3t from 10.0.0.9 port 1 ssh2";
        assert_eq!(p.parse(Service::Ssh, msg, &mut out), 1);
        assert_eq!(out[0].username(), Some("r\\xffo\\xc3t"));
        let ev = out[0].to_event("h", chrono::Utc::now()).to_json();
        assert!(!ev.contains('\u{fffd}'), "{ev}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            fuzz_logparse(&data);
        }

        #[test]
        fn never_panics_on_near_misses(user in "[ -~]{0,40}", ip in "[0-9a-f:.]{0,20}", n in 0u32..5000) {
            for line in [
                format!("Failed password for {user} from {ip} port 22 ssh2"),
                format!("message repeated {n} times: [ Failed password for {user} from {ip} port 22 ssh2]"),
                format!("[pid 1] [{user}] FAIL LOGIN: Client \"{ip}\""),
                format!("auth failed on module {user} from h ({ip}) for {user}: x"),
                format!("\t\t{n} Connect\t{user}@{ip} on x using TCP/IP"),
                format!("1700000000.1 [0 {ip}:1] \"{user}\""),
            ] {
                fuzz_logparse(line.as_bytes());
            }
        }
    }
}
