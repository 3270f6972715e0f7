//! MySQL honeypot: speaks the MySQL protocol like the configured MySQL or
//! MariaDB version, records every login attempt (user, database, client
//! plugin, auth response, capability flags, connect attributes, and the
//! password itself where the protocol reveals it) and every command, and
//! lets listed credentials in to a small fake schema.
//!
//! - [`flavor`]: what differs between MySQL 5.7/8.0 and MariaDB.
//! - [`auth`]: the authentication plugins and the RSA key exchange.
//! - [`sql`]: the SQL understood and the answers given, attack recognition.
//! - [`schema`]: the fake databases and tables.
//!
//! The connection phase follows `sql_authentication.cc`: handshake with a
//! fresh scramble, the client's response, an auth switch when the client
//! used another plugin than the account's, then the plugin's exchange, and
//! `ER_ACCESS_DENIED_ERROR` with the server's exact text. Every account,
//! known or not, uses the server's default plugin (MySQL 8.0 gives unknown
//! accounts a random one; see `docs/services.md`). TLS is not offered:
//! `CLIENT_SSL` is absent from the capabilities, as on a server without
//! certificates, so clients stay in clear text.
//!
//! Framing errors (sequence ids, oversized packets) get the server's error
//! and a close, malformed handshakes get "Bad handshake": each is a
//! `protocol.error` event, never a log line.

pub mod auth;
pub mod flavor;
pub mod schema;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use mirage_config::MysqlConfig;
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData, escape_bytes};
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::mysql::{
    self as proto, ClientHello, Command, FrameError, HandshakeResponse, OkPacket, PacketWriter,
    caps, com, status,
};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use self::auth::{Plugin, RsaKeys};
use self::flavor::Flavor;
use self::schema::Catalog;
use self::sql::{Engine, Reply, SqlSession};

/// Cap on the escaped text of a query in a `command` event.
pub const RAW_CAP: usize = 4096;
/// Cap on each string kept from a handshake (user, database, attributes).
pub const FIELD_CAP: usize = 256;
/// Bytes of a written payload kept inline in `payload` events.
pub const PAYLOAD_INLINE: usize = 4096;
/// Replies are flushed once this many bytes are queued.
const FLUSH_AT: usize = 64 * 1024;

/// Lock a mutex, recovering from poisoning (the state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State shared by every session of one emulator.
pub struct Server {
    /// The configuration.
    pub cfg: MysqlConfig,
    /// The imitated server.
    pub flavor: Flavor,
    /// The fake schema.
    pub catalog: Catalog,
    /// Start time (`Uptime`).
    pub started: Instant,
    next_id: AtomicU32,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Sessions now open.
    pub live: AtomicU64,
    /// Commands received.
    pub questions: AtomicU64,
    /// Failed logins.
    pub failed_logins: AtomicU64,
    /// UDFs created by clients (name -> library), server-wide like a real
    /// `mysql.func`, so a chain split over connections still works.
    pub udfs: Mutex<BTreeMap<String, String>>,
    /// Databases created by clients.
    pub extra_dbs: Mutex<BTreeSet<String>>,
    rsa: Arc<OnceCell<Option<Arc<RsaKeys>>>>,
}

impl Server {
    /// The RSA keys, generating them on first use (the emulator starts the
    /// generation at once, so a client rarely waits).
    async fn rsa(&self) -> Option<Arc<RsaKeys>> {
        self.rsa.get_or_init(generate_keys).await.clone()
    }
}

async fn generate_keys() -> Option<Arc<RsaKeys>> {
    tokio::task::spawn_blocking(|| RsaKeys::generate(auth::RSA_BITS))
        .await
        .ok()
        .flatten()
}

/// The MySQL emulator.
pub struct MysqlEmulator {
    server: Arc<Server>,
}

impl MysqlEmulator {
    /// Build from configuration. Inside a tokio runtime, key generation for
    /// `caching_sha2_password` starts in the background.
    pub fn new(cfg: MysqlConfig) -> MysqlEmulator {
        let flavor = Flavor::new(&cfg);
        let rsa = Arc::new(OnceCell::new());
        if flavor.plugin == Plugin::CachingSha2
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let cell = rsa.clone();
            rt.spawn(async move {
                cell.get_or_init(generate_keys).await;
            });
        }
        // Thread ids of a server that has been up a while.
        let first_id = 8 + (std::process::id() % 40);
        MysqlEmulator {
            server: Arc::new(Server {
                catalog: Catalog::new(flavor.mariadb),
                flavor,
                cfg,
                started: Instant::now(),
                next_id: AtomicU32::new(first_id),
                connections: AtomicU64::new(0),
                live: AtomicU64::new(0),
                questions: AtomicU64::new(0),
                failed_logins: AtomicU64::new(0),
                udfs: Mutex::new(BTreeMap::new()),
                extra_dbs: Mutex::new(BTreeSet::new()),
                rsa,
            }),
        }
    }

    /// Shared state (tests, benchmarks).
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }
}

/// Why reading a packet stopped.
enum ReadEnd {
    Frame(FrameError),
    End(SessionEnd),
}

/// The socket side of a session: buffered packet reads and queued writes.
struct Wire<'s> {
    session: &'s mut Session,
    buf: BytesMut,
    max: usize,
    out: PacketWriter,
}

impl Wire<'_> {
    /// The next packet, which must carry sequence id `expected`.
    async fn read(&mut self, expected: u8) -> Result<proto::Packet, ReadEnd> {
        loop {
            match proto::next_packet(&self.buf, expected, self.max) {
                Ok(Some(p)) => {
                    self.buf.advance(p.consumed);
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadEnd::Frame(e)),
            }
            self.flush().await.map_err(ReadEnd::End)?;
            self.session
                .read_some(&mut self.buf)
                .await
                .map_err(ReadEnd::End)?;
        }
    }

    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.out.is_empty() {
            return Ok(());
        }
        let bytes = self.out.take();
        self.session.write_all(&bytes).await
    }

    fn packet(&mut self, payload: &[u8]) {
        self.out.packet(payload);
    }
}

/// Where the authentication exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Logged in.
    Success,
    /// Access denied; whether a password was used.
    Denied(bool),
    /// The client cannot do the plugin the account needs.
    Unsupported,
    /// The client went away mid-exchange.
    Gone,
}

/// What the authentication exchange learned.
struct AuthTrail {
    verdict: Verdict,
    plugin: Plugin,
    switch_response: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    stage: &'static str,
    end: Option<SessionEnd>,
    frame: Option<(FrameError, u8)>,
}

fn hexcaps(c: u32) -> String {
    format!("0x{c:08x}")
}

fn text(b: &[u8]) -> String {
    escape_bytes(&b[..b.len().min(FIELD_CAP)])
}

#[async_trait]
impl Emulator for MysqlEmulator {
    fn service(&self) -> &str {
        "mysql"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let server = &self.server;
        server.connections.fetch_add(1, Ordering::Relaxed);
        server.live.fetch_add(1, Ordering::Relaxed);
        let _live = LiveGuard(server.clone());
        let conn_id = server.next_id.fetch_add(1, Ordering::Relaxed);
        let scramble = server.flavor.scramble();
        let max = usize::try_from(server.cfg.max_allowed_packet).unwrap_or(usize::MAX);
        let mut w = Wire {
            session,
            buf: BytesMut::new(),
            max,
            out: PacketWriter::new(0),
        };
        let hs = proto::Handshake {
            server_version: &server.flavor.handshake_version,
            connection_id: conn_id,
            scramble,
            capabilities: server.flavor.capabilities,
            charset: server.flavor.charset,
            status: status::AUTOCOMMIT,
            auth_plugin: server.flavor.plugin.name(),
            mariadb_caps: server.flavor.mariadb_caps,
        };
        w.packet(&hs.encode());
        let first = match w.read(1).await {
            Ok(p) => p,
            Err(ReadEnd::Frame(e)) => return frame_error(&mut w, e, 1, true).await,
            Err(ReadEnd::End(e)) => return Err(e),
        };
        let hello = proto::parse_client_hello(&first.payload, server.flavor.capabilities);
        let h = match hello {
            Ok(ClientHello::Response(h)) => h,
            Ok(ClientHello::SslRequest { .. }) | Err(_) => {
                // No TLS offered, so an SSLRequest is as bad as garbage: the
                // server's answer for both is "Bad handshake".
                let what = match hello {
                    Ok(_) => "Bad handshake (TLS requested, not offered)",
                    Err(_) => "Bad handshake",
                };
                w.out.set_seq(first.seq.wrapping_add(1));
                w.packet(&proto::err_payload(1043, "08S01", b"Bad handshake", true));
                w.flush().await?;
                w.session
                    .emit(EventKind::ProtocolError {
                        error: what.into(),
                        data: PayloadData::new(&first.payload, 256),
                    })
                    .await;
                return Err(SessionEnd::ProtocolError);
            }
        };
        let client_caps = h.capabilities & (server.flavor.capabilities | caps::SSL);
        let p41 = client_caps & caps::PROTOCOL_41 != 0;
        let mut seq = first.seq.wrapping_add(1);
        let trail = authenticate(server, &mut w, &h, &scramble, &mut seq).await;
        // The attempt is recorded whatever happens next.
        let mut details = Map::new();
        details.insert(
            "plugin".into(),
            json!(h.auth_plugin.as_deref().map(text).unwrap_or_default()),
        );
        details.insert("auth_plugin".into(), json!(trail.plugin.name()));
        details.insert(
            "auth_response".into(),
            json!(proto::to_hex(
                &h.auth_response[..h.auth_response.len().min(512)]
            )),
        );
        if let Some(s) = &trail.switch_response {
            details.insert(
                "switch_response".into(),
                json!(proto::to_hex(&s[..s.len().min(512)])),
            );
        }
        if let Some(db) = &h.database {
            details.insert("database".into(), json!(text(db)));
        }
        details.insert("capabilities".into(), json!(hexcaps(h.capabilities)));
        details.insert("charset".into(), json!(h.charset));
        details.insert("max_packet".into(), json!(h.max_packet));
        if !h.attrs.is_empty() {
            let attrs: Map<String, Value> = h
                .attrs
                .iter()
                .map(|(k, v)| (text(k), Value::String(text(v))))
                .collect();
            details.insert("connect_attrs".into(), Value::Object(attrs));
        }
        details.insert("stage".into(), json!(trail.stage));
        if trail.verdict == Verdict::Gone {
            details.insert("incomplete".into(), json!(true));
        }
        let result = if trail.verdict == Verdict::Success {
            AuthResult::Success
        } else {
            server.failed_logins.fetch_add(1, Ordering::Relaxed);
            AuthResult::Failure
        };
        w.session
            .emit(EventKind::AuthAttempt {
                method: "password".into(),
                username: Some(BytesText::capped(&h.username, FIELD_CAP).0),
                password: trail
                    .password
                    .as_deref()
                    .map(|p| BytesText::capped(p, FIELD_CAP).0),
                key_fingerprint: None,
                result,
                details,
            })
            .await;
        let peer = w.session.peer().ip().to_string();
        match trail.verdict {
            Verdict::Gone => {
                if let Some((e, expected)) = trail.frame {
                    return frame_error(&mut w, e, expected, p41).await;
                }
                return Err(trail.end.unwrap_or(SessionEnd::ClientClosed));
            }
            Verdict::Denied(used) => {
                let user = String::from_utf8_lossy(&h.username);
                let user: String = user.chars().take(48).collect();
                let msg = format!(
                    "Access denied for user '{user}'@'{peer}' (using password: {})",
                    if used { "YES" } else { "NO" }
                );
                w.out.set_seq(seq);
                w.packet(&proto::err_payload(1045, "28000", msg.as_bytes(), p41));
                w.flush().await?;
                return Ok(());
            }
            Verdict::Unsupported => {
                w.out.set_seq(seq);
                let msg = server.flavor.not_supported_auth_mode();
                w.packet(&proto::err_payload(1251, "08004", msg.as_bytes(), p41));
                w.flush().await?;
                return Ok(());
            }
            Verdict::Success => {}
        }
        let mut sess = SqlSession {
            db: None,
            autocommit: true,
            in_trans: false,
            charset: if h.charset == 0 {
                u16::from(server.flavor.charset)
            } else {
                u16::from(h.charset)
            },
            track: client_caps & caps::SESSION_TRACK != 0,
            multi_statements: client_caps & caps::MULTI_STATEMENTS != 0,
            user: String::from_utf8_lossy(&h.username[..h.username.len().min(FIELD_CAP)])
                .into_owned(),
            peer: w.session.peer().ip(),
            conn_id,
            port: w.session.local().port(),
        };
        w.out.set_seq(seq);
        let mut track = Vec::new();
        if let Some(db) = h.database.as_ref().filter(|d| !d.is_empty()) {
            let db = String::from_utf8_lossy(db).into_owned();
            let exists =
                server.catalog.database(&db).is_some() || lock(&server.extra_dbs).contains(&db);
            if !exists {
                let msg = format!(
                    "Unknown database '{}'",
                    db.chars().take(192).collect::<String>()
                );
                w.packet(&proto::err_payload(1049, "42000", msg.as_bytes(), p41));
                w.flush().await?;
                return Ok(());
            }
            if sess.track {
                track = proto::session_track_schema(db.as_bytes());
            }
            sess.db = Some(db);
        }
        let st = status::AUTOCOMMIT
            | if track.is_empty() {
                0
            } else {
                status::SESSION_STATE_CHANGED
            };
        w.packet(&proto::ok_payload(
            &OkPacket {
                status: st,
                session_state: &track,
                ..OkPacket::default()
            },
            client_caps,
            false,
        ));
        // MariaDB honours a client's extended capabilities only when the
        // client says it is not a MySQL client (CLIENT_MYSQL, bit 0, clear).
        let ext = if h.capabilities & caps::LONG_PASSWORD == 0 {
            server.flavor.mariadb_caps.unwrap_or(0) & h.mariadb_caps
        } else {
            0
        };
        let out = Out {
            caps: client_caps,
            ext_meta: ext & proto::MARIADB_CLIENT_EXTENDED_METADATA != 0,
            meta_follows: client_caps & caps::OPTIONAL_RESULTSET_METADATA != 0
                || ext & proto::MARIADB_CLIENT_CACHE_METADATA != 0,
            p41,
        };
        commands(server, &mut w, &mut sess, &out, &scramble).await
    }
}

struct LiveGuard(Arc<Server>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answer a framing error as the server does, record it, and end.
async fn frame_error(
    w: &mut Wire<'_>,
    e: FrameError,
    expected: u8,
    p41: bool,
) -> Result<(), SessionEnd> {
    let (code, state, msg) = e.code();
    // The server numbers its error after the header it did accept.
    let seq = match e {
        FrameError::OutOfOrder { .. } => expected,
        _ => expected.wrapping_add(1),
    };
    w.out.set_seq(seq);
    w.packet(&proto::err_payload(code, state, msg.as_bytes(), p41));
    w.flush().await?;
    let data = PayloadData::new(&w.buf[..w.buf.len().min(4096)], 256);
    w.session
        .emit(EventKind::ProtocolError {
            error: msg.into(),
            data,
        })
        .await;
    Err(SessionEnd::ProtocolError)
}

/// Run the account's plugin against the client's response, switching the
/// client's plugin first if it used another one.
async fn authenticate(
    server: &Server,
    w: &mut Wire<'_>,
    h: &HandshakeResponse,
    scramble: &[u8; 20],
    seq: &mut u8,
) -> AuthTrail {
    let plugin = server.flavor.plugin;
    let mut trail = AuthTrail {
        verdict: Verdict::Denied(!h.auth_response.is_empty()),
        plugin,
        switch_response: None,
        password: None,
        stage: "response",
        end: None,
        frame: None,
    };
    let candidates: Vec<&[u8]> = server
        .cfg
        .accept
        .iter()
        .filter(|c| c.user.as_bytes() == h.username.as_slice())
        .map(|c| c.password.as_bytes())
        .collect();
    let plugin_auth = h.capabilities & caps::PLUGIN_AUTH != 0;
    // Clients without plugin support speak mysql_native_password; if the
    // account needs another plugin, or the response is a pre-4.1 hash,
    // they cannot log in.
    if !plugin_auth && (plugin != Plugin::Native || !matches!(h.auth_response.len(), 0 | 20)) {
        trail.verdict = Verdict::Unsupported;
        trail.plugin = Plugin::Native;
        trail.stage = "unsupported_client";
        return trail;
    }
    let client_plugin = if plugin_auth {
        h.auth_plugin.as_deref().and_then(Plugin::from_name)
    } else {
        Some(Plugin::Native)
    };
    let mut response = h.auth_response.clone();
    if client_plugin != Some(plugin) {
        // Protocol::AuthSwitchRequest with the same scramble (the server
        // resends the data it put in the handshake).
        let mut data = scramble.to_vec();
        data.push(0);
        w.out.set_seq(*seq);
        w.packet(&proto::auth_switch_request(plugin.name(), &data));
        trail.stage = "auth_switch";
        match read_auth(w, seq).await {
            Ok(p) => {
                response = p.clone();
                trail.switch_response = Some(p);
            }
            Err(e) => return gone(trail, e, *seq),
        }
    }
    let used = !(response.is_empty() || response == [0]);
    trail.verdict = Verdict::Denied(used);
    let ok = |r: &[u8]| {
        candidates
            .iter()
            .any(|pw| auth::verify(plugin, pw, scramble, r))
    };
    match plugin {
        Plugin::Native => {
            if ok(&response) {
                trail.verdict = Verdict::Success;
            }
        }
        Plugin::CachingSha2 => {
            if !used || response.len() != 32 {
                if !used && ok(&response) {
                    trail.verdict = Verdict::Success;
                }
                return trail;
            }
            if ok(&response) {
                // As on a server whose cache holds the account: fast auth.
                w.out.set_seq(*seq);
                w.packet(&proto::auth_more_data(&[3]));
                *seq = seq.wrapping_add(1);
                trail.verdict = Verdict::Success;
                trail.stage = "fast_auth";
                return trail;
            }
            // perform_full_authentication: the client must now send the
            // password, over plain TCP encrypted to our RSA key.
            w.out.set_seq(*seq);
            w.packet(&proto::auth_more_data(&[4]));
            trail.stage = "full_auth";
            let mut reply = match read_auth(w, seq).await {
                Ok(p) => p,
                Err(e) => return gone(trail, e, *seq),
            };
            let keys = server.rsa().await;
            if reply == [2] {
                let Some(keys) = &keys else {
                    return trail;
                };
                w.out.set_seq(*seq);
                w.packet(&proto::auth_more_data(keys.public_pem().as_bytes()));
                trail.stage = "public_key";
                reply = match read_auth(w, seq).await {
                    Ok(p) => p,
                    Err(e) => return gone(trail, e, *seq),
                };
            }
            let password = match &keys {
                Some(k) if reply.len() == k.cipher_len() => {
                    trail.stage = "rsa_password";
                    k.decrypt_password(&reply, scramble)
                }
                // A client that believes the line is secure sends the
                // password in clear, NUL-terminated; the server rejects it,
                // but it is the password all the same.
                _ if reply.last() == Some(&0) && reply.len() <= 256 => {
                    trail.stage = "cleartext_password";
                    Some(reply[..reply.len() - 1].to_vec())
                }
                _ => None,
            };
            if let Some(pw) = password {
                if candidates.contains(&pw.as_slice()) && trail.stage == "rsa_password" {
                    trail.verdict = Verdict::Success;
                }
                trail.password = Some(pw);
            }
        }
    }
    trail
}

/// Read one authentication packet (sequence id `*seq`), leaving `*seq` as
/// the id of the server's next packet.
async fn read_auth(w: &mut Wire<'_>, seq: &mut u8) -> Result<Vec<u8>, ReadEnd> {
    let expected = seq.wrapping_add(1);
    let p = w.read(expected).await?;
    *seq = p.seq.wrapping_add(1);
    Ok(p.payload)
}

fn gone(mut trail: AuthTrail, e: ReadEnd, seq: u8) -> AuthTrail {
    trail.verdict = Verdict::Gone;
    match e {
        ReadEnd::End(e) => trail.end = Some(e),
        ReadEnd::Frame(f) => trail.frame = Some((f, seq.wrapping_add(1))),
    }
    trail
}

/// The command phase: read a command, answer it, record it.
async fn commands(
    server: &Server,
    w: &mut Wire<'_>,
    sess: &mut SqlSession,
    out: &Out,
    scramble: &[u8; 20],
) -> Result<(), SessionEnd> {
    let (client_caps, ext_meta, p41) = (out.caps, out.ext_meta, out.p41);
    loop {
        let packet = match w.read(0).await {
            Ok(p) => p,
            Err(ReadEnd::Frame(e)) => return frame_error(w, e, 0, p41).await,
            Err(ReadEnd::End(e)) => return Err(e),
        };
        server.questions.fetch_add(1, Ordering::Relaxed);
        let cmd = Command::parse(&packet.payload, client_caps);
        w.out.set_seq(packet.seq.wrapping_add(1));
        let base = |s: &SqlSession| {
            (if s.autocommit { status::AUTOCOMMIT } else { 0 })
                | (if s.in_trans { status::IN_TRANS } else { 0 })
        };
        // (command name, args, raw, error)
        let mut record: (String, Vec<Vec<u8>>, Vec<u8>, bool) =
            (String::new(), Vec::new(), Vec::new(), false);
        let mut close = false;
        match &cmd {
            Command::Quit => {
                w.session
                    .emit(command_event("quit", &[], b"Quit", false))
                    .await;
                w.flush().await?;
                return Ok(());
            }
            Command::Ping => {
                out.ok(w, base(sess), 0, "", &[]);
                record = ("ping".into(), vec![], b"Ping".to_vec(), false);
            }
            Command::InitDb(db) => {
                let name = String::from_utf8_lossy(db).into_owned();
                let mut engine = Engine::new(server, sess);
                let reply = engine.run(format!("USE `{}`", name.replace('`', "``")).as_bytes());
                let error = reply.iter().any(|r| matches!(r, Reply::Err(_)));
                out.replies(w, &reply, base(sess));
                record = (
                    "init_db".into(),
                    vec![db.clone()],
                    [b"Init DB ".as_slice(), db].concat(),
                    error,
                );
            }
            Command::Query { sql, .. } => {
                let mut engine = Engine::new(server, sess);
                let replies = engine.run(sql);
                let effects = std::mem::take(&mut engine.effects);
                if !effects.sleep.is_zero() {
                    tokio::time::sleep(effects.sleep).await;
                }
                let error = replies.iter().any(|r| matches!(r, Reply::Err(_)));
                out.replies(w, &replies, base(sess));
                w.session
                    .emit(command_event(&sql::first_keyword(sql), &[], sql, error))
                    .await;
                for a in effects.attacks {
                    let mut ev = w.session.event(EventKind::Attack {
                        technique: a.technique.into(),
                        summary: a.summary,
                        evidence: a.evidence,
                    });
                    ev.tags = a.tags;
                    w.session.emit_event(ev).await;
                }
                for p in effects.payloads {
                    w.session
                        .emit(EventKind::Payload {
                            data: PayloadData::new(&p, PAYLOAD_INLINE),
                            stored: None,
                        })
                        .await;
                }
            }
            Command::FieldList { table, wildcard } => {
                let name = String::from_utf8_lossy(table).into_owned();
                let db = sess.db.clone().unwrap_or_default();
                let error = match server.catalog.table(&db, &name) {
                    Some(t) if !db.is_empty() => {
                        let engine = Engine::new(server, sess);
                        let cols: Vec<Vec<u8>> = t
                            .cols
                            .iter()
                            .map(|c| {
                                let mut col = engine_table_col(&engine, &db, t.name, c);
                                col.name = c.name.into();
                                col.encode(true, ext_meta)
                            })
                            .collect();
                        for c in cols {
                            w.packet(&c);
                        }
                        out.end_of_rows(w, base(sess));
                        false
                    }
                    _ => {
                        let msg = if db.is_empty() {
                            ("No database selected".to_owned(), 1046, "3D000")
                        } else {
                            (
                                format!(
                                    "Table '{db}.{}' doesn't exist",
                                    name.chars().take(192).collect::<String>()
                                ),
                                1146,
                                "42S02",
                            )
                        };
                        w.packet(&proto::err_payload(msg.1, msg.2, msg.0.as_bytes(), p41));
                        true
                    }
                };
                record = (
                    "field_list".into(),
                    vec![table.clone(), wildcard.clone()],
                    [b"Field List ".as_slice(), table].concat(),
                    error,
                );
            }
            Command::Statistics => {
                let up = server.started.elapsed().as_secs().max(1);
                let q = server.questions.load(Ordering::Relaxed);
                let threads = server.live.load(Ordering::Relaxed);
                let text = if server.flavor.mariadb {
                    format!(
                        "Uptime: {up}  Threads: {threads}  Questions: {q}  Slow queries: 0  Opens: 21  Open tables: 14  Queries per second avg: {:.3}",
                        q as f64 / up as f64
                    )
                } else {
                    format!(
                        "Uptime: {up}  Threads: {threads}  Questions: {q}  Slow queries: 0  Opens: 133  Flush tables: 3  Open tables: 52  Queries per second avg: {:.3}",
                        q as f64 / up as f64
                    )
                };
                w.packet(text.as_bytes());
                record = ("statistics".into(), vec![], b"Statistics".to_vec(), false);
            }
            Command::ProcessInfo => {
                let engine = Engine::new(server, sess);
                let r = engine.process_info();
                out.replies(w, &[r], base(sess));
                record = ("processlist".into(), vec![], b"Processlist".to_vec(), false);
            }
            Command::ProcessKill(id) => {
                let msg = format!("Unknown thread id: {id}");
                w.packet(&proto::err_payload(1094, "HY000", msg.as_bytes(), p41));
                record = (
                    "kill".into(),
                    vec![id.to_string().into_bytes()],
                    format!("Kill {id}").into_bytes(),
                    true,
                );
            }
            Command::Debug | Command::SetOption(_) => {
                w.packet(&proto::eof_payload(0, base(sess)));
                record = (
                    if matches!(cmd, Command::Debug) {
                        "debug"
                    } else {
                        "set_option"
                    }
                    .into(),
                    vec![],
                    cmd.name().as_bytes().to_vec(),
                    false,
                );
            }
            Command::Refresh(_) | Command::ResetConnection => {
                out.ok(w, base(sess), 0, "", &[]);
                record = (
                    cmd.name().to_ascii_lowercase().replace(' ', "_"),
                    vec![],
                    cmd.name().as_bytes().to_vec(),
                    false,
                );
            }
            Command::Shutdown | Command::Replication(_) => {
                let what = if matches!(cmd, Command::Shutdown) {
                    "SHUTDOWN"
                } else {
                    "REPLICATION SLAVE"
                };
                let msg = format!(
                    "Access denied; you need (at least one of) the {what} privilege(s) for this operation"
                );
                w.packet(&proto::err_payload(1227, "42000", msg.as_bytes(), p41));
                record = (
                    cmd.name().to_ascii_lowercase().replace(' ', "_"),
                    vec![],
                    cmd.name().as_bytes().to_vec(),
                    true,
                );
                close = matches!(cmd, Command::Replication(_));
            }
            Command::ChangeUser(body) => {
                let parsed = proto::parse_change_user(body, client_caps);
                let Some(cu) = parsed else {
                    w.packet(&proto::err_payload(1047, "08S01", b"Unknown command", p41));
                    w.flush().await?;
                    w.session
                        .emit(EventKind::ProtocolError {
                            error: "Unknown command".into(),
                            data: PayloadData::new(&packet.payload, 256),
                        })
                        .await;
                    continue;
                };
                let accepted = server.cfg.accept.iter().any(|c| {
                    c.user.as_bytes() == cu.username.as_slice()
                        && auth::verify(
                            Plugin::Native,
                            c.password.as_bytes(),
                            scramble,
                            &cu.auth_response,
                        )
                });
                let mut details = Map::new();
                details.insert("command".into(), json!("change_user"));
                details.insert(
                    "auth_response".into(),
                    json!(proto::to_hex(
                        &cu.auth_response[..cu.auth_response.len().min(512)]
                    )),
                );
                details.insert("database".into(), json!(text(&cu.database)));
                if let Some(p) = &cu.auth_plugin {
                    details.insert("plugin".into(), json!(text(p)));
                }
                w.session
                    .emit(EventKind::AuthAttempt {
                        method: "password".into(),
                        username: Some(BytesText::capped(&cu.username, FIELD_CAP).0),
                        password: None,
                        key_fingerprint: None,
                        result: if accepted {
                            AuthResult::Success
                        } else {
                            AuthResult::Failure
                        },
                        details,
                    })
                    .await;
                if accepted {
                    sess.user = String::from_utf8_lossy(&cu.username).into_owned();
                    sess.db = Some(String::from_utf8_lossy(&cu.database).into_owned())
                        .filter(|d| !d.is_empty());
                    out.ok(w, base(sess), 0, "", &[]);
                } else {
                    let user: String = String::from_utf8_lossy(&cu.username)
                        .chars()
                        .take(48)
                        .collect();
                    let msg = format!(
                        "Access denied for user '{user}'@'{}' (using password: {})",
                        sess.peer,
                        if cu.auth_response.is_empty() {
                            "NO"
                        } else {
                            "YES"
                        }
                    );
                    w.packet(&proto::err_payload(1045, "28000", msg.as_bytes(), p41));
                    close = true;
                }
                record = (
                    "change_user".into(),
                    vec![cu.username.clone()],
                    [b"Change user ".as_slice(), &cu.username].concat(),
                    !accepted,
                );
            }
            Command::StmtPrepare(q) => {
                let msg = b"This command is not supported in the prepared statement protocol yet";
                w.packet(&proto::err_payload(1295, "HY000", msg, p41));
                record = ("prepare".into(), vec![], q.clone(), true);
            }
            Command::Stmt { command, id } => {
                let fun = match *command {
                    com::STMT_EXECUTE => Some("mysqld_stmt_execute"),
                    com::STMT_FETCH => Some("mysqld_stmt_fetch"),
                    com::STMT_RESET => Some("mysqld_stmt_reset"),
                    // CLOSE and SEND_LONG_DATA have no reply.
                    _ => None,
                };
                if let Some(fun) = fun {
                    let msg = format!("Unknown prepared statement handler ({id}) given to {fun}");
                    w.packet(&proto::err_payload(1243, "HY000", msg.as_bytes(), p41));
                }
                record = (
                    cmd.name().to_ascii_lowercase().replace(' ', "_"),
                    vec![id.to_string().into_bytes()],
                    format!("{} {id}", cmd.name()).into_bytes(),
                    fun.is_some(),
                );
            }
            Command::Unknown(_) | Command::Malformed(_) => {
                let (code, state, msg): (u16, &str, &[u8]) =
                    if matches!(cmd, Command::Malformed(_)) && !server.flavor.mariadb {
                        (1835, "HY000", b"Malformed communication packet.")
                    } else {
                        (1047, "08S01", b"Unknown command")
                    };
                w.packet(&proto::err_payload(code, state, msg, p41));
                w.session
                    .emit(EventKind::ProtocolError {
                        error: String::from_utf8_lossy(msg).into_owned(),
                        data: PayloadData::new(&packet.payload, 256),
                    })
                    .await;
            }
        }
        if !record.0.is_empty() {
            w.session
                .emit(command_event(&record.0, &record.1, &record.2, record.3))
                .await;
        }
        if close {
            w.flush().await?;
            return Ok(());
        }
        // Pipelined commands are answered together; `Wire::read` flushes
        // before it waits for more.
        if w.out.len() >= FLUSH_AT {
            w.flush().await?;
        }
    }
}

fn engine_table_col(engine: &Engine<'_>, db: &str, table: &str, c: &schema::Col) -> proto::Column {
    let (ty, chars, fl, is_text) = c.wire();
    let cs = engine.session.charset;
    proto::Column {
        schema: db.into(),
        table: table.into(),
        org_table: table.into(),
        name: c.name.into(),
        org_name: c.name.into(),
        charset: if is_text { cs } else { 63 },
        length: if is_text {
            chars.saturating_mul(proto::charset_mbmaxlen(cs))
        } else {
            chars
        },
        column_type: ty,
        flags: fl,
        decimals: 0,
    }
}

/// How replies are shaped for this client.
struct Out {
    caps: u32,
    ext_meta: bool,
    /// A "metadata follows" byte after the column count (MySQL's optional
    /// metadata, MariaDB's metadata cache).
    meta_follows: bool,
    p41: bool,
}

impl Out {
    fn ok(&self, w: &mut Wire<'_>, st: u16, affected: u64, info: &str, track: &[u8]) {
        let st = st
            | if track.is_empty() {
                0
            } else {
                status::SESSION_STATE_CHANGED
            };
        w.packet(&proto::ok_payload(
            &OkPacket {
                affected_rows: affected,
                status: st,
                info: info.as_bytes(),
                session_state: track,
                ..OkPacket::default()
            },
            self.caps,
            false,
        ));
    }

    /// The end of a column list or of rows: EOF, or the 0xFE OK for
    /// `CLIENT_DEPRECATE_EOF` clients.
    fn end_of_rows(&self, w: &mut Wire<'_>, st: u16) {
        if self.caps & caps::DEPRECATE_EOF != 0 {
            w.packet(&proto::ok_payload(
                &OkPacket {
                    status: st,
                    ..OkPacket::default()
                },
                self.caps,
                true,
            ));
        } else {
            w.packet(&proto::eof_payload(0, st));
        }
    }

    fn replies(&self, w: &mut Wire<'_>, replies: &[Reply], base: u16) {
        for (i, r) in replies.iter().enumerate() {
            let more = if i + 1 < replies.len() {
                status::MORE_RESULTS_EXISTS
            } else {
                0
            };
            match r {
                Reply::Rows(rs) => {
                    let st = base
                        | more
                        | if rs.no_index {
                            status::QUERY_NO_INDEX_USED
                        } else {
                            0
                        };
                    let mut count = Vec::new();
                    proto::put_lenenc_int(&mut count, rs.columns.len() as u64);
                    if self.meta_follows {
                        count.push(1);
                    }
                    w.packet(&count);
                    for c in &rs.columns {
                        w.packet(&c.encode(false, self.ext_meta));
                    }
                    if self.caps & caps::DEPRECATE_EOF == 0 {
                        w.packet(&proto::eof_payload(0, st));
                    }
                    for row in &rs.rows {
                        w.packet(&proto::text_row(row.iter().map(|v| v.as_deref())));
                    }
                    self.end_of_rows(w, st);
                }
                Reply::Ok {
                    affected,
                    info,
                    track,
                } => self.ok(w, base | more, *affected, info, track),
                Reply::Err(e) => {
                    w.packet(&proto::err_payload(
                        e.code,
                        e.state,
                        e.message.as_bytes(),
                        self.p41,
                    ));
                }
            }
        }
    }
}

/// A `command` event: `name` lower-case, the statement or command text as
/// `raw` (escaped, capped).
pub fn command_event(name: &str, args: &[Vec<u8>], raw: &[u8], error: bool) -> EventKind {
    let mut truncated = false;
    let args = args
        .iter()
        .map(|a| {
            let (t, cut) = BytesText::capped(a, FIELD_CAP);
            truncated |= cut;
            t
        })
        .collect();
    let (raw, cut) = BytesText::capped(raw, RAW_CAP);
    EventKind::Command {
        command: name.to_owned(),
        args,
        raw,
        truncated: truncated || cut,
        error,
        details: Default::default(),
    }
}
