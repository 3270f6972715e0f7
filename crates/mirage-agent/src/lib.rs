//! mirage-agent: what runs on a production host next to the real services.
//!
//! The agent watches the logs of real services (sshd, vsftpd, rsyncd, MySQL,
//! Redis), ships them to `mirage server`, and later enforces the decisions the
//! server pushes back. This first piece is the file source: a tailer that
//! follows log files across rotation, truncation and agent restarts without
//! losing or repeating a line, so that a brute force spread over a logrotate
//! is still seen whole by the server's sliding windows. [`output`] ships
//! records to the server as RFC 5424 syslog through a disk-backed queue.
#![forbid(unsafe_code)]
#![cfg(unix)]

pub mod output;
pub mod tail;

pub use tail::{AckToken, AsyncTailer, Line, ReadFrom, TailConfig, TailError, Tailer};
