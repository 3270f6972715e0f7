//! MySQL/MariaDB general query log, with threads tracked across lines.
//!
//! The general log (`general_log = 1`) writes one line per command:
//! `TIME\tID COMMAND\tARGUMENT`, where TIME is MariaDB's `YYMMDD HH:MM:SS`
//! (written only when the second changes; otherwise two tabs) or MySQL
//! 5.7+'s RFC 3339 `2026-11-21T11:09:34.324895Z`, and ID is the thread
//! (connection) id, right-aligned. Only the `Connect` line names the client
//! (`root@10.0.0.9 on db using TCP/IP`, MariaDB also `… as anonymous on`),
//! so [`MysqlState`] remembers each thread's user and address and
//! attributes later `Query` lines to it. Failed logins are `Connect` lines
//! whose argument is the server's error text `Access denied for user
//! 'U'@'H' (using password: YES)`.
//!
//! Records: `session.connect` for a client's `Connect`; `auth.attempt`
//! failure for `Access denied`, and success once the thread issues its first
//! command after `Connect` (or quits without an error); `command` for
//! `Query` (name: the first SQL word, lower-cased; `raw`: the statement) and
//! `Init DB` (`use`). Socket clients (`localhost`) are recorded as
//! 127.0.0.1; clients logged by host name (no `skip-name-resolve`) have no
//! address and produce no record.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use mirage_core::AuthResult;

use crate::{LogRecord, MAX_RAW, MAX_USERNAME, RecordKind, Service, cap, parse_ip};

/// Most threads remembered; beyond it the oldest-connected is forgotten
/// (its later queries then produce no record).
pub const MAX_THREADS: usize = 4096;

#[derive(Debug, Clone)]
struct Thread {
    user: String,
    ip: IpAddr,
    /// Connected, outcome of authentication not yet seen.
    pending: bool,
    seq: u64,
}

/// Thread table of one server's general log.
#[derive(Debug, Default)]
pub struct MysqlState {
    threads: HashMap<u64, Thread>,
    /// (thread id, seq) in connect order; stale entries are skipped.
    order: VecDeque<(u64, u64)>,
    seq: u64,
}

impl MysqlState {
    /// Number of threads currently remembered.
    pub fn tracked_threads(&self) -> usize {
        self.threads.len()
    }

    /// Parse one general-log line, appending records to `out`.
    pub fn parse(&mut self, line: &str, out: &mut Vec<LogRecord>) {
        let (ts_micros, rest) = split_time(line);
        let rest = rest.trim_start_matches([' ', '\t']);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 20 {
            return;
        }
        let Ok(id) = rest[..digits].parse::<u64>() else {
            return;
        };
        let rest = &rest[digits..];
        if !rest.starts_with(' ') {
            return;
        }
        let rest = rest.trim_start_matches(' ');
        let (command, arg) = rest.split_once('\t').unwrap_or((rest, ""));
        let start = out.len();
        match command {
            "Connect" => self.connect(id, arg, out),
            "Quit" => {
                if let Some(t) = self.threads.remove(&id)
                    && t.pending
                {
                    out.push(auth(t.ip, &t.user, AuthResult::Success));
                }
            }
            "Query" | "Init DB" => {
                let Some(t) = self.threads.get_mut(&id) else {
                    return;
                };
                if t.pending {
                    t.pending = false;
                    out.push(auth(t.ip, &t.user, AuthResult::Success));
                }
                let ip = t.ip;
                let (raw, truncated) = cap(arg.trim(), MAX_RAW);
                let (name, args) = if command == "Init DB" {
                    ("use".to_owned(), vec![raw.clone()])
                } else {
                    (first_word(&raw), Vec::new())
                };
                if name.is_empty() {
                    return;
                }
                out.push(LogRecord::new(
                    Service::Mysql,
                    ip,
                    RecordKind::Command {
                        command: name,
                        args,
                        raw,
                        truncated,
                        error: false,
                    },
                ));
            }
            _ => {}
        }
        if let Some(ts) = ts_micros {
            for r in &mut out[start..] {
                r.ts_micros = Some(ts);
            }
        }
    }

    fn connect(&mut self, id: u64, arg: &str, out: &mut Vec<LogRecord>) {
        if let Some(denied) = arg.strip_prefix("Access denied for user '") {
            // `U'@'H' (using password: YES)`: U is the client's, H the
            // server's; anchor on the right.
            let d = denied
                .strip_suffix(" (using password: YES)")
                .or_else(|| denied.strip_suffix(" (using password: NO)"))
                .unwrap_or(denied);
            let Some(d) = d.strip_suffix('\'') else {
                return;
            };
            let Some(j) = d.rfind("'@'") else {
                return;
            };
            let Some(ip) = host_ip(&d[j + 3..]) else {
                return;
            };
            self.threads.remove(&id);
            out.push(auth(ip, &d[..j], AuthResult::Failure));
            return;
        }
        // `USER@HOST on DB using TCP/IP` / `USER@HOST as anonymous on DB`:
        // the first `@` followed by an address ends the user name.
        let mut found = None;
        for (i, _) in arg.match_indices('@') {
            let host = arg[i + 1..].split([' ', '\t']).next().unwrap_or("");
            if let Some(ip) = host_ip(host) {
                found = Some((&arg[..i], ip));
                break;
            }
        }
        let Some((user, ip)) = found else {
            return;
        };
        self.insert(
            id,
            Thread {
                user: cap(user, MAX_USERNAME).0,
                ip,
                pending: true,
                seq: 0,
            },
        );
        out.push(LogRecord::new(
            Service::Mysql,
            ip,
            RecordKind::SessionConnect,
        ));
    }

    fn insert(&mut self, id: u64, mut t: Thread) {
        self.seq += 1;
        t.seq = self.seq;
        self.threads.insert(id, t);
        self.order.push_back((id, self.seq));
        while self.threads.len() > MAX_THREADS {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.threads.get(&old).is_some_and(|t| t.seq == seq) {
                self.threads.remove(&old);
            }
        }
        // Stale order entries (threads that quit) are dropped once they
        // outnumber live ones, so `order` stays bounded too.
        if self.order.len() > 2 * MAX_THREADS {
            let threads = &self.threads;
            self.order
                .retain(|(id, seq)| threads.get(id).is_some_and(|t| t.seq == *seq));
        }
    }
}

fn host_ip(host: &str) -> Option<IpAddr> {
    if host == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    parse_ip(host)
}

fn auth(ip: IpAddr, user: &str, result: AuthResult) -> LogRecord {
    LogRecord::new(
        Service::Mysql,
        ip,
        RecordKind::AuthAttempt {
            method: "password".into(),
            username: Some(cap(user, MAX_USERNAME).0),
            password: None,
            key_fingerprint: None,
            result,
        },
    )
}

/// The first SQL keyword, lower-cased, after leading `/* … */` comments.
fn first_word(sql: &str) -> String {
    let mut s = sql.trim_start();
    while let Some(r) = s.strip_prefix("/*") {
        match r.find("*/") {
            Some(j) => s = r[j + 2..].trim_start(),
            None => return String::new(),
        }
    }
    s.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Split off the line's time: MariaDB `YYMMDD HH:MM:SS` (local time, not
/// returned: the syslog time is used) or RFC 3339 (returned).
fn split_time(line: &str) -> (Option<i64>, &str) {
    let b = line.as_bytes();
    if b.len() >= 15 && b[..6].iter().all(u8::is_ascii_digit) && b[6] == b' ' {
        // `%2d:` hours are space-padded (`241121  1:02:03`).
        let t = line[7..].trim_start_matches(' ');
        let end = t.find(['\t', ' ']).unwrap_or(t.len());
        if t[..end].bytes().filter(|&c| c == b':').count() == 2 {
            return (None, &t[end..]);
        }
        return (None, line);
    }
    if b.len() >= 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        let end = line.find(['\t', ' ']).unwrap_or(line.len());
        let ts = chrono::DateTime::parse_from_rfc3339(&line[..end])
            .ok()
            .map(|t| t.timestamp_micros());
        return (ts, &line[end..]);
    }
    (None, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_table_is_bounded() {
        let mut s = MysqlState::default();
        let mut out = Vec::new();
        for id in 0..(3 * MAX_THREADS as u64) {
            s.parse(
                &format!("\t\t{id} Connect\troot@10.0.0.9 on  using TCP/IP"),
                &mut out,
            );
            if id % 2 == 0 {
                s.parse(&format!("\t\t{id} Quit\t"), &mut out);
            }
        }
        assert!(s.tracked_threads() <= MAX_THREADS);
        assert!(s.order.len() <= 2 * MAX_THREADS + 1);
        // The newest thread is still known.
        let last = 3 * MAX_THREADS as u64 - 1;
        out.clear();
        s.parse(&format!("\t\t{last} Query\tselect 1"), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn times() {
        assert_eq!(
            split_time("241121 11:09:34\t  31 Connect").1,
            "\t  31 Connect"
        );
        assert_eq!(
            split_time("241121  1:09:34\t  31 Connect").1,
            "\t  31 Connect"
        );
        let (ts, rest) = split_time("2026-11-21T11:09:34.324895Z\t 31 Query\tx");
        assert_eq!(ts, Some(1_795_259_374_324_895));
        assert_eq!(rest, "\t 31 Query\tx");
    }

    #[test]
    fn words() {
        assert_eq!(first_word("/* c */ SELECT 1"), "select");
        assert_eq!(first_word("/* open"), "");
        assert_eq!(first_word("show databases"), "show");
    }
}
