//! [`LogRecord`]: what a parser found in one line, before host and time are
//! attached, and its mapping onto `mirage_core::Event`.
//!
//! Records use the schema's own vocabulary (`auth.attempt`, `session.connect`,
//! `session.close`, `command`, `attack`) so rules written for sensor events
//! also match log events. Where a log line says less than a sensor would
//! (no byte counts on a closed connection), the missing numbers are zero and
//! the event carries the tag `from_log`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use mirage_core::{
    AuthResult, BytesText, CloseReason, Event, EventKind, SCHEMA_VERSION, Transport,
};
use serde_json::{Map, Value, json};

/// The services the parsers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// OpenSSH `sshd` (and `sshd-session`/`sshd-auth` of OpenSSH 9.8+).
    Ssh,
    /// vsftpd, native log and PAM lines.
    Ftp,
    /// rsync daemon.
    Rsync,
    /// MySQL/MariaDB general query log.
    Mysql,
    /// Redis MONITOR output.
    Redis,
}

impl Service {
    /// Every service, in a fixed order.
    pub const ALL: [Service; 5] = [
        Service::Ssh,
        Service::Ftp,
        Service::Rsync,
        Service::Mysql,
        Service::Redis,
    ];

    /// The service name used in events (`ssh`, `ftp`, `rsync`, `mysql`,
    /// `redis`), the same names the sensor's emulators use.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Ftp => "ftp",
            Service::Rsync => "rsync",
            Service::Mysql => "mysql",
            Service::Redis => "redis",
        }
    }

    /// The service for a syslog APP-NAME (tag). The agent sends file sources
    /// with these names: `sshd`, `sshd-session`, `sshd-auth`, `vsftpd`,
    /// `rsyncd`/`rsync`, `mysqld`/`mariadbd`/`mysql-general`,
    /// `redis-monitor`/`redis`. Service names themselves (`ssh`, `ftp`, …)
    /// are accepted too.
    pub fn from_app_name(app: &str) -> Option<Service> {
        Some(match app {
            "sshd" | "sshd-session" | "sshd-auth" | "ssh" => Service::Ssh,
            "vsftpd" | "ftp" => Service::Ftp,
            "rsyncd" | "rsync" => Service::Rsync,
            "mysqld" | "mariadbd" | "mysql" | "mariadb" | "mysql-general" => Service::Mysql,
            "redis-monitor" | "redis" => Service::Redis,
            _ => return None,
        })
    }
}

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    /// A connection arrived (`session.connect`).
    SessionConnect,
    /// A connection ended (`session.close`); the log says nothing of bytes
    /// or duration.
    SessionClose,
    /// An authentication attempt (`auth.attempt`).
    AuthAttempt {
        /// `password`, `publickey`, `keyboard-interactive`, `none`,
        /// `hostbased`, or `pam` for PAM's own lines (which repeat what the
        /// daemon logs, so brute-force rules count one or the other).
        method: String,
        /// The user name tried (capped at [`crate::MAX_USERNAME`]).
        username: Option<String>,
        /// Password, where the log reveals one (vsftpd's anonymous e-mail).
        password: Option<String>,
        /// Key fingerprint (`SHA256:…`) for public key attempts.
        key_fingerprint: Option<String>,
        /// Accepted or rejected.
        result: AuthResult,
    },
    /// A command (`command`): FTP and Redis commands, SQL queries, rsync
    /// requests and transfers.
    Command {
        /// Lower-cased command name (`config`, `select`, `pull`, `upload`).
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// The command as one line, capped at [`crate::MAX_RAW`].
        raw: String,
        /// True when `raw` or an argument was cut.
        truncated: bool,
        /// True when the daemon reported the command failed.
        error: bool,
    },
    /// A recognised attack sign (`attack`), such as sshd's
    /// `maximum authentication attempts exceeded`.
    Attack {
        /// Dotted technique id (`ssh.max_auth_tries`, `ssh.invalid_user`).
        technique: String,
        /// One human line.
        summary: String,
        /// The user name involved, if any.
        username: Option<String>,
    },
}

impl RecordKind {
    /// The schema `kind` string.
    pub fn name(&self) -> &'static str {
        match self {
            RecordKind::SessionConnect => "session.connect",
            RecordKind::SessionClose => "session.close",
            RecordKind::AuthAttempt { .. } => "auth.attempt",
            RecordKind::Command { .. } => "command",
            RecordKind::Attack { .. } => "attack",
        }
    }
}

/// One normalised record from a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Which service logged it.
    pub service: Service,
    /// What happened.
    pub kind: RecordKind,
    /// The client's address (IPv4-mapped IPv6 normalised to IPv4).
    pub src_ip: IpAddr,
    /// The client's port, when the line says.
    pub src_port: Option<u16>,
    /// The server address the client reached, when the line says.
    pub dst_ip: Option<IpAddr>,
    /// The server port, when the line says.
    pub dst_port: Option<u16>,
    /// The line's own timestamp (Unix microseconds), when it carries a full
    /// one (Redis MONITOR, MySQL 8); otherwise the syslog header's time is
    /// the record's time.
    pub ts_micros: Option<i64>,
    /// Extra classification (`invalid_user`, `preauth`, `anonymous`,
    /// `transfer`, …), sorted, for events' `tags`.
    pub tags: Vec<&'static str>,
    /// For a record restored from rsyslog's `message repeated N times`,
    /// the N the line claimed (at most [`crate::MAX_REPEAT`] records are
    /// restored, whatever it claims).
    pub repeat_claimed: Option<u32>,
}

impl LogRecord {
    /// A record with no port, destination, own time or tags.
    pub fn new(service: Service, src_ip: IpAddr, kind: RecordKind) -> Self {
        LogRecord {
            service,
            kind,
            src_ip,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            ts_micros: None,
            tags: Vec::new(),
            repeat_claimed: None,
        }
    }

    /// The user name the record concerns, if any.
    pub fn username(&self) -> Option<&str> {
        match &self.kind {
            RecordKind::AuthAttempt { username, .. } | RecordKind::Attack { username, .. } => {
                username.as_deref()
            }
            _ => None,
        }
    }

    /// The record as one flat JSON object (the fixtures' expectation format):
    /// `service`, `kind`, `src_ip`, then the optional and kind-specific
    /// fields, absent ones left out.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("service".into(), json!(self.service.as_str()));
        m.insert("kind".into(), json!(self.kind.name()));
        m.insert("src_ip".into(), json!(self.src_ip.to_string()));
        if let Some(p) = self.src_port {
            m.insert("src_port".into(), json!(p));
        }
        if let Some(ip) = self.dst_ip {
            m.insert("dst_ip".into(), json!(ip.to_string()));
        }
        if let Some(p) = self.dst_port {
            m.insert("dst_port".into(), json!(p));
        }
        if let Some(t) = self.ts_micros {
            m.insert("ts_micros".into(), json!(t));
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), json!(self.tags));
        }
        if let Some(n) = self.repeat_claimed {
            m.insert("repeat_claimed".into(), json!(n));
        }
        match &self.kind {
            RecordKind::SessionConnect | RecordKind::SessionClose => {}
            RecordKind::AuthAttempt {
                method,
                username,
                password,
                key_fingerprint,
                result,
            } => {
                m.insert("method".into(), json!(method));
                if let Some(u) = username {
                    m.insert("username".into(), json!(u));
                }
                if let Some(p) = password {
                    m.insert("password".into(), json!(p));
                }
                if let Some(k) = key_fingerprint {
                    m.insert("key_fingerprint".into(), json!(k));
                }
                let r = match result {
                    AuthResult::Success => "success",
                    AuthResult::Failure => "failure",
                };
                m.insert("result".into(), json!(r));
            }
            RecordKind::Command {
                command,
                args,
                raw,
                truncated,
                error,
            } => {
                m.insert("command".into(), json!(command));
                if !args.is_empty() {
                    m.insert("args".into(), json!(args));
                }
                m.insert("raw".into(), json!(raw));
                if *truncated {
                    m.insert("truncated".into(), json!(true));
                }
                if *error {
                    m.insert("error".into(), json!(true));
                }
            }
            RecordKind::Attack {
                technique,
                summary,
                username,
            } => {
                m.insert("technique".into(), json!(technique));
                m.insert("summary".into(), json!(summary));
                if let Some(u) = username {
                    m.insert("username".into(), json!(u));
                }
            }
        }
        Value::Object(m)
    }

    /// The record as a schema event seen on `host` (the agent's host name,
    /// written to `sensor`). The time is the record's own when it has one,
    /// else `ts` (the syslog header's).
    pub fn to_event(&self, host: &str, ts: DateTime<Utc>) -> Event {
        let ts = self
            .ts_micros
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .unwrap_or(ts);
        let mut details = Map::new();
        if let Some(n) = self.repeat_claimed {
            details.insert("repeat_claimed".into(), json!(n));
        }
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len() + 1);
        tags.push("from_log".into());
        tags.extend(self.tags.iter().map(|t| (*t).to_owned()));
        let kind = match &self.kind {
            RecordKind::SessionConnect => EventKind::SessionConnect {},
            RecordKind::SessionClose => EventKind::SessionClose {
                duration_ms: 0,
                bytes_in: 0,
                bytes_out: 0,
                reason: CloseReason::ClientClosed,
            },
            RecordKind::AuthAttempt {
                method,
                username,
                password,
                key_fingerprint,
                result,
            } => EventKind::AuthAttempt {
                method: method.clone(),
                username: username.as_deref().map(BytesText::from),
                password: password.as_deref().map(BytesText::from),
                key_fingerprint: key_fingerprint.clone(),
                result: *result,
                details,
            },
            RecordKind::Command {
                command,
                args,
                raw,
                truncated,
                error,
            } => EventKind::Command {
                command: command.clone(),
                args: args.iter().map(|a| BytesText::from(a.as_str())).collect(),
                raw: BytesText::from(raw.as_str()),
                truncated: *truncated,
                error: *error,
                details,
            },
            RecordKind::Attack {
                technique,
                summary,
                username,
            } => {
                let mut evidence = details;
                if let Some(u) = username {
                    evidence.insert("username".into(), json!(u));
                }
                EventKind::Attack {
                    technique: technique.clone(),
                    summary: summary.clone(),
                    evidence,
                }
            }
        };
        Event {
            schema: SCHEMA_VERSION,
            id: mirage_core::new_id(),
            ts,
            sensor: host.to_owned(),
            service: self.service.as_str().to_owned(),
            transport: Transport::Tcp,
            src_ip: self.src_ip,
            src_port: self.src_port,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            session: None,
            tags,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_event_maps_kind_and_tags() {
        let mut r = LogRecord::new(
            Service::Ssh,
            "10.0.0.9".parse().unwrap(),
            RecordKind::AuthAttempt {
                method: "password".into(),
                username: Some("root".into()),
                password: None,
                key_fingerprint: None,
                result: AuthResult::Failure,
            },
        );
        r.src_port = Some(51544);
        r.tags = vec!["invalid_user"];
        let ts = DateTime::from_timestamp(1_795_259_374, 0).unwrap();
        let e = r.to_event("vm", ts);
        assert_eq!(e.service, "ssh");
        assert_eq!(e.sensor, "vm");
        assert_eq!(e.ts, ts);
        assert_eq!(e.tags, vec!["from_log", "invalid_user"]);
        assert_eq!(e.kind.name(), "auth.attempt");
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["username"], "root");
        assert_eq!(v["src_port"], 51544);
        // A record's own time wins.
        r.ts_micros = Some(1_700_000_000_123_456);
        assert_eq!(
            r.to_event("vm", ts).ts.timestamp_micros(),
            1_700_000_000_123_456
        );
    }
}
