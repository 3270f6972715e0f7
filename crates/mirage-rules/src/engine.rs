//! The engine: observations in, alerts and decisions out.
//!
//! Pure and deterministic: no I/O, no wall clock, no randomness in what it
//! outputs. Time is the observations' time; the engine's clock is the
//! newest time it has seen, and decisions expire against that clock (or an
//! explicit [`Engine::expire`] from the caller's timer). Replaying the same
//! input gives the same output.
//!
//! Decisions are kept per (address, decision type): when a rule fires for
//! an address that already has an active decision of that type, the
//! decision is extended instead of duplicated, and reported again only when
//! less than half of its TTL was left (so a flood of events from one source
//! does not become a flood of updates). A renewal is credited to the rule
//! that made it: the decision then names that rule, its severity, key and
//! reason, as its TTL is that rule's. Like CrowdSec's decision stream, a
//! consumer sees new and renewed decisions in [`Outcome::decisions`] and
//! removals in [`Outcome::expired`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::config::{DecisionType, Rule, RuleSet, Severity};
use crate::observation::{Field, Observation};
use crate::window::{KeyTable, Window};

/// A decision about one source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The source address.
    pub ip: IpAddr,
    /// What to do with it.
    pub decision: DecisionType,
    /// The rule that decided.
    pub rule: String,
    /// Severity of that rule.
    pub severity: Severity,
    /// One human line: rule, key and count.
    pub reason: String,
    /// The group key that reached the threshold (values joined by `|`).
    pub key: String,
    /// When it was made (Unix microseconds, event time).
    pub created_micros: i64,
    /// When the rule it names made or last renewed it (event time; equal
    /// to `created_micros` until renewed).
    pub renewed_micros: i64,
    /// When it ends (Unix microseconds).
    pub expires_micros: i64,
    /// Events that led to it (cumulative across renewals).
    pub evidence: u64,
    /// False for a new decision, true for a renewal of an active one.
    pub renewed: bool,
}

impl Decision {
    /// Seconds left at `now_micros` (0 when expired).
    pub fn ttl_secs_at(&self, now_micros: i64) -> u64 {
        u64::try_from((self.expires_micros - now_micros).max(0) / 1_000_000).unwrap_or(0)
    }
}

/// A rule fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule.
    pub rule: String,
    /// Its severity.
    pub severity: Severity,
    /// The source address of the event that completed the threshold.
    pub ip: Option<IpAddr>,
    /// The group key.
    pub key: String,
    /// Events (or distinct values) counted.
    pub evidence: u64,
    /// When (Unix microseconds, event time).
    pub ts_micros: i64,
    /// One human line.
    pub reason: String,
}

/// What processing produced. Reuse one across calls ([`Outcome::clear`]) to
/// avoid allocations.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// New or renewed decisions.
    pub decisions: Vec<Decision>,
    /// Alerts.
    pub alerts: Vec<Alert>,
    /// Decisions that expired (or were dropped at the cap).
    pub expired: Vec<Decision>,
}

impl Outcome {
    /// Empty all lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.decisions.clear();
        self.alerts.clear();
        self.expired.clear();
    }

    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.alerts.is_empty() && self.expired.is_empty()
    }
}

/// Counters for telemetry and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Observations processed.
    pub observed: u64,
    /// Observations skipped because their source is whitelisted.
    pub whitelisted: u64,
    /// Keys forgotten at the per-rule cap.
    pub key_evictions: u64,
    /// Keys tracked now, all rules together.
    pub tracked_keys: usize,
    /// Decisions active now.
    pub active_decisions: usize,
    /// Decisions dropped early at the active-decision cap.
    pub decisions_dropped: u64,
}

struct RuleState {
    rule: Rule,
    keys: KeyTable,
}

/// The rule engine.
pub struct Engine {
    rules: Vec<RuleState>,
    whitelist: Vec<Cidr>,
    max_keys_per_rule: usize,
    max_active: usize,
    active: HashMap<(IpAddr, DecisionType), Decision>,
    by_expiry: BTreeSet<(i64, IpAddr, DecisionType)>,
    now: i64,
    stats: Stats,
    key_buf: String,
    /// Group-key parts of the current observation: field and its escaped
    /// text's range in `part_text` (`None`: the observation lacks it).
    parts: Vec<(Field, Option<(usize, usize)>)>,
    part_text: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("active", &self.active.len())
            .field("now", &self.now)
            .finish()
    }
}

impl Engine {
    /// An engine running `rules`.
    pub fn new(rules: RuleSet) -> Self {
        let max_keys = rules.max_keys_per_rule;
        Engine {
            rules: rules
                .rules
                .into_iter()
                .map(|rule| RuleState {
                    rule,
                    keys: KeyTable::new(max_keys),
                })
                .collect(),
            whitelist: rules.whitelist,
            max_keys_per_rule: max_keys,
            max_active: rules.max_active_decisions,
            active: HashMap::new(),
            by_expiry: BTreeSet::new(),
            now: i64::MIN,
            stats: Stats::default(),
            key_buf: String::new(),
            parts: Vec::new(),
            part_text: String::new(),
        }
    }

    /// Swap in a new rule set (a reloaded file), keeping active decisions
    /// and the windows of rules whose name and definition did not change.
    /// Parse the file with [`RuleSet::parse`] first: on error, keep
    /// running this engine unchanged.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        let max_keys = rules.max_keys_per_rule;
        let mut old: HashMap<String, RuleState> = self
            .rules
            .drain(..)
            .map(|s| (s.rule.name.clone(), s))
            .collect();
        self.rules = rules
            .rules
            .into_iter()
            .map(|rule| match old.remove(&rule.name) {
                Some(s)
                    if s.rule.signature == rule.signature && max_keys == self.max_keys_per_rule =>
                {
                    RuleState { rule, keys: s.keys }
                }
                _ => RuleState {
                    rule,
                    keys: KeyTable::new(max_keys),
                },
            })
            .collect();
        self.whitelist = rules.whitelist;
        self.max_keys_per_rule = max_keys;
        self.max_active = rules.max_active_decisions;
    }

    /// Names of the rules running.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|s| s.rule.name.as_str()).collect()
    }

    /// Whether `ip` is whitelisted.
    pub fn is_whitelisted(&self, ip: IpAddr) -> bool {
        self.whitelist.iter().any(|c| c.contains(ip))
    }

    /// Evaluate every rule against one observation, appending to `out`.
    pub fn process(&mut self, obs: &dyn Observation, out: &mut Outcome) {
        self.stats.observed += 1;
        let t = obs.time_micros();
        if t > self.now {
            self.now = t;
            self.expire_into(t, out);
        }
        let ip = obs.src_ip();
        if let Some(ip) = ip
            && self.is_whitelisted(ip)
        {
            self.stats.whitelisted += 1;
            return;
        }
        let mut service = None;
        let mut kind = None;
        self.parts.clear();
        self.part_text.clear();
        for ri in 0..self.rules.len() {
            let rule = &self.rules[ri].rule;
            if !rule.services.is_empty() {
                let s = service.get_or_insert_with(|| obs.field(Field::Service));
                let Some(s) = s.as_deref() else { continue };
                if !rule.services.iter().any(|x| x == s) {
                    continue;
                }
            }
            if !rule.kinds.is_empty() {
                let k = kind.get_or_insert_with(|| obs.field(Field::Kind));
                let Some(k) = k.as_deref() else { continue };
                if !rule.kinds.iter().any(|x| x == k) {
                    continue;
                }
            }
            if rule.origin.is_some_and(|o| o != obs.origin()) {
                continue;
            }
            if !matches_rule(rule, obs) {
                continue;
            }
            // Group key: values joined by '|' (escaped so distinct tuples
            // cannot collide).
            let mut key = std::mem::take(&mut self.key_buf);
            key.clear();
            let mut complete = true;
            for (n, f) in rule.group_by.iter().enumerate() {
                // Several rules group by the same fields (src_ip): each is
                // written and escaped once per observation.
                let part = match self.parts.iter().find(|(g, _)| g == f) {
                    Some(&(_, part)) => part,
                    None => {
                        let part = write_part(obs, *f, &mut self.part_text);
                        self.parts.push((*f, part));
                        part
                    }
                };
                let Some((start, end)) = part else {
                    complete = false;
                    break;
                };
                if n > 0 {
                    key.push('|');
                }
                key.push_str(&self.part_text[start..end]);
            }
            if !complete {
                self.key_buf = key;
                continue;
            }
            let distinct_value = match rule.distinct {
                Some(f) => match obs.field(f) {
                    Some(v) => Some(v),
                    None => {
                        self.key_buf = key;
                        continue;
                    }
                },
                None => None,
            };
            let (count, window, is_distinct) =
                (rule.count, rule.window_micros, rule.distinct.is_some());
            let state = &mut self.rules[ri];
            let fired = if count == 1 && !is_distinct {
                true
            } else {
                let before = state.keys.evictions;
                let w = state.keys.entry_with(&key, |w| match w {
                    // Recycled from an evicted key: keep the allocation.
                    Window::Count(times) if !is_distinct => {
                        times.clear();
                        times.reserve(count as usize);
                    }
                    Window::Distinct(values) if is_distinct => values.clear(),
                    w => {
                        *w = if is_distinct {
                            Window::Distinct(Vec::new())
                        } else {
                            Window::Count(Vec::with_capacity(count as usize))
                        }
                    }
                });
                let fired = w.add(t, distinct_value.as_deref(), count, window);
                self.stats.key_evictions += state.keys.evictions - before;
                if fired {
                    state.keys.remove(&key);
                }
                fired
            };
            if fired {
                self.fire(ri, ip, &key, t, out);
            }
            self.key_buf = key;
        }
    }

    fn fire(&mut self, ri: usize, ip: Option<IpAddr>, key: &str, t: i64, out: &mut Outcome) {
        let rule = &self.rules[ri].rule;
        let evidence = u64::from(rule.count);
        let mut reason = String::new();
        let what = if rule.distinct.is_some() {
            "distinct values"
        } else {
            "events"
        };
        let _ = write!(
            reason,
            "{}: {} {what} within {}s for {}",
            rule.name,
            rule.count,
            rule.window_micros / 1_000_000,
            key
        );
        let Some((decision, ttl)) = rule.action else {
            out.alerts.push(Alert {
                rule: rule.name.clone(),
                severity: rule.severity,
                ip,
                key: key.to_owned(),
                evidence,
                ts_micros: t,
                reason,
            });
            return;
        };
        let Some(ip) = ip else {
            return;
        };
        let expires = t.saturating_add(ttl);
        if let Some(d) = self.active.get_mut(&(ip, decision)) {
            d.evidence += evidence;
            // Renew (and report) only when less than half the TTL is left.
            if expires > d.expires_micros && d.expires_micros - t < ttl / 2 {
                self.by_expiry.remove(&(d.expires_micros, ip, decision));
                d.expires_micros = expires;
                // The renewing rule is the one in force now (its TTL is):
                // the decision says so, or a 24 h renewal would be shown
                // as the 4 h rule that first decided.
                d.rule.clone_from(&rule.name);
                d.severity = rule.severity;
                d.key.clear();
                d.key.push_str(key);
                d.reason = reason;
                d.renewed_micros = t;
                d.renewed = true;
                self.by_expiry.insert((expires, ip, decision));
                out.decisions.push(d.clone());
            }
            return;
        }
        out.alerts.push(Alert {
            rule: rule.name.clone(),
            severity: rule.severity,
            ip: Some(ip),
            key: key.to_owned(),
            evidence,
            ts_micros: t,
            reason: reason.clone(),
        });
        let d = Decision {
            ip,
            decision,
            rule: rule.name.clone(),
            severity: rule.severity,
            reason,
            key: key.to_owned(),
            created_micros: t,
            renewed_micros: t,
            expires_micros: expires,
            evidence,
            renewed: false,
        };
        while self.active.len() >= self.max_active {
            let Some(first) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some(old) = self.active.remove(&(first.1, first.2)) {
                self.stats.decisions_dropped += 1;
                out.expired.push(old);
            }
        }
        self.by_expiry.insert((expires, ip, decision));
        self.active.insert((ip, decision), d.clone());
        out.decisions.push(d);
    }

    fn expire_into(&mut self, now: i64, out: &mut Outcome) {
        while let Some(&(exp, ip, ty)) = self.by_expiry.first() {
            if exp > now {
                break;
            }
            self.by_expiry.pop_first();
            if let Some(d) = self.active.remove(&(ip, ty)) {
                out.expired.push(d);
            }
        }
    }

    /// Advance the clock to `now_micros` (e.g. from a timer when no events
    /// arrive) and remove decisions that ended at or before it.
    pub fn expire(&mut self, now_micros: i64, out: &mut Outcome) {
        if now_micros > self.now {
            self.now = now_micros;
        }
        self.expire_into(now_micros, out);
    }

    /// Active decisions, ordered by address then type (a full snapshot for
    /// a policy stream).
    pub fn active_decisions(&self) -> Vec<Decision> {
        let mut v: Vec<Decision> = self.active.values().cloned().collect();
        v.sort_by_key(|d| (d.ip, d.decision));
        v
    }

    /// Add a decision made elsewhere (an operator's `decisions add`); it
    /// expires like the others. Whitelisted addresses are refused.
    pub fn insert_decision(&mut self, d: Decision) -> bool {
        if self.is_whitelisted(d.ip) {
            return false;
        }
        if let Some(old) = self.active.remove(&(d.ip, d.decision)) {
            self.by_expiry
                .remove(&(old.expires_micros, d.ip, d.decision));
        }
        self.by_expiry.insert((d.expires_micros, d.ip, d.decision));
        self.active.insert((d.ip, d.decision), d);
        true
    }

    /// Remove an active decision; returns it if there was one.
    pub fn remove_decision(&mut self, ip: IpAddr, decision: DecisionType) -> Option<Decision> {
        let d = self.active.remove(&(ip, decision))?;
        self.by_expiry.remove(&(d.expires_micros, ip, decision));
        Some(d)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            tracked_keys: self.rules.iter().map(|r| r.keys.len()).sum(),
            active_decisions: self.active.len(),
            ..self.stats.clone()
        }
    }
}

/// Append `field`'s value to `text`, with `|` and `\\` escaped so joined
/// tuples cannot collide; its range, or `None` if the observation lacks it.
fn write_part(obs: &dyn Observation, field: Field, text: &mut String) -> Option<(usize, usize)> {
    let start = text.len();
    if !obs.write_field(field, text) {
        text.truncate(start);
        return None;
    }
    // Written as is; escaped after the fact in the rare case it needs it.
    if text.as_bytes()[start..]
        .iter()
        .any(|&b| b == b'|' || b == b'\\')
    {
        let v = text.split_off(start);
        for c in v.chars() {
            if c == '|' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
    }
    Some((start, text.len()))
}

fn matches_rule(rule: &Rule, obs: &dyn Observation) -> bool {
    for (f, re) in &rule.fields {
        match obs.field(*f) {
            Some(v) if re.is_match(&v) => {}
            _ => return false,
        }
    }
    for (f, re) in &rule.exclude {
        if let Some(v) = obs.field(*f)
            && re.is_match(&v)
        {
            return false;
        }
    }
    true
}
