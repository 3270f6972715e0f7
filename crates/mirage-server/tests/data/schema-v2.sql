-- A schema-2 database made by mirage at 1cc2778 (before derived keys):
-- one enrolled agent 'old-agent' (key 9191bf10...3d5d), one unused token,
-- five failed logins and the decision they made. sqlite3 .dump output.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    ts_micros  INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    service    TEXT NOT NULL,
    src_ip     TEXT NOT NULL,
    host       TEXT NOT NULL,
    origin     TEXT NOT NULL,
    json       TEXT NOT NULL
);
INSERT INTO events VALUES('01a24fd2-57e7-702c-9a5f-553d91b0c364',1796634000000000,'auth.attempt','ssh','192.0.2.77','web1','log','{"schema":1,"id":"01a24fd2-57e7-702c-9a5f-553d91b0c364","ts":"2026-12-07T09:00:00.000000Z","sensor":"web1","service":"ssh","transport":"tcp","src_ip":"192.0.2.77","src_port":1000,"tags":["from_log"],"kind":"auth.attempt","method":"password","username":"root","result":"failure"}');
INSERT INTO events VALUES('01a24fd2-57e7-702c-9a5f-553e1eb2af2d',1796634001000000,'auth.attempt','ssh','192.0.2.77','web1','log','{"schema":1,"id":"01a24fd2-57e7-702c-9a5f-553e1eb2af2d","ts":"2026-12-07T09:00:01.000000Z","sensor":"web1","service":"ssh","transport":"tcp","src_ip":"192.0.2.77","src_port":1001,"tags":["from_log"],"kind":"auth.attempt","method":"password","username":"root","result":"failure"}');
INSERT INTO events VALUES('01a24fd2-57e7-702c-9a5f-553fa42aec0c',1796634002000000,'auth.attempt','ssh','192.0.2.77','web1','log','{"schema":1,"id":"01a24fd2-57e7-702c-9a5f-553fa42aec0c","ts":"2026-12-07T09:00:02.000000Z","sensor":"web1","service":"ssh","transport":"tcp","src_ip":"192.0.2.77","src_port":1002,"tags":["from_log"],"kind":"auth.attempt","method":"password","username":"root","result":"failure"}');
INSERT INTO events VALUES('01a24fd2-57e7-702c-9a5f-5540a29fdb77',1796634003000000,'auth.attempt','ssh','192.0.2.77','web1','log','{"schema":1,"id":"01a24fd2-57e7-702c-9a5f-5540a29fdb77","ts":"2026-12-07T09:00:03.000000Z","sensor":"web1","service":"ssh","transport":"tcp","src_ip":"192.0.2.77","src_port":1003,"tags":["from_log"],"kind":"auth.attempt","method":"password","username":"root","result":"failure"}');
INSERT INTO events VALUES('01a24fd2-57e7-702c-9a5f-554134ca1bd2',1796634004000000,'auth.attempt','ssh','192.0.2.77','web1','log','{"schema":1,"id":"01a24fd2-57e7-702c-9a5f-554134ca1bd2","ts":"2026-12-07T09:00:04.000000Z","sensor":"web1","service":"ssh","transport":"tcp","src_ip":"192.0.2.77","src_port":1004,"tags":["from_log"],"kind":"auth.attempt","method":"password","username":"root","result":"failure"}');
CREATE TABLE record_ids (
    id          TEXT PRIMARY KEY,
    seen_micros INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE alerts (
    ts_micros INTEGER NOT NULL,
    rule      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    src_ip    TEXT,
    key       TEXT NOT NULL,
    evidence  INTEGER NOT NULL,
    reason    TEXT NOT NULL
);
INSERT INTO alerts VALUES(1796634004000000,'ssh-bruteforce-account','high','192.0.2.77','192.0.2.77|root|web1',5,'ssh-bruteforce-account: 5 events within 120s for 192.0.2.77|root|web1');
CREATE TABLE decisions (
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
INSERT INTO decisions VALUES('192.0.2.77','deceive','ssh-bruteforce-account','high','ssh-bruteforce-account: 5 events within 120s for 192.0.2.77|root|web1','192.0.2.77|root|web1',1796634004000000,1796648404000000,5,'engine');
CREATE TABLE decision_changes (
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
INSERT INTO decision_changes VALUES(1,'add',1796634004000000,'192.0.2.77','deceive','ssh-bruteforce-account','high','ssh-bruteforce-account: 5 events within 120s for 192.0.2.77|root|web1','192.0.2.77|root|web1',1796634004000000,1796648404000000,5,'engine');
CREATE TABLE enroll_tokens (
    token_hash     TEXT PRIMARY KEY,
    created_micros INTEGER NOT NULL,
    expires_micros INTEGER NOT NULL,
    used_by        TEXT
);
INSERT INTO enroll_tokens VALUES('b01f171186bce003f3ea1ccaa6ed3018146478d57e341fba8e082a2362acb933',1796635513632064,1796721913632064,'old-agent');
INSERT INTO enroll_tokens VALUES('544d69f7e9c0fbc323b9beb07974d72d1662a3693e6a14880094146d5f8ad218',1796635517016540,1796721917016540,NULL);
CREATE TABLE agent_keys (
    agent_id        TEXT PRIMARY KEY,
    key_hex         TEXT NOT NULL,
    enrolled_micros INTEGER NOT NULL,
    hostname        TEXT NOT NULL,
    settings_json   TEXT NOT NULL
);
INSERT INTO agent_keys VALUES('old-agent','9191bf102ff72f012889f4ee4317836c632376d92dd924315cd1134634763d5d',1796635514847439,'web1','{"mode":"firewall","whitelist":{"sources":[],"ports":[]},"services":[]}');
CREATE TABLE agents (
    agent_id    TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    version     TEXT NOT NULL,
    sent_micros INTEGER NOT NULL,
    seen_micros INTEGER NOT NULL,
    peer        TEXT NOT NULL,
    status_json TEXT NOT NULL
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('decision_changes',1);
CREATE INDEX events_ts ON events(ts_micros);
CREATE INDEX events_src ON events(src_ip, ts_micros);
CREATE INDEX record_ids_seen ON record_ids(seen_micros);
CREATE INDEX alerts_ts ON alerts(ts_micros);
COMMIT;
PRAGMA user_version = 2;
