//! What differs between the servers the honeypot can imitate: MySQL 5.7,
//! MySQL 8.0 and MariaDB (chosen by the configured version string).
//!
//! Capability flags come from `send_server_handshake_packet` (MySQL:
//! `CLIENT_ALL_FLAGS` minus TLS, since the honeypot does not offer TLS;
//! bits appear with the release that introduced them) and from a capture of
//! Debian's mariadb-server 10.11 (which clears `CLIENT_LONG_PASSWORD` to say
//! "not MySQL" and puts its own capabilities in the reserved bytes).

use mirage_config::MysqlConfig;
use mirage_proto::mysql::caps;

use super::auth::Plugin;

/// The imitated server's fixed traits.
#[derive(Debug, Clone)]
pub struct Flavor {
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
    /// Numeric version.
    pub version: (u32, u32, u32),
    /// The handshake's version string.
    pub handshake_version: String,
    /// What `VERSION()` and `@@version` return (MariaDB drops its `5.5.5-`
    /// replication-compatibility prefix there).
    pub version_string: String,
    /// `@@version_comment`.
    pub version_comment: String,
    /// Capability flags offered.
    pub capabilities: u32,
    /// MariaDB's extended capabilities (reserved bytes of the handshake).
    pub mariadb_caps: Option<u32>,
    /// Default collation id in the handshake.
    pub charset: u8,
    /// Default collation's name and character set.
    pub collation: (&'static str, &'static str),
    /// Default authentication plugin.
    pub plugin: Plugin,
    /// `decimals` of string-valued expressions (`NOT_FIXED_DEC`).
    pub not_fixed_dec: u8,
    /// "MySQL" or "MariaDB", as error messages name it.
    pub product: &'static str,
}

impl Flavor {
    /// The flavour the configuration asks for.
    pub fn new(cfg: &MysqlConfig) -> Flavor {
        let mariadb = cfg.is_mariadb();
        let version = cfg.version_tuple();
        let plugin =
            Plugin::from_name(cfg.effective_auth_plugin().as_bytes()).unwrap_or(Plugin::Native);
        let comment = |default: &str| {
            if cfg.version_comment.is_empty() {
                default.to_owned()
            } else {
                cfg.version_comment.clone()
            }
        };
        if mariadb {
            return Flavor {
                mariadb,
                version,
                handshake_version: cfg.version.clone(),
                version_string: cfg
                    .version
                    .strip_prefix("5.5.5-")
                    .unwrap_or(&cfg.version)
                    .to_owned(),
                version_comment: comment("Debian 12"),
                // Captured from mariadb-server 10.11.19: 0x81fff7fe.
                capabilities: 0x81ff_f7fe,
                mariadb_caps: Some(0x1d),
                // Debian's 50-server.cnf: utf8mb4_general_ci.
                charset: 45,
                collation: ("utf8mb4_general_ci", "utf8mb4"),
                plugin,
                not_fixed_dec: 39,
                product: "MariaDB",
            };
        }
        let mut capabilities =
            !caps::SSL & !caps::SSL_VERIFY_SERVER_CERT & !caps::CAPABILITY_EXTENSION;
        let (charset, collation) = if version >= (8, 0, 0) {
            (255, ("utf8mb4_0900_ai_ci", "utf8mb4"))
        } else {
            (8, ("latin1_swedish_ci", "latin1"))
        };
        if version < (8, 0, 0) {
            capabilities &= !(caps::OPTIONAL_RESULTSET_METADATA | caps::ZSTD_COMPRESSION_ALGORITHM);
        }
        if version < (8, 0, 23) {
            capabilities &= !caps::QUERY_ATTRIBUTES;
        }
        if version < (8, 0, 27) {
            capabilities &= !caps::MULTI_FACTOR_AUTHENTICATION;
        }
        Flavor {
            mariadb,
            version,
            handshake_version: cfg.version.clone(),
            version_string: cfg.version.clone(),
            version_comment: comment("MySQL Community Server - GPL"),
            capabilities,
            mariadb_caps: None,
            charset,
            collation,
            plugin,
            not_fixed_dec: 31,
            product: "MySQL",
        }
    }

    /// A fresh scramble: MySQL's `generate_user_salt` (7-bit, never NUL or
    /// `$`), or MariaDB's printable `create_random_string`.
    pub fn scramble(&self) -> [u8; 20] {
        let mut s = [0u8; 20];
        rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut s);
        for b in &mut s {
            if self.mariadb {
                *b = 33 + *b % 94;
            } else {
                *b &= 0x7f;
                if *b == 0 || *b == b'$' {
                    *b += 1;
                }
            }
        }
        s
    }

    /// The text of ER_PARSE_ERROR for the statement text `near`.
    pub fn parse_error(&self, near: &[u8]) -> String {
        // `%-.80s`: at most 80 characters of what follows the error.
        let near = String::from_utf8_lossy(near);
        let near: String = near.chars().take(80).collect();
        format!(
            "You have an error in your SQL syntax; check the manual that corresponds to your {} server version for the right syntax to use near '{}' at line 1",
            self.product, near
        )
    }

    /// `ER_NOT_SUPPORTED_AUTH_MODE`'s text.
    pub fn not_supported_auth_mode(&self) -> String {
        format!(
            "Client does not support authentication protocol requested by server; consider upgrading {} client",
            self.product
        )
    }

    /// The clause ER_BAD_FIELD_ERROR names for a select list.
    pub fn field_list_clause(&self) -> &'static str {
        if self.mariadb && self.version >= (10, 11, 0) {
            "SELECT"
        } else {
            "field list"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_by_version() {
        let mut c = MysqlConfig::default();
        let f = Flavor::new(&c);
        // CLIENT_ALL_FLAGS without SSL and SSL_VERIFY_SERVER_CERT.
        assert_eq!(f.capabilities, 0x9fff_f7ff);
        assert_eq!(f.plugin, Plugin::CachingSha2);
        c.version = "5.7.44".into();
        assert_eq!(Flavor::new(&c).capabilities, 0x81ff_f7ff);
        c.version = "5.5.5-10.11.19-MariaDB-0+deb12u1".into();
        let f = Flavor::new(&c);
        assert_eq!(f.version_string, "10.11.19-MariaDB-0+deb12u1");
        assert_eq!(f.plugin, Plugin::Native);
        let s = f.scramble();
        assert!(s.iter().all(|b| (33..127).contains(b)));
    }
}
