//! mirage-server: where logs and sensor events become decisions.
//!
//! ```text
//! agents, rsyslog, logger ──syslog UDP/TCP/TLS──> receiver ─┐
//! sensors ──signed HTTP (NDJSON events)──────────> ingest ───┤ bounded channel
//!                                                            v
//!                pipeline: dedupe by record id ─> parse (mirage-logparse) ─> rules (mirage-rules)
//!                                                            │
//!                          store (mirage-store): events, alerts, decisions + change log, agents
//! ```
//!
//! * [`receiver`]: syslog listeners. TCP and TLS share one connection loop
//!   that detects octet counting or LF framing per message; UDP takes one
//!   message per datagram. Receivers wait when the pipeline is behind, so
//!   TCP senders (agents with their disk queues, rsyslog with its action
//!   queue) are slowed down instead of losing messages.
//! * [`ingest`]: the HTTP endpoint sensors ship events to, HMAC-signed with
//!   replay protection ([`mirage_core::request_auth`]).
//! * [`pipeline`]: the single task that owns the parsers and the rule
//!   engine, so rules see one ordered stream and need no locks.
//! * [`rules_file`]: loads the rule pack and reloads it on change, keeping
//!   the running rules when a new file is broken.
//! * [`heartbeat`]: agent heartbeats carried in the syslog stream.
#![forbid(unsafe_code)]

pub mod heartbeat;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod pipeline;
pub mod policy;
pub mod receiver;
pub mod retention;
pub mod rules_file;
pub mod sender_budget;
pub mod server;
pub mod signed_http;
pub mod stats;
pub mod steer;
pub mod store_health;
pub mod tls;

pub use server::{RunningServer, ServerError, start};
pub use stats::ServerStats;
