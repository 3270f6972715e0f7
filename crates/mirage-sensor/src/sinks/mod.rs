//! Event sinks: where events go once emitted.
//!
//! One writer thread owns every output, so each event is written as one
//! whole line and lines from different sessions never interleave.

pub mod jsonl;
pub mod ship;

pub use jsonl::{EventWriter, WriterSettings, WriterStats};
