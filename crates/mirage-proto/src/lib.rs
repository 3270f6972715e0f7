//! mirage-proto: codecs and parsers for the protocols mirage speaks.
//!
//! Pure functions over byte slices: no sockets, no tokio, no allocation ahead
//! of bytes actually received, a hard limit on every length, count and depth.
//! Attackers write the input, so every parser here has a fuzz target in
//! `fuzz/` and a property test beside it.
#![forbid(unsafe_code)]
pub mod detect;
pub mod ftp;
pub mod http;
pub mod mongodb;
pub mod mysql;
pub mod resp;
pub mod rsync;
pub mod sftp;
pub mod shell;
pub mod syslog;
pub mod telnet;
pub mod tls_hello;
