//! `[sensor]`: identity and where events go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Sensor identity and event output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// Name written into every event's `sensor` field. Empty: the host name.
    pub name: String,
    /// Directory for `events-YYYY-MM-DD.jsonl` (UTC days) and stored data.
    /// Default `./mirage-data`.
    pub log_dir: PathBuf,
    /// Also write every event as a JSON line to standard output. Default false.
    pub stdout: bool,
    /// Events held in memory between sessions and the writer; when full,
    /// sessions wait (nothing is dropped). Default 8192.
    pub event_queue: usize,
    /// Seconds to let running sessions finish after SIGINT/SIGTERM before
    /// they are cut. Default 5.
    pub drain_timeout_secs: u64,
    /// Most bytes the event files may take together; past it the oldest
    /// are deleted (a `storage.evict` event says which). 0: no quota.
    /// Default 4294967296 (4 GiB).
    pub events_max_bytes: u64,
    /// Shipping events to `mirage server`.
    pub ship: ShipConfig,
    /// Where attackers' uploaded files are kept, and how much.
    pub quarantine: QuarantineConfig,
}

/// `[sensor.quarantine]`: files attackers upload (FTP STOR, rsync, scp…)
/// are stored by sha256 under `log_dir/quarantine/`, never executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Largest single file kept, in bytes; a larger upload is still hashed
    /// and recorded but not kept. Default 16 MiB.
    pub max_file_bytes: u64,
    /// Most bytes kept in all; once reached, new files are recorded by
    /// hash only. Default 1 GiB.
    pub max_total_bytes: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            max_file_bytes: 16 << 20,
            max_total_bytes: 1 << 30,
        }
    }
}

/// `[sensor.ship]`: ship the event files to the server's ingest endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipConfig {
    /// The server's ingest address, host:port. Empty: off.
    pub server: String,
    /// HMAC key file (at least 32 bytes).
    pub key_file: PathBuf,
    /// Most events per request. Default 500.
    pub batch_events: usize,
    /// Ship files already present at the very first start. Default false.
    pub backfill: bool,
    /// SHA-256 pin of the server's certificate (64 hex digits, `mirage
    /// server pin`): ship over TLS to exactly that server. Empty: plain
    /// HTTP, for a server with `[ingest] tls = false`.
    pub server_pin: String,
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            server: String::new(),
            key_file: PathBuf::new(),
            batch_events: 500,
            backfill: false,
            server_pin: String::new(),
        }
    }
}

impl ShipConfig {
    /// Whether shipping is on.
    pub fn enabled(&self) -> bool {
        !self.server.is_empty()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !self.enabled() {
            return Ok(());
        }
        if !self.server.contains(':') || self.server.contains('/') {
            return Err((
                "ship.server".into(),
                format!("'{}' is not host:port", self.server),
            ));
        }
        if self.key_file.as_os_str().is_empty() {
            return Err((
                "ship.key_file".into(),
                "is required when ship.server is set".into(),
            ));
        }
        let pin = self.server_pin.trim();
        if !pin.is_empty() && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err((
                "ship.server_pin".into(),
                "must be 64 hex digits (the output of `mirage server pin`)".into(),
            ));
        }
        if self.batch_events == 0 || self.batch_events > 10_000 {
            return Err((
                "ship.batch_events".into(),
                "must be between 1 and 10000".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            name: String::new(),
            log_dir: PathBuf::from("./mirage-data"),
            stdout: false,
            event_queue: 8192,
            drain_timeout_secs: 5,
            events_max_bytes: 4 << 30,
            ship: ShipConfig::default(),
            quarantine: QuarantineConfig::default(),
        }
    }
}

impl SensorConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.event_queue == 0 {
            return Err(("event_queue".into(), "must be at least 1".into()));
        }
        if self.log_dir.as_os_str().is_empty() {
            return Err(("log_dir".into(), "must not be empty".into()));
        }
        if self.events_max_bytes != 0 && self.events_max_bytes < 1 << 20 {
            return Err((
                "events_max_bytes".into(),
                "must be 0 (no quota) or at least 1048576 (1 MiB)".into(),
            ));
        }
        self.ship.validate()?;
        if self.quarantine.max_file_bytes > self.quarantine.max_total_bytes {
            return Err((
                "quarantine.max_file_bytes".into(),
                "must not exceed quarantine.max_total_bytes".into(),
            ));
        }
        Ok(())
    }

    /// The name to write into events: `name`, else the host name.
    pub fn effective_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "mirage".to_owned())
    }
}
