-- The schema of version 3 (crates/mirage-store/src/sqlite.rs before
-- version 4), to test that an existing database is upgraded.
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
    origin         TEXT NOT NULL
);
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
PRAGMA user_version = 3;
