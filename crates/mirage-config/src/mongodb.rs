//! `[services.mongodb]`: the MongoDB honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A fake collection and its documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoCollection {
    /// Collection name.
    pub name: String,
    /// Documents, each one relaxed Extended JSON object (`{"$oid": …}`,
    /// `{"$date": …}` and `{"$numberLong": …}` understood).
    #[serde(default)]
    pub documents: Vec<String>,
}

/// A fake database listed by `listDatabases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoDatabase {
    /// Database name.
    pub name: String,
    /// `sizeOnDisk` reported by `listDatabases`, in bytes.
    pub size_on_disk: u64,
    /// Its collections.
    #[serde(default)]
    pub collections: Vec<MongoCollection>,
}

/// MongoDB honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MongodbConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:27017` and `[::]:27017`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound; empty =
    /// no fallback. Default `0.0.0.0:37017` and `[::]:37017`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Server version (`MAJOR.MINOR.PATCH`) reported by `buildInfo`,
    /// `serverStatus` and `db.version()`; `maxWireVersion` follows it (6.0:
    /// 17, 7.0: 21). Default `6.0.19`.
    pub version: String,
    /// `buildInfo.gitVersion` (40 hex digits). The default is a made-up
    /// hash: set the real release's commit to match it exactly.
    pub git_version: String,
    /// Host name in `serverStatus` and `hostInfo`. Default `mongo01`.
    pub hostname: String,
    /// Largest message a client may send, in bytes; a longer declared length
    /// closes the connection as mongod does. Default 4194304 (4 MiB).
    pub max_message_bytes: u64,
    /// Most bytes of documents clients may add to the in-memory store (one
    /// per sensor, shared by all connections); past it, writes are answered
    /// but not kept. Default 16777216 (16 MiB).
    pub max_store_bytes: u64,
    /// Fake user databases (besides `admin`, `config` and `local`, which
    /// always exist).
    pub databases: Vec<MongoDatabase>,
}

impl Default for MongodbConfig {
    fn default() -> Self {
        let coll = |name: &str, docs: &[&str]| MongoCollection {
            name: name.into(),
            documents: docs.iter().map(|d| (*d).to_owned()).collect(),
        };
        MongodbConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:27017"), addr("[::]:27017")],
            fallback_listen: vec![addr("0.0.0.0:37017"), addr("[::]:37017")],
            version: "6.0.19".into(),
            git_version: "a8ff1b4b4d5fdb7cd7c5bb4b8b1b52d7e8a7e9c1".into(),
            hostname: "mongo01".into(),
            max_message_bytes: 4 * 1024 * 1024,
            max_store_bytes: 16 * 1024 * 1024,
            databases: vec![MongoDatabase {
                name: "shop".into(),
                size_on_disk: 180_224,
                collections: vec![
                    coll(
                        "customers",
                        &[
                            r#"{"_id": {"$oid": "65a1c2d3e4f5a6b7c8d9e0f1"}, "name": "Jane Wilson", "email": "jwilson@shop.example", "phone": "+1-555-0142", "created": {"$date": "2024-01-12T09:30:00Z"}}"#,
                            r#"{"_id": {"$oid": "65a1c2d3e4f5a6b7c8d9e0f2"}, "name": "Omar Haddad", "email": "ohaddad@shop.example", "phone": "+1-555-0178", "created": {"$date": "2024-02-03T14:05:00Z"}}"#,
                        ],
                    ),
                    coll(
                        "orders",
                        &[
                            r#"{"_id": {"$oid": "65b0e1f2a3b4c5d6e7f80911"}, "customer": "Jane Wilson", "total": 129.9, "status": "shipped"}"#,
                        ],
                    ),
                ],
            }],
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl MongodbConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        let parts: Vec<&str> = self.version.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err((
                "version".into(),
                format!("'{}' is not MAJOR.MINOR.PATCH", self.version),
            ));
        }
        if self.git_version.len() != 40 || !self.git_version.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(("git_version".into(), "must be 40 hex digits".into()));
        }
        if self.max_message_bytes < 1024 || self.max_message_bytes > 48_000_000 {
            return Err((
                "max_message_bytes".into(),
                "must be between 1024 and 48000000".into(),
            ));
        }
        for (i, db) in self.databases.iter().enumerate() {
            if db.name.is_empty()
                || db.name.len() > 63
                || db.name.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
            {
                return Err((
                    format!("databases[{i}].name"),
                    format!("'{}' is not a valid database name", db.name),
                ));
            }
            for (j, c) in db.collections.iter().enumerate() {
                if c.name.is_empty() || c.name.contains(['$', '\0']) {
                    return Err((
                        format!("databases[{i}].collections[{j}].name"),
                        format!("'{}' is not a valid collection name", c.name),
                    ));
                }
                for (k, d) in c.documents.iter().enumerate() {
                    match serde_json::from_str::<serde_json::Value>(d) {
                        Ok(serde_json::Value::Object(_)) => {}
                        _ => {
                            return Err((
                                format!("databases[{i}].collections[{j}].documents[{k}]"),
                                "must be a JSON object".into(),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The version as numbers.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        let mut it = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }

    /// `maxWireVersion` of the configured release.
    pub fn max_wire_version(&self) -> i32 {
        match self.version_tuple() {
            (0..=3, _, _) => 6,
            (4, 0, _) => 7,
            (4, 2, _) => 8,
            (4, _, _) => 9,
            (5, 0, _) => 13,
            (5, m, _) => 13 + m.min(3) as i32,
            (6, 0, _) => 17,
            (6, m, _) => 17 + m.min(3) as i32,
            (7, 0, _) => 21,
            (7, m, _) => 21 + m.min(3) as i32,
            _ => 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn wire_version_follows_version() {
        let mut c = super::MongodbConfig::default();
        assert_eq!(c.max_wire_version(), 17);
        c.version = "7.0.14".into();
        assert_eq!(c.max_wire_version(), 21);
        c.version = "4.4.29".into();
        assert_eq!(c.max_wire_version(), 9);
        c.version = "8.0.3".into();
        assert_eq!(c.max_wire_version(), 25);
    }

    #[test]
    fn errors_name_keys() {
        let e = Config::parse("[services.mongodb]\nversion = \"6\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.mongodb.version"), "{e}");
        let e = Config::parse(
            "[[services.mongodb.databases]]\nname = \"a.b\"\nsize_on_disk = 1\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("services.mongodb.databases[0].name"),
            "{e}"
        );
        let e = Config::parse(
            "[[services.mongodb.databases]]\nname = \"a\"\nsize_on_disk = 1\ncollections = [{ name = \"c\", documents = [\"[1]\"] }]\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("documents[0]"), "{e}");
    }

    #[test]
    fn only_services_picks_mongodb() {
        let mut c = Config::default();
        c.only_services(&[("mongodb".into(), "127.0.0.1:27018".parse().unwrap())])
            .unwrap();
        assert!(
            c.services.mongodb.enabled && !c.services.redis.enabled && !c.services.mysql.enabled
        );
        assert!(c.services.mongodb.fallback_listen.is_empty());
    }
}
