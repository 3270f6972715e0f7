//! `[services.redis]`: the Redis honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Whose keys a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyspaceMode {
    /// One keyspace for every client, like a real server: what one attacker
    /// writes, the next one finds.
    Shared,
    /// A separate keyspace per source address, so attackers cannot see each
    /// other's keys (or ransom notes).
    PerSource,
}

/// Redis honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:6379` and `[::]:6379`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound (port in
    /// use, or privileged); empty = no fallback. Default `0.0.0.0:16379` and
    /// `[::]:16379`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Redis version to imitate (`MAJOR.MINOR.PATCH`): replies, error texts,
    /// INFO and which commands exist follow it. Default `5.0.7`, a widely
    /// deployed release where `CONFIG SET dir` still works, so attack chains
    /// run to the end and are recorded.
    pub version: String,
    /// Password clients must send with AUTH; empty = no password, like a
    /// default install. Default empty.
    pub password: String,
    /// `shared` (one keyspace) or `per_source` (one per client address).
    /// Default `shared`.
    pub keyspace: KeyspaceMode,
    /// Most keys held across all keyspaces; writes beyond it are accepted
    /// (the reply is what Redis would say) but not stored. Default 10000.
    pub max_keys: usize,
    /// Most bytes of keys and values held across all keyspaces. Default
    /// 67108864 (64 MiB).
    pub max_keyspace_bytes: u64,
    /// Largest bulk string a client may send, in bytes; longer is Redis's
    /// `invalid bulk length` error. Default 8388608 (8 MiB).
    pub max_bulk_len: u64,
    /// Most elements in one multibulk request; more is Redis's
    /// `invalid multibulk length` error. Default 1048576.
    pub max_multibulk_len: u64,
    /// Working directory CONFIG GET dir reports until a client changes it
    /// (nothing is ever written there). Default `/var/lib/redis`, Debian's.
    pub dir: String,
    /// The `save` schedule CONFIG GET save reports. Default
    /// `3600 1 300 100 60 10000`, Redis 7's built-in default.
    pub save: String,
    /// The `os:` line of INFO (uname: system, release, machine). Default
    /// `Linux 5.15.0-105-generic x86_64`.
    pub os: String,
    /// Imitate a 7.x server started with `enable-protected-configs yes`, so
    /// CONFIG SET dir/dbfilename succeed and file-write chains run to the
    /// end. Default false, as Redis 7 ships. No effect before 7.0.
    pub protected_configs_allowed: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:6379"), addr("[::]:6379")],
            fallback_listen: vec![addr("0.0.0.0:16379"), addr("[::]:16379")],
            version: "5.0.7".into(),
            password: String::new(),
            keyspace: KeyspaceMode::Shared,
            max_keys: 10_000,
            max_keyspace_bytes: 64 * 1024 * 1024,
            max_bulk_len: 8 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            dir: "/var/lib/redis".into(),
            save: "3600 1 300 100 60 10000".into(),
            os: "Linux 5.15.0-105-generic x86_64".into(),
            protected_configs_allowed: false,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl RedisConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if parse_version(&self.version).is_none() {
            return Err((
                "version".into(),
                format!("'{}' is not MAJOR.MINOR.PATCH", self.version),
            ));
        }
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        if self.max_bulk_len == 0 || self.max_multibulk_len == 0 {
            return Err(("max_bulk_len".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// The configured version as numbers.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        parse_version(&self.version).unwrap_or((5, 0, 7))
    }
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let t = (it.next()??, it.next()??, it.next()??);
    if it.next().is_some() {
        return None;
    }
    Some(t)
}
