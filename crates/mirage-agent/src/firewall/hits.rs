//! Reading back which connections the table steered.
//!
//! The ruleset notes every steered connection in a dynamic set
//! (`hits_<action>_<family>`, see [`super::render`]): source, the address
//! and port it aimed at, and the protocol. [`HitLister`] lists those sets
//! with `nft -j`, and [`HitTracker`] turns the listings into "new since the
//! last look", so each (source, destination, port) is reported once per
//! element lifetime however often the sets are read.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::FirewallError;
use super::nft::{refused, run};
use super::policy::{Action, Proto};
use super::render::hits_set_name;

/// One steered connection, as the kernel noted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    /// What was done to it.
    pub action: Action,
    /// The source.
    pub src: IpAddr,
    /// The address it was sent to before the steering (this host's).
    pub dst: IpAddr,
    /// Its transport protocol.
    pub proto: Proto,
    /// The port it was sent to before the steering.
    pub port: u16,
}

/// Lists the `hits_*` sets of one table.
#[derive(Debug, Clone)]
pub struct HitLister {
    pub(super) nft: Vec<OsString>,
    pub(super) table: String,
    pub(super) timeout: Duration,
}

impl HitLister {
    /// Every noted connection with the seconds its note has left. Fails
    /// when the table is not there (yet).
    pub fn list(&self) -> Result<Vec<(Hit, u64)>, FirewallError> {
        let mut all = Vec::new();
        for action in [Action::Deceive, Action::Reflect, Action::Block] {
            for v6 in [false, true] {
                let mut args = self.nft.clone();
                args.extend(["-j", "list", "set", "inet"].map(OsString::from));
                args.push(self.table.clone().into());
                args.push(hits_set_name(action, v6).into());
                let out = run(&args, None, self.timeout)?;
                if !out.status.success() {
                    return Err(refused(&out));
                }
                parse_listing(&out.stdout, action, &mut all);
            }
        }
        Ok(all)
    }
}

/// Add the elements of one `nft -j list set` output to `out`. Elements that
/// do not have the expected shape are skipped (there are none in a table
/// this agent wrote).
pub fn parse_listing(json: &[u8], action: Action, out: &mut Vec<(Hit, u64)>) {
    let Ok(doc) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Some(items) = doc.get("nftables").and_then(Value::as_array) else {
        return;
    };
    for item in items {
        let Some(elems) = item.pointer("/set/elem").and_then(Value::as_array) else {
            continue;
        };
        for e in elems {
            // With timeouts each element is {"elem": {"val": ..., "expires": n}}.
            let (val, expires) = match e.get("elem") {
                Some(inner) => (
                    inner.get("val").unwrap_or(inner),
                    inner.get("expires").and_then(Value::as_u64).unwrap_or(0),
                ),
                None => (e, 0),
            };
            if let Some(hit) = hit_of(val, action) {
                out.push((hit, expires));
            }
        }
    }
}

fn hit_of(val: &Value, action: Action) -> Option<Hit> {
    let parts = val.get("concat")?.as_array()?;
    let [src, dst, proto, port] = parts.as_slice() else {
        return None;
    };
    let proto = match proto.as_str()? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let port = match port {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(Hit {
        action,
        src: src.as_str()?.parse().ok()?,
        dst: dst.as_str()?.parse().ok()?,
        proto,
        port,
    })
}

/// Remembers what was reported, to report only new notes.
#[derive(Debug, Default)]
pub struct HitTracker {
    /// Each reported note and when (ms, caller's clock) it expires.
    seen: HashMap<Hit, u64>,
}

impl HitTracker {
    /// Take a listing made at `now_ms`; returns the notes not reported
    /// before. A note that expired and was made again (a new connection a
    /// minute later) is new again: its expiry jumps forward.
    pub fn update(&mut self, now_ms: u64, listing: &[(Hit, u64)]) -> Vec<Hit> {
        let mut fresh = Vec::new();
        let mut next = HashMap::with_capacity(listing.len());
        for &(hit, expires_secs) in listing {
            let deadline = now_ms + expires_secs * 1000;
            match self.seen.get(&hit) {
                // Listings round to whole seconds: allow for that.
                Some(&old) if deadline <= old + 2000 => {
                    next.insert(hit, old);
                }
                _ => {
                    fresh.push(hit);
                    next.insert(hit, deadline);
                }
            }
        }
        // Notes no longer listed expired: forget them.
        self.seen = next;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "hits_deceive_v4", "table": "mirage", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], "handle": 3, "size": 65536, "flags": ["timeout"], "timeout": 60, "elem": [{"elem": {"val": {"concat": ["10.99.0.2", "10.99.0.1", "tcp", 22]}, "expires": 59}}, {"elem": {"val": {"concat": ["2001:db8::7", "2001:db8::1", "udp", "53"]}, "expires": 3}}, {"elem": {"val": {"concat": ["junk", "10.99.0.1", "tcp", 22]}, "expires": 1}}]}}]}"#;

    #[test]
    fn parses_what_nft_prints() {
        let mut out = Vec::new();
        parse_listing(LISTING.as_bytes(), Action::Deceive, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            (
                Hit {
                    action: Action::Deceive,
                    src: "10.99.0.2".parse().unwrap(),
                    dst: "10.99.0.1".parse().unwrap(),
                    proto: Proto::Tcp,
                    port: 22
                },
                59
            )
        );
        assert_eq!(out[1].0.proto, Proto::Udp);
        assert_eq!(out[1].0.port, 53);
        // An empty set has no "elem" at all; garbage is nothing.
        let mut none = Vec::new();
        parse_listing(
            br#"{"nftables": [{"set": {"name": "x"}}]}"#,
            Action::Block,
            &mut none,
        );
        parse_listing(b"not json", Action::Block, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn each_note_is_reported_once_per_lifetime() {
        let hit = Hit {
            action: Action::Block,
            src: "203.0.113.9".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            proto: Proto::Tcp,
            port: 6379,
        };
        let mut t = HitTracker::default();
        assert_eq!(t.update(0, &[(hit, 60)]), vec![hit]);
        assert!(t.update(1000, &[(hit, 59)]).is_empty());
        assert!(t.update(30_000, &[(hit, 30)]).is_empty());
        // Gone (expired) and made again: reported again.
        assert!(t.update(61_000, &[]).is_empty());
        assert_eq!(t.update(62_000, &[(hit, 60)]), vec![hit]);
        // Expired and made again between two looks: its expiry jumped.
        assert_eq!(t.update(125_000, &[(hit, 59)]), vec![hit]);
    }
}
