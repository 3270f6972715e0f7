//! `mirage agent`'s configuration: identity, the syslog output to the
//! server, and the log sources to watch.
//!
//! `agent.example.toml` is both the annotated example and the embedded
//! default (what a Debian host needs: `/var/log/auth.log` as ssh, the vsftpd,
//! rsyncd and MariaDB general logs); tests keep it equal to
//! [`AgentConfig::default`] with every key documented.
//!
//! Sources are one flat table per `[[sources]]` entry with a `kind`, rather
//! than a tagged enum, so that a mistake inside an entry is reported with
//! its exact key and line (serde buffers tagged enums, which loses both);
//! [`AgentConfig::validate`] rejects keys that belong to another kind.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ConfigError, parse_toml, read_config_file};

/// The annotated example agent configuration; equal to
/// [`AgentConfig::default`].
pub const AGENT_EXAMPLE_TOML: &str = include_str!("agent.example.toml");

/// Longest source name: it names files in the state directory.
const MAX_SOURCE_NAME: usize = 64;
/// Longest agent id (it travels in every heartbeat).
pub const MAX_AGENT_ID: usize = 64;

/// Whether `id` can be an agent id: 1 to [`MAX_AGENT_ID`] letters, digits,
/// `.`, `_` or `-`. One rule for the agent's config, its stored id and the
/// server's policy API, so an id that ships logs can also enroll.
pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_AGENT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Identity, state and heartbeat.
    pub agent: AgentSection,
    /// Where records go.
    pub output: OutputConfig,
    /// The server's decisions, enforced here.
    pub policy: PolicyConfig,
    /// The logs to watch. A file without `[[sources]]` gets the default
    /// list; `sources = []` means none.
    pub sources: Vec<SourceConfig>,
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// This agent's id in heartbeats and policy requests (letters, digits,
    /// `.`, `_`, `-`; at most 64). Empty: a UUID generated on first start
    /// and kept in `state_dir/agent-id`. Default empty.
    pub id: String,
    /// Host name written into records that do not carry their own. Empty:
    /// the system host name. Default empty.
    pub hostname: String,
    /// Directory for checkpoints, the output queue and the agent id.
    /// Default `./mirage-agent-state`.
    pub state_dir: PathBuf,
    /// Seconds between heartbeats (health of every source, queue depth).
    /// Default 30.
    pub heartbeat_secs: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            id: String::new(),
            hostname: String::new(),
            state_dir: PathBuf::from("./mirage-agent-state"),
            heartbeat_secs: 30,
        }
    }
}

/// `[policy]`: enrollment with the server's policy API and what this host
/// enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The server's policy API, host:port. Empty: no enforcement.
    pub server: String,
    /// File holding the one-time enrollment token (`--enroll TOKEN` does the
    /// same). Needed only until the agent is enrolled.
    pub enroll_token_file: PathBuf,
    /// `honeypot`, `deception`, `reflect` or `firewall`. Default
    /// `deception`.
    pub mode: String,
    /// Local TCP ports and the honeypot standing in for each,
    /// `PORT=HOST:PORT`.
    pub redirect: Vec<String>,
    /// Source CIDRs never redirected or dropped.
    pub whitelist: Vec<String>,
    /// Local TCP ports never touched.
    pub whitelist_ports: Vec<u16>,
    /// Seconds the server may hold a policy request open. Default 25.
    pub wait_secs: u64,
    /// Sources never steered, whatever the server decides, besides those
    /// the agent finds itself (its own addresses, gateways, the servers,
    /// the SSH session it was started or enrolled from). Default [].
    pub protect: Vec<String>,
    /// Never steer RFC 1918 and unique-local (fc00::/7) sources. Default
    /// false (internal scanners are attackers too).
    pub protect_private: bool,
    /// Longest decision enforced, seconds; longer ones are cut to it (a
    /// forged or broken 10-year block then ends in a week). Default 604800.
    pub max_decision_ttl_secs: u64,
    /// The token given on the command line (`--enroll`); never written to
    /// or read from a file.
    #[serde(skip)]
    pub enroll_token: Option<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            server: String::new(),
            enroll_token_file: PathBuf::new(),
            mode: "deception".into(),
            redirect: Vec::new(),
            whitelist: Vec::new(),
            whitelist_ports: Vec::new(),
            wait_secs: 25,
            protect: Vec::new(),
            protect_private: false,
            max_decision_ttl_secs: 604_800,
            enroll_token: None,
        }
    }
}

impl PolicyConfig {
    /// Whether enforcement is on.
    pub fn enabled(&self) -> bool {
        !self.server.is_empty()
    }

    /// `redirect` entries as (port, honeypot address).
    pub fn redirects(&self) -> Result<Vec<(u16, String)>, String> {
        self.redirect
            .iter()
            .map(|r| {
                let (port, target) = r
                    .split_once('=')
                    .ok_or_else(|| format!("'{r}' is not PORT=HOST:PORT"))?;
                let port: u16 = port
                    .trim()
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("'{r}': bad port"))?;
                let target = target.trim();
                if target.parse::<std::net::SocketAddr>().is_err() {
                    return Err(format!("'{r}': the honeypot must be IP:PORT"));
                }
                Ok((port, target.to_owned()))
            })
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !self.server.is_empty() && !has_port(&self.server) {
            return Err((
                "policy.server".into(),
                format!("'{}' is not host:port", self.server),
            ));
        }
        if !["honeypot", "deception", "reflect", "firewall"].contains(&self.mode.as_str()) {
            return Err((
                "policy.mode".into(),
                format!(
                    "'{}' is not honeypot, deception, reflect or firewall",
                    self.mode
                ),
            ));
        }
        self.redirects()
            .map_err(|m| ("policy.redirect".to_owned(), m))?;
        for (key, list) in [
            ("policy.whitelist", &self.whitelist),
            ("policy.protect", &self.protect),
        ] {
            for c in list {
                let (a, l) = c.split_once('/').unwrap_or((c, "0"));
                if a.parse::<std::net::IpAddr>().is_err() || l.parse::<u8>().is_err() {
                    return Err((key.into(), format!("'{c}' is not an address or CIDR")));
                }
            }
        }
        if self.max_decision_ttl_secs == 0 {
            return Err((
                "policy.max_decision_ttl_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if !(1..=300).contains(&self.wait_secs) {
            return Err((
                "policy.wait_secs".into(),
                "must be between 1 and 300".into(),
            ));
        }
        Ok(())
    }
}

/// How records travel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputTransport {
    /// RELP over TCP: each record is acknowledged by the server once it is
    /// stored, and only then leaves the queue (`mirage server` detects RELP
    /// on its syslog TCP port; rsyslog needs `imrelp`).
    Relp,
    /// RELP inside TLS (see `[output.tls]`).
    RelpTls,
    /// TCP, RFC 6587 octet counting.
    Tcp,
    /// UDP, one datagram per record (best-effort).
    Udp,
    /// TLS over TCP (RFC 5425), octet counting.
    Tls,
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// `relp`, `relp_tls`, `tcp`, `udp` or `tls`. Default `relp`.
    pub transport: OutputTransport,
    /// The server's syslog address, `host:port` (resolved on every
    /// connect). Default `127.0.0.1:10514`.
    pub address: String,
    /// Largest encoded record, bytes; longer messages are cut and marked
    /// `trunc="LEN"`. Default 65536, the server's default frame limit.
    pub max_message: usize,
    /// TLS settings (`transport = "tls"`).
    pub tls: OutputTlsConfig,
    /// The on-disk queue that holds records while the server is away.
    pub queue: OutputQueueConfig,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            transport: OutputTransport::Relp,
            address: "127.0.0.1:10514".into(),
            max_message: 65536,
            tls: OutputTlsConfig::default(),
            queue: OutputQueueConfig::default(),
        }
    }
}

/// `[output.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputTlsConfig {
    /// PEM file of the CA certificate(s) the server's certificate must chain
    /// to. Required with `transport = "tls"`. Default empty.
    pub ca_file: PathBuf,
    /// PEM certificate chain presented to the server (mutual TLS); empty =
    /// none. Needs `key_file`. Default empty.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`. Default empty.
    pub key_file: PathBuf,
    /// Name the server's certificate must carry. Empty: the host part of
    /// `output.address`. Default empty.
    pub server_name: String,
}

/// `[output.queue]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputQueueConfig {
    /// Most bytes the queue takes on disk; when full the oldest records are
    /// dropped (and counted in heartbeats). Default 268435456 (256 MiB).
    pub max_bytes: u64,
}

impl Default for OutputQueueConfig {
    fn default() -> Self {
        OutputQueueConfig {
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Log files, followed across rotation.
    File,
    /// The systemd journal, through `journalctl -o json -f`.
    Journald,
    /// A Redis server's MONITOR stream.
    RedisMonitor,
}

impl SourceKind {
    /// The name used in the config and in heartbeats.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Journald => "journald",
            SourceKind::RedisMonitor => "redis_monitor",
        }
    }
}

/// The service whose log a source carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceService {
    /// OpenSSH sshd.
    Ssh,
    /// vsftpd.
    Ftp,
    /// rsync daemon.
    Rsync,
    /// MySQL/MariaDB (general query log).
    Mysql,
    /// Redis (MONITOR).
    Redis,
}

impl SourceService {
    /// The name used in the config and in heartbeats.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceService::Ssh => "ssh",
            SourceService::Ftp => "ftp",
            SourceService::Rsync => "rsync",
            SourceService::Mysql => "mysql",
            SourceService::Redis => "redis",
        }
    }
}

/// Where a source starts the first time it runs (no checkpoint yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Everything already there.
    Start,
    /// Only what is written from now on.
    End,
}

/// How the lines of a file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// Lines shaped like syslog file lines (`Nov 21 11:09:34 host
    /// sshd[1]: …` or with an RFC 3339 stamp) are split into host, program,
    /// pid, time and message; other lines are shipped whole as `service`.
    /// For `mysql` and `redis` this is `raw`: their logs are never syslog
    /// and carry client-chosen text at the start of continuation lines.
    Auto,
    /// Every line is a syslog file line; one that does not parse is shipped
    /// whole with no program name (the server stores but does not parse it).
    Syslog,
    /// Every line is shipped whole as `service` (`sshd -E`, vsftpd.log, the
    /// MySQL general log).
    Raw,
}

/// A string that never appears in `Debug` output (passwords).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// One `[[sources]]` entry. `name`, `kind` and `service` are required; the
/// other keys apply to the kinds their docs name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name (letters, digits, `.`, `_`, `-`; at most 64): names the
    /// source in heartbeats and its checkpoint in the state directory.
    pub name: String,
    /// `file`, `journald` or `redis_monitor`.
    pub kind: SourceKind,
    /// `ssh`, `ftp`, `rsync`, `mysql` or `redis`: the service the log
    /// belongs to, which picks the program name of lines that carry none
    /// (`sshd`, `vsftpd`, `rsyncd`, `mysql-general`, `redis-monitor`).
    pub service: SourceService,
    /// Run this source. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Longest line (file, redis_monitor) or journal MESSAGE (journald)
    /// kept, bytes; the rest is dropped. Default 65536.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// file: paths to follow; `*` and `?` allowed in the file name. A path
    /// that does not exist yet is waited for. Required for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<PathBuf>>,
    /// file: `auto`, `syslog` or `raw` (see [`LineFormat`]). Default `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LineFormat>,
    /// file, journald: `start` or `end`, where to begin the first time
    /// (later starts resume at the checkpoint; a file that appears later is
    /// always read from its start). Default `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_from: Option<StartAt>,
    /// journald: systemd units to follow (`journalctl -u`). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<String>>,
    /// journald: journal match expressions `FIELD=VALUE`
    /// (`SYSLOG_IDENTIFIER=sshd`); with `units`, entries must match a unit
    /// or an expression. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<String>>,
    /// journald: the journalctl program. Default `journalctl` (on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journalctl: Option<PathBuf>,
    /// journald: extra journalctl arguments, e.g. `["--directory",
    /// "/var/log/journal"]`. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journalctl_args: Option<Vec<String>>,
    /// redis_monitor: the Redis server, `host:port`. Default
    /// `127.0.0.1:6379`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// redis_monitor: ACL user for AUTH (Redis 6+); empty = none. Default
    /// empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// redis_monitor: password for AUTH; empty = no AUTH. Never logged.
    /// Default empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// journald, redis_monitor: longest wait between restarts of journalctl
    /// or reconnects to Redis, seconds (the wait doubles from 0.1 s up to
    /// this). Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_secs: Option<u64>,
}

fn yes() -> bool {
    true
}

fn default_max_line() -> usize {
    65536
}

impl SourceConfig {
    /// A source with the required keys and every other key at its default.
    pub fn new(name: &str, kind: SourceKind, service: SourceService) -> Self {
        SourceConfig {
            name: name.into(),
            kind,
            service,
            enabled: true,
            max_line_bytes: default_max_line(),
            paths: None,
            format: None,
            read_from: None,
            units: None,
            matches: None,
            journalctl: None,
            journalctl_args: None,
            address: None,
            username: None,
            password: None,
            retry_max_secs: None,
        }
    }

    /// Effective `paths`.
    pub fn paths(&self) -> &[PathBuf] {
        self.paths.as_deref().unwrap_or_default()
    }

    /// Effective `format`.
    pub fn format(&self) -> LineFormat {
        self.format.unwrap_or(LineFormat::Auto)
    }

    /// Effective `read_from`.
    pub fn read_from(&self) -> StartAt {
        self.read_from.unwrap_or(StartAt::End)
    }

    /// Effective `units`.
    pub fn units(&self) -> &[String] {
        self.units.as_deref().unwrap_or_default()
    }

    /// Effective `matches`.
    pub fn matches(&self) -> &[String] {
        self.matches.as_deref().unwrap_or_default()
    }

    /// Effective `journalctl`.
    pub fn journalctl(&self) -> &Path {
        self.journalctl
            .as_deref()
            .unwrap_or(Path::new("journalctl"))
    }

    /// Effective `journalctl_args`.
    pub fn journalctl_args(&self) -> &[String] {
        self.journalctl_args.as_deref().unwrap_or_default()
    }

    /// Effective `address`.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or("127.0.0.1:6379")
    }

    /// Effective `username` (empty = none).
    pub fn username(&self) -> &str {
        self.username.as_deref().unwrap_or_default()
    }

    /// Effective `password` (empty = none).
    pub fn password(&self) -> &str {
        self.password.as_ref().map_or("", |s| s.0.as_str())
    }

    /// Effective `retry_max_secs`.
    pub fn retry_max_secs(&self) -> u64 {
        self.retry_max_secs.unwrap_or(30)
    }

    /// The kind-specific keys that are set, with the kinds they belong to.
    fn set_keys(&self) -> Vec<(&'static str, &'static [SourceKind])> {
        use SourceKind::*;
        let mut out: Vec<(&'static str, &'static [SourceKind])> = Vec::new();
        let mut add = |set: bool, key, kinds| {
            if set {
                out.push((key, kinds));
            }
        };
        add(self.paths.is_some(), "paths", &[File]);
        add(self.format.is_some(), "format", &[File]);
        add(self.read_from.is_some(), "read_from", &[File, Journald]);
        add(self.units.is_some(), "units", &[Journald]);
        add(self.matches.is_some(), "matches", &[Journald]);
        add(self.journalctl.is_some(), "journalctl", &[Journald]);
        add(
            self.journalctl_args.is_some(),
            "journalctl_args",
            &[Journald],
        );
        add(self.address.is_some(), "address", &[RedisMonitor]);
        add(self.username.is_some(), "username", &[RedisMonitor]);
        add(self.password.is_some(), "password", &[RedisMonitor]);
        add(
            self.retry_max_secs.is_some(),
            "retry_max_secs",
            &[Journald, RedisMonitor],
        );
        out
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if self.name.is_empty()
            || self.name.len() > MAX_SOURCE_NAME
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            || self.name.starts_with('.')
        {
            return err(
                "name",
                format!(
                    "'{}' must be 1 to {MAX_SOURCE_NAME} letters, digits, '.', '_' or '-', not starting with '.'",
                    self.name
                ),
            );
        }
        for (key, kinds) in self.set_keys() {
            if !kinds.contains(&self.kind) {
                let names: Vec<String> = kinds
                    .iter()
                    .map(|k| format!("\"{}\"", k.as_str()))
                    .collect();
                return err(
                    key,
                    format!(
                        "only for kind = {}, not \"{}\"",
                        names.join(" or "),
                        self.kind.as_str()
                    ),
                );
            }
        }
        if self.max_line_bytes < 64 || self.max_line_bytes > 1024 * 1024 {
            return err(
                "max_line_bytes",
                "must be between 64 and 1048576".to_owned(),
            );
        }
        if self.retry_max_secs == Some(0) {
            return err("retry_max_secs", "must be at least 1".to_owned());
        }
        match self.kind {
            SourceKind::File => {
                if self.paths().is_empty() {
                    return err("paths", "a file source needs at least one path".to_owned());
                }
                for p in self.paths() {
                    if p.file_name().is_none() {
                        return err("paths", format!("'{}' is not a file path", p.display()));
                    }
                    // The tailer expands patterns in the file name only.
                    if p.parent()
                        .is_some_and(|d| d.to_string_lossy().contains(['*', '?']))
                    {
                        return err(
                            "paths",
                            format!(
                                "'{}': wildcards are only supported in the file name",
                                p.display()
                            ),
                        );
                    }
                }
            }
            SourceKind::Journald => {
                for m in self.matches() {
                    let field = m.split_once('=').map(|(f, _)| f).unwrap_or("");
                    let ok_field = !field.is_empty()
                        && field
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                    if !ok_field {
                        return err(
                            "matches",
                            format!("'{m}' is not FIELD=VALUE with an upper-case field name"),
                        );
                    }
                }
                if self
                    .units()
                    .iter()
                    .any(|u| u.is_empty() || u.starts_with('-'))
                {
                    return err(
                        "units",
                        "unit names must be non-empty and not start with '-'".to_owned(),
                    );
                }
                if self.journalctl().as_os_str().is_empty() {
                    return err("journalctl", "must not be empty".to_owned());
                }
            }
            SourceKind::RedisMonitor => {
                if !has_port(self.address()) {
                    return err("address", format!("'{}' is not host:port", self.address()));
                }
                if !self.username().is_empty() && self.password().is_empty() {
                    return err("username", "a username needs a password".to_owned());
                }
            }
        }
        Ok(())
    }
}

/// `host:port` with a numeric port (`[v6]:port` too).
fn has_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

impl Default for AgentConfig {
    /// What a Debian host needs: sshd through `/var/log/auth.log` (rsyslog),
    /// vsftpd's and rsyncd's own logs, MariaDB's general log. The journald
    /// alternative for sshd and the Redis MONITOR source are listed,
    /// disabled. Missing files are waited for, not errors.
    fn default() -> Self {
        use SourceKind::*;
        use SourceService::*;
        let file = |name: &str, service, path: &str, format| SourceConfig {
            paths: Some(vec![PathBuf::from(path)]),
            format: Some(format),
            read_from: Some(StartAt::End),
            ..SourceConfig::new(name, File, service)
        };
        let journal = SourceConfig {
            enabled: false,
            read_from: Some(StartAt::End),
            units: Some(vec!["ssh.service".into()]),
            matches: Some(Vec::new()),
            journalctl: Some(PathBuf::from("journalctl")),
            journalctl_args: Some(Vec::new()),
            retry_max_secs: Some(30),
            ..SourceConfig::new("ssh-journal", Journald, Ssh)
        };
        let redis = SourceConfig {
            enabled: false,
            address: Some("127.0.0.1:6379".into()),
            username: Some(String::new()),
            password: Some(Secret::default()),
            retry_max_secs: Some(30),
            ..SourceConfig::new("redis-monitor", RedisMonitor, Redis)
        };
        AgentConfig {
            agent: AgentSection::default(),
            output: OutputConfig::default(),
            policy: PolicyConfig::default(),
            sources: vec![
                file("auth", Ssh, "/var/log/auth.log", LineFormat::Syslog),
                journal,
                file("vsftpd", Ftp, "/var/log/vsftpd.log", LineFormat::Raw),
                file("rsyncd", Rsync, "/var/log/rsyncd.log", LineFormat::Raw),
                file("mysql", Mysql, "/var/log/mysql/mysql.log", LineFormat::Raw),
                redis,
            ],
        }
    }
}

impl AgentConfig {
    /// Parse and validate TOML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = parse_toml(text, origin)?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: origin.to_owned(),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Read, parse and validate the file at `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = read_config_file(path)?;
        AgentConfig::parse(&text, &path.display().to_string())
    }

    /// Check values the types cannot: returns the dotted key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let a = &self.agent;
        if !a.id.is_empty() && !valid_agent_id(&a.id) {
            return Err((
                "agent.id".into(),
                format!("at most {MAX_AGENT_ID} letters, digits, '.', '_' or '-'"),
            ));
        }
        if a.state_dir.as_os_str().is_empty() {
            return Err(("agent.state_dir".into(), "must not be empty".into()));
        }
        if a.heartbeat_secs == 0 {
            return Err(("agent.heartbeat_secs".into(), "must be at least 1".into()));
        }
        let o = &self.output;
        if !has_port(&o.address) {
            return Err((
                "output.address".into(),
                format!("'{}' is not host:port", o.address),
            ));
        }
        let max_msg = if o.transport == OutputTransport::Udp {
            65507
        } else {
            1024 * 1024
        };
        if o.max_message < 480 || o.max_message > max_msg {
            return Err((
                "output.max_message".into(),
                format!("must be between 480 and {max_msg} for this transport"),
            ));
        }
        // The queue drops whole segments, so it needs room for a few.
        let min_queue = 4 * (o.max_message as u64 + 8);
        if o.queue.max_bytes < min_queue.max(1024 * 1024) {
            return Err((
                "output.queue.max_bytes".into(),
                format!(
                    "must be at least {} (1 MiB and 4 records of max_message)",
                    min_queue.max(1024 * 1024)
                ),
            ));
        }
        let t = &o.tls;
        if matches!(o.transport, OutputTransport::Tls | OutputTransport::RelpTls)
            && t.ca_file.as_os_str().is_empty()
        {
            return Err((
                "output.tls.ca_file".into(),
                "required with transport = \"tls\" or \"relp_tls\"".into(),
            ));
        }
        if t.cert_file.as_os_str().is_empty() != t.key_file.as_os_str().is_empty() {
            let key = if t.cert_file.as_os_str().is_empty() {
                "output.tls.cert_file"
            } else {
                "output.tls.key_file"
            };
            return Err((key.into(), "cert_file and key_file go together".into()));
        }
        self.policy.validate()?;
        let mut names = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            s.validate()
                .map_err(|(k, m)| (format!("sources[{i}].{k}"), m))?;
            if !names.insert(s.name.as_str()) {
                return Err((
                    format!("sources[{i}].name"),
                    format!("'{}' is used by another source", s.name),
                ));
            }
        }
        Ok(())
    }

    /// The embedded default (the example file).
    pub fn embedded() -> AgentConfig {
        AgentConfig::default()
    }

    /// The configuration as TOML, passwords replaced by `<redacted>` (what
    /// `mirage agent --print-config` shows).
    pub fn to_toml_redacted(&self) -> String {
        let mut c = self.clone();
        for s in &mut c.sources {
            if let Some(p) = &mut s.password
                && !p.0.is_empty()
            {
                p.0 = "<redacted>".into();
            }
        }
        toml::to_string(&c).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }

    /// The host part of `output.address` (brackets of an IPv6 literal
    /// removed): the default TLS server name.
    pub fn output_host(&self) -> &str {
        let addr = self.output.address.as_str();
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn agent_ids_follow_the_policy_api_rule() {
        for ok in ["web-1", "host_2.example", "0193a1b2-c3d4"] {
            assert!(super::valid_agent_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!super::valid_agent_id(bad), "{bad}");
        }
        let e = super::AgentConfig::parse("[agent]\nid = \"web:1\"\n", "a.toml").unwrap_err();
        assert!(e.to_string().contains("agent.id"), "{e}");
    }

    use super::*;

    #[test]
    fn example_is_the_default() {
        let parsed = AgentConfig::parse(AGENT_EXAMPLE_TOML, "agent.example.toml").unwrap();
        assert_eq!(parsed, AgentConfig::default());
    }

    /// Dotted keys of a TOML value, array-of-tables elements as `name[]`.
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        let toml::Value::Table(t) = v else { return };
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(_) => keys(v, &path, out),
                toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
                    for e in a {
                        keys(e, &format!("{path}[]"), out);
                    }
                }
                _ => out.push(path),
            }
        }
    }

    /// Every key the types know appears in the example, and the first
    /// occurrence of each is preceded by a comment.
    #[test]
    fn example_lists_and_documents_every_key() {
        let mut from_types = Vec::new();
        keys(
            &toml::Value::try_from(AgentConfig::default()).unwrap(),
            "",
            &mut from_types,
        );
        // Every source key, not only those the default entries set.
        let mut all = SourceConfig::new("x", SourceKind::File, SourceService::Ssh);
        all.paths = Some(vec![]);
        all.format = Some(LineFormat::Raw);
        all.read_from = Some(StartAt::End);
        all.units = Some(vec![]);
        all.matches = Some(vec![]);
        all.journalctl = Some(PathBuf::new());
        all.journalctl_args = Some(vec![]);
        all.address = Some(String::new());
        all.username = Some(String::new());
        all.password = Some(Secret::default());
        all.retry_max_secs = Some(1);
        keys(
            &toml::Value::try_from(AgentConfig {
                sources: vec![all],
                ..AgentConfig::default()
            })
            .unwrap(),
            "",
            &mut from_types,
        );
        let mut from_example = Vec::new();
        keys(
            &toml::from_str(AGENT_EXAMPLE_TOML).unwrap(),
            "",
            &mut from_example,
        );
        from_types.sort();
        from_types.dedup();
        from_example.sort();
        from_example.dedup();
        assert_eq!(from_types, from_example);

        let lines: Vec<&str> = AGENT_EXAMPLE_TOML.lines().collect();
        let mut table = String::new();
        let mut seen = HashSet::new();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if let Some(name) = t.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
                table = format!("{name}[]");
                continue;
            }
            if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                table = name.to_owned();
                continue;
            }
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let key = t.split('=').next().unwrap_or("").trim();
            assert!(!key.is_empty(), "line {}: {t}", i + 1);
            if seen.insert(format!("{table}.{key}")) {
                assert!(
                    i > 0 && lines[i - 1].trim().starts_with('#'),
                    "undocumented key: {table}.{key} (line {})",
                    i + 1
                );
            }
        }
    }

    fn err(text: &str) -> String {
        let e = AgentConfig::parse(text, "a.toml").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err(
            "[[sources]]\nname = \"x\"\nkind = \"file\"\nservice = \"ssh\"\npaths = \"/var/log/auth.log\"\n",
        );
        assert!(e.starts_with("a.toml:5:"), "{e}");
        assert!(e.contains("key 'sources[0].paths'"), "{e}");
        let e = err("[[sources]]\nname = \"x\"\nkind = \"file\"\nservice = \"ssh\"\npathz = []\n");
        assert!(e.starts_with("a.toml:5:") && e.contains("pathz"), "{e}");
        let e = err("[[sources]]\nname = \"x\"\nkind = \"tape\"\nservice = \"ssh\"\n");
        assert!(
            e.starts_with("a.toml:3:") && e.contains("sources[0].kind"),
            "{e}"
        );
        let e = err("[output]\ntransport = \"tls\"\n");
        assert_eq!(
            e,
            "a.toml: key 'output.tls.ca_file': required with transport = \"tls\" or \"relp_tls\""
        );
    }

    #[test]
    fn keys_of_other_kinds_are_rejected() {
        let e = err(
            "[[sources]]\nname = \"x\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"/a\"]\nunits = [\"ssh.service\"]\n",
        );
        assert_eq!(
            e,
            "a.toml: key 'sources[0].units': only for kind = \"journald\", not \"file\""
        );
    }

    #[test]
    fn source_checks() {
        let base = "kind = \"file\"\nservice = \"ssh\"\npaths = [\"/a\"]\n";
        let e = err(&format!(
            "[[sources]]\nname = \"a\"\n{base}[[sources]]\nname = \"a\"\n{base}"
        ));
        assert!(
            e.contains("sources[1].name") && e.contains("another"),
            "{e}"
        );
        let e = err(&format!("[[sources]]\nname = \"../x\"\n{base}"));
        assert!(e.contains("sources[0].name"), "{e}");
        let e = err("[[sources]]\nname = \"a\"\nkind = \"file\"\nservice = \"ssh\"\n");
        assert!(e.contains("sources[0].paths"), "{e}");
        let e = err(
            "[[sources]]\nname = \"a\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"/var/*/x\"]\n",
        );
        assert!(e.contains("wildcards"), "{e}");
        let e = err(
            "[[sources]]\nname = \"j\"\nkind = \"journald\"\nservice = \"ssh\"\nmatches = [\"sshd\"]\n",
        );
        assert!(e.contains("sources[0].matches"), "{e}");
        let e = err(
            "[[sources]]\nname = \"r\"\nkind = \"redis_monitor\"\nservice = \"redis\"\naddress = \"localhost\"\n",
        );
        assert!(e.contains("sources[0].address"), "{e}");
        // A minimal journald and redis source are fine.
        AgentConfig::parse(
            "[[sources]]\nname = \"j\"\nkind = \"journald\"\nservice = \"ssh\"\n[[sources]]\nname = \"r\"\nkind = \"redis_monitor\"\nservice = \"redis\"\n",
            "a.toml",
        )
        .unwrap();
    }

    #[test]
    fn empty_sources_and_defaults() {
        let c = AgentConfig::parse("sources = []\n", "a.toml").unwrap();
        assert!(c.sources.is_empty());
        let c = AgentConfig::parse("[agent]\nheartbeat_secs = 5\n", "a.toml").unwrap();
        assert_eq!(c.sources, AgentConfig::default().sources);
        assert_eq!(c.output_host(), "127.0.0.1");
    }

    #[test]
    fn printed_config_parses_back_without_the_password() {
        let mut c = AgentConfig::default();
        c.sources[5].password = Some(Secret("hunter2".into()));
        let text = c.to_toml_redacted();
        assert!(!text.contains("hunter2"), "{text}");
        let back = AgentConfig::parse(&text, "printed").unwrap();
        assert_eq!(back.sources[5].password(), "<redacted>");
        assert_eq!(back.sources[..5], c.sources[..5]);
    }

    #[test]
    fn password_never_in_debug() {
        let mut s = SourceConfig::new("r", SourceKind::RedisMonitor, SourceService::Redis);
        s.password = Some(Secret("hunter2".into()));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.password(), "hunter2");
    }
}
