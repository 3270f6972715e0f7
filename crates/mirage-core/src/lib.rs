//! mirage-core: the types every part of mirage shares.
//!
//! The event schema lives here because sensors produce it, the agent and the
//! server ship and store it, and `mirage report` reads it: one definition keeps
//! them from drifting. This crate does no I/O and depends on almost nothing.
#![forbid(unsafe_code)]

pub mod event;
pub mod policy;
pub mod request_auth;
pub mod text;

pub use event::{
    AuthResult, CloseReason, Event, EventKind, PayloadData, SCHEMA_VERSION, Transport,
};
pub use text::{BytesText, escape_bytes};

/// A new time-ordered identifier (UUID v7) for events and sessions.
///
/// v7 sorts by creation time, so ids double as a coarse ordering key in stores.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
