//! Redis honeypot: speaks RESP2 (and RESP3 after HELLO 3) like the
//! configured Redis version, keeps a bounded keyspace, and records every
//! command, AUTH attempt, protocol error and known attack chain as events.
//!
//! - [`version`]: texts and features that differ between versions.
//! - [`commands`]: the command table and each command's reply.
//! - [`keyspace`]: the bounded, shared or per-source store.
//! - [`info`], [`catalog`]: INFO, COMMAND, COMMAND DOCS and CONFIG data.
//! - [`attacks`]: recognising attack chains and their evidence.
//!
//! The session loop reads only through `Session::read_some` (which owns the
//! byte budget and timeouts), decodes every complete request buffered,
//! answers them in one write (pipelining), and on a protocol error sends
//! Redis's error and closes, as Redis does.

pub mod attacks;
pub mod catalog;
pub mod commands;
pub mod glob;
pub mod info;
pub mod keyspace;
pub mod version;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use mirage_config::{KeyspaceMode, RedisConfig};
use mirage_core::{BytesText, EventKind, PayloadData};
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::resp::{Limits, ReplyWriter, RequestDecoder};

use self::catalog::Catalog;
use self::keyspace::Keyspaces;
use self::version::Version;

/// Replies are flushed once this many bytes are queued, so a pipeline of
/// big replies (COMMAND) cannot pile up in memory.
const FLUSH_AT: usize = 64 * 1024;
/// Cap on one argument's escaped text in a `command` event.
pub const ARG_CAP: usize = 1024;
/// Most arguments listed in a `command` event.
pub const ARGS_MAX: usize = 64;
/// Cap on the `raw` line of a `command` event.
pub const RAW_CAP: usize = 4096;
/// Bytes of a payload kept inline in `payload` events.
pub const PAYLOAD_INLINE: usize = 4096;

/// One connected client, as CLIENT LIST shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Client id.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// CLIENT SETNAME.
    pub name: Vec<u8>,
    /// Selected database.
    pub db: usize,
    /// Connected at.
    pub created: Instant,
    /// Last command at.
    pub last: Instant,
    /// Last command's full name.
    pub cmd: String,
    /// Keyspace scope.
    pub scope: Option<IpAddr>,
    /// Protocol (2 or 3).
    pub resp: u8,
}

/// State shared by every session of one emulator.
pub struct Server {
    /// The configuration.
    pub cfg: RedisConfig,
    /// The imitated version.
    pub version: Version,
    /// COMMAND/CONFIG tables.
    pub catalog: Catalog,
    /// The store.
    pub keyspaces: Arc<Keyspaces>,
    /// Start time.
    pub started: Instant,
    /// Start time, unix seconds.
    pub started_unix: u64,
    /// INFO run_id.
    pub run_id: String,
    /// INFO master_replid.
    pub replid: String,
    /// INFO process_id.
    pub pid: u32,
    next_client_id: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Commands processed.
    pub commands: AtomicU64,
    /// Bytes in.
    pub net_in: AtomicU64,
    /// Bytes out.
    pub net_out: AtomicU64,
    /// Saves done.
    pub saves: AtomicU64,
    /// Keys freed by FLUSHALL/FLUSHDB ASYNC.
    pub lazyfreed: AtomicU64,
    /// Live clients.
    pub clients: Mutex<BTreeMap<u64, ClientInfo>>,
    /// Error replies by prefix.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Calls per command.
    pub cmdstats: Mutex<BTreeMap<String, u64>>,
    /// SHA-1s of scripts seen (SCRIPT LOAD / EVAL), capped.
    pub scripts: Mutex<std::collections::BTreeSet<String>>,
}

/// Lock a mutex, recovering from poisoning (state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_hex(n: usize, salt: u64) -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < n {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt ^ i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
        i += 1;
    }
    out.truncate(n);
    out
}

/// The Redis emulator.
pub struct RedisEmulator {
    server: Arc<Server>,
}

impl RedisEmulator {
    /// Build from configuration.
    pub fn new(config: RedisConfig) -> anyhow::Result<Self> {
        let version = Version::new(config.version_tuple());
        let catalog = Catalog::new(&version)?;
        let keyspaces = Keyspaces::new(
            config.keyspace == KeyspaceMode::PerSource,
            config.max_keys,
            config.max_keyspace_bytes,
        );
        let started_unix = keyspace::now_ms() / 1000;
        let pid = 700 + (started_unix % 1900) as u32;
        Ok(RedisEmulator {
            server: Arc::new(Server {
                version,
                catalog,
                keyspaces,
                started: Instant::now(),
                started_unix,
                run_id: random_hex(40, 1),
                replid: random_hex(40, 2),
                pid,
                next_client_id: AtomicU64::new(3),
                connections: AtomicU64::new(0),
                commands: AtomicU64::new(0),
                net_in: AtomicU64::new(0),
                net_out: AtomicU64::new(0),
                saves: AtomicU64::new(0),
                lazyfreed: AtomicU64::new(0),
                clients: Mutex::new(BTreeMap::new()),
                errors: Mutex::new(BTreeMap::new()),
                cmdstats: Mutex::new(BTreeMap::new()),
                scripts: Mutex::new(Default::default()),
                cfg: config,
            }),
        })
    }
}

/// Per-connection state.
pub struct Conn {
    /// Client id.
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Passed AUTH (or no password is set).
    pub authenticated: bool,
    /// Keyspace scope.
    pub scope: Option<IpAddr>,
    /// Peer.
    pub peer: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
    /// RESP3 after HELLO 3.
    pub resp3: bool,
    /// Attack-chain tracker.
    pub tracker: attacks::Tracker,
    /// Events produced by the command being run (kind, tags).
    pub events: Vec<(EventKind, Vec<String>)>,
    /// Bytes of the current request as received (for INFO/CLIENT figures).
    pub qbuf: usize,
}

/// What the loop does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Send what is queued, then close (QUIT).
    Close,
    /// Close without a reply (Redis's cross-protocol scripting guard).
    Drop,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        lock(&self.server.clients).remove(&self.id);
    }
}

struct ClientGuard {
    server: Arc<Server>,
    id: u64,
}

/// The `command` event for `args`, with caps.
pub fn command_event(args: &[Vec<u8>], error: bool) -> EventKind {
    let name = args
        .first()
        .map(|a| mirage_core::escape_bytes(&a[..a.len().min(ARG_CAP)]).to_lowercase())
        .unwrap_or_default();
    let mut truncated = args.len() > ARGS_MAX + 1;
    let list: Vec<BytesText> = args
        .iter()
        .skip(1)
        .take(ARGS_MAX)
        .map(|a| {
            let (t, cut) = BytesText::capped(a, ARG_CAP);
            truncated |= cut;
            t
        })
        .collect();
    let mut raw = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if raw.len() >= RAW_CAP {
            truncated = true;
            break;
        }
        if i > 0 {
            raw.push(b' ');
        }
        raw.extend_from_slice(&a[..a.len().min(RAW_CAP)]);
    }
    let (raw, cut) = BytesText::capped(&raw, RAW_CAP);
    EventKind::Command {
        command: name,
        args: list,
        raw,
        truncated: truncated || cut,
        error,
        details: Default::default(),
    }
}

#[async_trait]
impl Emulator for RedisEmulator {
    fn service(&self) -> &str {
        "redis"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let server = &self.server;
        let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
        server.connections.fetch_add(1, Ordering::Relaxed);
        let scope = server.keyspaces.scope_of(session.peer().ip());
        let now = Instant::now();
        lock(&server.clients).insert(
            id,
            ClientInfo {
                id,
                addr: session.peer(),
                laddr: session.local(),
                name: Vec::new(),
                db: 0,
                created: now,
                last: now,
                cmd: "NULL".into(),
                scope,
                resp: 2,
            },
        );
        let _guard = ClientGuard {
            server: server.clone(),
            id,
        };
        let mut conn = Conn {
            id,
            db: 0,
            authenticated: server.cfg.password.is_empty(),
            scope,
            peer: session.peer(),
            local: session.local(),
            resp3: false,
            tracker: attacks::Tracker::default(),
            events: Vec::new(),
            qbuf: 0,
        };
        let mut decoder = RequestDecoder::new(Limits {
            max_bulk_len: server.cfg.max_bulk_len,
            max_multibulk_len: server
                .cfg
                .max_multibulk_len
                .min(server.version.max_multibulk()),
            unauth_limits: server.version.unauth_limits(),
        });
        let mut buf = BytesMut::new();
        let mut out = ReplyWriter::new(false);
        loop {
            loop {
                let before = buf.len();
                let step = match decoder.decode(&buf, !conn.authenticated) {
                    Ok(p) => p,
                    Err(e) => {
                        out.error(&e.reply_text());
                        flush(session, server, &mut out).await?;
                        session
                            .emit(EventKind::ProtocolError {
                                error: String::from_utf8_lossy(&e.reply_text()).into_owned(),
                                data: PayloadData::new(&buf, 256),
                            })
                            .await;
                        return Err(SessionEnd::ProtocolError);
                    }
                };
                buf.advance(step.consumed.min(buf.len()));
                let Some(req) = step.request else {
                    if step.consumed == 0 {
                        break;
                    }
                    continue;
                };
                if req.args.is_empty() {
                    continue;
                }
                conn.qbuf = before;
                out.set_resp3(conn.resp3);
                let mark = out.len();
                let flow = commands::execute(server, &mut conn, &req.args, &mut out);
                let error = out.as_bytes().get(mark) == Some(&b'-');
                if error {
                    let word: String = out.as_bytes()[mark + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphanumeric())
                        .take(32)
                        .map(|&b| b as char)
                        .collect();
                    *lock(&server.errors).entry(word).or_insert(0) += 1;
                }
                session.emit(command_event(&req.args, error)).await;
                for (kind, tags) in std::mem::take(&mut conn.events) {
                    let mut ev = session.event(kind);
                    ev.tags = tags;
                    session.emit_event(ev).await;
                }
                match flow {
                    Flow::Continue => {}
                    Flow::Close => {
                        flush(session, server, &mut out).await?;
                        return Ok(());
                    }
                    Flow::Drop => return Ok(()),
                }
                if out.len() >= FLUSH_AT {
                    flush(session, server, &mut out).await?;
                }
            }
            flush(session, server, &mut out).await?;
            let n = session.read_some(&mut buf).await?;
            server.net_in.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

async fn flush(
    session: &mut Session,
    server: &Server,
    out: &mut ReplyWriter,
) -> Result<(), SessionEnd> {
    if out.is_empty() {
        return Ok(());
    }
    let bytes = out.take();
    server
        .net_out
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    session.write_all(&bytes).await
}
