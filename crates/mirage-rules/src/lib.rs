//! mirage-rules: the pure detection engine.
//!
//! Observations (sensor events and parsed log records) go in; alerts and
//! decisions (deceive / block / reflect an address for a TTL) come out.
//! Rules are TOML ([`config`]): what to match (service, kind, origin, field
//! regexes with the linear-time `regex` crate), what to count it by (any
//! tuple of fields), how many within a true sliding window of event times
//! ([`window`]), and what to decide. The engine ([`engine`]) does no I/O and
//! reads no clock, so it can be benchmarked and replayed; memory is bounded
//! per rule by an LRU cap on tracked keys and globally by a cap on active
//! decisions, so spoofed sources cannot grow it without limit.
//!
//! A built-in rule pack ([`BUILTIN_RULES`], `rules/builtin.toml`) covers the
//! seeds' detections: SSH brute force (same account and host, 5 failures in
//! 2 minutes; and per source), FTP, MySQL and Redis AUTH brute force, rsync
//! listing/upload/download, dangerous Redis commands, any contact with a
//! honeypot sensor, and port scans.
#![forbid(unsafe_code)]

pub mod cidr;
pub mod config;
pub mod engine;
pub mod observation;
pub mod window;

pub use config::{BUILTIN_RULES, DecisionType, Rule, RuleError, RuleSet, Severity, parse_duration};
pub use engine::{Alert, Decision, Engine, Outcome, Stats};
pub use observation::{Field, LogEvent, Observation, Origin};
