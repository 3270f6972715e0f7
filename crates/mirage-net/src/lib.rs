//! mirage-net: the one place that owns sockets.
//!
//! Emulators implement [`Emulator`] and see a [`Session`]: an accepted
//! connection with its addresses, byte counters, timeouts and an event
//! emitter. Everything that is the same for every honeypot lives here:
//! binding (IPv4 and IPv6), TLS upgrades and self-signed certificates
//! ([`tls`]), certificates issued on the fly per SNI by a local CA
//! ([`cert_authority`]), global and per-source connection caps, handshake
//! and idle timeouts, a per-session byte budget, a memory budget shared by
//! all sessions ([`memory_budget`]), graceful shutdown and the
//! `session.connect` / `session.close` events, and for the catch-all the
//! original destination of diverted traffic ([`divert`]) and the SYN probes
//! the firewall logs ([`nflog`]). This is the only crate that may use
//! `unsafe` (socket options the std API lacks; nix and socket2 wrap most).

pub mod cert_authority;
pub mod divert;
pub mod emit;
pub mod harness;
pub mod host;
pub mod limits;
pub mod memory_budget;
pub mod nflog;
pub mod pinned_tls;
pub mod rlimit;
pub mod session;
pub mod signed_post;
pub mod tls;

pub use cert_authority::CertAuthority;
pub use divert::{Datagram, Divert, DivertedUdp};
pub use emit::{EventRx, EventTx, event_channel};
pub use harness::{BoundListener, Harness, bind_diverted, bind_listener};
pub use limits::{ConnLimiter, Limits};
pub use memory_budget::MemoryBudget;
pub use pinned_tls::Pin;
pub use rlimit::raise_fd_limit;
pub use session::{Session, SessionEnd, Tap, envelope};

use async_trait::async_trait;

/// A protocol emulator driven by the harness, one call per connection.
///
/// The harness has already emitted `session.connect` and will emit
/// `session.close` with the reason derived from the returned value, so an
/// emulator only speaks its protocol and emits its own events (commands,
/// auth attempts, attacks) through [`Session::emit`].
#[async_trait]
pub trait Emulator: Send + Sync + 'static {
    /// Service name written into events (`redis`, `ssh`, …).
    fn service(&self) -> &str;

    /// Serve one connection until it ends. Return `Ok(())` when the emulator
    /// chose to close (e.g. QUIT), or the [`SessionEnd`] that stopped it
    /// (usually passed up from [`Session::read_some`] / [`Session::write_all`]).
    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd>;
}
