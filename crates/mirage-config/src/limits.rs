//! `[limits]`: what the listener harness enforces on every session.

use serde::{Deserialize, Serialize};

/// Connection and session limits (see `mirage_net::Limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most concurrent sessions per service; more wait in the kernel backlog.
    /// Default 10000.
    pub max_connections: usize,
    /// Most concurrent sessions from one source address; more are recorded as
    /// `session.reject` and closed. Default 256.
    pub max_connections_per_ip: usize,
    /// Seconds allowed before the client's first byte; 0 = no limit. Default 60.
    pub handshake_timeout_secs: u64,
    /// Seconds allowed without a byte from the client; 0 = no limit. Default 300.
    pub idle_timeout_secs: u64,
    /// Longest session in seconds; 0 = no limit. Default 3600.
    pub max_session_secs: u64,
    /// Most bytes read from one session before it is cut. Default 16777216 (16 MiB).
    pub session_byte_budget: u64,
    /// Seconds allowed for one reply to be written. Default 30.
    pub write_timeout_secs: u64,
    /// Most bytes all sessions of the sensor together may hold in their
    /// read buffers; past it, a session that wants more than 64 KiB is cut
    /// (`session.close` reason `memory_budget`). Default 268435456 (256 MiB).
    pub memory_budget: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            handshake_timeout_secs: 60,
            idle_timeout_secs: 300,
            max_session_secs: 3600,
            session_byte_budget: 16 * 1024 * 1024,
            write_timeout_secs: 30,
            memory_budget: 256 * 1024 * 1024,
        }
    }
}

impl LimitsConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        for (key, v) in [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("session_byte_budget", self.session_byte_budget),
            ("write_timeout_secs", self.write_timeout_secs),
        ] {
            if v == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        if self.memory_budget < 1024 * 1024 {
            return Err((
                "memory_budget".into(),
                "must be at least 1048576 (1 MiB)".into(),
            ));
        }
        Ok(())
    }
}
