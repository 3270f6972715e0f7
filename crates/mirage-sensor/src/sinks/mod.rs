//! Event sinks: where events go once emitted.
//!
//! One writer thread owns every output, so each event is written as one
//! whole line and lines from different sessions never interleave.

pub mod jsonl;

pub use jsonl::{EventWriter, WriterStats};
