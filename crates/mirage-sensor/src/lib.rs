//! mirage-sensor: the honeypot side of mirage.
//!
//! One module per emulator (Redis, MySQL, FTP, rsync, MongoDB, SSH, Telnet,
//! HTTP, Elasticsearch; each implements `mirage_net::Emulator`), the
//! catch-all that receives every other port and hands recognised traffic to
//! them, the shell
//! emulator SSH and Telnet share, the quarantine for uploaded files, the
//! event sinks, and [`run`], which turns a [`mirage_config::Config`] into
//! bound listeners, serves them until shutdown and flushes the sinks.
#![forbid(unsafe_code)]

pub mod catchall;
pub mod elasticsearch;
pub mod ftp;
pub mod http;
pub mod https;
pub mod mongodb;
pub mod mysql;
pub mod quarantine;
pub mod redis;
pub mod rsync;
pub mod runner;
pub mod shell;
pub mod sinks;
pub mod ssh;
pub mod telnet;

pub use runner::{RunningSensor, read_ship_key, start};
