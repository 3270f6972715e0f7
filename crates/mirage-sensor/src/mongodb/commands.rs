//! The commands understood and the replies given, field for field as a
//! standalone mongod of the configured version answers them; everything
//! else gets `no such command: 'x'` (code 59, CommandNotFound).

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use mirage_proto::mongodb::{Document, Value, relaxed_ejson, relaxed_ejson_value};
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

use super::detect::{javascript, ransom_indicators};
use super::store::{SYSTEM_DBS, matches};
use super::{FIELD_CAP, Server, lock};

/// Documents returned in one batch at most (the rest is not offered).
const MAX_BATCH: usize = 1000;
/// SCRAM iteration counts mongod uses by default.
const SHA1_ITERATIONS: u32 = 10_000;
const SHA256_ITERATIONS: u32 = 15_000;
/// Longest an awaitable hello is held.
const MAX_AWAIT: Duration = Duration::from_secs(10);

/// A recognised attack.
pub struct Attack {
    /// Technique id.
    pub technique: &'static str,
    /// One line.
    pub summary: String,
    /// Evidence.
    pub evidence: Map<String, serde_json::Value>,
    /// Tags.
    pub tags: Vec<String>,
}

/// An authentication attempt to record.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-1`, `PLAIN`, …
    pub mechanism: String,
    /// The user name.
    pub user: Option<String>,
    /// The password, where the mechanism sends it (PLAIN).
    pub password: Option<String>,
    /// Everything else learned.
    pub details: Map<String, serde_json::Value>,
}

/// An open SCRAM conversation.
pub struct Scram {
    conversation: i32,
    nonce: String,
    record: AuthRecord,
}

/// Per-connection state.
pub struct Conn {
    /// `connectionId`.
    pub id: i64,
    /// The SCRAM conversation in progress, if any.
    pub scram: Option<Scram>,
}

impl Conn {
    /// A new connection.
    pub fn new(id: i64) -> Conn {
        Conn { id, scram: None }
    }

    /// The attempt left open when the connection ends.
    pub fn unfinished_auth(&mut self) -> Option<AuthRecord> {
        self.scram.take().map(|s| {
            let mut r = s.record;
            r.details.insert("incomplete".into(), json!(true));
            r
        })
    }
}

/// What a command did.
#[derive(Default)]
pub struct Outcome {
    /// The reply document.
    pub reply: Document,
    /// Attacks recognised.
    pub attacks: Vec<Attack>,
    /// Authentication attempts finished by this command.
    pub auths: Vec<AuthRecord>,
    /// Wait this long before replying (awaitable hello).
    pub delay: Duration,
}

/// A command error document.
pub fn error(code: i32, name: &str, msg: impl Into<String>) -> Document {
    Document::new()
        .with("ok", 0.0)
        .with("errmsg", msg.into())
        .with("code", code)
        .with("codeName", name)
}

fn ok(d: Document) -> Document {
    d.with("ok", 1.0)
}

fn auth_failed() -> Document {
    error(18, "AuthenticationFailed", "Authentication failed.")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn s(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

fn cap(text: &str) -> String {
    text.chars().take(FIELD_CAP).collect()
}

/// Run one command.
pub fn run(
    server: &Server,
    conn: &mut Conn,
    peer: std::net::SocketAddr,
    db: &str,
    cmd: &Document,
) -> Outcome {
    let mut out = Outcome::default();
    let Some((name, arg)) = cmd.first() else {
        out.reply = error(59, "CommandNotFound", "no such command: ''");
        return out;
    };
    let map_reduce = if name == "mapReduce" || name == "mapreduce" {
        s(cmd.get("map"))
            .or(s(cmd.get("reduce")))
            .map(str::to_owned)
            .or_else(|| match cmd.get("map") {
                Some(Value::JavaScript(c)) => Some(c.clone()),
                _ => None,
            })
    } else {
        None
    };
    if let Some(code) = map_reduce.or_else(|| javascript(cmd, 0)) {
        let mut ev = Map::new();
        ev.insert("command".into(), json!(name));
        ev.insert("code".into(), json!(cap(&code)));
        out.attacks.push(Attack {
            technique: "mongodb.js_exec",
            summary: format!("server-side JavaScript in {name}"),
            evidence: ev,
            tags: vec!["command_exec".into()],
        });
    }
    let coll = arg.as_str().unwrap_or("").to_owned();
    out.reply = match name {
        "hello" | "isMaster" | "ismaster" => hello(server, conn, cmd, name != "hello", &mut out),
        "ping" => ok(Document::new()),
        "buildInfo" | "buildinfo" => build_info(server),
        "serverStatus" => server_status(server),
        "hostInfo" => host_info(server),
        "getCmdLineOpts" => ok(Document::new()
            .with(
                "argv",
                vec![
                    Value::from("/usr/bin/mongod"),
                    Value::from("--config"),
                    Value::from("/etc/mongod.conf"),
                ],
            )
            .with(
                "parsed",
                Document::new()
                    .with("config", "/etc/mongod.conf")
                    .with(
                        "net",
                        Document::new()
                            .with("bindIp", "0.0.0.0")
                            .with("port", 27017),
                    )
                    .with(
                        "processManagement",
                        Document::new().with("timeZoneInfo", "/usr/share/zoneinfo"),
                    )
                    .with(
                        "storage",
                        Document::new().with("dbPath", "/var/lib/mongodb"),
                    )
                    .with(
                        "systemLog",
                        Document::new()
                            .with("destination", "file")
                            .with("logAppend", true)
                            .with("path", "/var/log/mongodb/mongod.log"),
                    ),
            )),
        "getParameter" => get_parameter(server, cmd),
        "getLog" => get_log(server, arg),
        "getFreeMonitoringStatus" => ok(Document::new().with("state", "undecided")),
        "whatsmyuri" => ok(Document::new().with("you", peer.to_string())),
        "connectionStatus" => ok(Document::new().with(
            "authInfo",
            Document::new()
                .with("authenticatedUsers", Vec::<Value>::new())
                .with("authenticatedUserRoles", Vec::<Value>::new()),
        )),
        "endSessions" | "logout" | "refreshSessions" | "startSession" => {
            if name == "startSession" {
                let mut id = [0u8; 16];
                random(&mut id);
                ok(Document::new()
                    .with(
                        "id",
                        Document::new().with(
                            "id",
                            Value::Binary {
                                subtype: 4,
                                bytes: id.to_vec(),
                            },
                        ),
                    )
                    .with("timeoutMinutes", 30))
            } else {
                ok(Document::new())
            }
        }
        "listDatabases" => list_databases(server, cmd),
        "listCollections" => list_collections(server, db, cmd),
        "listIndexes" => {
            if lock(&server.store).docs(db, &coll).is_none() {
                error(
                    26,
                    "NamespaceNotFound",
                    format!("ns does not exist: {db}.{coll}"),
                )
            } else {
                cursor(&format!("{db}.{coll}"), vec![Value::Document(id_index())])
            }
        }
        "find" => find(server, db, &coll, cmd),
        "count" => {
            let store = lock(&server.store);
            let filter = cmd
                .get("query")
                .and_then(Value::as_document)
                .cloned()
                .unwrap_or_default();
            let n = store
                .docs(db, &coll)
                .map(|d| d.iter().filter(|x| matches(x, &filter)).count())
                .unwrap_or(0);
            ok(Document::new().with("n", n as i32))
        }
        "distinct" => {
            let store = lock(&server.store);
            let key = s(cmd.get("key")).unwrap_or("");
            let mut vals: Vec<Value> = Vec::new();
            for d in store.docs(db, &coll).into_iter().flatten() {
                if let Some(v) = d.get(key)
                    && !vals.iter().any(|x| x == v)
                    && vals.len() < MAX_BATCH
                {
                    vals.push(v.clone());
                }
            }
            ok(Document::new().with("values", vals))
        }
        "aggregate" => aggregate(server, db, arg, cmd),
        "getMore" => {
            let id = arg.as_i64().unwrap_or(0);
            error(43, "CursorNotFound", format!("cursor id {id} not found"))
        }
        "killCursors" => {
            let ids = match cmd.get("cursors") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            ok(Document::new()
                .with("cursorsKilled", Vec::<Value>::new())
                .with("cursorsNotFound", ids)
                .with("cursorsAlive", Vec::<Value>::new())
                .with("cursorsUnknown", Vec::<Value>::new()))
        }
        "insert" => insert(server, peer, db, &coll, cmd, &mut out.attacks),
        "update" => update(server, db, &coll, cmd),
        "delete" => delete(server, peer, db, &coll, cmd, &mut out.attacks),
        "findAndModify" | "findandmodify" => ok(Document::new()
            .with(
                "lastErrorObject",
                Document::new().with("n", 0).with("updatedExisting", false),
            )
            .with("value", Value::Null)),
        "drop" => {
            let existed = lock(&server.store).drop_collection(db, &coll);
            destroyed(
                server,
                peer,
                &format!("{db}.{coll}"),
                "drop",
                &mut out.attacks,
            );
            if existed {
                ok(Document::new()
                    .with("nIndexesWas", 1)
                    .with("ns", format!("{db}.{coll}")))
            } else if server.cfg.version_tuple() < (7, 0, 0) {
                error(26, "NamespaceNotFound", "ns not found")
            } else {
                ok(Document::new())
            }
        }
        "dropDatabase" => {
            lock(&server.store).drop_database(db);
            destroyed(server, peer, db, "dropDatabase", &mut out.attacks);
            ok(Document::new())
        }
        "create" => {
            let mut store = lock(&server.store);
            if store.docs(db, &coll).is_some() {
                error(
                    48,
                    "NamespaceExists",
                    format!("Collection {db}.{coll} already exists."),
                )
            } else {
                store.ensure(db, &coll);
                ok(Document::new())
            }
        }
        "createIndexes" => ok(Document::new()
            .with("numIndexesBefore", 1)
            .with("numIndexesAfter", 2)
            .with("createdCollectionAutomatically", false)),
        "dbStats" | "dbstats" => db_stats(server, db),
        "usersInfo" => ok(Document::new().with("users", Vec::<Value>::new())),
        "rolesInfo" => ok(Document::new().with("roles", Vec::<Value>::new())),
        "createUser" | "updateUser" | "grantRolesToUser" => {
            let mut ev = Map::new();
            ev.insert("command".into(), json!(name));
            ev.insert("user".into(), json!(cap(&coll)));
            ev.insert("database".into(), json!(db));
            if let Some(r) = cmd.get("roles") {
                ev.insert("roles".into(), json!(relaxed_ejson_value(r, 1024).0));
            }
            out.attacks.push(Attack {
                technique: "mongodb.user_admin",
                summary: format!("{name} '{}' on {db}", cap(&coll)),
                evidence: ev,
                tags: vec!["persistence".into()],
            });
            ok(Document::new())
        }
        "replSetGetStatus" | "replSetGetConfig" => {
            error(76, "NoReplicationEnabled", "not running with --replSet")
        }
        "shutdown" => error(
            13,
            "Unauthorized",
            "shutdown must run from localhost when running db without auth",
        ),
        "saslStart" => sasl_start(server, conn, db, cmd, false, &mut out),
        "saslContinue" => sasl_continue(conn, cmd, &mut out),
        "authenticate" => {
            let mech = s(cmd.get("mechanism")).unwrap_or("MONGODB-CR").to_owned();
            let mut details = Map::new();
            details.insert("database".into(), json!(db));
            out.auths.push(AuthRecord {
                mechanism: mech,
                user: s(cmd.get("user")).map(cap),
                password: None,
                details,
            });
            auth_failed()
        }
        _ => error(
            59,
            "CommandNotFound",
            format!("no such command: '{}'", cap(name)),
        ),
    };
    if name.starts_with("hello") || name.eq_ignore_ascii_case("ismaster") {
        // An awaitable hello (streaming monitoring) waits as mongod does
        // when nothing changed, so monitors do not spin.
        if cmd.get("topologyVersion").is_some()
            && let Some(ms) = cmd.get("maxAwaitTimeMS").and_then(Value::as_i64)
        {
            out.delay = Duration::from_millis(ms.clamp(0, MAX_AWAIT.as_millis() as i64) as u64);
        }
    }
    out
}

fn random(buf: &mut [u8]) {
    rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, buf);
}

fn hello(
    server: &Server,
    conn: &mut Conn,
    cmd: &Document,
    legacy: bool,
    out: &mut Outcome,
) -> Document {
    let mut d = Document::new();
    if cmd.get("helloOk").is_some_and(Value::truthy) {
        d.push("helloOk", true);
    }
    d.push(
        if legacy {
            "ismaster"
        } else {
            "isWritablePrimary"
        },
        true,
    );
    d.push(
        "topologyVersion",
        Document::new()
            .with("processId", Value::ObjectId(server.process_id))
            .with("counter", 0i64),
    );
    d.push("maxBsonObjectSize", 16_777_216);
    d.push("maxMessageSizeBytes", 48_000_000);
    d.push("maxWriteBatchSize", 100_000);
    d.push("localTime", Value::DateTime(now_ms()));
    d.push("logicalSessionTimeoutMinutes", 30);
    d.push("connectionId", conn.id as i32);
    d.push("minWireVersion", 0);
    d.push("maxWireVersion", server.cfg.max_wire_version());
    d.push("readOnly", false);
    if s(cmd.get("saslSupportedMechs")).is_some() {
        // As for a user created with the defaults: both mechanisms.
        d.push(
            "saslSupportedMechs",
            vec![Value::from("SCRAM-SHA-1"), Value::from("SCRAM-SHA-256")],
        );
    }
    if let Some(Value::Document(spec)) = cmd.get("speculativeAuthenticate") {
        let db = s(spec.get("db")).unwrap_or("admin").to_owned();
        let mut inner = Outcome::default();
        let r = sasl_start(server, conn, &db, spec, true, &mut inner);
        out.auths.append(&mut inner.auths);
        if r.get("ok") == Some(&Value::Double(1.0)) {
            let mut r = r;
            r.0.retain(|(k, _)| k != "ok");
            d.push("speculativeAuthenticate", r);
        }
    }
    ok(d)
}

fn payload_bytes(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::Binary { bytes, .. }) => bytes.clone(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

fn sasl_start(
    server: &Server,
    conn: &mut Conn,
    db: &str,
    cmd: &Document,
    speculative: bool,
    out: &mut Outcome,
) -> Document {
    if let Some(old) = conn.unfinished_auth() {
        out.auths.push(old);
    }
    let mechanism = s(cmd.get("mechanism")).unwrap_or("").to_owned();
    let payload = payload_bytes(cmd.get("payload"));
    let text = String::from_utf8_lossy(&payload).into_owned();
    let mut details = Map::new();
    details.insert("database".into(), json!(db));
    if speculative {
        details.insert("speculative".into(), json!(true));
    }
    let mut record = AuthRecord {
        mechanism: cap(&mechanism),
        user: None,
        password: None,
        details,
    };
    let (iterations, salt_len) = match mechanism.as_str() {
        "SCRAM-SHA-1" => (SHA1_ITERATIONS, 16),
        "SCRAM-SHA-256" => (SHA256_ITERATIONS, 28),
        "PLAIN" => {
            // authzid NUL authcid NUL password: the password in clear.
            let mut parts = payload.split(|&b| b == 0);
            let _authz = parts.next();
            record.user = parts.next().map(|u| cap(&String::from_utf8_lossy(u)));
            record.password = parts.next().map(|p| cap(&String::from_utf8_lossy(p)));
            out.auths.push(record);
            return error(
                334,
                "MechanismUnavailable",
                "Received authentication for mechanism PLAIN which is not enabled",
            );
        }
        _ => {
            out.auths.push(record);
            return error(
                2,
                "BadValue",
                format!(
                    "Received authentication for mechanism {} which is unknown or not enabled",
                    cap(&mechanism)
                ),
            );
        }
    };
    record
        .details
        .insert("client_first".into(), json!(cap(&text)));
    // client-first-message: gs2-header "n,," then n=user,r=nonce.
    let bare = text
        .strip_prefix("n,")
        .or_else(|| text.strip_prefix("y,"))
        .and_then(|t| t.split_once(',').map(|(_, b)| b));
    let mut user = None;
    let mut nonce = None;
    for f in bare.unwrap_or("").split(',') {
        if let Some(u) = f.strip_prefix("n=") {
            user = Some(u.replace("=2C", ",").replace("=3D", "="));
        } else if let Some(r) = f.strip_prefix("r=") {
            nonce = Some(r.to_owned());
        }
    }
    record.user = user.as_deref().map(cap);
    let (Some(user), Some(client_nonce)) = (user, nonce.filter(|n| n.len() >= 4)) else {
        out.auths.push(record);
        return auth_failed();
    };
    // A per-user salt that stays the same across attempts, as a stored
    // credential's does.
    let mut h = Sha256::new();
    h.update(server.secret);
    h.update(mechanism.as_bytes());
    h.update(user.as_bytes());
    let mut salt = h.finalize().to_vec();
    salt.truncate(salt_len);
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.encode(&salt);
    let mut sn = [0u8; 24];
    random(&mut sn);
    let nonce = format!("{client_nonce}{}", b64.encode(sn));
    let server_first = format!("r={nonce},s={salt},i={iterations}");
    record.details.insert("salt".into(), json!(salt));
    record
        .details
        .insert("iterations".into(), json!(iterations));
    record
        .details
        .insert("server_first".into(), json!(server_first));
    let conversation = 1;
    conn.scram = Some(Scram {
        conversation,
        nonce,
        record,
    });
    ok(Document::new()
        .with("conversationId", conversation)
        .with("done", false)
        .with(
            "payload",
            Value::Binary {
                subtype: 0,
                bytes: server_first.into_bytes(),
            },
        ))
}

fn sasl_continue(conn: &mut Conn, cmd: &Document, out: &mut Outcome) -> Document {
    let Some(scram) = conn.scram.take() else {
        return error(17, "ProtocolError", "No SASL session state found");
    };
    let mut record = scram.record;
    let id = cmd.get("conversationId").and_then(Value::as_i64);
    let text = String::from_utf8_lossy(&payload_bytes(cmd.get("payload"))).into_owned();
    record
        .details
        .insert("client_final".into(), json!(cap(&text)));
    let mut nonce_ok = false;
    for f in text.split(',') {
        if let Some(p) = f.strip_prefix("p=") {
            record.details.insert("client_proof".into(), json!(cap(p)));
        } else if let Some(r) = f.strip_prefix("r=") {
            nonce_ok = r == scram.nonce;
        }
    }
    if id != Some(i64::from(scram.conversation)) || !nonce_ok {
        record
            .details
            .insert("stage".into(), json!("bad_client_final"));
    }
    out.auths.push(record);
    auth_failed()
}

fn build_info(server: &Server) -> Document {
    let (maj, min, patch) = server.cfg.version_tuple();
    let engines: Vec<Value> = if maj >= 7 {
        vec!["devnull".into(), "wiredTiger".into()]
    } else {
        vec![
            "devnull".into(),
            "ephemeralForTest".into(),
            "wiredTiger".into(),
        ]
    };
    let openssl = "OpenSSL 3.0.2 15 Mar 2022";
    ok(Document::new()
        .with("version", server.cfg.version.as_str())
        .with("gitVersion", server.cfg.git_version.as_str())
        .with("modules", Vec::<Value>::new())
        .with("allocator", "tcmalloc")
        .with("javascriptEngine", "mozjs")
        .with("sysInfo", "deprecated")
        .with(
            "versionArray",
            vec![
                Value::Int32(maj as i32),
                Value::Int32(min as i32),
                Value::Int32(patch as i32),
                Value::Int32(0),
            ],
        )
        .with(
            "openssl",
            Document::new()
                .with("running", openssl)
                .with("compiled", openssl),
        )
        .with(
            "buildEnvironment",
            Document::new()
                .with("distmod", "ubuntu2204")
                .with("distarch", "x86_64")
                .with("cc", "/opt/mongodbtoolchain/v4/bin/gcc: gcc (GCC) 11.3.0")
                .with("cxx", "/opt/mongodbtoolchain/v4/bin/g++: g++ (GCC) 11.3.0")
                .with("target_arch", "x86_64")
                .with("target_os", "linux"),
        )
        .with("bits", 64)
        .with("debug", false)
        .with("maxBsonObjectSize", 16_777_216)
        .with("storageEngines", engines))
}

fn server_status(server: &Server) -> Document {
    use std::sync::atomic::Ordering::Relaxed;
    let up = server.started.elapsed();
    let c = &server.counters;
    ok(Document::new()
        .with("host", server.cfg.hostname.as_str())
        .with("version", server.cfg.version.as_str())
        .with("process", "mongod")
        .with("pid", i64::from(server.pid))
        .with("uptime", up.as_secs_f64().floor())
        .with("uptimeMillis", up.as_millis() as i64)
        .with("uptimeEstimate", up.as_secs() as i64)
        .with("localTime", Value::DateTime(now_ms()))
        .with(
            "asserts",
            Document::new()
                .with("regular", 0)
                .with("warning", 0)
                .with("msg", 0)
                .with("user", c.user_asserts.load(Relaxed) as i32)
                .with("tripwire", 0)
                .with("rollovers", 0),
        )
        .with(
            "connections",
            Document::new()
                .with("current", c.live.load(Relaxed) as i32)
                .with("available", 838_860 - c.live.load(Relaxed) as i32)
                .with("totalCreated", c.connections.load(Relaxed) as i32)
                .with("active", 1),
        )
        .with(
            "globalLock",
            Document::new()
                .with("totalTime", up.as_micros() as i64)
                .with(
                    "currentQueue",
                    Document::new()
                        .with("total", 0)
                        .with("readers", 0)
                        .with("writers", 0),
                ),
        )
        .with(
            "mem",
            Document::new()
                .with("bits", 64)
                .with("resident", 112)
                .with("virtual", 2618)
                .with("supported", true),
        )
        .with(
            "network",
            Document::new()
                .with("bytesIn", c.bytes_in.load(Relaxed) as i64)
                .with("bytesOut", c.bytes_out.load(Relaxed) as i64)
                .with("numRequests", c.requests.load(Relaxed) as i64),
        )
        .with(
            "opcounters",
            Document::new()
                .with("insert", c.inserts.load(Relaxed) as i64)
                .with("query", c.queries.load(Relaxed) as i64)
                .with("update", c.updates.load(Relaxed) as i64)
                .with("delete", c.deletes.load(Relaxed) as i64)
                .with("getmore", 0i64)
                .with("command", c.commands.load(Relaxed) as i64),
        )
        .with(
            "storageEngine",
            Document::new()
                .with("name", "wiredTiger")
                .with("supportsCommittedReads", true)
                .with(
                    "oldestRequiredTimestampForCrashRecovery",
                    Value::Timestamp { t: 0, i: 0 },
                )
                .with("supportsPendingDrops", true)
                .with("dropPendingIdents", 0i64)
                .with("supportsSnapshotReadConcern", true)
                .with("readOnly", false)
                .with("persistent", true)
                .with("backupCursorOpen", false),
        ))
}

fn host_info(server: &Server) -> Document {
    ok(Document::new()
        .with(
            "system",
            Document::new()
                .with("currentTime", Value::DateTime(now_ms()))
                .with("hostname", server.cfg.hostname.as_str())
                .with("cpuAddrSize", 64)
                .with("memSizeMB", 7957i64)
                .with("memLimitMB", 7957i64)
                .with("numCores", 4)
                .with("cpuArch", "x86_64")
                .with("numaEnabled", false),
        )
        .with(
            "os",
            Document::new()
                .with("type", "Linux")
                .with("name", "Ubuntu")
                .with("version", "22.04"),
        )
        .with(
            "extra",
            Document::new()
                .with("versionString", "Linux version 5.15.0-105-generic")
                .with("libcVersion", "2.35")
                .with("kernelVersion", "5.15.0-105-generic")
                .with("pageSize", 4096i64)
                .with("numPages", 2_037_024)
                .with("maxOpenFiles", 64000),
        ))
}

fn get_parameter(server: &Server, cmd: &Document) -> Document {
    let (maj, min, _) = server.cfg.version_tuple();
    let all = cmd.get("getParameter").and_then(Value::as_str) == Some("*");
    let known: Vec<(&str, Value)> = vec![
        (
            "featureCompatibilityVersion",
            Document::new()
                .with("version", format!("{maj}.{min}"))
                .into(),
        ),
        (
            "authenticationMechanisms",
            vec![Value::from("SCRAM-SHA-1"), Value::from("SCRAM-SHA-256")].into(),
        ),
        ("logLevel", 0.into()),
        ("quiet", false.into()),
        ("enableLocalhostAuthBypass", true.into()),
        ("scramIterationCount", (SHA1_ITERATIONS as i32).into()),
        (
            "scramSHA256IterationCount",
            (SHA256_ITERATIONS as i32).into(),
        ),
        ("maxIndexBuildMemoryUsageMegabytes", 200.into()),
        ("tlsMode", "disabled".into()),
    ];
    let mut d = Document::new();
    for (k, v) in known {
        if all || cmd.get(k).is_some() {
            d.push(k, v);
        }
    }
    if d.0.is_empty() {
        return error(72, "InvalidOptions", "no option found to get");
    }
    ok(d)
}

fn get_log(server: &Server, arg: &Value) -> Document {
    match arg.as_str() {
        Some("*") => ok(Document::new().with(
            "names",
            vec![Value::from("global"), Value::from("startupWarnings")],
        )),
        Some(which @ ("startupWarnings" | "global")) => {
            let t = chrono::DateTime::<Utc>::from(server.started_wall)
                .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
                .to_string();
            let mut lines = vec![
                format!(
                    "{{\"t\":{{\"$date\":\"{t}\"}},\"s\":\"W\",  \"c\":\"CONTROL\",  \"id\":22120,   \"ctx\":\"initandlisten\",\"msg\":\"Access control is not enabled for the database. Read and write access to data and configuration is unrestricted\",\"tags\":[\"startupWarnings\"]}}"
                ),
                format!(
                    "{{\"t\":{{\"$date\":\"{t}\"}},\"s\":\"W\",  \"c\":\"CONTROL\",  \"id\":5123300, \"ctx\":\"initandlisten\",\"msg\":\"vm.max_map_count is too low\",\"attr\":{{\"currentValue\":65530,\"recommendedMinimum\":1677720,\"maxConns\":838860}},\"tags\":[\"startupWarnings\"]}}"
                ),
            ];
            if which == "global" {
                lines.insert(
                    0,
                    format!(
                        "{{\"t\":{{\"$date\":\"{t}\"}},\"s\":\"I\",  \"c\":\"NETWORK\",  \"id\":23016,   \"ctx\":\"listener\",\"msg\":\"Waiting for connections\",\"attr\":{{\"port\":27017,\"ssl\":\"off\"}}}}"
                    ),
                );
            }
            ok(Document::new()
                .with("totalLinesWritten", lines.len() as i32)
                .with(
                    "log",
                    lines.into_iter().map(Value::from).collect::<Vec<_>>(),
                ))
        }
        _ => error(
            72,
            "InvalidOptions",
            "No log named 'x'".replace('x', &cap(&relaxed_ejson_value(arg, 64).0)),
        ),
    }
}

fn list_databases(server: &Server, cmd: &Document) -> Document {
    let name_only = cmd.get("nameOnly").is_some_and(Value::truthy);
    let store = lock(&server.store);
    let mut names: Vec<(String, u64)> = SYSTEM_DBS
        .iter()
        .map(|(n, sz)| ((*n).to_owned(), *sz))
        .collect();
    for n in store.dbs.keys() {
        if !names.iter().any(|(x, _)| x == n) {
            names.push((n.clone(), store.size_on_disk(n)));
        }
    }
    names.sort();
    let filter = cmd.get("filter").and_then(Value::as_document);
    let mut total = 0i64;
    let dbs: Vec<Value> = names
        .into_iter()
        .filter(|(n, _)| {
            filter.is_none_or(|f| matches(&Document::new().with("name", n.as_str()), f))
        })
        .map(|(n, sz)| {
            total += sz as i64;
            let d = Document::new().with("name", n);
            Value::Document(if name_only {
                d
            } else {
                d.with("sizeOnDisk", sz as i64).with("empty", false)
            })
        })
        .collect();
    let d = Document::new().with("databases", dbs);
    if name_only {
        ok(d)
    } else {
        ok(d.with("totalSize", total)
            .with("totalSizeMb", total / (1024 * 1024)))
    }
}

fn id_index() -> Document {
    Document::new()
        .with("v", 2)
        .with("key", Document::new().with("_id", 1))
        .with("name", "_id_")
}

fn cursor(ns: &str, batch: Vec<Value>) -> Document {
    ok(Document::new().with(
        "cursor",
        Document::new()
            .with("id", 0i64)
            .with("ns", ns)
            .with("firstBatch", batch),
    ))
}

fn uuid_for(server: &Server, db: &str, coll: &str) -> Value {
    let mut h = Sha256::new();
    h.update(server.secret);
    h.update(db.as_bytes());
    h.update([0]);
    h.update(coll.as_bytes());
    let mut b = h.finalize()[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Value::Binary {
        subtype: 4,
        bytes: b,
    }
}

fn list_collections(server: &Server, db: &str, cmd: &Document) -> Document {
    let name_only = cmd.get("nameOnly").is_some_and(Value::truthy);
    let filter = cmd.get("filter").and_then(Value::as_document);
    let store = lock(&server.store);
    let mut batch = Vec::new();
    let names: Vec<String> = match store.dbs.get(db) {
        Some(d) => d.colls.keys().cloned().collect(),
        None if db == "admin" => vec!["system.version".into()],
        None if db == "config" => vec!["system.sessions".into()],
        None if db == "local" => vec!["startup_log".into()],
        None => Vec::new(),
    };
    for n in names {
        let mut d = Document::new()
            .with("name", n.as_str())
            .with("type", "collection");
        if filter.is_some_and(|f| !matches(&d, f)) {
            continue;
        }
        if !name_only {
            d.push("options", Document::new());
            d.push(
                "info",
                Document::new()
                    .with("readOnly", false)
                    .with("uuid", uuid_for(server, db, &n)),
            );
            d.push("idIndex", id_index());
        }
        batch.push(Value::Document(d));
    }
    cursor(&format!("{db}.$cmd.listCollections"), batch)
}

fn find(server: &Server, db: &str, coll: &str, cmd: &Document) -> Document {
    let filter = cmd
        .get("filter")
        .and_then(Value::as_document)
        .cloned()
        .unwrap_or_default();
    let skip = cmd.get("skip").and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
    let limit = cmd
        .get("limit")
        .and_then(Value::as_i64)
        .map(|l| l.unsigned_abs() as usize)
        .filter(|&l| l > 0)
        .unwrap_or(MAX_BATCH)
        .min(MAX_BATCH);
    let store = lock(&server.store);
    let batch: Vec<Value> = store
        .docs(db, coll)
        .into_iter()
        .flatten()
        .filter(|d| matches(d, &filter))
        .skip(skip)
        .take(limit)
        .cloned()
        .map(Value::Document)
        .collect();
    cursor(&format!("{db}.{coll}"), batch)
}

fn aggregate(server: &Server, db: &str, target: &Value, cmd: &Document) -> Document {
    let coll = target.as_str().unwrap_or("");
    let ns = if coll.is_empty() {
        format!("{db}.$cmd.aggregate")
    } else {
        format!("{db}.{coll}")
    };
    let mut docs: Vec<Document> = {
        let store = lock(&server.store);
        store.docs(db, coll).cloned().unwrap_or_default()
    };
    if let Some(Value::Array(stages)) = cmd.get("pipeline") {
        for st in stages {
            let Some((op, arg)) = st.as_document().and_then(Document::first) else {
                continue;
            };
            match (op, arg) {
                ("$match", Value::Document(f)) => docs.retain(|d| matches(d, f)),
                ("$skip", v) => {
                    let n = v.as_i64().unwrap_or(0).max(0) as usize;
                    docs.drain(..n.min(docs.len()));
                }
                ("$limit", v) => docs.truncate(v.as_i64().unwrap_or(0).max(0) as usize),
                ("$count", Value::String(f)) => {
                    let n = docs.len() as i32;
                    docs = vec![Document::new().with(f.as_str(), n)];
                }
                ("$group", Value::Document(g)) => {
                    // Only the counting form drivers use (countDocuments).
                    let n = docs.len() as i32;
                    let mut out =
                        Document::new().with("_id", g.get("_id").cloned().unwrap_or(Value::Null));
                    for (k, _) in g.0.iter().filter(|(k, _)| k != "_id") {
                        out.push(k, n);
                    }
                    docs = if n == 0 { Vec::new() } else { vec![out] };
                }
                _ => {}
            }
        }
    }
    docs.truncate(MAX_BATCH);
    cursor(&ns, docs.into_iter().map(Value::Document).collect())
}

fn insert(
    server: &Server,
    peer: std::net::SocketAddr,
    db: &str,
    coll: &str,
    cmd: &Document,
    attacks: &mut Vec<Attack>,
) -> Document {
    let docs = match cmd.get("documents") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let mut n = 0;
    for d in docs {
        let Value::Document(mut d) = d else { continue };
        // mongod stores `_id` first, making one if the client did not.
        match d.0.iter().position(|(k, _)| k == "_id") {
            Some(i) => {
                let id = d.0.remove(i);
                d.0.insert(0, id);
            }
            None => {
                let mut id = [0u8; 12];
                id[..4].copy_from_slice(&(Utc::now().timestamp() as u32).to_be_bytes());
                random(&mut id[4..]);
                d.0.insert(0, ("_id".into(), Value::ObjectId(id)));
            }
        }
        let ind = ransom_indicators(&d);
        if ind.is_note() {
            let dropped = server.recent_destroy(peer.ip());
            let mut ev = Map::new();
            ev.insert("namespace".into(), json!(format!("{db}.{coll}")));
            ev.insert("note".into(), json!(relaxed_ejson(&d, 2048).0));
            ev.insert("btc_addresses".into(), json!(ind.btc_addresses));
            ev.insert("emails".into(), json!(ind.emails));
            ev.insert("words".into(), json!(ind.words));
            ev.insert("after_destroy".into(), json!(!dropped.is_empty()));
            ev.insert("destroyed".into(), json!(dropped));
            attacks.push(Attack {
                technique: "mongodb.ransom",
                summary: format!("ransom note inserted into {db}.{coll}"),
                evidence: ev,
                tags: vec!["ransom".into(), "wiper".into()],
            });
        }
        lock(&server.store).insert(db, coll, d);
        n += 1;
    }
    server
        .counters
        .inserts
        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    ok(Document::new().with("n", n))
}

fn update(server: &Server, db: &str, coll: &str, cmd: &Document) -> Document {
    let ups = match cmd.get("updates") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let mut store = lock(&server.store);
    let (mut n, mut modified) = (0i32, 0i32);
    let mut upserted = Vec::new();
    for (i, u) in ups.iter().enumerate() {
        let Some(u) = u.as_document() else { continue };
        let q = u
            .get("q")
            .and_then(Value::as_document)
            .cloned()
            .unwrap_or_default();
        let change = u
            .get("u")
            .and_then(Value::as_document)
            .cloned()
            .unwrap_or_default();
        let multi = u.get("multi").is_some_and(Value::truthy);
        let mut hit = 0;
        if let Some(docs) = store.docs_mut(db, coll) {
            for d in docs.iter_mut().filter(|d| matches(d, &q)) {
                apply_update(d, &change);
                hit += 1;
                if !multi {
                    break;
                }
            }
        }
        n += hit;
        modified += hit;
        if hit == 0 && u.get("upsert").is_some_and(Value::truthy) {
            let mut d = Document::new();
            let mut id = [0u8; 12];
            random(&mut id);
            d.push("_id", Value::ObjectId(id));
            for (k, v) in &q.0 {
                if !k.starts_with('$') && !matches!(v, Value::Document(_)) {
                    d.push(k, v.clone());
                }
            }
            apply_update(&mut d, &change);
            upserted.push(Value::Document(
                Document::new()
                    .with("index", i as i32)
                    .with("_id", d.get("_id").cloned().unwrap_or(Value::Null)),
            ));
            store.insert(db, coll, d);
            n += 1;
        }
    }
    let mut d = Document::new().with("n", n);
    if !upserted.is_empty() {
        d.push("upserted", upserted);
    }
    ok(d.with("nModified", modified))
}

fn apply_update(d: &mut Document, change: &Document) {
    if !change.first().is_some_and(|(k, _)| k.starts_with('$')) {
        // A replacement keeps the _id.
        let id = d.get("_id").cloned();
        *d = change.clone();
        if let Some(id) = id {
            d.0.retain(|(k, _)| k != "_id");
            d.0.insert(0, ("_id".into(), id));
        }
        return;
    }
    for (op, arg) in &change.0 {
        let Some(arg) = arg.as_document() else {
            continue;
        };
        for (k, v) in &arg.0 {
            match op.as_str() {
                "$set" => match d.0.iter_mut().find(|(f, _)| f == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => d.push(k, v.clone()),
                },
                "$unset" => d.0.retain(|(f, _)| f != k),
                _ => {}
            }
        }
    }
}

fn delete(
    server: &Server,
    peer: std::net::SocketAddr,
    db: &str,
    coll: &str,
    cmd: &Document,
    attacks: &mut Vec<Attack>,
) -> Document {
    let dels = match cmd.get("deletes") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let mut n = 0i32;
    let mut wiped = false;
    {
        let mut store = lock(&server.store);
        for del in &dels {
            let Some(del) = del.as_document() else {
                continue;
            };
            let q = del
                .get("q")
                .and_then(Value::as_document)
                .cloned()
                .unwrap_or_default();
            let one = del.get("limit").and_then(Value::as_i64) == Some(1);
            wiped |= q.0.is_empty() && !one;
            if let Some(docs) = store.docs_mut(db, coll) {
                let before = docs.len();
                if one {
                    if let Some(i) = docs.iter().position(|d| matches(d, &q)) {
                        docs.remove(i);
                    }
                } else {
                    docs.retain(|d| !matches(d, &q));
                }
                n += (before - docs.len()) as i32;
            }
        }
    }
    if wiped {
        destroyed(server, peer, &format!("{db}.{coll}"), "delete", attacks);
    }
    ok(Document::new().with("n", n))
}

/// Record a destructive command: a `mongodb.destroy` attack, and the
/// namespace remembered for the source so a following note is tied to it.
fn destroyed(
    server: &Server,
    peer: std::net::SocketAddr,
    what: &str,
    how: &str,
    attacks: &mut Vec<Attack>,
) {
    server.note_destroy(peer.ip(), what);
    let mut ev = Map::new();
    ev.insert("command".into(), json!(how));
    ev.insert("namespace".into(), json!(cap(what)));
    attacks.push(Attack {
        technique: "mongodb.destroy",
        summary: format!("{how} {}", cap(what)),
        evidence: ev,
        tags: vec!["wiper".into()],
    });
}

fn db_stats(server: &Server, db: &str) -> Document {
    let store = lock(&server.store);
    let (colls, objects, data) = match store.dbs.get(db) {
        Some(d) => (
            d.colls.len() as i64,
            d.colls.values().map(|c| c.len() as i64).sum::<i64>(),
            d.colls
                .values()
                .flatten()
                .map(|x| x.to_bytes().len() as i64)
                .sum::<i64>(),
        ),
        None => (0, 0, 0),
    };
    let size = store.size_on_disk(db) as i64;
    ok(Document::new()
        .with("db", db)
        .with("collections", colls)
        .with("views", 0i64)
        .with("objects", objects)
        .with(
            "avgObjSize",
            if objects > 0 {
                (data / objects) as f64
            } else {
                0.0
            },
        )
        .with("dataSize", data as f64)
        .with("storageSize", size as f64)
        .with("indexes", colls)
        .with("indexSize", (colls * 4096) as f64)
        .with("totalSize", (size + colls * 4096) as f64)
        .with("scaleFactor", 1.0)
        .with("fsUsedSize", 21_474_836_480.0)
        .with("fsTotalSize", 105_089_261_568.0))
}
