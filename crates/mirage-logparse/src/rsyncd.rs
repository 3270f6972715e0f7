//! rsync daemon (`rsyncd.log`, or the same text via syslog as `rsyncd`).
//!
//! Texts from rsync's `clientserver.c` and `authenticate.c`:
//! `connect from HOST (ADDR)`, `module-list request from HOST (ADDR)`,
//! `rsync allowed access on module M from HOST (ADDR)`, `rsync denied on
//! module M from HOST (ADDR)`, `unknown module 'M' tried from HOST (ADDR)`,
//! `auth failed on module M from HOST (ADDR) for USER: REASON` (and without
//! `for USER` for challenge errors), `rsync on|to REQUEST from
//! [USER@]HOST (ADDR)` (`on`: the daemon sends, the client downloads; `to`:
//! the client uploads). Transfer lines use the default `log format` `%o %h
//! [%a] %m (%u) %f %l`: `send|recv|del. HOST [ADDR] MODULE (USER) PATH
//! LEN`. File lines start with `YYYY/MM/DD HH:MM:SS [PID] `, which is
//! skipped.
//!
//! Records: `session.connect`; `command` with `list` (module listing),
//! `access` (module opened, `error` when denied or unknown), `pull`/`push`
//! (a download/upload request, argument: the module path), and
//! `download`/`upload`/`delete` for transferred files (arguments: module,
//! path, length); `auth.attempt` failures with method `password`.

use mirage_core::AuthResult;

use crate::{LogRecord, MAX_RAW, MAX_USERNAME, RecordKind, Service, cap, parse_ip};

/// Parse one rsyncd line, appending records to `out`.
pub fn parse(line: &str, out: &mut Vec<LogRecord>) {
    let line = skip_file_prefix(line);
    let first = line.split(' ').next().unwrap_or("");
    match first {
        "connect" => {
            if let Some(rest) = line.strip_prefix("connect from ")
                && let Some((_, ip)) = host_addr(rest)
            {
                out.push(LogRecord::new(
                    Service::Rsync,
                    ip,
                    RecordKind::SessionConnect,
                ));
            }
        }
        "module-list" => {
            if let Some(rest) = line.strip_prefix("module-list request from ")
                && let Some((_, ip)) = host_addr(rest)
            {
                out.push(command(ip, "list", vec![], false, false));
            }
        }
        "rsync" => rsync_line(line, out),
        "unknown" => {
            // `unknown module 'M' tried from HOST (ADDR)`: M is client text.
            if let Some(rest) = line.strip_prefix("unknown module '")
                && let Some(j) = rest.rfind("' tried from ")
                && let Some((_, ip)) = host_addr(&rest[j + 13..])
            {
                let (m, t) = cap(&rest[..j], MAX_RAW);
                out.push(command(ip, "access", vec![m], t, true));
            }
        }
        "auth" => auth_failed(line, out),
        "send" | "recv" | "del." => transfer(first, &line[first.len()..], out),
        _ => {}
    }
}

fn skip_file_prefix(line: &str) -> &str {
    // `2026/11/21 11:09:34 [1234] `
    let b = line.as_bytes();
    if b.len() > 21
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[19] == b' '
        && b[20] == b'['
        && let Some(j) = line[21..].find("] ")
    {
        return &line[21 + j + 2..];
    }
    line
}

/// `HOST (ADDR)` at the end of `s`: returns the host and the address.
fn host_addr(s: &str) -> Option<(&str, std::net::IpAddr)> {
    let s = s.strip_suffix(')')?;
    let j = s.rfind(" (")?;
    Some((&s[..j], parse_ip(&s[j + 2..])?))
}

fn command(
    ip: std::net::IpAddr,
    name: &str,
    args: Vec<String>,
    truncated: bool,
    error: bool,
) -> LogRecord {
    let mut raw = name.to_owned();
    for a in &args {
        raw.push(' ');
        raw.push_str(a);
    }
    LogRecord::new(
        Service::Rsync,
        ip,
        RecordKind::Command {
            command: name.into(),
            args,
            raw,
            truncated,
            error,
        },
    )
}

fn rsync_line(line: &str, out: &mut Vec<LogRecord>) {
    if let Some(rest) = line
        .strip_prefix("rsync allowed access on module ")
        .map(|r| (r, false))
        .or_else(|| {
            line.strip_prefix("rsync denied on module ")
                .map(|r| (r, true))
        })
    {
        let (rest, denied) = rest;
        // The module name comes from the daemon's config: no ` from ` in it
        // that matters; split at the last one anyway.
        if let Some(j) = rest.rfind(" from ")
            && let Some((_, ip)) = host_addr(&rest[j + 6..])
        {
            let (m, t) = cap(&rest[..j], MAX_RAW);
            out.push(command(ip, "access", vec![m], t, denied));
        }
        return;
    }
    let (name, rest) = if let Some(r) = line.strip_prefix("rsync on ") {
        ("pull", r)
    } else if let Some(r) = line.strip_prefix("rsync to ") {
        ("push", r)
    } else {
        return;
    };
    // REQUEST is the client's path: split at the last ` from `.
    let Some(j) = rest.rfind(" from ") else {
        return;
    };
    let Some((who, ip)) = host_addr(&rest[j + 6..]) else {
        return;
    };
    let (request, t) = cap(&rest[..j], MAX_RAW);
    let mut r = command(ip, name, vec![request], t, false);
    if let Some((user, _)) = who.split_once('@') {
        r.tags.push("authenticated");
        let _ = user;
    }
    out.push(r);
}

fn auth_failed(line: &str, out: &mut Vec<LogRecord>) {
    let Some(rest) = line.strip_prefix("auth failed on module ") else {
        return;
    };
    let Some(j) = rest.find(" from ") else {
        return;
    };
    let rest = &rest[j + 6..];
    // `HOST (ADDR) for USER: REASON` or `HOST (ADDR): REASON`.
    let Some(open) = rest.find(" (") else {
        return;
    };
    let Some(close) = rest[open..].find(')') else {
        return;
    };
    let Some(ip) = parse_ip(&rest[open + 2..open + close]) else {
        return;
    };
    let tail = &rest[open + close + 1..];
    let username = tail.strip_prefix(" for ").map(|u| {
        // The reason is rsync's text after the last `: `.
        let u = match u.rfind(": ") {
            Some(k) => &u[..k],
            None => u,
        };
        cap(u, MAX_USERNAME).0
    });
    out.push(LogRecord::new(
        Service::Rsync,
        ip,
        RecordKind::AuthAttempt {
            method: "password".into(),
            username,
            password: None,
            key_fingerprint: None,
            result: AuthResult::Failure,
        },
    ));
}

/// `%o %h [%a] %m (%u) %f %l` after the operation word.
fn transfer(op: &str, rest: &str, out: &mut Vec<LogRecord>) {
    let Some(open) = rest.find(" [") else {
        return;
    };
    let Some(close) = rest[open..].find("] ") else {
        return;
    };
    let Some(ip) = parse_ip(&rest[open + 2..open + close]) else {
        return;
    };
    let rest = &rest[open + close + 2..];
    let Some((module, rest)) = rest.split_once(" (") else {
        return;
    };
    let Some((_user, rest)) = rest.split_once(") ") else {
        return;
    };
    // PATH may contain spaces; LEN is the last token.
    let (path, len) = match rest.rsplit_once(' ') {
        Some((p, l)) if l.bytes().all(|b| b.is_ascii_digit()) && !l.is_empty() => (p, l),
        _ => (rest, ""),
    };
    let name = match op {
        "send" => "download",
        "recv" => "upload",
        _ => "delete",
    };
    let (path, t) = cap(path, MAX_RAW);
    let mut args = vec![module.to_owned(), path];
    if !len.is_empty() {
        args.push(len.to_owned());
    }
    let mut r = command(ip, name, args, t, false);
    r.tags.push("transfer");
    out.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_skipped() {
        assert_eq!(
            skip_file_prefix("2026/11/21 11:09:34 [1234] connect from x (1.2.3.4)"),
            "connect from x (1.2.3.4)"
        );
        assert_eq!(skip_file_prefix("connect"), "connect");
    }

    #[test]
    fn hostile_paths() {
        let mut out = Vec::new();
        parse(
            "rsync on data/x from y (6.6.6.6) from host (10.0.0.9)",
            &mut out,
        );
        assert_eq!(out[0].src_ip.to_string(), "10.0.0.9");
        parse("send host [nope] data () f 1", &mut out);
        parse("auth failed on module", &mut out);
        parse("auth failed on module m from h (10.0.0.9", &mut out);
        assert_eq!(out.len(), 1);
    }
}
