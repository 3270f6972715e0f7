//! Redis MONITOR lines, as the agent's MONITOR source receives them.
//!
//! Redis (`replicationFeedMonitors`) writes `SECONDS.MICROS [DB CLIENT]
//! "ARG" "ARG" …`, where CLIENT is `IP:PORT`, `[IPV6]:PORT`, `unix:PATH`
//! or `lua`, and each argument is quoted by `sdscatrepr` (`\"`, `\\`, `\n`,
//! `\r`, `\t`, `\a`, `\b`, `\xHH`). Only network clients become records:
//! a `command` with the lower-cased name, the other arguments, and the
//! line's own time. `AUTH` is shown as `"AUTH" "(redacted)"` by Redis 6.2+
//! (older versions do not show it at all), so MONITOR reveals AUTH
//! attempts but not their outcome.

use crate::{LogRecord, MAX_RAW, RecordKind, Service, parse_ip};

/// Most arguments kept from one command; the rest are dropped and the
/// record is marked `truncated`.
pub const MAX_ARGS: usize = 64;

/// Parse one MONITOR line, appending a record to `out`.
pub fn parse(line: &str, out: &mut Vec<LogRecord>) {
    let Some((ts, rest)) = line.split_once(' ') else {
        return;
    };
    let Some(ts_micros) = parse_ts(ts) else {
        return;
    };
    let Some(rest) = rest.strip_prefix('[') else {
        return;
    };
    let Some((db, rest)) = rest.split_once(' ') else {
        return;
    };
    if db.is_empty() || !db.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let Some((client, rest)) = rest.split_once("] ") else {
        return;
    };
    let Some((addr, port)) = client.rsplit_once(':') else {
        return;
    };
    let Some(ip) = parse_ip(addr) else {
        return;
    };
    let Ok(port) = port.parse::<u16>() else {
        return;
    };
    let Some((mut args, truncated)) = split_args(rest) else {
        return;
    };
    if args.is_empty() {
        return;
    }
    let command = args.remove(0).to_ascii_lowercase();
    let (raw, raw_cut) = crate::cap(rest, MAX_RAW);
    let mut r = LogRecord::new(
        Service::Redis,
        ip,
        RecordKind::Command {
            command,
            args,
            raw,
            truncated: truncated || raw_cut,
            error: false,
        },
    );
    r.src_port = Some(port);
    r.ts_micros = Some(ts_micros);
    out.push(r);
}

fn parse_ts(ts: &str) -> Option<i64> {
    let (s, us) = ts.split_once('.')?;
    if s.is_empty() || s.len() > 12 || us.is_empty() || us.len() > 6 {
        return None;
    }
    if !s.bytes().chain(us.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = s.parse().ok()?;
    let mut micros: i64 = us.parse().ok()?;
    for _ in us.len()..6 {
        micros *= 10;
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Split `"A" "B" …` with `sdscatrepr` unescaping. Returns `None` when the
/// text is not a sequence of quoted arguments; caps arguments at
/// [`MAX_ARGS`] and each at [`MAX_RAW`] bytes.
fn split_args(s: &str) -> Option<(Vec<String>, bool)> {
    let mut args = Vec::new();
    let mut truncated = false;
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let mut arg = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => {
                    let e = chars.next()?;
                    match e {
                        'n' => bytes.push(b'\n'),
                        'r' => bytes.push(b'\r'),
                        't' => bytes.push(b'\t'),
                        'a' => bytes.push(7),
                        'b' => bytes.push(8),
                        'x' => {
                            let h = chars.next()?.to_digit(16)?;
                            let l = chars.next()?.to_digit(16)?;
                            bytes.push((h * 16 + l) as u8);
                        }
                        other => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
            if bytes.len() > MAX_RAW {
                truncated = true;
                bytes.truncate(MAX_RAW);
            }
        }
        if !closed {
            return None;
        }
        arg.push_str(&mirage_core::escape_bytes(&bytes));
        if args.len() < MAX_ARGS {
            args.push(arg);
        } else {
            truncated = true;
        }
    }
    Some((args, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_and_keeps_binary_readable() {
        let (a, t) = split_args(r#""SET" "k\"ey" "\x00\xffok\n""#).unwrap();
        assert_eq!(a, vec!["SET", "k\"ey", "\u{0}\\xffok\n"]);
        assert!(!t);
        assert!(split_args(r#""open"#).is_none());
        assert!(split_args(r#"bare"#).is_none());
        assert!(split_args(r#""\x4""#).is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_ts("1700000000.123456"), Some(1_700_000_000_123_456));
        assert_eq!(parse_ts("1700000000.5"), Some(1_700_000_000_500_000));
        assert_eq!(parse_ts("99999999999999999.1"), None);
        assert_eq!(parse_ts("1.x"), None);
    }
}
