//! mirage-agent: what runs on a production host next to the real services.
//!
//! The agent watches the logs of real services (sshd, vsftpd, rsyncd, MySQL,
//! Redis) and ships them to `mirage server`; later it will also enforce the
//! decisions the server pushes back.
//!
//! * [`tail`]: a file tailer that follows log files across rotation,
//!   truncation and agent restarts without losing or repeating a line, so a
//!   brute force spread over a logrotate is still seen whole by the server's
//!   sliding windows;
//! * [`sources`]: the file, journald and Redis MONITOR sources, which turn
//!   what services log into records and report their health;
//! * [`output`]: records to the server as RFC 5424 syslog (TCP, TLS or UDP)
//!   through a crash-safe, disk-backed queue;
//! * [`policy_client`]: enrollment and the long poll of the server's
//!   policy API, handing snapshots and deltas to an enforcer;
//! * [`runner`]: [`run`] ties them together with a heartbeat.
#![forbid(unsafe_code)]
#![cfg(unix)]

pub mod enforcement;
pub mod firewall;
pub mod output;
pub mod policy_client;
pub mod runner;
pub mod sources;
pub mod tail;

pub use runner::{AgentError, run};
pub use tail::{AckToken, AsyncTailer, Line, ReadFrom, TailConfig, TailError, Tailer};
