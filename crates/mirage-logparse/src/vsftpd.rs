//! vsftpd: its own log format (`vsftpd.log`, or the same text via syslog)
//! and PAM lines.
//!
//! vsftpd's `logging.c` (`vsf_log_do_log_vsftpd_format`) writes
//! `DATE [pid N] [USER] OK|FAIL ACTION: Client "ADDR"`, then
//! `, anon password "…"` for anonymous logins, `, "ARG"` (path or FTP
//! line), `, N bytes` and `, R.RRKbyte/sec` for transfers. `CONNECT`, `FTP
//! command` and `FTP response` have no OK/FAIL; the date is `%a %b %e
//! %H:%M:%S %Y`. With `listen_ipv6=YES` (Debian's default) IPv4 clients are
//! written `::ffff:1.2.3.4`; they are normalised to IPv4. PAM failures
//! (`pam_unix(vsftpd:auth): authentication failure; … ruser=U
//! rhost=ADDR`) become `pam` attempts, which repeat `FAIL LOGIN`.

use mirage_core::AuthResult;

use crate::{LogRecord, MAX_RAW, MAX_USERNAME, RecordKind, Service, cap, parse_ip};

/// Parse one vsftpd line, appending records to `out`.
pub fn parse(line: &str, out: &mut Vec<LogRecord>) {
    if line.starts_with("pam_unix(vsftpd:auth): authentication failure;") {
        crate::sshd::pam_failure(line, Service::Ftp, out);
        return;
    }
    // Skip the optional date: everything up to `[pid `.
    let Some(i) = line.find("[pid ") else {
        return;
    };
    let rest = &line[i + 5..];
    let Some((pid, rest)) = rest.split_once("] ") else {
        return;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    // `[USER] ACTION: Client "ADDR"…`. USER (and, after the address, the
    // argument) are client text and may contain `] ` or `: Client "`. The
    // daemon-written part is ACTION plus a valid address: try each
    // `: Client "` from the right and take the first that has both. Brute
    // force tools choose user names, so the right-most reading wins.
    let mut found = None;
    for (at, _) in rest.rmatch_indices(": Client \"") {
        let head = &rest[..at];
        let (user, action) = match head.strip_prefix('[') {
            Some(h) => match h.rfind("] ") {
                Some(j) => (Some(&h[..j]), &h[j + 2..]),
                None => continue,
            },
            None => (None, head),
        };
        if !is_action(action) {
            continue;
        }
        let Some((addr, tail)) = rest[at + 10..].split_once('"') else {
            continue;
        };
        if let Some(ip) = parse_ip(addr) {
            found = Some((user, action, ip, tail));
            break;
        }
    }
    let Some((user, action, ip, tail)) = found else {
        return;
    };
    let (ok, what) = if let Some(w) = action.strip_prefix("OK ") {
        (Some(true), w)
    } else if let Some(w) = action.strip_prefix("FAIL ") {
        (Some(false), w)
    } else {
        (None, action)
    };
    let username = user.map(|u| cap(u, MAX_USERNAME).0);
    // `, "ARG"`: a path or an FTP line; quotes inside are not escaped by
    // vsftpd, so take up to the last `"`.
    let arg = tail
        .strip_prefix(", \"")
        .and_then(|t| t.rfind('"').map(|j| &t[..j]));
    let kind = match (ok, what) {
        (None, "CONNECT") => RecordKind::SessionConnect,
        (Some(ok), "LOGIN") => {
            let password = tail
                .strip_prefix(", anon password \"")
                .and_then(|t| t.split('"').next())
                .map(|p| cap(p, MAX_USERNAME).0);
            RecordKind::AuthAttempt {
                method: "password".into(),
                username,
                password,
                key_fingerprint: None,
                result: if ok {
                    AuthResult::Success
                } else {
                    AuthResult::Failure
                },
            }
        }
        (Some(ok), "UPLOAD" | "DOWNLOAD" | "MKDIR") => {
            let command = match what {
                "UPLOAD" => "stor",
                "DOWNLOAD" => "retr",
                _ => "mkd",
            };
            let (path, truncated) = cap(arg.unwrap_or(""), MAX_RAW);
            RecordKind::Command {
                command: command.into(),
                raw: format!("{} {path}", command.to_ascii_uppercase()),
                args: vec![path],
                truncated,
                error: !ok,
            }
        }
        (None, "FTP command") => {
            let Some(line) = arg else {
                return;
            };
            let (raw, truncated) = cap(line, MAX_RAW);
            let mut parts = raw.splitn(2, ' ');
            let command = parts.next().unwrap_or("").to_ascii_lowercase();
            if command.is_empty() {
                return;
            }
            let args = parts.next().map(|a| vec![a.to_owned()]).unwrap_or_default();
            RecordKind::Command {
                command,
                args,
                raw,
                truncated,
                error: false,
            }
        }
        _ => return,
    };
    let mut r = LogRecord::new(Service::Ftp, ip, kind);
    if matches!(user, Some("ftp" | "anonymous")) {
        r.tags.push("anonymous");
    }
    out.push(r);
}

fn is_action(a: &str) -> bool {
    let w = a
        .strip_prefix("OK ")
        .or_else(|| a.strip_prefix("FAIL "))
        .unwrap_or(a);
    matches!(
        w,
        "CONNECT" | "LOGIN" | "UPLOAD" | "DOWNLOAD" | "MKDIR" | "FTP command" | "FTP response"
    ) || matches!(w, "DELETE" | "RMDIR" | "RENAME" | "CHMOD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_with_brackets_and_quotes() {
        let mut out = Vec::new();
        parse(
            "Sun Nov 21 11:09:34 2026 [pid 7] [a] b] FAIL LOGIN: Client \"::ffff:10.0.0.9\"",
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].username(), Some("a] b"));
        assert_eq!(out[0].src_ip.to_string(), "10.0.0.9");
    }

    #[test]
    fn garbage_is_ignored() {
        let mut out = Vec::new();
        for l in [
            "[pid x] CONNECT: Client \"1.2.3.4\"",
            "[pid 1] CONNECT: Client \"nope\"",
            "[pid 1] [u] OK LOGIN: Client \"1.2.3.4",
            "[pid 1] [u OK LOGIN: Client \"1.2.3.4\"",
            "[pid 1] FTP command: Client \"1.2.3.4\"",
        ] {
            parse(l, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }
}
