//! The plain rows the [`crate::Store`] trait moves in and out.
//!
//! Times are Unix microseconds (UTC), addresses are text in their canonical
//! form, so every backend stores them the same way and sorts them right.

use serde::Serialize;

/// One normalised event. `json` is the whole event (schema v1) as the
/// sensor or the log parser produced it; the other columns are copies of
/// its fields for indexing and filtering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Event id (UUID v7 text).
    pub id: String,
    /// Event time.
    pub ts_micros: i64,
    /// Event kind (`auth.attempt`, `command`, …).
    pub kind: String,
    /// Service (`ssh`, `redis`, …).
    pub service: String,
    /// Source address.
    pub src_ip: String,
    /// Host or sensor that saw it.
    pub host: String,
    /// `sensor` or `log`.
    pub origin: String,
    /// The full event as JSON.
    pub json: String,
}

/// A filter for [`crate::Store::query_events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this source address.
    pub src_ip: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only events at or after this time.
    pub since_micros: Option<i64>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// A rule fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    /// Alert time (event time of the event that completed the threshold).
    pub ts_micros: i64,
    /// Rule name.
    pub rule: String,
    /// Severity (`low` … `critical`).
    pub severity: String,
    /// Source address, when the alert has one.
    pub src_ip: Option<String>,
    /// The group key that reached the threshold.
    pub key: String,
    /// Events counted.
    pub evidence: u64,
    /// One human line.
    pub reason: String,
}

/// A decision about one source address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRow {
    /// Source address.
    pub ip: String,
    /// `deceive`, `block` or `reflect`.
    pub decision: String,
    /// Rule that decided, or `manual`.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Why.
    pub reason: String,
    /// The group key (empty for manual decisions).
    pub key: String,
    /// When it was made.
    pub created_micros: i64,
    /// When it ends.
    pub expires_micros: i64,
    /// Events that led to it.
    pub evidence: u64,
    /// Who made it: `engine` or `cli` (or `api`).
    pub origin: String,
    /// When `rule` made or last renewed it (equal to `created_micros` until
    /// a rule renews it): `rule`, `reason` and `expires_micros` are the
    /// ones of that renewal.
    pub renewed_micros: i64,
}

/// One entry of the decision change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionChange {
    /// Sequence number, increasing.
    pub seq: i64,
    /// `add` or `delete`.
    pub op: String,
    /// When the change was made (for an `add`, when its rule made or
    /// renewed the decision).
    pub at_micros: i64,
    /// The decision (for `delete`, as it was).
    pub decision: DecisionRow,
}

/// The latest heartbeat of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRow {
    /// The agent's id.
    pub agent_id: String,
    /// Its host name.
    pub hostname: String,
    /// Its mirage version.
    pub version: String,
    /// When the heartbeat was sent (agent clock).
    pub sent_micros: i64,
    /// When the server received it.
    pub seen_micros: i64,
    /// The address it came from.
    pub peer: String,
    /// The heartbeat body (sources and their health, queue), JSON.
    pub status_json: String,
}

/// Row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Events.
    pub events: u64,
    /// Alerts.
    pub alerts: u64,
    /// Decision rows (active or not).
    pub decisions: u64,
    /// Record ids remembered for deduplication.
    pub record_ids: u64,
    /// Agents.
    pub agents: u64,
}

/// What one pipeline batch writes, atomically ([`crate::Store::write_batch`]).
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// Record ids consumed (agents' message ids, sensor event ids).
    pub record_ids: Vec<String>,
    /// When they were seen (for pruning).
    pub seen_micros: i64,
    /// Events.
    pub events: Vec<EventRow>,
    /// Alerts.
    pub alerts: Vec<AlertRow>,
    /// New or renewed decisions.
    pub decisions: Vec<DecisionRow>,
    /// Agent heartbeats (an older one never replaces a newer one).
    pub agents: Vec<AgentRow>,
}

impl WriteBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.record_ids.is_empty()
            && self.events.is_empty()
            && self.alerts.is_empty()
            && self.decisions.is_empty()
            && self.agents.is_empty()
    }

    /// Empty every list, keeping capacity.
    pub fn clear(&mut self) {
        self.record_ids.clear();
        self.events.clear();
        self.alerts.clear();
        self.decisions.clear();
        self.agents.clear();
    }
}

/// What [`crate::Store::write_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Events inserted (duplicates by id skipped).
    pub events_inserted: u64,
    /// Change sequence numbers of the decisions, in order.
    pub change_seqs: Vec<i64>,
}

/// An enrolled agent: what its HMAC key for the policy API is made from,
/// and its policy settings (mode, whitelist, service map) as JSON. `Debug`
/// leaves the key out, so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentKeyRow {
    /// The agent's id.
    pub agent_id: String,
    /// Its HMAC-SHA256 key, hex, for agents enrolled before keys were
    /// derived; empty for the others.
    pub key_hex: String,
    /// The salt its key is derived from with the server's secret (which is
    /// not in the database), hex; empty for agents with `key_hex`.
    pub key_salt: String,
    /// When it was revoked (its requests are refused from then on).
    pub revoked_micros: Option<i64>,
    /// When it enrolled.
    pub enrolled_micros: i64,
    /// Host name it gave.
    pub hostname: String,
    /// Policy settings, JSON.
    pub settings_json: String,
}

impl std::fmt::Debug for AgentKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeyRow")
            .field("agent_id", &self.agent_id)
            .field("key_hex", &"<redacted>")
            .field("key_salt", &self.key_salt)
            .field("revoked_micros", &self.revoked_micros)
            .field("enrolled_micros", &self.enrolled_micros)
            .field("hostname", &self.hostname)
            .field("settings_json", &self.settings_json)
            .finish()
    }
}

/// How an enrollment went ([`crate::Store::redeem_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The agent is enrolled (the token is used up).
    Enrolled,
    /// The token is unknown, used, expired, or made to replace another
    /// agent.
    BadToken,
    /// An agent with this id is enrolled already and the token was not made
    /// to replace it (`mirage server tokens create --replace ID`).
    AgentExists,
}

/// Characters of a token's SHA-256 (hex) that name it in lists.
pub const TOKEN_ID_LEN: usize = 12;

/// An enrollment token as operators see it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    /// The first characters of its SHA-256, hex.
    pub id: String,
    /// When it was made.
    pub created_micros: i64,
    /// When it stops working.
    pub expires_micros: i64,
    /// The agent that used it.
    pub used_by: Option<String>,
    /// The agent it may replace.
    pub replace_agent: Option<String>,
}
