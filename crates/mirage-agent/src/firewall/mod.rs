//! Enforcement: the server's decisions turned into nftables state on this
//! host, in the four modes of issue 4 (honeypot, deception, reflect,
//! firewall).
//!
//! * [`policy`]: the snapshot and delta the server sends ([`Policy`],
//!   [`Delta`]), parsed into address types, and validated;
//! * [`state`]: pure bookkeeping of what is enforced, so a delta becomes the
//!   exact element batch to run;
//! * [`render`]: pure nft text (one `table inet mirage`, static chains,
//!   named sets with per-element timeouts; never one rule per address);
//! * [`nft`]: the [`Nft`] backend that runs `nft -f -` (one process per
//!   transaction, atomic), flushes conntrack optionally, and removes the
//!   table;
//! * [`guard`]: decisions never enforced (own addresses, gateways, the
//!   servers, the management session, the whitelist, non-unicast) and the
//!   cap on their length;
//! * [`hits`]: reads back which connections were steered, for the server;
//! * [`divert`]: the sensor host's `mirage firewall` table, which sends
//!   every port to the catch-all (not part of the agent's enforcement).
//!
//! The policy client drives it:
//!
//! ```no_run
//! # fn demo(snapshot: mirage_agent::firewall::Policy, delta: mirage_agent::firewall::Delta)
//! # -> Result<(), mirage_agent::firewall::FirewallError> {
//! use mirage_agent::firewall::{Nft, NftConfig};
//! let mut nft = Nft::new(NftConfig::default())?;
//! println!("{}", nft.render(&snapshot, std::time::SystemTime::now())?); // --dry-run
//! nft.apply_snapshot(&snapshot)?;   // first contact, or after a gap
//! nft.apply_delta(&delta)?;         // each long-poll answer
//! nft.remove()?;                    // clean exit
//! # Ok(()) }
//! ```
//!
//! See `docs/firewall.md` for the rules, their order and the limits.

pub mod divert;
pub mod guard;
pub mod hits;
pub mod nft;
pub mod policy;
pub mod render;
pub mod state;

pub use nft::{ApplyReport, FirewallError, Nft, NftConfig};
pub use policy::{
    Action, Cidr, Decision, DecisionType, DeletedDecision, Delta, Mode, Policy, PolicyError,
    PortSpec, Proto, Service, Whitelist,
};
