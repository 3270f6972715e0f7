//! mirage-config: the sensor's TOML configuration.
//!
//! Config is documentation: every field has a doc comment with its unit and
//! default, and `example.toml` (what `mirage init` writes, and the embedded
//! default `mirage sensor` runs with no flags) lists every key with the same
//! text. Tests keep the example, the defaults and the types in step.
//!
//! Errors are one line naming the file and the key, because the CLI prints
//! them as they are and exits 2.
#![forbid(unsafe_code)]

pub mod agent;
mod catchall;
mod elasticsearch;
mod error;
mod ftp;
mod http;
mod https;
mod limits;
mod mongodb;
mod mysql;
mod redis;
mod rsync;
mod sensor;
pub mod server;
mod ssh;
mod telnet;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use agent::{AGENT_EXAMPLE_TOML, AgentConfig};
pub use catchall::{CatchallBanner, CatchallConfig, CatchallMode, HANDOFF_SERVICES};
pub use elasticsearch::ElasticsearchConfig;
pub use error::ConfigError;
pub use ftp::{FTP_FLAVORS, FtpConfig, FtpCredential, FtpFile};
pub use http::{HTTP_FLAVORS, HttpConfig};
pub use https::HttpsConfig;
pub use limits::LimitsConfig;
pub use mongodb::{MongoCollection, MongoDatabase, MongodbConfig};
pub use mysql::{MYSQL_AUTH_PLUGINS, MysqlConfig, MysqlCredential};
pub use redis::{KeyspaceMode, RedisConfig};
pub use rsync::{
    RSYNC_AUTH_DIGESTS, RSYNC_MAX_FILE_SIZE, RsyncConfig, RsyncCredential, RsyncFile, RsyncModule,
};
pub use sensor::{QuarantineConfig, SensorConfig, ShipConfig};
pub use server::{SERVER_EXAMPLE_TOML, ServerConfig};
pub use ssh::{
    DEBIAN12_CIPHERS, DEBIAN12_HOST_KEYS, DEBIAN12_KEX, DEBIAN12_MACS, LoginCredential, SshConfig,
};
pub use telnet::{TelnetConfig, TelnetFlavor};

/// The annotated example configuration; equal to [`Config::default`].
pub const EXAMPLE_TOML: &str = include_str!("example.toml");

/// Service names `--service NAME=ADDR` accepts, in the order they start.
pub const SERVICE_NAMES: &[&str] = &[
    "redis",
    "mysql",
    "ftp",
    "rsync",
    "mongodb",
    "ssh",
    "telnet",
    "http",
    "elasticsearch",
    "https",
    "catchall",
];

/// Deserialize TOML `text` into any config type with the one-line error
/// style (`origin:line:col: key 'a.b': problem`). The agent's and the
/// server's configs use it, so every role reports mistakes the same way.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let de =
        toml::Deserializer::parse(text).map_err(|e| ConfigError::toml(origin, text, "", &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::toml(origin, text, &key, e.inner())
    })
}

/// Read a config file into a string, with the one-line error style.
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        origin: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The whole sensor configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Sensor identity and event output.
    pub sensor: SensorConfig,
    /// Limits applied by the listener harness to every service.
    pub limits: LimitsConfig,
    /// The emulated services.
    pub services: Services,
}

/// One section per emulated service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    /// Redis (RESP) honeypot.
    pub redis: RedisConfig,
    /// MySQL honeypot.
    pub mysql: MysqlConfig,
    /// FTP honeypot.
    pub ftp: FtpConfig,
    /// rsync daemon honeypot.
    pub rsync: RsyncConfig,
    /// MongoDB honeypot.
    pub mongodb: MongodbConfig,
    /// SSH honeypot.
    pub ssh: SshConfig,
    /// Telnet honeypot.
    pub telnet: TelnetConfig,
    /// HTTP honeypot (fake web site).
    pub http: HttpConfig,
    /// Elasticsearch REST API honeypot.
    pub elasticsearch: ElasticsearchConfig,
    /// All-port capture (every port the firewall diverts to it).
    pub catchall: CatchallConfig,
    /// HTTPS honeypot (the HTTP site behind TLS, certificates on the fly).
    pub https: HttpsConfig,
}

/// A service that listens on ports of its own: its name, whether it runs,
/// and its addresses.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints<'a> {
    /// The name `--service` and events use.
    pub name: &'static str,
    /// Whether it runs.
    pub enabled: bool,
    /// Addresses to listen on.
    pub listen: &'a [std::net::SocketAddr],
    /// Replacements for `listen` addresses that cannot be bound.
    pub fallback: &'a [std::net::SocketAddr],
}

/// [`Endpoints`], writable.
pub struct EndpointsMut<'a> {
    /// The name `--service` and events use.
    pub name: &'static str,
    /// Whether it runs.
    pub enabled: &'a mut bool,
    /// Addresses to listen on.
    pub listen: &'a mut Vec<std::net::SocketAddr>,
    /// Replacements for `listen` addresses that cannot be bound.
    pub fallback: &'a mut Vec<std::net::SocketAddr>,
}

/// Calls `$each!(name, field)` for every service with ports of its own
/// (all but the catch-all, which takes whatever the firewall diverts), so
/// the two views below list them once.
macro_rules! own_port_services {
    ($each:ident) => {
        [
            $each!("redis", redis),
            $each!("mysql", mysql),
            $each!("ftp", ftp),
            $each!("rsync", rsync),
            $each!("mongodb", mongodb),
            $each!("ssh", ssh),
            $each!("telnet", telnet),
            $each!("http", http),
            $each!("elasticsearch", elasticsearch),
            $each!("https", https),
        ]
    };
}

impl Services {
    /// Every service with ports of its own, in start order.
    pub fn endpoints(&self) -> [Endpoints<'_>; 10] {
        macro_rules! view {
            ($name:expr, $f:ident) => {
                Endpoints {
                    name: $name,
                    enabled: self.$f.enabled,
                    listen: &self.$f.listen,
                    fallback: &self.$f.fallback_listen,
                }
            };
        }
        own_port_services!(view)
    }

    /// [`Services::endpoints`], writable.
    pub fn endpoints_mut(&mut self) -> [EndpointsMut<'_>; 10] {
        macro_rules! view_mut {
            ($name:expr, $f:ident) => {
                EndpointsMut {
                    name: $name,
                    enabled: &mut self.$f.enabled,
                    listen: &mut self.$f.listen,
                    fallback: &mut self.$f.fallback_listen,
                }
            };
        }
        own_port_services!(view_mut)
    }
}

impl Config {
    /// Parse and validate TOML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, origin)?;
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
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_file(path)?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The embedded default (the example file).
    pub fn embedded() -> Config {
        Config::default()
    }

    /// Check values the types cannot: returns the dotted key and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.sensor
            .validate()
            .map_err(|(k, m)| (format!("sensor.{k}"), m))?;
        self.limits
            .validate()
            .map_err(|(k, m)| (format!("limits.{k}"), m))?;
        self.services
            .redis
            .validate()
            .map_err(|(k, m)| (format!("services.redis.{k}"), m))?;
        self.services
            .mysql
            .validate()
            .map_err(|(k, m)| (format!("services.mysql.{k}"), m))?;
        self.services
            .ftp
            .validate()
            .map_err(|(k, m)| (format!("services.ftp.{k}"), m))?;
        self.services
            .rsync
            .validate()
            .map_err(|(k, m)| (format!("services.rsync.{k}"), m))?;
        self.services
            .mongodb
            .validate()
            .map_err(|(k, m)| (format!("services.mongodb.{k}"), m))?;
        self.services
            .ssh
            .validate()
            .map_err(|(k, m)| (format!("services.ssh.{k}"), m))?;
        self.services
            .telnet
            .validate()
            .map_err(|(k, m)| (format!("services.telnet.{k}"), m))?;
        self.services
            .http
            .validate()
            .map_err(|(k, m)| (format!("services.http.{k}"), m))?;
        self.services
            .elasticsearch
            .validate()
            .map_err(|(k, m)| (format!("services.elasticsearch.{k}"), m))?;
        self.services
            .catchall
            .validate()
            .map_err(|(k, m)| (format!("services.catchall.{k}"), m))?;
        self.services
            .https
            .validate()
            .map_err(|(k, m)| (format!("services.https.{k}"), m))?;
        Ok(())
    }

    /// Run only the named services, each on the given address (the
    /// `--service NAME=ADDR` flags). Unknown names are an error.
    pub fn only_services(
        &mut self,
        wanted: &[(String, std::net::SocketAddr)],
    ) -> Result<(), String> {
        for (name, _) in wanted {
            if !SERVICE_NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "unknown service '{name}' (known: {})",
                    SERVICE_NAMES.join(", ")
                ));
            }
        }
        let pick = |name: &str| -> Vec<std::net::SocketAddr> {
            wanted
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .collect()
        };
        for ep in self.services.endpoints_mut() {
            let addrs = pick(ep.name);
            *ep.enabled = !addrs.is_empty();
            *ep.listen = addrs;
            ep.fallback.clear();
        }
        // The catch-all: TCP on the given address; UDP on the same address
        // when it is one (so `--service catchall=0.0.0.0:65530` captures both).
        let addrs = pick("catchall");
        self.services.catchall.enabled = !addrs.is_empty();
        self.services.catchall.udp_listen = addrs.clone();
        self.services.catchall.listen = addrs;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
