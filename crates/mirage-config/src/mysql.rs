//! `[services.mysql]`: the MySQL honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A user name and password the honeypot lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlCredential {
    /// User name, compared exactly.
    pub user: String,
    /// Password; "" accepts a login without a password.
    pub password: String,
}

/// MySQL honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:3306` and `[::]:3306`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound (port in
    /// use, or privileged); empty = no fallback. Default `0.0.0.0:13306` and
    /// `[::]:13306`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Server version string sent in the handshake and returned by
    /// `VERSION()`. A string containing `MariaDB` (e.g.
    /// `5.5.5-10.11.6-MariaDB-0+deb12u1`) makes the honeypot behave as
    /// MariaDB. Default `8.0.36`.
    pub version: String,
    /// `@@version_comment` (what the `mysql` client prints on login).
    /// Empty: the emulated flavour's usual text (`MySQL Community Server -
    /// GPL`, or `Debian 12` for MariaDB). Default empty.
    pub version_comment: String,
    /// Default authentication plugin, named in the handshake:
    /// `caching_sha2_password` or `mysql_native_password`. Empty: by
    /// version (caching_sha2_password from MySQL 8.0, mysql_native_password
    /// before and for MariaDB). Default empty.
    pub auth_plugin: String,
    /// Credentials that log in (the scramble is verified, as a real server
    /// does); everything else gets "Access denied". Default none.
    pub accept: Vec<MysqlCredential>,
    /// `@@hostname`. Default `db01`.
    pub hostname: String,
    /// Largest packet a client may send, in bytes; bigger gets MySQL's
    /// `ER_NET_PACKET_TOO_LARGE` and a close. Also `@@max_allowed_packet`.
    /// Default 4194304 (4 MiB).
    pub max_allowed_packet: u64,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:3306"), addr("[::]:3306")],
            fallback_listen: vec![addr("0.0.0.0:13306"), addr("[::]:13306")],
            version: "8.0.36".into(),
            version_comment: String::new(),
            auth_plugin: String::new(),
            accept: Vec::new(),
            hostname: "db01".into(),
            max_allowed_packet: 4 * 1024 * 1024,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The plugins the honeypot implements.
pub const MYSQL_AUTH_PLUGINS: &[&str] = &["caching_sha2_password", "mysql_native_password"];

impl MysqlConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        let v = self.version.as_bytes();
        if v.is_empty() || v.len() > 59 || !v[0].is_ascii_digit() || v.contains(&0) {
            return Err((
                "version".into(),
                format!(
                    "'{}' must start with a digit and be 1-59 bytes (no NUL)",
                    self.version
                ),
            ));
        }
        if !self.auth_plugin.is_empty() && !MYSQL_AUTH_PLUGINS.contains(&self.auth_plugin.as_str())
        {
            return Err((
                "auth_plugin".into(),
                format!(
                    "'{}' is not one of {}",
                    self.auth_plugin,
                    MYSQL_AUTH_PLUGINS.join(", ")
                ),
            ));
        }
        // A handshake packet and any reply must fit; 1 KiB is far below any
        // real client's first packet size worth emulating.
        if self.max_allowed_packet < 1024 || self.max_allowed_packet > 1 << 30 {
            return Err((
                "max_allowed_packet".into(),
                "must be between 1024 and 1073741824".into(),
            ));
        }
        Ok(())
    }

    /// True when the configured version imitates MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.version.contains("MariaDB")
    }

    /// The version's leading `MAJOR.MINOR.PATCH` numbers (MariaDB's `5.5.5-`
    /// compatibility prefix skipped); missing parts are 0.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        let v = self.version.strip_prefix("5.5.5-").unwrap_or(&self.version);
        let mut it = v
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }

    /// The default plugin in force (configured, else by version).
    pub fn effective_auth_plugin(&self) -> &str {
        if !self.auth_plugin.is_empty() {
            return &self.auth_plugin;
        }
        if !self.is_mariadb() && self.version_tuple() >= (8, 0, 4) {
            "caching_sha2_password"
        } else {
            "mysql_native_password"
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn plugin_and_flavour_follow_version() {
        let mut c = super::MysqlConfig::default();
        assert_eq!(c.effective_auth_plugin(), "caching_sha2_password");
        c.version = "5.7.44".into();
        assert_eq!(c.effective_auth_plugin(), "mysql_native_password");
        c.version = "5.5.5-10.11.6-MariaDB-0+deb12u1".into();
        assert!(c.is_mariadb());
        assert_eq!(c.version_tuple(), (10, 11, 6));
        assert_eq!(c.effective_auth_plugin(), "mysql_native_password");
        c.auth_plugin = "caching_sha2_password".into();
        assert_eq!(c.effective_auth_plugin(), "caching_sha2_password");
    }

    #[test]
    fn accept_list_and_errors_name_keys() {
        let c = Config::parse(
            "[services.mysql]\naccept = [{ user = \"root\", password = \"\" }]\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.services.mysql.accept[0].user, "root");
        let e =
            Config::parse("[services.mysql]\nauth_plugin = \"ed25519\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.mysql.auth_plugin"), "{e}");
        let e = Config::parse("[services.mysql]\nversion = \"x\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.mysql.version"), "{e}");
        let e =
            Config::parse("[services.mysql]\naccept = [{ user = \"a\" }]\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
    }

    #[test]
    fn only_services_picks_mysql() {
        let mut c = Config::default();
        c.only_services(&[("mysql".into(), "127.0.0.1:3307".parse().unwrap())])
            .unwrap();
        assert!(c.services.mysql.enabled && !c.services.redis.enabled);
        assert!(c.services.mysql.fallback_listen.is_empty());
    }
}
