//! What the agent believes the kernel enforces, and how a delta changes it:
//! pure bookkeeping, no I/O, so the backend can compute the exact element
//! batch for a delta and keep its memory unchanged when nft refuses it.
//!
//! Decisions are kept per `(ip, decision type)`. The kernel holds one
//! element per `(action, ip)` (a set per action and family), whose timeout is
//! the latest expiry of the decisions mapping to that action under the
//! mode. Two decisions can map to the same action (in `firewall` mode both
//! `deceive` and `block` drop), so deleting one must not delete the element
//! the other still needs: elements are derived, never edited directly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use super::policy::{Action, Cidr, DecisionType, Delta, Mode, Policy, PolicyError, PortSpec};

/// The part of a policy that shapes the chains and static sets (everything
/// but decisions). When it is unchanged, a snapshot only rewrites set
/// elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The mode.
    pub mode: Mode,
    /// Whitelisted IPv4 networks (policy plus the backend's protected ones).
    pub allow_v4: BTreeSet<Cidr>,
    /// Whitelisted IPv6 networks.
    pub allow_v6: BTreeSet<Cidr>,
    /// Whitelisted local ports.
    pub allow_ports: BTreeSet<PortSpec>,
    /// Service port to IPv4 honeypot.
    pub honeypot_v4: BTreeMap<PortSpec, SocketAddr>,
    /// Service port to IPv6 honeypot.
    pub honeypot_v6: BTreeMap<PortSpec, SocketAddr>,
    /// Service ports with an IPv6 honeypot only: IPv4 sources to deceive
    /// there are dropped.
    pub no_honeypot_v4: BTreeSet<PortSpec>,
    /// Service ports with an IPv4 honeypot only: IPv6 sources to deceive
    /// there are dropped.
    pub no_honeypot_v6: BTreeSet<PortSpec>,
}

impl Layout {
    /// The layout of `policy`, with `protect` added to the whitelist.
    pub fn new(policy: &Policy, protect: &[Cidr]) -> Result<Layout, PolicyError> {
        policy.validate()?;
        let mut allow_v4 = BTreeSet::new();
        let mut allow_v6 = BTreeSet::new();
        for c in policy.whitelist.sources.iter().chain(protect) {
            match c.addr() {
                IpAddr::V4(_) => allow_v4.insert(*c),
                IpAddr::V6(_) => allow_v6.insert(*c),
            };
        }
        let mut honeypot_v4 = BTreeMap::new();
        let mut honeypot_v6 = BTreeMap::new();
        for s in &policy.services {
            let key = PortSpec {
                proto: s.proto,
                port: s.port,
            };
            let hp = SocketAddr::new(s.honeypot.ip().to_canonical(), s.honeypot.port());
            match hp {
                SocketAddr::V4(_) => honeypot_v4.insert(key, hp),
                SocketAddr::V6(_) => honeypot_v6.insert(key, hp),
            };
        }
        let no_honeypot_v4 = honeypot_v6
            .keys()
            .filter(|k| !honeypot_v4.contains_key(*k))
            .copied()
            .collect();
        let no_honeypot_v6 = honeypot_v4
            .keys()
            .filter(|k| !honeypot_v6.contains_key(*k))
            .copied()
            .collect();
        Ok(Layout {
            mode: policy.mode,
            allow_v4,
            allow_v6,
            allow_ports: policy.whitelist.ports.iter().copied().collect(),
            honeypot_v4,
            honeypot_v6,
            no_honeypot_v4,
            no_honeypot_v6,
        })
    }
}

impl Layout {
    /// Every whitelisted network, both families.
    pub fn whitelist(&self) -> Vec<Cidr> {
        self.allow_v4
            .iter()
            .chain(&self.allow_v6)
            .copied()
            .collect()
    }
}

/// One change to one set element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementOp {
    /// Make `ip` a member of the `action` set, expiring at `expires_unix`
    /// (added, or replaced when its expiry changed).
    Put {
        /// Which set (with the family of `ip`).
        action: Action,
        /// The source.
        ip: IpAddr,
        /// When the kernel drops it (Unix seconds).
        expires_unix: i64,
        /// Whether the element exists with another expiry (it must be
        /// replaced, not just added).
        replaces: bool,
    },
    /// Take `ip` out of the `action` set.
    Remove {
        /// Which set.
        action: Action,
        /// The source.
        ip: IpAddr,
    },
}

/// The effect of a delta, computed before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPlan {
    /// Version after the delta.
    pub version: u64,
    /// Decision table changes.
    changes: Vec<Change>,
    /// The element batch that brings the kernel along.
    pub ops: Vec<ElementOp>,
}

impl DeltaPlan {
    /// Sources that become newly enforced (added to a set they were not
    /// in): the candidates for flushing their conntrack entries.
    pub fn newly_enforced(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                ElementOp::Put { ip, .. } => Some(*ip),
                ElementOp::Remove { .. } => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One decision's expiry before and after a delta (`None`: absent).
type Change = ((IpAddr, DecisionType), Option<i64>, Option<i64>);

/// The decisions in force under one layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    layout: Layout,
    version: u64,
    decisions: HashMap<(IpAddr, DecisionType), i64>,
    /// The earliest expiry held (Unix seconds), so [`prune`](Self::prune)
    /// scans the table only when something has expired.
    next_expiry: i64,
}

impl Enforcement {
    /// The state a snapshot describes (decisions already expired at
    /// `now_ms` left out).
    pub fn from_policy(
        policy: &Policy,
        protect: &[Cidr],
        now_ms: i64,
    ) -> Result<Enforcement, PolicyError> {
        let layout = Layout::new(policy, protect)?;
        let mut decisions = HashMap::with_capacity(policy.decisions.len());
        for d in &policy.decisions {
            if alive(d.expires_unix, now_ms) {
                let e = decisions
                    .entry((d.ip.to_canonical(), d.decision))
                    .or_insert(d.expires_unix);
                *e = (*e).max(d.expires_unix);
            }
        }
        let next_expiry = decisions.values().copied().min().unwrap_or(i64::MAX);
        Ok(Enforcement {
            layout,
            version: policy.version,
            decisions,
            next_expiry,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Version of the last snapshot or delta taken in.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of decisions held (some may have expired since the last
    /// prune).
    pub fn decision_count(&self) -> usize {
        self.decisions.len()
    }

    /// Forgets decisions expired at `now_ms` (the kernel has dropped their
    /// elements by itself).
    pub fn prune(&mut self, now_ms: i64) {
        if alive(self.next_expiry, now_ms) {
            return;
        }
        self.decisions.retain(|_, exp| alive(*exp, now_ms));
        self.next_expiry = self.decisions.values().copied().min().unwrap_or(i64::MAX);
    }

    /// The expiry of `ip`'s element in the `action` set at `now_ms`, if it
    /// has one: the latest of its live decisions that map to `action`.
    fn element(&self, ip: IpAddr, action: Action, now_ms: i64) -> Option<i64> {
        element_from(&self.layout, action, now_ms, |t| {
            self.decisions.get(&(ip, t)).copied()
        })
    }

    /// Every live element, per action, in a stable order.
    pub fn elements(&self, now_ms: i64) -> BTreeMap<(Action, IpAddr), i64> {
        let mut out = BTreeMap::new();
        for (ip, _) in self.decisions.keys() {
            for action in Action::ALL {
                if let Some(exp) = self.element(*ip, action, now_ms) {
                    out.insert((action, *ip), exp);
                }
            }
        }
        out
    }

    /// What `delta` changes, without changing anything. Deletions are taken
    /// before additions, so a decision deleted and re-added in one delta
    /// stays.
    pub fn plan(&self, delta: &Delta, now_ms: i64) -> DeltaPlan {
        // The decision table after the delta, for the keys it touches only.
        let mut overlay: BTreeMap<(IpAddr, DecisionType), Option<i64>> = BTreeMap::new();
        for d in &delta.deleted {
            overlay.insert((d.ip.to_canonical(), d.decision), None);
        }
        for d in &delta.new {
            let key = (d.ip.to_canonical(), d.decision);
            let exp = alive(d.expires_unix, now_ms).then_some(d.expires_unix);
            overlay.insert(key, exp);
        }
        let changes: Vec<_> = overlay
            .iter()
            .map(|(k, after)| (*k, self.decisions.get(k).copied(), *after))
            .filter(|(_, before, after)| before != after)
            .collect();
        let ips: BTreeSet<IpAddr> = changes.iter().map(|((ip, _), _, _)| *ip).collect();
        let mut ops = Vec::new();
        for ip in ips {
            for action in Action::ALL {
                let before = self.element(ip, action, now_ms);
                let after = element_from(&self.layout, action, now_ms, |t| {
                    match overlay.get(&(ip, t)) {
                        Some(v) => *v,
                        None => self.decisions.get(&(ip, t)).copied(),
                    }
                });
                match (before, after) {
                    (b, Some(a)) if b != Some(a) => ops.push(ElementOp::Put {
                        action,
                        ip,
                        expires_unix: a,
                        replaces: b.is_some(),
                    }),
                    (Some(_), None) => ops.push(ElementOp::Remove { action, ip }),
                    _ => {}
                }
            }
        }
        DeltaPlan {
            version: delta.version,
            changes,
            ops,
        }
    }

    /// Takes a planned delta in (after the kernel accepted it).
    pub fn commit(&mut self, plan: &DeltaPlan) {
        for (key, _, after) in &plan.changes {
            match after {
                Some(exp) => {
                    self.next_expiry = self.next_expiry.min(*exp);
                    self.decisions.insert(*key, *exp)
                }
                None => self.decisions.remove(key),
            };
        }
        self.version = plan.version;
    }

    /// Undoes [`commit`](Self::commit) (when the kernel refused the state
    /// after all).
    pub fn revert(&mut self, plan: &DeltaPlan, version: u64) {
        for (key, before, _) in &plan.changes {
            match before {
                Some(exp) => {
                    self.next_expiry = self.next_expiry.min(*exp);
                    self.decisions.insert(*key, *exp)
                }
                None => self.decisions.remove(key),
            };
        }
        self.version = version;
    }
}

fn alive(expires_unix: i64, now_ms: i64) -> bool {
    expires_unix.saturating_mul(1000) > now_ms
}

fn element_from(
    layout: &Layout,
    action: Action,
    now_ms: i64,
    lookup: impl Fn(DecisionType) -> Option<i64>,
) -> Option<i64> {
    [
        DecisionType::Deceive,
        DecisionType::Block,
        DecisionType::Reflect,
    ]
    .into_iter()
    .filter(|t| layout.mode.action_for(*t) == action)
    .filter_map(lookup)
    .filter(|exp| alive(*exp, now_ms))
    .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::policy::{Decision, DeletedDecision};

    const NOW_MS: i64 = 1_700_000_000_000;

    fn policy(mode: Mode, decisions: &[(&str, DecisionType, i64)]) -> Policy {
        Policy {
            version: 1,
            mode,
            whitelist: Default::default(),
            services: vec![],
            decisions: decisions
                .iter()
                .map(|(ip, t, exp)| Decision {
                    ip: ip.parse().unwrap(),
                    decision: *t,
                    expires_unix: *exp,
                })
                .collect(),
        }
    }

    fn delta(
        version: u64,
        new: &[(&str, DecisionType, i64)],
        deleted: &[(&str, DecisionType)],
    ) -> Delta {
        Delta {
            version,
            new: new
                .iter()
                .map(|(ip, t, exp)| Decision {
                    ip: ip.parse().unwrap(),
                    decision: *t,
                    expires_unix: *exp,
                })
                .collect(),
            deleted: deleted
                .iter()
                .map(|(ip, t)| DeletedDecision {
                    ip: ip.parse().unwrap(),
                    decision: *t,
                })
                .collect(),
        }
    }

    const T: i64 = 1_700_000_100;
    use DecisionType::{Block, Deceive, Reflect};

    #[test]
    fn expired_decisions_never_become_elements() {
        let p = policy(
            Mode::Deception,
            &[
                ("192.0.2.1", Deceive, T),
                ("192.0.2.2", Deceive, 1_600_000_000),
            ],
        );
        let e = Enforcement::from_policy(&p, &[], NOW_MS).unwrap();
        let el = e.elements(NOW_MS);
        assert_eq!(el.len(), 1);
        assert_eq!(el[&(Action::Deceive, "192.0.2.1".parse().unwrap())], T);
    }

    #[test]
    fn mapped_addresses_are_enforced_as_ipv4() {
        let p = policy(Mode::Firewall, &[("::ffff:192.0.2.1", Block, T)]);
        let e = Enforcement::from_policy(&p, &[], NOW_MS).unwrap();
        assert!(
            e.elements(NOW_MS)
                .contains_key(&(Action::Block, "192.0.2.1".parse().unwrap()))
        );
    }

    #[test]
    fn deleting_one_of_two_decisions_on_one_action_keeps_the_element() {
        // Firewall mode: deceive and block both drop.
        let p = policy(
            Mode::Firewall,
            &[("192.0.2.1", Deceive, T), ("192.0.2.1", Block, T + 50)],
        );
        let mut e = Enforcement::from_policy(&p, &[], NOW_MS).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(e.elements(NOW_MS)[&(Action::Block, ip)], T + 50);
        // Deleting the later one shortens the element to the other's expiry.
        let plan = e.plan(&delta(2, &[], &[("192.0.2.1", Block)]), NOW_MS);
        assert_eq!(
            plan.ops,
            vec![ElementOp::Put {
                action: Action::Block,
                ip,
                expires_unix: T,
                replaces: true,
            }]
        );
        e.commit(&plan);
        let plan = e.plan(&delta(3, &[], &[("192.0.2.1", Deceive)]), NOW_MS);
        assert_eq!(
            plan.ops,
            vec![ElementOp::Remove {
                action: Action::Block,
                ip
            }]
        );
        e.commit(&plan);
        assert!(e.elements(NOW_MS).is_empty());
        assert_eq!(e.version(), 3);
    }

    #[test]
    fn a_decision_type_moves_the_source_to_another_set() {
        let mut e = Enforcement::from_policy(&policy(Mode::Deception, &[]), &[], NOW_MS).unwrap();
        let ip: IpAddr = "2001:db8::7".parse().unwrap();
        let plan = e.plan(&delta(2, &[("2001:db8::7", Reflect, T)], &[]), NOW_MS);
        assert_eq!(
            plan.ops,
            vec![ElementOp::Put {
                action: Action::Reflect,
                ip,
                expires_unix: T,
                replaces: false,
            }]
        );
        assert_eq!(plan.newly_enforced(), vec![ip]);
        e.commit(&plan);
        // Same decision again: nothing to do (idempotent redelivery).
        let again = e.plan(&delta(3, &[("2001:db8::7", Reflect, T)], &[]), NOW_MS);
        assert!(again.ops.is_empty());
        // Renewal: the element is replaced with the new expiry.
        let renew = e.plan(&delta(4, &[("2001:db8::7", Reflect, T + 9)], &[]), NOW_MS);
        assert_eq!(
            renew.ops,
            vec![ElementOp::Put {
                action: Action::Reflect,
                ip,
                expires_unix: T + 9,
                replaces: true,
            }]
        );
    }

    #[test]
    fn deleted_before_new_so_a_readd_survives() {
        let e = Enforcement::from_policy(
            &policy(Mode::Deception, &[("192.0.2.1", Deceive, T)]),
            &[],
            NOW_MS,
        )
        .unwrap();
        let plan = e.plan(
            &delta(
                2,
                &[("192.0.2.1", Deceive, T + 1)],
                &[("192.0.2.1", Deceive)],
            ),
            NOW_MS,
        );
        assert_eq!(
            plan.ops,
            vec![ElementOp::Put {
                action: Action::Deceive,
                ip: "192.0.2.1".parse().unwrap(),
                expires_unix: T + 1,
                replaces: true,
            }]
        );
    }

    #[test]
    fn revert_restores_the_table() {
        let mut e = Enforcement::from_policy(
            &policy(Mode::Deception, &[("192.0.2.1", Deceive, T)]),
            &[],
            NOW_MS,
        )
        .unwrap();
        let before = e.clone();
        let plan = e.plan(
            &delta(9, &[("192.0.2.2", Block, T)], &[("192.0.2.1", Deceive)]),
            NOW_MS,
        );
        e.commit(&plan);
        assert_ne!(e, before);
        e.revert(&plan, 1);
        assert_eq!(e, before);
    }

    #[test]
    fn prune_forgets_what_expired_and_only_that() {
        let mut e = Enforcement::from_policy(
            &policy(
                Mode::Deception,
                &[("192.0.2.1", Deceive, T), ("192.0.2.2", Deceive, T + 10)],
            ),
            &[],
            NOW_MS,
        )
        .unwrap();
        let plan = e.plan(&delta(2, &[("192.0.2.3", Block, T + 5)], &[]), NOW_MS);
        e.commit(&plan);
        e.prune(NOW_MS);
        assert_eq!(e.decision_count(), 3);
        e.prune(T * 1000 + 1);
        assert_eq!(e.decision_count(), 2);
        e.prune((T + 5) * 1000);
        assert_eq!(e.decision_count(), 1);
        e.prune((T + 10) * 1000);
        assert_eq!(e.decision_count(), 0);
    }

    #[test]
    fn deleting_an_unknown_decision_is_a_no_op() {
        let e = Enforcement::from_policy(&policy(Mode::Deception, &[]), &[], NOW_MS).unwrap();
        let plan = e.plan(&delta(2, &[], &[("192.0.2.1", Deceive)]), NOW_MS);
        assert!(plan.ops.is_empty());
    }
}
