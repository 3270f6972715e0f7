//! `mirage server`'s configuration: data directory, syslog receivers
//! (UDP/TCP/TLS), the sensor event ingest endpoint and the rules.
//!
//! `server.example.toml` is both the annotated example and the embedded
//! default; tests keep it equal to [`ServerConfig::default`] with every key
//! documented.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ConfigError, parse_toml, read_config_file};

/// The annotated example server configuration; equal to
/// [`ServerConfig::default`].
pub const SERVER_EXAMPLE_TOML: &str = include_str!("server.example.toml");

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data directory and retention.
    pub server: ServerSection,
    /// Syslog receivers.
    pub syslog: SyslogConfig,
    /// Sensor event ingest (HTTP).
    pub ingest: IngestConfig,
    /// Policy API for agents (HTTP).
    pub api: ApiConfig,
    /// Detection rules.
    pub rules: RulesConfig,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Directory for the database and state. Default `./mirage-data`.
    pub data_dir: PathBuf,
    /// Days to keep events, alerts and expired decisions; 0 keeps them
    /// forever. Default 30.
    pub retention_days: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            data_dir: PathBuf::from("./mirage-data"),
            retention_days: 30,
        }
    }
}

/// `[syslog]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Addresses receiving syslog over TCP and UDP. Default 0.0.0.0:514 and
    /// [::]:514.
    pub listen: Vec<SocketAddr>,
    /// Port tried when a listen port cannot be bound; 0 = none. Default 10514.
    pub fallback_port: u16,
    /// Receive over TCP. Default true.
    pub tcp: bool,
    /// Receive over UDP. Default true.
    pub udp: bool,
    /// Most TCP/TLS connections at once. Default 1024.
    pub max_connections: usize,
    /// Longest message, bytes. Default 65536.
    pub max_message_bytes: usize,
    /// Idle TCP connection timeout, seconds. Default 3600.
    pub idle_timeout_secs: u64,
    /// Syslog over TLS.
    pub tls: SyslogTlsConfig,
    /// Senders whose messages feed the rules (and so can make decisions):
    /// these CIDRs, the addresses enrolled agents authenticate from, and
    /// TLS clients with a certificate from `tls.client_ca_file`. Messages
    /// from others are stored, tagged `untrusted`, and decide nothing.
    /// Default loopback and the private ranges.
    pub trusted_sources: Vec<String>,
    /// Let messages over UDP (whose source address anyone can forge) feed
    /// the rules when they come from a trusted address. Default false.
    pub udp_decides: bool,
    /// Events one sender may add per second, on average; more are dropped
    /// and counted (one warning a minute). Default 2000.
    pub sender_events_per_sec: u32,
    /// Events one sender may add in a burst above that rate. Default 20000.
    pub sender_burst: u32,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            listen: vec![
                SocketAddr::from(([0, 0, 0, 0], 514)),
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 514)),
            ],
            fallback_port: 10514,
            tcp: true,
            udp: true,
            max_connections: 1024,
            max_message_bytes: 65536,
            idle_timeout_secs: 3600,
            tls: SyslogTlsConfig::default(),
            trusted_sources: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .map(String::from)
            .to_vec(),
            udp_decides: false,
            sender_events_per_sec: 2000,
            sender_burst: 20_000,
        }
    }
}

/// `[syslog.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogTlsConfig {
    /// TLS listen address; empty = off.
    pub listen: String,
    /// Certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
    /// Client CA (PEM); set = mutual TLS required.
    pub client_ca_file: PathBuf,
}

impl SyslogTlsConfig {
    /// The listen address, when TLS is on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// HTTP listen address; empty = off.
    pub listen: String,
    /// HMAC key file.
    pub key_file: PathBuf,
    /// Freshness window of signed requests, seconds. Default 300.
    pub max_skew_secs: u64,
    /// Serve ingest over TLS with the server's own certificate (the policy
    /// API's, made once in `<data_dir>/tls/`), which sensors pin
    /// (`[sensor.ship] server_pin`, printed by `mirage server pin`).
    /// Default true.
    pub tls: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: String::new(),
            key_file: PathBuf::new(),
            max_skew_secs: 300,
            tls: true,
        }
    }
}

impl IngestConfig {
    /// The listen address, when ingest is on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[api]`: the policy API agents enroll with and long-poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// HTTP listen address; empty = off.
    pub listen: String,
    /// Freshness window of signed requests, seconds. Default 300.
    pub max_skew_secs: u64,
    /// Longest a policy request is held open waiting for a change, seconds.
    /// Default 30.
    pub max_wait_secs: u64,
    /// Serve the API over TLS with the server's own certificate (made once
    /// in `<data_dir>/tls/`), pinned by agents through their enrollment
    /// token. Default true.
    pub tls: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: String::new(),
            max_skew_secs: 300,
            max_wait_secs: 30,
            tls: true,
        }
    }
}

impl ApiConfig {
    /// The listen address, when the API is on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rule file replacing the built-in pack; empty = built-in.
    pub file: PathBuf,
    /// Extra whitelist CIDRs.
    pub whitelist: Vec<String>,
    /// Seconds between rule file change checks. Default 2.
    pub reload_check_secs: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            file: PathBuf::new(),
            whitelist: Vec::new(),
            reload_check_secs: 2,
        }
    }
}

impl ServerConfig {
    /// Parse and validate TOML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ServerConfig, ConfigError> {
        let config: ServerConfig = parse_toml(text, origin)?;
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
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = read_config_file(path)?;
        ServerConfig::parse(&text, &path.display().to_string())
    }

    /// Check what the types cannot: returns the dotted key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_owned(), m.to_owned()));
        if self.server.data_dir.as_os_str().is_empty() {
            return err("server.data_dir", "must not be empty");
        }
        let s = &self.syslog;
        if s.max_connections == 0 {
            return err("syslog.max_connections", "must be at least 1");
        }
        if !(480..=16 * 1024 * 1024).contains(&s.max_message_bytes) {
            // RFC 5424 §6.1: receivers must accept 480 bytes.
            return err(
                "syslog.max_message_bytes",
                "must be between 480 and 16777216",
            );
        }
        if s.idle_timeout_secs == 0 {
            return err("syslog.idle_timeout_secs", "must be at least 1");
        }
        for c in &s.trusted_sources {
            let (a, l) = c.split_once('/').unwrap_or((c, "0"));
            if a.parse::<std::net::IpAddr>().is_err() || l.parse::<u8>().is_err() {
                return Err((
                    "syslog.trusted_sources".into(),
                    format!("'{c}' is not an address or CIDR"),
                ));
            }
        }
        if s.sender_events_per_sec == 0 || s.sender_burst == 0 {
            return err(
                "syslog.sender_events_per_sec",
                "sender_events_per_sec and sender_burst must be at least 1",
            );
        }
        if !s.tls.listen.is_empty() {
            if s.tls.listen_addr().is_none() {
                return err("syslog.tls.listen", "is not an address like 0.0.0.0:6514");
            }
            if s.tls.cert_file.as_os_str().is_empty() {
                return err(
                    "syslog.tls.cert_file",
                    "is required when syslog.tls.listen is set",
                );
            }
            if s.tls.key_file.as_os_str().is_empty() {
                return err(
                    "syslog.tls.key_file",
                    "is required when syslog.tls.listen is set",
                );
            }
        }
        if !self.ingest.listen.is_empty() {
            if self.ingest.listen_addr().is_none() {
                return err("ingest.listen", "is not an address like 127.0.0.1:8514");
            }
            if self.ingest.key_file.as_os_str().is_empty() {
                return err("ingest.key_file", "is required when ingest.listen is set");
            }
        }
        if !self.api.listen.is_empty() && self.api.listen_addr().is_none() {
            return err("api.listen", "is not an address like 0.0.0.0:8515");
        }
        if self.api.max_skew_secs == 0 {
            return err("api.max_skew_secs", "must be at least 1");
        }
        if !(1..=300).contains(&self.api.max_wait_secs) {
            return err("api.max_wait_secs", "must be between 1 and 300");
        }
        if self.ingest.max_skew_secs == 0 {
            return err("ingest.max_skew_secs", "must be at least 1");
        }
        for c in &self.rules.whitelist {
            if !is_cidr(c) {
                return Err((
                    "rules.whitelist".to_owned(),
                    format!("'{c}' is not an address or CIDR"),
                ));
            }
        }
        if self.rules.reload_check_secs == 0 {
            return err("rules.reload_check_secs", "must be at least 1");
        }
        Ok(())
    }
}

fn is_cidr(s: &str) -> bool {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    len.is_none_or(|l| l.parse::<u8>().is_ok_and(|l| l <= max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_the_default_and_documents_every_key() {
        let parsed = ServerConfig::parse(SERVER_EXAMPLE_TOML, "server.example.toml").unwrap();
        assert_eq!(parsed, ServerConfig::default());
        crate::tests::assert_example_documents(&ServerConfig::default(), SERVER_EXAMPLE_TOML);
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = ServerConfig::parse("[syslog]\nlisten = [\"nope\"]\n", "s.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("s.toml:2:"), "{s}");
        assert!(s.contains("syslog.listen"), "{s}");
        let e =
            ServerConfig::parse("[rules]\nwhitelist = [\"10.0.0.0/33\"]\n", "s.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.toml: key 'rules.whitelist': '10.0.0.0/33' is not an address or CIDR"
        );
        let e = ServerConfig::parse("[ingest]\nlisten = \"127.0.0.1:1\"\n", "s.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.toml: key 'ingest.key_file': is required when ingest.listen is set"
        );
    }
}
