//! The embedded SQLite backend: one file in the data directory, WAL mode
//! so operators' commands (`mirage server decisions list`) read while the
//! server writes.
//!
//! Writes are batched by the caller and each batch is one transaction:
//! SQLite's cost is per commit, not per row. `synchronous = NORMAL` in WAL
//! mode keeps every committed batch across a crash of the process (only a
//! power loss can take the last commits), which is the durability the
//! agents' at-least-once delivery needs: an agent re-sends what the server
//! had not acknowledged, and the record ids drop what it had.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, Sqlite};

use crate::rows::{
    AgentKeyRow, AgentRow, AlertRow, BatchResult, DecisionChange, DecisionRow, EventQuery,
    EventRow, Redeemed, StoreCounts, TOKEN_ID_LEN, TokenRow, WriteBatch,
};
use crate::{Store, StoreError};

/// Schema version kept in `PRAGMA user_version`.
/// 2: enrollment tokens and agent keys (policy API).
/// 3: tokens that may replace one agent, revoked agents, derived keys
///    (salt), the address agents authenticate from, replay floors.
/// 4: decisions say when their rule made or renewed them
///    (`renewed_micros`), so a renewal by another rule is credited to it;
///    the change log is indexed by address for a decision's history.
const SCHEMA_VERSION: i64 = 4;

/// From version 1, 2 or 3 to 4 (every one of them has both decision
/// tables). A stored decision was last made at its creation, as far as
/// anyone knew.
const MIGRATE_TO_4: &str = r#"
ALTER TABLE decisions ADD COLUMN renewed_micros INTEGER NOT NULL DEFAULT 0;
UPDATE decisions SET renewed_micros = created_micros;
ALTER TABLE decision_changes ADD COLUMN renewed_micros INTEGER NOT NULL DEFAULT 0;
UPDATE decision_changes SET renewed_micros = created_micros;
"#;

/// From version 2 to 3.
const MIGRATE_2_3: &str = r#"
ALTER TABLE enroll_tokens ADD COLUMN replace_agent TEXT;
ALTER TABLE agent_keys ADD COLUMN key_salt TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_keys ADD COLUMN revoked_micros INTEGER;
ALTER TABLE agent_keys ADD COLUMN last_addr TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_keys ADD COLUMN last_seen_micros INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS auth_floors (
    sender  TEXT PRIMARY KEY,
    last_ts INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// The schema. Times are Unix microseconds; addresses canonical text.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    id         TEXT PRIMARY KEY,
    ts_micros  INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    service    TEXT NOT NULL,
    src_ip     TEXT NOT NULL,
    host       TEXT NOT NULL,
    origin     TEXT NOT NULL,
    json       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts_micros);
CREATE INDEX IF NOT EXISTS events_src ON events(src_ip, ts_micros);
CREATE TABLE IF NOT EXISTS record_ids (
    id          TEXT PRIMARY KEY,
    seen_micros INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_ids_seen ON record_ids(seen_micros);
CREATE TABLE IF NOT EXISTS alerts (
    ts_micros INTEGER NOT NULL,
    rule      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    src_ip    TEXT,
    key       TEXT NOT NULL,
    evidence  INTEGER NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts_micros);
CREATE TABLE IF NOT EXISTS decisions (
    ip             TEXT NOT NULL,
    decision       TEXT NOT NULL,
    rule           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    key            TEXT NOT NULL,
    created_micros INTEGER NOT NULL,
    expires_micros INTEGER NOT NULL,
    evidence       INTEGER NOT NULL,
    origin         TEXT NOT NULL,
    renewed_micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ip, decision)
);
CREATE TABLE IF NOT EXISTS decision_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    op             TEXT NOT NULL,
    at_micros      INTEGER NOT NULL,
    ip             TEXT NOT NULL,
    decision       TEXT NOT NULL,
    rule           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    key            TEXT NOT NULL,
    created_micros INTEGER NOT NULL,
    expires_micros INTEGER NOT NULL,
    evidence       INTEGER NOT NULL,
    origin         TEXT NOT NULL,
    renewed_micros INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decision_changes_ip ON decision_changes(ip, decision, seq);
CREATE TABLE IF NOT EXISTS enroll_tokens (
    token_hash     TEXT PRIMARY KEY,
    created_micros INTEGER NOT NULL,
    expires_micros INTEGER NOT NULL,
    used_by        TEXT,
    replace_agent  TEXT
);
CREATE TABLE IF NOT EXISTS agent_keys (
    agent_id         TEXT PRIMARY KEY,
    key_hex          TEXT NOT NULL,
    enrolled_micros  INTEGER NOT NULL,
    hostname         TEXT NOT NULL,
    settings_json    TEXT NOT NULL,
    key_salt         TEXT NOT NULL DEFAULT '',
    revoked_micros   INTEGER,
    last_addr        TEXT NOT NULL DEFAULT '',
    last_seen_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS auth_floors (
    sender  TEXT PRIMARY KEY,
    last_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    agent_id    TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    version     TEXT NOT NULL,
    sent_micros INTEGER NOT NULL,
    seen_micros INTEGER NOT NULL,
    peer        TEXT NOT NULL,
    status_json TEXT NOT NULL
);
"#;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed) the database file `mirage.db` in `dir`
    /// (created too), and bring its schema up to date.
    pub async fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        if !dir.exists() {
            // Only the server's user: the database holds agents' key
            // material and attackers' data.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Io {
                    path: dir.display().to_string(),
                    message: format!("cannot create data directory: {e}"),
                })?;
        }
        Self::open(&dir.join("mirage.db")).await
    }

    /// Open (creating if needed) the database at `path`. The file (and with
    /// it the WAL and shared-memory files, which SQLite creates with the
    /// database's mode) is readable by its owner only.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        private_file(path)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // The CLI and the server share the file; a writer waits for the
            // other's transaction instead of failing.
            .busy_timeout(Duration::from_secs(30))
            // A slow disk makes slow statements; sqlx would log each at
            // WARN. They are news, not failures (failures are logged once
            // per episode by the server's store health), so they go at INFO.
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_slow_level(log::LevelFilter::Info)
            .connect_with(opts)
            .await?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                table: "schema",
                message: format!(
                    "database schema version {version} is newer than this build's {SCHEMA_VERSION}"
                ),
            });
        }
        if version == SCHEMA_VERSION {
            // Up to date: no write, so opening beside a running server
            // (the operator CLI) never contends for the write lock.
            return Ok(());
        }
        // IMMEDIATE takes the write lock up front; a deferred transaction
        // that reads the schema first could not upgrade while another
        // process writes, and would fail instead of waiting.
        // The schema creates what is missing, with every column; tables an
        // older file already has are left as they were by `CREATE TABLE IF
        // NOT EXISTS` and get the columns of later versions added: those of
        // version 3 on a version-2 file, those of version 4 on any.
        let to_4 = if version >= 1 { MIGRATE_TO_4 } else { "" };
        let to_3 = if version == 2 { MIGRATE_2_3 } else { "" };
        sqlx::raw_sql(&format!(
            "BEGIN IMMEDIATE; {to_4} {SCHEMA} {to_3} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Close the pool, waiting for connections to finish (checkpoints WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One write transaction on a connection of its own.
///
/// `BEGIN IMMEDIATE` takes the write lock up front, so a writer waits for
/// another process's transaction (the operator CLI) instead of failing on
/// a lock upgrade. The transaction statements are ours, not sqlx's
/// `Transaction`: after a failed `COMMIT` (disk full) SQLite may already
/// have rolled back, sqlx's own `ROLLBACK` then fails, and its transaction
/// bookkeeping stays one level deep, so every later "transaction" on that
/// connection became a savepoint inside one that never ends: writes
/// answered OK, nothing was ever committed, and the file stayed locked.
/// Here any failure (or a drop before [`WriteTx::commit`]) closes the
/// connection instead of returning it to the pool; closing rolls back
/// whatever SQLite still holds open, and the pool opens a clean one.
struct WriteTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

impl WriteTx {
    async fn begin(pool: &SqlitePool) -> Result<WriteTx, StoreError> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(WriteTx { conn, open: true })
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                // Already rolled back or not: the connection goes either way.
                let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
                Err(e.into())
            }
        }
    }
}

impl WriteTx {
    /// End without writing (nothing to do after all); the connection is
    /// kept only when the rollback itself worked.
    async fn rollback(mut self) {
        if sqlx::query("ROLLBACK")
            .execute(&mut *self.conn)
            .await
            .is_ok()
        {
            self.open = false;
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// Create `path` empty with mode 0600 when it does not exist (SQLite takes
/// an empty file as a new database), or make an existing one 0600, with its
/// `-wal` and `-shm` files.
fn private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |p: &Path, e: std::io::Error| StoreError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = Path::new(&p);
        match std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            // Missing, or someone else's file (an operator reading a
            // database another user owns): leave it as it is.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => return Err(err(p, e)),
        }
    }
    Ok(())
}

fn u64_col(row: &SqliteRow, col: &str) -> Result<u64, StoreError> {
    let v: i64 = row.try_get(col)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decision_of(row: &SqliteRow) -> Result<DecisionRow, StoreError> {
    Ok(DecisionRow {
        ip: row.try_get("ip")?,
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        severity: row.try_get("severity")?,
        reason: row.try_get("reason")?,
        key: row.try_get("key")?,
        created_micros: row.try_get("created_micros")?,
        expires_micros: row.try_get("expires_micros")?,
        evidence: u64_col(row, "evidence")?,
        origin: row.try_get("origin")?,
        renewed_micros: row.try_get("renewed_micros")?,
    })
}

fn change_of(row: &SqliteRow) -> Result<DecisionChange, StoreError> {
    Ok(DecisionChange {
        seq: row.try_get("seq")?,
        op: row.try_get("op")?,
        at_micros: row.try_get("at_micros")?,
        decision: decision_of(row)?,
    })
}

async fn log_change(
    tx: &mut SqliteConnection,
    op: &str,
    at_micros: i64,
    d: &DecisionRow,
) -> Result<i64, StoreError> {
    let query = sqlx::query(
        "INSERT INTO decision_changes (op, at_micros, ip, decision, rule, severity, reason, key, \
         created_micros, expires_micros, evidence, origin, renewed_micros) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(op)
    .bind(at_micros);
    let res = bind_decision(query, d).execute(&mut *tx).await?;
    Ok(res.last_insert_rowid())
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Bind a decision's eleven columns, in table order, after what `q` has.
fn bind_decision<'q>(q: SqliteQuery<'q>, d: &'q DecisionRow) -> SqliteQuery<'q> {
    q.bind(&d.ip)
        .bind(&d.decision)
        .bind(&d.rule)
        .bind(&d.severity)
        .bind(&d.reason)
        .bind(&d.key)
        .bind(d.created_micros)
        .bind(d.expires_micros)
        .bind(i64_of(d.evidence))
        .bind(&d.origin)
        .bind(d.renewed_micros)
}

#[async_trait]
impl Store for SqliteStore {
    async fn known_record_ids(&self, ids: &[String]) -> Result<Vec<bool>, StoreError> {
        let mut known = Vec::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(known);
        }
        let mut conn = self.pool.acquire().await?;
        for id in ids {
            let hit: Option<i64> = sqlx::query_scalar("SELECT 1 FROM record_ids WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            known.push(hit.is_some());
        }
        Ok(known)
    }

    async fn write_batch(&self, b: &WriteBatch) -> Result<BatchResult, StoreError> {
        let mut result = BatchResult::default();
        if b.is_empty() {
            return Ok(result);
        }
        let mut tx = WriteTx::begin(&self.pool).await?;
        for id in &b.record_ids {
            sqlx::query("INSERT OR IGNORE INTO record_ids (id, seen_micros) VALUES (?, ?)")
                .bind(id)
                .bind(b.seen_micros)
                .execute(tx.conn())
                .await?;
        }
        for e in &b.events {
            let res = sqlx::query(
                "INSERT OR IGNORE INTO events (id, ts_micros, kind, service, src_ip, host, origin, json) \
                 VALUES (?,?,?,?,?,?,?,?)",
            )
            .bind(&e.id)
            .bind(e.ts_micros)
            .bind(&e.kind)
            .bind(&e.service)
            .bind(&e.src_ip)
            .bind(&e.host)
            .bind(&e.origin)
            .bind(&e.json)
            .execute(tx.conn())
            .await?;
            result.events_inserted += res.rows_affected();
        }
        for a in &b.alerts {
            sqlx::query(
                "INSERT INTO alerts (ts_micros, rule, severity, src_ip, key, evidence, reason) \
                 VALUES (?,?,?,?,?,?,?)",
            )
            .bind(a.ts_micros)
            .bind(&a.rule)
            .bind(&a.severity)
            .bind(a.src_ip.as_deref())
            .bind(&a.key)
            .bind(i64_of(a.evidence))
            .bind(&a.reason)
            .execute(tx.conn())
            .await?;
        }
        for d in &b.decisions {
            let insert = sqlx::query(
                "INSERT OR REPLACE INTO decisions (ip, decision, rule, severity, reason, key, \
                 created_micros, expires_micros, evidence, origin, renewed_micros) \
                 VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            );
            bind_decision(insert, d).execute(tx.conn()).await?;
            // Logged at the time its rule made it, so a renewal has its own
            // place in the decision's history.
            result
                .change_seqs
                .push(log_change(tx.conn(), "add", d.renewed_micros, d).await?);
        }
        for a in &b.agents {
            sqlx::query(
                "INSERT INTO agents (agent_id, hostname, version, sent_micros, seen_micros, peer, status_json) \
                 VALUES (?,?,?,?,?,?,?) ON CONFLICT(agent_id) DO UPDATE SET hostname = excluded.hostname, \
                 version = excluded.version, sent_micros = excluded.sent_micros, \
                 seen_micros = excluded.seen_micros, peer = excluded.peer, status_json = excluded.status_json \
                 WHERE excluded.sent_micros >= agents.sent_micros",
            )
            .bind(&a.agent_id)
            .bind(&a.hostname)
            .bind(&a.version)
            .bind(a.sent_micros)
            .bind(a.seen_micros)
            .bind(&a.peer)
            .bind(&a.status_json)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    async fn query_events(&self, q: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        // Optional filters as `(? IS NULL OR col = ?)` keep one prepared
        // statement for every combination.
        let rows = sqlx::query(
            "SELECT id, ts_micros, kind, service, src_ip, host, origin, json FROM events \
             WHERE (?1 IS NULL OR src_ip = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR service = ?3) AND (?4 IS NULL OR ts_micros >= ?4) \
             ORDER BY ts_micros DESC, id DESC LIMIT ?5",
        )
        .bind(q.src_ip.as_deref())
        .bind(q.kind.as_deref())
        .bind(q.service.as_deref())
        .bind(q.since_micros)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.try_get("id")?,
                    ts_micros: r.try_get("ts_micros")?,
                    kind: r.try_get("kind")?,
                    service: r.try_get("service")?,
                    src_ip: r.try_get("src_ip")?,
                    host: r.try_get("host")?,
                    origin: r.try_get("origin")?,
                    json: r.try_get("json")?,
                })
            })
            .collect()
    }

    async fn list_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT ts_micros, rule, severity, src_ip, key, evidence, reason FROM alerts \
             ORDER BY ts_micros DESC, rowid DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertRow {
                    ts_micros: r.try_get("ts_micros")?,
                    rule: r.try_get("rule")?,
                    severity: r.try_get("severity")?,
                    src_ip: r.try_get("src_ip")?,
                    key: r.try_get("key")?,
                    evidence: u64_col(r, "evidence")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    async fn delete_decisions(
        &self,
        ip: &str,
        decision: Option<&str>,
        origin: &str,
        now_micros: i64,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let mut tx = WriteTx::begin(&self.pool).await?;
        let rows = sqlx::query(
            "DELETE FROM decisions WHERE ip = ?1 AND (?2 IS NULL OR decision = ?2) \
             RETURNING ip, decision, rule, severity, reason, key, created_micros, \
             expires_micros, evidence, origin, renewed_micros",
        )
        .bind(ip)
        .bind(decision)
        .fetch_all(tx.conn())
        .await?;
        let mut removed = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut d = decision_of(r)?;
            // The change names who deleted it; the row keeps who made it.
            let made_by = std::mem::replace(&mut d.origin, origin.to_owned());
            log_change(tx.conn(), "delete", now_micros, &d).await?;
            d.origin = made_by;
            removed.push(d);
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn list_decisions_page(
        &self,
        active_at: i64,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let (ip, decision) = after.unwrap_or(("", ""));
        // The primary key (ip, decision) orders the page and serves the
        // row-value comparison, so each page costs its own size.
        let rows = sqlx::query(
            "SELECT ip, decision, rule, severity, reason, key, created_micros, expires_micros, \
             evidence, origin, renewed_micros FROM decisions WHERE expires_micros > ?1 AND (ip, decision) > (?2, ?3) \
             ORDER BY ip, decision LIMIT ?4",
        )
        .bind(active_at)
        .bind(ip)
        .bind(decision)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_of).collect()
    }

    async fn list_decisions(&self, active_at: Option<i64>) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT ip, decision, rule, severity, reason, key, created_micros, expires_micros, \
             evidence, origin, renewed_micros FROM decisions WHERE (?1 IS NULL OR expires_micros > ?1) \
             ORDER BY created_micros, ip, decision",
        )
        .bind(active_at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_of).collect()
    }

    async fn decision_changes(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DecisionChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, op, at_micros, ip, decision, rule, severity, reason, key, created_micros, \
             expires_micros, evidence, origin, renewed_micros FROM decision_changes WHERE seq > ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_of).collect()
    }

    async fn decision_history(
        &self,
        ip: &str,
        decision: &str,
    ) -> Result<Vec<DecisionChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, op, at_micros, ip, decision, rule, severity, reason, key, created_micros, \
             expires_micros, evidence, origin, renewed_micros FROM decision_changes \
             WHERE ip = ? AND decision = ? ORDER BY seq",
        )
        .bind(ip)
        .bind(decision)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_of).collect()
    }

    async fn last_change_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM decision_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, hostname, version, sent_micros, seen_micros, peer, status_json \
             FROM agents ORDER BY agent_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentRow {
                    agent_id: r.try_get("agent_id")?,
                    hostname: r.try_get("hostname")?,
                    version: r.try_get("version")?,
                    sent_micros: r.try_get("sent_micros")?,
                    seen_micros: r.try_get("seen_micros")?,
                    peer: r.try_get("peer")?,
                    status_json: r.try_get("status_json")?,
                })
            })
            .collect()
    }

    async fn create_token(
        &self,
        token_hash: &str,
        created_micros: i64,
        expires_micros: i64,
        replace_agent: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enroll_tokens (token_hash, created_micros, expires_micros, replace_agent) \
             VALUES (?,?,?,?)",
        )
        .bind(token_hash)
        .bind(created_micros)
        .bind(expires_micros)
        .bind(replace_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redeem_token(
        &self,
        token_hash: &str,
        agent: &AgentKeyRow,
        now_micros: i64,
    ) -> Result<Redeemed, StoreError> {
        let mut tx = WriteTx::begin(&self.pool).await?;
        let token: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT replace_agent FROM enroll_tokens WHERE token_hash = ? AND used_by IS NULL \
             AND expires_micros > ?",
        )
        .bind(token_hash)
        .bind(now_micros)
        .fetch_optional(tx.conn())
        .await?;
        let Some((replace,)) = token else {
            tx.rollback().await;
            return Ok(Redeemed::BadToken);
        };
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM agent_keys WHERE agent_id = ?")
            .bind(&agent.agent_id)
            .fetch_optional(tx.conn())
            .await?;
        // A token replaces only the agent it was made for; any other
        // enrollment of a known id would lock the real agent out.
        match (exists.is_some(), replace.as_deref()) {
            (true, Some(id)) if id == agent.agent_id => {}
            (true, _) => {
                tx.rollback().await;
                return Ok(Redeemed::AgentExists);
            }
            (false, Some(_)) => {
                tx.rollback().await;
                return Ok(Redeemed::BadToken);
            }
            (false, None) => {}
        }
        sqlx::query("UPDATE enroll_tokens SET used_by = ? WHERE token_hash = ?")
            .bind(&agent.agent_id)
            .bind(token_hash)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT OR REPLACE INTO agent_keys (agent_id, key_hex, key_salt, enrolled_micros, hostname, \
             settings_json, revoked_micros, last_addr, last_seen_micros) VALUES (?,?,?,?,?,?,NULL,'',0)",
        )
        .bind(&agent.agent_id)
        .bind(&agent.key_hex)
        .bind(&agent.key_salt)
        .bind(agent.enrolled_micros)
        .bind(&agent.hostname)
        .bind(&agent.settings_json)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(Redeemed::Enrolled)
    }

    async fn agent_key(&self, agent_id: &str) -> Result<Option<AgentKeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT agent_id, key_hex, key_salt, enrolled_micros, hostname, settings_json, \
             revoked_micros FROM agent_keys WHERE agent_id = ?",
        )
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(AgentKeyRow {
                agent_id: r.try_get("agent_id")?,
                key_hex: r.try_get("key_hex")?,
                key_salt: r.try_get("key_salt")?,
                enrolled_micros: r.try_get("enrolled_micros")?,
                hostname: r.try_get("hostname")?,
                settings_json: r.try_get("settings_json")?,
                revoked_micros: r.try_get("revoked_micros")?,
            })
        })
        .transpose()
    }

    async fn legacy_agent_keys(&self) -> Result<Vec<AgentKeyRow>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT agent_id FROM agent_keys WHERE key_salt = '' AND key_hex != '' ORDER BY agent_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.agent_key(&id).await? {
                rows.push(r);
            }
        }
        Ok(rows)
    }

    async fn replace_agent_key(
        &self,
        agent_id: &str,
        old_key_hex: &str,
        key_hex: &str,
        key_salt: &str,
    ) -> Result<bool, StoreError> {
        // secure_delete: SQLite otherwise leaves the replaced bytes (a key
        // in clear) in the page's free space and in freed pages.
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
        let n = sqlx::query(
            "UPDATE agent_keys SET key_hex = ?, key_salt = ? WHERE agent_id = ? AND key_hex = ?",
        )
        .bind(key_hex)
        .bind(key_salt)
        .bind(agent_id)
        .bind(old_key_hex)
        .execute(&mut *conn)
        .await;
        let _ = sqlx::query("PRAGMA secure_delete = OFF")
            .execute(&mut *conn)
            .await;
        Ok(n?.rows_affected() == 1)
    }

    async fn revoke_agent(&self, agent_id: &str, now_micros: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE agent_keys SET revoked_micros = ? WHERE agent_id = ? AND revoked_micros IS NULL",
        )
        .bind(now_micros)
        .bind(agent_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_hash, created_micros, expires_micros, used_by, replace_agent \
             FROM enroll_tokens ORDER BY created_micros",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let hash: String = r.try_get("token_hash")?;
                Ok(TokenRow {
                    id: hash.get(..TOKEN_ID_LEN).unwrap_or(&hash).to_owned(),
                    created_micros: r.try_get("created_micros")?,
                    expires_micros: r.try_get("expires_micros")?,
                    used_by: r.try_get("used_by")?,
                    replace_agent: r.try_get("replace_agent")?,
                })
            })
            .collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<u64, StoreError> {
        if id.len() < TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(0);
        }
        let n = sqlx::query(
            "DELETE FROM enroll_tokens WHERE substr(token_hash, 1, ?) = ? AND used_by IS NULL",
        )
        .bind(i64::try_from(id.len()).unwrap_or(0))
        .bind(id.to_ascii_lowercase())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn note_agent_address(
        &self,
        agent_id: &str,
        addr: &str,
        now_micros: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agent_keys SET last_addr = ?, last_seen_micros = ? WHERE agent_id = ? \
             AND revoked_micros IS NULL",
        )
        .bind(addr)
        .bind(now_micros)
        .bind(agent_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn agent_addresses(&self, seen_after_micros: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT last_addr FROM agent_keys WHERE revoked_micros IS NULL \
             AND last_addr != '' AND last_seen_micros > ?",
        )
        .bind(seen_after_micros)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn auth_floor(&self, sender: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT last_ts FROM auth_floors WHERE sender = ?")
                .bind(sender)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_auth_floor(&self, sender: &str, ts: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_floors (sender, last_ts) VALUES (?, ?) ON CONFLICT(sender) \
             DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)",
        )
        .bind(sender)
        .bind(ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_agent_settings(
        &self,
        agent_id: &str,
        settings_json: &str,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE agent_keys SET settings_json = ? WHERE agent_id = ?")
            .bind(settings_json)
            .bind(agent_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn first_change_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM decision_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM events) AS events, (SELECT COUNT(*) FROM alerts) AS alerts, \
             (SELECT COUNT(*) FROM decisions) AS decisions, \
             (SELECT COUNT(*) FROM record_ids) AS record_ids, (SELECT COUNT(*) FROM agents) AS agents",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreCounts {
            events: u64_col(&row, "events")?,
            alerts: u64_col(&row, "alerts")?,
            decisions: u64_col(&row, "decisions")?,
            record_ids: u64_col(&row, "record_ids")?,
            agents: u64_col(&row, "agents")?,
        })
    }

    async fn prune(&self, before_micros: i64, max_rows: u32) -> Result<u64, StoreError> {
        let mut tx = WriteTx::begin(&self.pool).await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ts_micros < ?1 LIMIT ?2)",
            "DELETE FROM alerts WHERE rowid IN (SELECT rowid FROM alerts WHERE ts_micros < ?1 LIMIT ?2)",
            "DELETE FROM record_ids WHERE id IN (SELECT id FROM record_ids WHERE seen_micros < ?1 LIMIT ?2)",
            "DELETE FROM decisions WHERE rowid IN (SELECT rowid FROM decisions WHERE expires_micros < ?1 LIMIT ?2)",
            "DELETE FROM decision_changes WHERE seq IN (SELECT seq FROM decision_changes WHERE at_micros < ?1 LIMIT ?2)",
        ] {
            n += sqlx::query(sql)
                .bind(before_micros)
                .bind(i64::from(max_rows))
                .execute(tx.conn())
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(ip: &str, kind: &str, expires: i64) -> DecisionRow {
        DecisionRow {
            ip: ip.into(),
            decision: kind.into(),
            rule: "r".into(),
            severity: "high".into(),
            reason: "because".into(),
            key: ip.into(),
            created_micros: 10,
            expires_micros: expires,
            evidence: 5,
            origin: "engine".into(),
            renewed_micros: 10,
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_dir(&dir.path().join("data"))
            .await
            .unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn record_ids_are_known_after_their_batch_even_across_reopen() {
        let (dir, s) = store().await;
        let ids: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(s.known_record_ids(&ids).await.unwrap(), [false, false]);
        s.write_batch(&ids_batch(&["a", "b", "a"], 1))
            .await
            .unwrap();
        s.close().await;
        let s = SqliteStore::open_dir(&dir.path().join("data"))
            .await
            .unwrap();
        let ids = vec!["b".to_string(), "c".to_string()];
        assert_eq!(s.known_record_ids(&ids).await.unwrap(), [true, false]);
        assert_eq!(s.counts().await.unwrap().record_ids, 2);
    }

    fn ids_batch(ids: &[&str], seen: i64) -> WriteBatch {
        WriteBatch {
            record_ids: ids.iter().map(|s| s.to_string()).collect(),
            seen_micros: seen,
            ..WriteBatch::default()
        }
    }

    #[tokio::test]
    async fn events_dedupe_by_id_and_filter() {
        let (_d, s) = store().await;
        let ev = |id: &str, ts: i64, ip: &str| EventRow {
            id: id.into(),
            ts_micros: ts,
            kind: "auth.attempt".into(),
            service: "ssh".into(),
            src_ip: ip.into(),
            host: "h".into(),
            origin: "log".into(),
            json: "{}".into(),
        };
        let batch = WriteBatch {
            events: vec![
                ev("1", 1, "10.0.0.1"),
                ev("2", 2, "10.0.0.2"),
                ev("1", 1, "10.0.0.1"),
            ],
            ..WriteBatch::default()
        };
        assert_eq!(s.write_batch(&batch).await.unwrap().events_inserted, 2);
        let all = s
            .query_events(&EventQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["2", "1"]
        );
        let one = s
            .query_events(&EventQuery {
                src_ip: Some("10.0.0.1".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "1");
    }

    #[tokio::test]
    async fn decisions_replace_delete_and_log_changes_in_order() {
        let (_d, s) = store().await;
        let seqs = s
            .put_decisions(&[
                decision("10.0.0.1", "deceive", 100),
                decision("10.0.0.2", "block", 50),
            ])
            .await
            .unwrap();
        assert_eq!(seqs, [1, 2]);
        // Renewal replaces the row, still one decision per (ip, type).
        s.put_decisions(&[decision("10.0.0.1", "deceive", 200)])
            .await
            .unwrap();
        let all = s.list_decisions(None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(s.list_decisions(Some(60)).await.unwrap().len(), 1);
        let removed = s
            .delete_decisions("10.0.0.1", None, "cli", 300)
            .await
            .unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].expires_micros, 200);
        assert_eq!(removed[0].origin, "engine");
        assert!(
            s.delete_decisions("10.0.0.9", None, "cli", 300)
                .await
                .unwrap()
                .is_empty()
        );
        let changes = s.decision_changes(2, 10).await.unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.seq, c.op.as_str()))
                .collect::<Vec<_>>(),
            [(3, "add"), (4, "delete")]
        );
        assert_eq!(changes[1].decision.origin, "cli");
        assert_eq!(s.last_change_seq().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn agent_heartbeat_keeps_the_newest() {
        let (_d, s) = store().await;
        let hb = |sent: i64, host: &str| AgentRow {
            agent_id: "a1".into(),
            hostname: host.into(),
            version: "0.1.0".into(),
            sent_micros: sent,
            seen_micros: sent,
            peer: "127.0.0.1:1".into(),
            status_json: "{}".into(),
        };
        let put = |a: AgentRow| WriteBatch {
            agents: vec![a],
            ..WriteBatch::default()
        };
        s.write_batch(&put(hb(20, "new"))).await.unwrap();
        // A late (queued) heartbeat must not overwrite a newer one.
        s.write_batch(&put(hb(10, "old"))).await.unwrap();
        let agents = s.list_agents().await.unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].hostname, "new");
    }

    fn key_row(id: &str) -> AgentKeyRow {
        AgentKeyRow {
            agent_id: id.into(),
            key_hex: String::new(),
            key_salt: "00".repeat(16),
            revoked_micros: None,
            enrolled_micros: 5,
            hostname: "web1".into(),
            settings_json: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_token_enrolls_one_agent_once_before_it_expires() {
        let (_d, s) = store().await;
        s.create_token("h1", 0, 100, None).await.unwrap();
        assert_eq!(
            s.redeem_token("h1", &key_row("a1"), 10).await.unwrap(),
            Redeemed::Enrolled
        );
        assert_eq!(
            s.redeem_token("h1", &key_row("a2"), 10).await.unwrap(),
            Redeemed::BadToken,
            "used twice"
        );
        assert_eq!(
            s.redeem_token("nope", &key_row("a3"), 10).await.unwrap(),
            Redeemed::BadToken
        );
        s.create_token("h2", 0, 100, None).await.unwrap();
        assert_eq!(
            s.redeem_token("h2", &key_row("a4"), 100).await.unwrap(),
            Redeemed::BadToken,
            "expired"
        );
        assert_eq!(s.agent_key("a1").await.unwrap().unwrap().hostname, "web1");
        assert!(s.agent_key("a2").await.unwrap().is_none());
        assert!(
            s.set_agent_settings("a1", "{\"mode\":\"firewall\"}")
                .await
                .unwrap()
        );
        assert!(
            s.agent_key("a1")
                .await
                .unwrap()
                .unwrap()
                .settings_json
                .contains("firewall")
        );
    }

    #[tokio::test]
    async fn an_enrolled_id_is_replaced_only_with_a_token_made_for_it() {
        let (_d, s) = store().await;
        s.create_token("t1", 0, 100, None).await.unwrap();
        assert_eq!(
            s.redeem_token("t1", &key_row("a1"), 1).await.unwrap(),
            Redeemed::Enrolled
        );
        // Any other token: refused, and not used up.
        s.create_token("t2", 0, 100, None).await.unwrap();
        let mut other = key_row("a1");
        other.key_salt = "11".repeat(16);
        assert_eq!(
            s.redeem_token("t2", &other, 2).await.unwrap(),
            Redeemed::AgentExists
        );
        assert_eq!(
            s.agent_key("a1").await.unwrap().unwrap().key_salt,
            "00".repeat(16)
        );
        assert_eq!(
            s.redeem_token("t2", &key_row("a2"), 3).await.unwrap(),
            Redeemed::Enrolled
        );
        // A replacement token works for its agent only.
        s.create_token("t3", 0, 100, Some("a1")).await.unwrap();
        assert_eq!(
            s.redeem_token("t3", &key_row("a9"), 4).await.unwrap(),
            Redeemed::BadToken
        );
        assert!(s.revoke_agent("a1", 4).await.unwrap());
        assert!(!s.revoke_agent("a1", 4).await.unwrap(), "revoked already");
        assert_eq!(
            s.agent_key("a1").await.unwrap().unwrap().revoked_micros,
            Some(4)
        );
        assert_eq!(
            s.redeem_token("t3", &other, 5).await.unwrap(),
            Redeemed::Enrolled
        );
        let a1 = s.agent_key("a1").await.unwrap().unwrap();
        assert_eq!(
            (a1.key_salt.as_str(), a1.revoked_micros),
            ("11".repeat(16).as_str(), None)
        );
        // Tokens: listed by id, revoked by id while unused.
        s.create_token("abcdef0123456789", 0, 100, None)
            .await
            .unwrap();
        let ids: Vec<String> = s
            .list_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert!(ids.contains(&"abcdef012345".to_string()), "{ids:?}");
        assert_eq!(s.revoke_token("abcdef012345").await.unwrap(), 1);
        assert_eq!(
            s.revoke_token("abc").await.unwrap(),
            0,
            "too short to name one"
        );
        assert_eq!(
            s.redeem_token("abcdef0123456789", &key_row("a5"), 6)
                .await
                .unwrap(),
            Redeemed::BadToken
        );
    }

    #[tokio::test]
    async fn agent_addresses_and_replay_floors() {
        let (_d, s) = store().await;
        s.create_token("t1", 0, 100, None).await.unwrap();
        s.redeem_token("t1", &key_row("a1"), 1).await.unwrap();
        s.note_agent_address("a1", "10.0.0.7", 50).await.unwrap();
        assert_eq!(s.agent_addresses(40).await.unwrap(), ["10.0.0.7"]);
        assert!(s.agent_addresses(60).await.unwrap().is_empty());
        s.revoke_agent("a1", 70).await.unwrap();
        assert!(s.agent_addresses(0).await.unwrap().is_empty());
        assert_eq!(s.auth_floor("sensor:hp1").await.unwrap(), None);
        s.set_auth_floor("sensor:hp1", 1000).await.unwrap();
        s.set_auth_floor("sensor:hp1", 900).await.unwrap();
        assert_eq!(s.auth_floor("sensor:hp1").await.unwrap(), Some(1000));
    }

    #[tokio::test]
    async fn prune_drops_old_rows_only() {
        let (_d, s) = store().await;
        s.write_batch(&ids_batch(&["old"], 1)).await.unwrap();
        s.write_batch(&ids_batch(&["new"], 100)).await.unwrap();
        s.put_decisions(&[decision("10.0.0.1", "block", 5)])
            .await
            .unwrap();
        // In chunks of one row per table: everything old goes, nothing new.
        let mut n = 0;
        loop {
            match s.prune(50, 1).await.unwrap() {
                0 => break,
                k => n += k,
            }
        }
        assert!(n >= 2);
        let c = s.counts().await.unwrap();
        assert_eq!(c.record_ids, 1);
        assert_eq!(c.decisions, 0);
    }
}
