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
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            name: String::new(),
            log_dir: PathBuf::from("./mirage-data"),
            stdout: false,
            event_queue: 8192,
            drain_timeout_secs: 5,
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
