//! mirage-store: where the server keeps what it learned.
//!
//! [`Store`] is the storage trait the server is written against: normalised
//! events (deduplicated by the record id agents put in every syslog
//! message), alerts, decisions with their change log (a monotonically
//! increasing sequence, so a policy consumer can ask for exactly what it
//! missed), and agent heartbeats. [`SqliteStore`] is the embedded default
//! (one file, WAL); a PostgreSQL backend will implement the same trait for
//! scale-out.
//!
//! Rows are plain data ([`rows`]): the store knows nothing about rules or
//! parsers, so the rule engine and the schema can change without a
//! migration here unless a column does.
#![forbid(unsafe_code)]

pub mod rows;
pub mod sqlite;

use async_trait::async_trait;

pub use rows::{
    AgentKeyRow, AgentRow, AlertRow, BatchResult, DecisionChange, DecisionRow, EventQuery,
    EventRow, Redeemed, StoreCounts, TOKEN_ID_LEN, TokenRow, WriteBatch,
};
pub use sqlite::SqliteStore;

/// A storage failure. Always local (disk, corruption, locking): nothing an
/// attacker sends can cause one, because every value is bound, never
/// interpolated into SQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The data directory or file could not be prepared.
    #[error("{path}: {message}")]
    Io {
        /// The path involved.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A stored row could not be decoded (written by a newer version?).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Detail.
        message: String,
    },
}

impl StoreError {
    /// Whether the disk under the database is full (SQLite's `SQLITE_FULL`,
    /// or `ENOSPC` from the filesystem). Such a failure passes once space
    /// returns; the caller holds its input and retries.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                // Primary code 13 (extended codes keep it in the low byte).
                let full = e
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| c & 0xff == 13);
                full || e.message().contains("disk is full")
            }
            StoreError::Db(sqlx::Error::Io(e)) => e.raw_os_error() == Some(28),
            StoreError::Io { message, .. } => message.contains("No space left"),
            _ => false,
        }
    }
}

/// Storage the server runs on. All methods are safe to call concurrently;
/// batch methods are atomic (all rows or none).
#[async_trait]
pub trait Store: Send + Sync {
    /// For each id in order, whether it was stored before (by an earlier
    /// [`Store::write_batch`]). The server drops a message whose id it has
    /// seen, before parsing, so re-delivered lines are neither stored twice
    /// nor counted twice by the rules.
    async fn known_record_ids(&self, ids: &[String]) -> Result<Vec<bool>, StoreError>;

    /// Write everything one pipeline batch produced in one transaction:
    /// the record ids it consumed, its events (an id already stored is
    /// skipped), alerts, decisions (each with an `add` change) and agent
    /// heartbeats. All or nothing, so a crash never leaves ids marked seen
    /// whose events were not stored.
    async fn write_batch(&self, batch: &WriteBatch) -> Result<BatchResult, StoreError>;

    /// Events matching `query`, newest first.
    async fn query_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError>;

    /// Alerts, newest first.
    async fn list_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError>;

    /// Create or replace decisions (keyed by address and type), appending an
    /// `add` change for each. Returns the change sequence numbers.
    async fn put_decisions(&self, decisions: &[DecisionRow]) -> Result<Vec<i64>, StoreError> {
        let batch = WriteBatch {
            decisions: decisions.to_vec(),
            ..WriteBatch::default()
        };
        Ok(self.write_batch(&batch).await?.change_seqs)
    }

    /// Delete the decisions for `ip` (of `decision` type, or all types),
    /// appending a `delete` change for each removed row. Returns the removed
    /// rows.
    async fn delete_decisions(
        &self,
        ip: &str,
        decision: Option<&str>,
        origin: &str,
        now_micros: i64,
    ) -> Result<Vec<DecisionRow>, StoreError>;

    /// Decisions; with `active_at`, only those not expired at that time.
    async fn list_decisions(&self, active_at: Option<i64>) -> Result<Vec<DecisionRow>, StoreError>;

    /// Up to `limit` decisions not expired at `active_at`, in (address,
    /// type) order, after `after` (an address and type) when given: one
    /// page of a snapshot.
    async fn list_decisions_page(
        &self,
        active_at: i64,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<DecisionRow>, StoreError>;

    /// Every change still stored (pruning keeps the retention period)
    /// of the decision about `ip` of type `decision`, oldest first: who
    /// made it, each renewal with the rule, reason and TTL it gave, and
    /// deletions.
    async fn decision_history(
        &self,
        ip: &str,
        decision: &str,
    ) -> Result<Vec<DecisionChange>, StoreError>;

    /// Decision changes with a sequence number above `after`, oldest first,
    /// at most `limit`.
    async fn decision_changes(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DecisionChange>, StoreError>;

    /// The newest change sequence number (0 when there is none).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;

    /// Known agents, by id.
    async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError>;

    /// Store a new enrollment token (its SHA-256, never the token). With
    /// `replace_agent`, the token enrolls only that (existing) agent id,
    /// with a new key; without, only a new id.
    async fn create_token(
        &self,
        token_hash: &str,
        created_micros: i64,
        expires_micros: i64,
        replace_agent: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Use a token to enroll `agent` (see [`Redeemed`]). The token is used
    /// up only when the agent is enrolled.
    async fn redeem_token(
        &self,
        token_hash: &str,
        agent: &AgentKeyRow,
        now_micros: i64,
    ) -> Result<Redeemed, StoreError>;

    /// An enrolled agent's key material and settings (revoked ones too,
    /// with [`AgentKeyRow::revoked_micros`] set).
    async fn agent_key(&self, agent_id: &str) -> Result<Option<AgentKeyRow>, StoreError>;

    /// Agents whose key is stored as it was before keys were derived
    /// (`key_salt` empty, the key itself in `key_hex`).
    async fn legacy_agent_keys(&self) -> Result<Vec<AgentKeyRow>, StoreError>;

    /// Replace an agent's stored key material, if it still is `old_key_hex`
    /// (a concurrent re-enrollment wins). True when replaced.
    async fn replace_agent_key(
        &self,
        agent_id: &str,
        old_key_hex: &str,
        key_hex: &str,
        key_salt: &str,
    ) -> Result<bool, StoreError>;

    /// Revoke an agent: its key stops working. False when unknown or
    /// revoked already.
    async fn revoke_agent(&self, agent_id: &str, now_micros: i64) -> Result<bool, StoreError>;

    /// Enrollment tokens, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError>;

    /// Delete the unused tokens whose id ([`TokenRow::id`], or a longer
    /// prefix of the hash) is `id`; returns how many.
    async fn revoke_token(&self, id: &str) -> Result<u64, StoreError>;

    /// The address an (unrevoked) agent just authenticated from.
    async fn note_agent_address(
        &self,
        agent_id: &str,
        addr: &str,
        now_micros: i64,
    ) -> Result<(), StoreError>;

    /// Addresses unrevoked agents authenticated from after the given time.
    async fn agent_addresses(&self, seen_after_micros: i64) -> Result<Vec<String>, StoreError>;

    /// The newest request timestamp accepted from `sender` (Unix seconds),
    /// persisted so a restart refuses replays signed before it.
    async fn auth_floor(&self, sender: &str) -> Result<Option<i64>, StoreError>;

    /// Raise `sender`'s floor to `ts` (never lowers it).
    async fn set_auth_floor(&self, sender: &str, ts: i64) -> Result<(), StoreError>;

    /// Replace an enrolled agent's policy settings; false if unknown.
    async fn set_agent_settings(
        &self,
        agent_id: &str,
        settings_json: &str,
    ) -> Result<bool, StoreError>;

    /// The oldest change sequence number still stored (0 when none): a
    /// consumer behind it missed pruned changes and needs a snapshot.
    async fn first_change_seq(&self) -> Result<i64, StoreError>;

    /// Row counts, for status output and tests.
    async fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// Delete events, alerts, record ids and expired decisions older than
    /// `before_micros`, at most `max_rows` of each table, in one short
    /// transaction. Returns how many rows went; call again until 0 (small
    /// chunks keep the write lock, and so ingest, free between them).
    async fn prune(&self, before_micros: i64, max_rows: u32) -> Result<u64, StoreError>;
}
