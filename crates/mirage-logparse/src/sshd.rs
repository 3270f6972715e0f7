//! OpenSSH `sshd` messages (also `sshd-session` and `sshd-auth`, the
//! per-connection programs of OpenSSH 9.8+, which log the same texts).
//!
//! The texts come from OpenSSH's sources: `auth.c` `auth_log()` writes
//! `"%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s"` (Accepted/Failed,
//! method, `/submethod`, `invalid user `, user, address, port, `: ` plus the
//! key type and fingerprint for keys); `auth2.c` writes `Invalid user %.100s
//! from %.100s port %d`; `auth.c` `auth_maxtries_exceeded()` writes
//! `maximum authentication attempts exceeded for %s%.100s from %.200s port
//! %d ssh2` (via `error()`, so with an `error: ` prefix on some builds);
//! `packet.c`/`sshd-session.c` write the `Connection closed by`,
//! `Disconnected from`, `Received disconnect from` and `Connection reset by`
//! lines, with ` [preauth]` appended by the privilege-separated child before
//! authentication. PAM's `pam_unix(sshd:auth): authentication failure; …
//! rhost=… user=…` lines and rsyslog's `message repeated N times: [ … ]`
//! reduction are handled too.
//!
//! The user name is attacker-chosen and may contain ` from `: the address is
//! taken after the *last* ` from `, where sshd's own text follows.

use std::net::IpAddr;
use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};

use mirage_core::AuthResult;

use crate::{LogRecord, MAX_REPEAT, MAX_USERNAME, RecordKind, Service, cap, parse_ip};

/// Parse one sshd message, appending records to `out`.
pub fn parse(line: &str, out: &mut Vec<LogRecord>) {
    if let Some(rest) = line.strip_prefix("message repeated ") {
        parse_repeated(rest, out);
        return;
    }
    parse_one(line, out);
}

fn parse_repeated(rest: &str, out: &mut Vec<LogRecord>) {
    let Some((n, inner)) = rest.split_once(" times: [") else {
        return;
    };
    let Ok(n) = n.parse::<u32>() else {
        return;
    };
    let inner = inner.strip_suffix(']').unwrap_or(inner).trim_start();
    let start = out.len();
    parse_one(inner, out);
    let produced = out.len() - start;
    if produced == 0 {
        return;
    }
    // rsyslog folded N identical lines into one: restore N records, but
    // no more than MAX_REPEAT: the count is the sender's word, and one
    // forged line must not become thousands of failures.
    for r in &mut out[start..] {
        r.repeat_claimed = Some(n);
    }
    for _ in 1..n.min(MAX_REPEAT) {
        for i in start..start + produced {
            let r = out[i].clone();
            out.push(r);
        }
    }
}

fn parse_one(line: &str, out: &mut Vec<LogRecord>) {
    let mut line = line;
    for p in ["error: ", "fatal: ", "info: "] {
        if let Some(r) = line.strip_prefix(p) {
            line = r;
        }
    }
    let (line, preauth) = match line.strip_suffix(" [preauth]") {
        Some(l) => (l, true),
        None => (line, false),
    };
    let before = out.len();
    let first = match memchr::memchr(b' ', line.as_bytes()) {
        Some(i) => &line[..i],
        None => line,
    };
    match first {
        "Failed" | "Accepted" => auth_log(line, out),
        "Invalid" => invalid_user(line, out),
        "maximum" => max_tries(line, out),
        "Connection" => connection(line, out),
        "Disconnected" => {
            if let Some(rest) = line.strip_prefix("Disconnected from ") {
                close_with_user(rest, &[], out);
            }
        }
        "Disconnecting" => {
            // `Disconnecting authenticating user root 1.2.3.4 port 22: Too
            // many authentication failures`
            if let Some(rest) = line.strip_prefix("Disconnecting ")
                && let Some((who, why)) = rest.split_once(": ")
            {
                let tags: &[&'static str] = if why.starts_with("Too many authentication failures") {
                    &["too_many_failures"]
                } else {
                    &[]
                };
                close_with_user(who, tags, out);
            }
        }
        "Received" => {
            if let Some(rest) = line.strip_prefix("Received disconnect from ")
                && let Some((ip, port, _)) = addr_port(rest)
            {
                out.push(close(ip, port, &[]));
            }
        }
        "Did" => {
            if let Some(rest) = line.strip_prefix("Did not receive identification string from ")
                && let Some((ip, port, _)) = addr_port(rest)
            {
                out.push(close(ip, port, &["no_ident"]));
            }
        }
        "Unable" => {
            if let Some(rest) = line.strip_prefix("Unable to negotiate with ")
                && let Some((ip, port, _)) = addr_port(rest)
            {
                out.push(close(ip, port, &["negotiation_failed"]));
            }
        }
        "banner" => {
            if let Some(rest) = line.strip_prefix("banner exchange: Connection from ")
                && let Some((ip, port, _)) = addr_port(rest)
            {
                out.push(close(ip, port, &["bad_banner"]));
            }
        }
        "Timeout" => timeout(line, out),
        "PAM" => pam_more(line, out),
        _ => {
            if line.starts_with("pam_unix(sshd:auth): authentication failure;") {
                pam_failure(line, Service::Ssh, out);
            }
        }
    }
    if preauth {
        for r in &mut out[before..] {
            r.tags.push("preauth");
            r.tags.sort_unstable();
        }
    }
}

/// `<ip> port <port>` at the start of `s`; returns the rest after the port.
pub(crate) fn addr_port(s: &str) -> Option<(IpAddr, Option<u16>, &str)> {
    let (ip, rest) = match memchr::memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let ip = parse_ip(ip)?;
    match rest.strip_prefix("port ") {
        Some(p) => {
            let end = p.bytes().take_while(u8::is_ascii_digit).count();
            let port = p[..end].parse::<u16>().ok()?;
            Some((ip, Some(port), &p[end..]))
        }
        None => Some((ip, None, rest)),
    }
}

/// `[invalid user ]NAME`.
fn user_part(s: &str) -> (String, bool) {
    let (name, invalid) = match s.strip_prefix("invalid user ") {
        Some(n) => (n, true),
        None => (s, false),
    };
    (cap(name, MAX_USERNAME).0, invalid)
}

/// The sshd text after the last ` from `: `IP port N[ ssh2][: extra]`.
fn split_from(s: &str) -> Option<(&str, IpAddr, Option<u16>, &str)> {
    static FROM: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b" from "));
    let i = FROM.rfind(s.as_bytes())?;
    let (ip, port, rest) = addr_port(&s[i + 6..])?;
    Some((&s[..i], ip, port, rest))
}

fn auth_log(line: &str, out: &mut Vec<LogRecord>) {
    let (result, rest) = if let Some(r) = line.strip_prefix("Failed ") {
        (AuthResult::Failure, r)
    } else if let Some(r) = line.strip_prefix("Accepted ") {
        (AuthResult::Success, r)
    } else {
        return;
    };
    static FOR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" for "));
    let Some(i) = FOR.find(rest.as_bytes()) else {
        return;
    };
    let (method, rest) = (&rest[..i], &rest[i + 5..]);
    if method.is_empty() || method.len() > 64 || method.bytes().any(|b| b == b' ') {
        return;
    }
    let method = match memchr::memchr(b'/', method.as_bytes()) {
        Some(j) => &method[..j],
        None => method,
    };
    let Some((user, ip, port, tail)) = split_from(rest) else {
        return;
    };
    let (username, invalid) = user_part(user);
    // `ssh2: RSA SHA256:…` for keys.
    let key_fingerprint = tail
        .strip_prefix(" ssh2: ")
        .and_then(|t| t.rsplit(' ').next())
        .filter(|f| f.starts_with("SHA256:") || f.starts_with("MD5:"))
        .map(|f| cap(f, 128).0);
    let mut r = LogRecord::new(
        Service::Ssh,
        ip,
        RecordKind::AuthAttempt {
            method: method.to_owned(),
            username: Some(username),
            password: None,
            key_fingerprint,
            result,
        },
    );
    r.src_port = port;
    if invalid {
        r.tags.push("invalid_user");
    }
    out.push(r);
}

fn invalid_user(line: &str, out: &mut Vec<LogRecord>) {
    let Some(rest) = line.strip_prefix("Invalid user ") else {
        return;
    };
    let Some((user, ip, port, _)) = split_from(rest) else {
        return;
    };
    let (username, _) = cap(user, MAX_USERNAME);
    let mut r = LogRecord::new(
        Service::Ssh,
        ip,
        RecordKind::Attack {
            technique: "ssh.invalid_user".into(),
            summary: "login attempted for a user that does not exist".into(),
            username: Some(username),
        },
    );
    r.src_port = port;
    out.push(r);
}

fn max_tries(line: &str, out: &mut Vec<LogRecord>) {
    let Some(rest) = line.strip_prefix("maximum authentication attempts exceeded for ") else {
        return;
    };
    let Some((user, ip, port, _)) = split_from(rest) else {
        return;
    };
    let (username, invalid) = user_part(user);
    let mut r = LogRecord::new(
        Service::Ssh,
        ip,
        RecordKind::Attack {
            technique: "ssh.max_auth_tries".into(),
            summary: "maximum authentication attempts exceeded".into(),
            username: Some(username),
        },
    );
    r.src_port = port;
    if invalid {
        r.tags.push("invalid_user");
    }
    out.push(r);
}

fn close(ip: IpAddr, port: Option<u16>, tags: &[&'static str]) -> LogRecord {
    let mut r = LogRecord::new(Service::Ssh, ip, RecordKind::SessionClose);
    r.src_port = port;
    r.tags.extend_from_slice(tags);
    r
}

/// `[authenticating user U |invalid user U |user U ]IP port N…`: the user
/// may contain spaces, so the address is the token before the last ` port `.
fn close_with_user(s: &str, tags: &[&'static str], out: &mut Vec<LogRecord>) {
    let (who, invalid) = if let Some(r) = s.strip_prefix("invalid user ") {
        (Some(r), true)
    } else if let Some(r) = s.strip_prefix("authenticating user ") {
        (Some(r), false)
    } else if let Some(r) = s.strip_prefix("user ") {
        (Some(r), false)
    } else {
        (None, false)
    };
    let addr = match who {
        None => s,
        Some(w) => {
            let Some(i) = w.rfind(" port ") else {
                return;
            };
            let Some(sp) = w[..i].rfind(' ') else {
                return;
            };
            &w[sp + 1..]
        }
    };
    if let Some((ip, port, _)) = addr_port(addr) {
        let mut r = close(ip, port, tags);
        if invalid {
            r.tags.push("invalid_user");
        }
        r.tags.sort_unstable();
        out.push(r);
    }
}

fn connection(line: &str, out: &mut Vec<LogRecord>) {
    if let Some(rest) = line.strip_prefix("Connection closed by ") {
        close_with_user(rest, &[], out);
    } else if let Some(rest) = line.strip_prefix("Connection reset by ") {
        close_with_user(rest, &[], out);
    } else if let Some(rest) = line.strip_prefix("Connection from ") {
        // `Connection from IP port N on IP port N rdomain ""` (LogLevel
        // VERBOSE and up).
        let Some((ip, port, tail)) = addr_port(rest) else {
            return;
        };
        let mut r = LogRecord::new(Service::Ssh, ip, RecordKind::SessionConnect);
        r.src_port = port;
        if let Some(local) = tail.strip_prefix(" on ")
            && let Some((dip, dport, _)) = addr_port(local)
        {
            r.dst_ip = Some(dip);
            r.dst_port = dport;
        }
        out.push(r);
    }
}

fn timeout(line: &str, out: &mut Vec<LogRecord>) {
    // `Timeout before authentication for IP port N` (older) or
    // `Timeout before authentication for connection from IP to IP, pid = N`
    // (9.8+).
    let Some(rest) = line.strip_prefix("Timeout before authentication for ") else {
        return;
    };
    let rest = rest.strip_prefix("connection from ").unwrap_or(rest);
    let (ip, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let Some(ip) = parse_ip(ip) else {
        return;
    };
    let port = rest
        .strip_prefix("port ")
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok());
    out.push(close(ip, port, &["timeout"]));
}

/// `key=value` from a PAM line's `; logname= uid=0 … rhost=IP  user=U` list.
fn pam_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut search = line;
    while let Some(i) = search.find(key) {
        let at_word_start = i == 0 || search.as_bytes()[i - 1] == b' ';
        let after = &search[i + key.len()..];
        if at_word_start {
            let v = after.split(' ').next().unwrap_or("");
            return (!v.is_empty()).then_some(v);
        }
        search = after;
    }
    None
}

/// `pam_unix(SERVICE:auth): authentication failure; … rhost=IP user=U`:
/// one `pam` failure. Shared with vsftpd, whose PAM lines look the same
/// (`ruser=` carries the name there when `user=` is absent).
pub(crate) fn pam_failure(line: &str, service: Service, out: &mut Vec<LogRecord>) -> bool {
    let Some(ip) = pam_field(line, "rhost=").and_then(parse_ip) else {
        return false;
    };
    let user = pam_field(line, "user=").or_else(|| pam_field(line, "ruser="));
    let r = LogRecord::new(
        service,
        ip,
        RecordKind::AuthAttempt {
            method: "pam".into(),
            username: user.map(|u| cap(u, MAX_USERNAME).0),
            password: None,
            key_fingerprint: None,
            result: AuthResult::Failure,
        },
    );
    out.push(r);
    true
}

/// `PAM 2 more authentication failures; logname= … rhost=IP  user=root`:
/// sshd's summary of PAM failures not logged one by one.
fn pam_more(line: &str, out: &mut Vec<LogRecord>) {
    let Some(rest) = line.strip_prefix("PAM ") else {
        return;
    };
    let Some((n, rest)) = rest.split_once(" more authentication failure") else {
        return;
    };
    let Ok(n) = n.parse::<u32>() else {
        return;
    };
    let start = out.len();
    if !pam_failure(rest, Service::Ssh, out) {
        return;
    }
    for _ in 1..n.min(MAX_REPEAT) {
        let r = out[start].clone();
        out.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        parse(line, &mut out);
        out.iter().map(LogRecord::to_json).collect()
    }

    #[test]
    fn user_with_from_cannot_spoof_the_address() {
        let r = one(
            "Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 10.0.0.9 port 51544 ssh2",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["src_ip"], "10.0.0.9");
        assert_eq!(r[0]["username"], "x from 6.6.6.6 port 22 ssh2");
    }

    #[test]
    fn repeated_expands() {
        let r = one(
            "message repeated 3 times: [ Failed password for root from 10.0.0.9 port 51544 ssh2]",
        );
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| r["repeat_claimed"] == 3));
        let r = one(
            "message repeated 4000000000 times: [ Failed password for root from 10.0.0.9 port 1 ssh2]",
        );
        assert_eq!(r.len(), MAX_REPEAT as usize);
        assert!(r.iter().all(|r| r["repeat_claimed"] == 4_000_000_000u32));
        assert!(
            one("message repeated x times: [ Failed password for root from 10.0.0.9 port 1 ssh2]")
                .is_empty()
        );
    }

    #[test]
    fn near_misses_are_ignored() {
        for l in [
            "Failed password for root from somehost port 22 ssh2",
            "Failed password for root",
            "Accepted",
            "Connection closed by",
            "Invalid user from",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0",
            "Server listening on 0.0.0.0 port 22.",
        ] {
            assert!(one(l).is_empty(), "{l}");
        }
    }
}
