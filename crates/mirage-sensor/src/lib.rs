//! mirage-sensor: the honeypot side of mirage.
//!
//! One module per emulator (Redis, MySQL, HTTP, Elasticsearch; each implements
//! `mirage_net::Emulator`), the quarantine for uploaded files, the
//! event sinks, and [`run`], which turns a [`mirage_config::Config`] into
//! bound listeners, serves them until shutdown and flushes the sinks.
#![forbid(unsafe_code)]

pub mod elasticsearch;
pub mod http;
pub mod mysql;
pub mod quarantine;
pub mod redis;
pub mod runner;
pub mod sinks;

pub use runner::{RunningSensor, read_ship_key, start};
