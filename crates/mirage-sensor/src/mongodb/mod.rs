//! MongoDB honeypot: a standalone mongod of the configured version, without
//! access control (the exposed-database case attackers look for), speaking
//! `OP_MSG` and the legacy `OP_QUERY`. Every command document is a
//! `command` event (relaxed Extended JSON); SCRAM and PLAIN logins are
//! `auth.attempt` events and fail as on a server that has the user but not
//! that password; drops, ransom notes, server-side JavaScript and user
//! creation are `attack` events.
//!
//! - [`commands`]: what is answered and how.
//! - [`store`]: the fake databases, in memory, bounded.
//! - [`detect`]: ransom notes and JavaScript.
//! - [`ejson`]: the configured documents (Extended JSON) to BSON.
//!
//! Framing errors (a declared length below 16 or above the limit) are
//! recorded and the connection closed, as mongod closes it; a message that
//! frames but does not decode gets an error reply and the session goes on.
//! An HTTP request on the port gets mongod's "It looks like you are trying
//! to access MongoDB over HTTP" answer.

pub mod commands;
pub mod detect;
pub mod ejson;
pub mod store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_config::MongodbConfig;
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::mongodb::{
    self as proto, Document, Limits, Message, Value, msg_flags, relaxed_ejson,
};
use serde_json::json;

use self::commands::{AuthRecord, Conn, Outcome};
use self::store::Store;

/// Cap on the Extended JSON of a command in a `command` event.
pub const RAW_CAP: usize = 8192;
/// Cap on strings kept from a command (names, users).
pub const FIELD_CAP: usize = 256;
/// Bytes of offending input kept in `protocol.error` events.
const ERROR_INLINE: usize = 256;
/// How long a destructive command is remembered for a source address.
const DESTROY_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);
/// Most source addresses remembered for destructive commands.
const DESTROY_SOURCES: usize = 4096;

/// The HTTP answer of mongod on its driver port.
const HTTP_REPLY: &[u8] = b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 84\r\n\r\nIt looks like you are trying to access MongoDB over HTTP on the native driver port.\n";

/// Lock a mutex, recovering from poisoning (the state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// serverStatus counters.
#[derive(Default)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open.
    pub live: AtomicU64,
    /// Messages received.
    pub requests: AtomicU64,
    /// Commands run.
    pub commands: AtomicU64,
    /// Documents inserted.
    pub inserts: AtomicU64,
    /// Queries.
    pub queries: AtomicU64,
    /// Updates.
    pub updates: AtomicU64,
    /// Deletes.
    pub deletes: AtomicU64,
    /// Failed commands.
    pub user_asserts: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
}

/// State shared by every session of one emulator.
pub struct Server {
    /// The configuration.
    pub cfg: MongodbConfig,
    /// The data.
    pub store: Mutex<Store>,
    /// Monotonic start (uptime).
    pub started: Instant,
    /// Wall-clock start (log timestamps).
    pub started_wall: SystemTime,
    /// `topologyVersion.processId`.
    pub process_id: [u8; 12],
    /// `serverStatus.pid`: a plausible mongod pid.
    pub pid: u32,
    /// Per-start secret behind salts and collection UUIDs.
    pub secret: [u8; 32],
    /// Counters.
    pub counters: Counters,
    next_conn: AtomicI64,
    next_request: AtomicI32,
    destroys: Mutex<HashMap<IpAddr, (Instant, Vec<String>)>>,
}

impl Server {
    /// Remember that `ip` dropped or wiped `what`.
    pub fn note_destroy(&self, ip: IpAddr, what: &str) {
        let mut m = lock(&self.destroys);
        if m.len() >= DESTROY_SOURCES && !m.contains_key(&ip) {
            m.retain(|_, (t, _)| t.elapsed() < DESTROY_MEMORY);
            if m.len() >= DESTROY_SOURCES {
                m.clear();
            }
        }
        let e = m.entry(ip).or_insert_with(|| (Instant::now(), Vec::new()));
        e.0 = Instant::now();
        if e.1.len() < 64 && !e.1.iter().any(|x| x == what) {
            e.1.push(what.chars().take(FIELD_CAP).collect());
        }
    }

    /// What `ip` destroyed within the last hour.
    pub fn recent_destroy(&self, ip: IpAddr) -> Vec<String> {
        lock(&self.destroys)
            .get(&ip)
            .filter(|(t, _)| t.elapsed() < DESTROY_MEMORY)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// The MongoDB emulator.
pub struct MongoEmulator {
    server: Arc<Server>,
}

impl MongoEmulator {
    /// Build from configuration.
    pub fn new(cfg: MongodbConfig) -> MongoEmulator {
        let mut secret = [0u8; 32];
        rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut secret);
        let mut process_id = [0u8; 12];
        let now = chrono::Utc::now().timestamp() as u32;
        process_id[..4].copy_from_slice(&now.to_be_bytes());
        process_id[4..].copy_from_slice(&secret[..8]);
        MongoEmulator {
            server: Arc::new(Server {
                store: Mutex::new(Store::new(&cfg)),
                cfg,
                started: Instant::now(),
                started_wall: SystemTime::now(),
                process_id,
                pid: 700 + u32::from(secret[9]) * 3,
                secret,
                counters: Counters::default(),
                // Connection ids of a server that has been up a while.
                next_conn: AtomicI64::new(5 + i64::from(secret[10] % 40)),
                next_request: AtomicI32::new(1),
                destroys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Shared state (tests).
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }
}

struct LiveGuard(Arc<Server>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.counters.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Emulator for MongoEmulator {
    fn service(&self) -> &str {
        "mongodb"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let server = &self.server;
        server.counters.connections.fetch_add(1, Ordering::Relaxed);
        server.counters.live.fetch_add(1, Ordering::Relaxed);
        let _live = LiveGuard(server.clone());
        let mut conn = Conn::new(server.next_conn.fetch_add(1, Ordering::Relaxed));
        let result = serve_messages(server, session, &mut conn).await;
        if let Some(r) = conn.unfinished_auth() {
            emit_auth(session, r).await;
        }
        result
    }
}

async fn serve_messages(
    server: &Server,
    session: &mut Session,
    conn: &mut Conn,
) -> Result<(), SessionEnd> {
    let limits = Limits {
        max_message: usize::try_from(server.cfg.max_message_bytes).unwrap_or(usize::MAX),
        ..Limits::default()
    };
    let mut buf = BytesMut::new();
    let mut first = true;
    loop {
        if first && buf.len() >= 4 && &buf[..4] == b"GET " {
            session.write_all(HTTP_REPLY).await?;
            session
                .emit(EventKind::ProtocolError {
                    error: "HTTP request on the native driver port".into(),
                    data: PayloadData::new(&buf[..buf.len().min(4096)], ERROR_INLINE),
                })
                .await;
            return Ok(());
        }
        let header = match proto::next_message(&buf, limits.max_message) {
            Ok(Some(h)) => h,
            Ok(None) => {
                let before = buf.len();
                session.read_some(&mut buf).await?;
                server
                    .counters
                    .bytes_in
                    .fetch_add((buf.len() - before) as u64, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                session
                    .emit(EventKind::ProtocolError {
                        error: e.to_string(),
                        data: PayloadData::new(&buf[..buf.len().min(4096)], ERROR_INLINE),
                    })
                    .await;
                return Err(SessionEnd::ProtocolError);
            }
        };
        first = false;
        let msg = buf.split_to(header.length);
        server.counters.requests.fetch_add(1, Ordering::Relaxed);
        let reply_to = header.request_id;
        let parsed = proto::parse_message(&header, &msg, &limits);
        let (cmd, db, legacy, more_to_come) = match parsed {
            Ok(Message::Msg(m)) => {
                let more = m.flags & msg_flags::MORE_TO_COME != 0;
                let cmd = m.command();
                let db = match cmd.get("$db") {
                    Some(Value::String(d)) => Some(d.clone()),
                    _ => None,
                };
                match db {
                    Some(db) => (cmd, db, false, more),
                    None => {
                        let reply = commands::error(
                            40571,
                            "Location40571",
                            "OP_MSG requests require a $db argument",
                        );
                        record_command(session, "", &cmd, true).await;
                        if !more {
                            send(server, session, reply_to, false, &reply).await?;
                        }
                        continue;
                    }
                }
            }
            Ok(Message::Query(q)) => {
                if !q.collection.ends_with(".$cmd") {
                    // Legacy find: gone since 5.1.
                    let reply = Document::new()
                        .with("$err", "Unsupported OP_QUERY command: find. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal")
                        .with("code", 352)
                        .with("codeName", "UnsupportedOpQueryCommand")
                        .with("ok", 0.0);
                    record_command(session, q.database(), &q.query, true).await;
                    let bytes = proto::encode_op_reply(next_id(server), reply_to, 2, &[reply]);
                    write(server, session, &bytes).await?;
                    continue;
                }
                (q.command(), q.database().to_owned(), true, false)
            }
            Ok(Message::Other(op)) => {
                session
                    .emit(EventKind::ProtocolError {
                        error: format!("unsupported opcode {op}"),
                        data: PayloadData::new(&msg, ERROR_INLINE),
                    })
                    .await;
                return Err(SessionEnd::ProtocolError);
            }
            Err(e) => {
                let (code, name) = match e {
                    proto::ParseError::Bson(_) => (22, "InvalidBSON"),
                    proto::ParseError::IllegalFlags(_) => (40632, "Location40632"),
                    _ => (40430, "Location40430"),
                };
                session
                    .emit(EventKind::ProtocolError {
                        error: e.to_string(),
                        data: PayloadData::new(&msg, ERROR_INLINE),
                    })
                    .await;
                let reply = commands::error(code, name, e.to_string());
                let legacy = header.op_code == proto::opcode::QUERY;
                send(server, session, reply_to, legacy, &reply).await?;
                continue;
            }
        };
        server.counters.commands.fetch_add(1, Ordering::Relaxed);
        let name = cmd.first().map(|(k, _)| k.to_owned()).unwrap_or_default();
        match name.as_str() {
            "find" | "aggregate" | "count" | "distinct" => &server.counters.queries,
            "update" | "findAndModify" => &server.counters.updates,
            "delete" => &server.counters.deletes,
            _ => &server.counters.commands,
        }
        .fetch_add(1, Ordering::Relaxed);
        let peer = session.peer();
        let out: Outcome = commands::run(server, conn, peer, &db, &cmd);
        let error = out.reply.get("ok") != Some(&Value::Double(1.0));
        if error {
            server.counters.user_asserts.fetch_add(1, Ordering::Relaxed);
        }
        record_command(session, &db, &cmd, error).await;
        for a in out.attacks {
            let mut ev = session.event(EventKind::Attack {
                technique: a.technique.into(),
                summary: a.summary,
                evidence: a.evidence,
            });
            ev.tags = a.tags;
            session.emit_event(ev).await;
        }
        for r in out.auths {
            emit_auth(session, r).await;
        }
        if !out.delay.is_zero() {
            tokio::time::sleep(out.delay).await;
        }
        if !more_to_come {
            send(server, session, reply_to, legacy, &out.reply).await?;
        }
    }
}

fn next_id(server: &Server) -> i32 {
    server.next_request.fetch_add(1, Ordering::Relaxed)
}

async fn write(server: &Server, session: &mut Session, bytes: &[u8]) -> Result<(), SessionEnd> {
    server
        .counters
        .bytes_out
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    session.write_all(bytes).await
}

async fn send(
    server: &Server,
    session: &mut Session,
    reply_to: i32,
    legacy: bool,
    reply: &Document,
) -> Result<(), SessionEnd> {
    let bytes = if legacy {
        proto::encode_op_reply(
            next_id(server),
            reply_to,
            proto::REPLY_AWAIT_CAPABLE,
            std::slice::from_ref(reply),
        )
    } else {
        proto::encode_op_msg(next_id(server), reply_to, 0, reply)
    };
    write(server, session, &bytes).await
}

/// A `command` event: the command name lower-cased, the database and the
/// target (collection) as args, the whole document as relaxed Extended JSON.
async fn record_command(session: &Session, db: &str, cmd: &Document, error: bool) {
    let (name, target) = match cmd.first() {
        Some((k, v)) => (k.to_lowercase(), v.as_str().map(str::to_owned)),
        None => (String::new(), None),
    };
    let (raw, cut) = relaxed_ejson(cmd, RAW_CAP);
    let mut truncated = cut;
    let mut args = vec![BytesText::from(db)];
    if let Some(t) = target {
        let (t, c) = BytesText::capped(t.as_bytes(), FIELD_CAP);
        truncated |= c;
        args.push(t);
    }
    session
        .emit(EventKind::Command {
            command: name.chars().take(FIELD_CAP).collect(),
            args,
            raw: BytesText(raw),
            truncated,
            error,
            details: Default::default(),
        })
        .await;
}

async fn emit_auth(session: &Session, r: AuthRecord) {
    let mut details = r.details;
    details.insert("mechanism".into(), json!(r.mechanism));
    session
        .emit(EventKind::AuthAttempt {
            method: r.mechanism,
            username: r.user.map(|u| BytesText::capped(u.as_bytes(), FIELD_CAP).0),
            password: r
                .password
                .map(|p| BytesText::capped(p.as_bytes(), FIELD_CAP).0),
            key_fingerprint: None,
            result: AuthResult::Failure,
            details,
        })
        .await;
}
