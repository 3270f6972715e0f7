//! Conformance: the honeypot configured as Redis 7.0.15 answers the same raw
//! requests with the same bytes as a real `redis-server` 7.0.15.
//!
//! Both get the same list of requests over raw TCP, one connection per
//! script (so state carries within a script). Replies are compared byte for
//! byte, except where a value must differ between two processes; those
//! cases name their normalisation:
//! - `Info`: values of fields that are process- or time-specific (run_id,
//!   process_id, ports, uptime, clocks, memory and CPU figures, network and
//!   connection counters, executable path, replication id, save time) and
//!   the Commandstats/Latencystats lines (timings).
//! - `ClientLine`: id, addr, laddr, fd, age, idle and buffer/memory sizes.
//! - `Unordered` / `Pairs`: Redis answers COMMAND, COMMAND DOCS, CONFIG GET
//!   patterns, KEYS and SCAN in hash-table order, which changes with every
//!   process's random hash seed, so elements (or name/value pairs) are
//!   compared as sorted lists.
//! - `Integer`: the integer is a clock or an id (LASTSAVE, CLIENT ID).
//! - `HelloId`: the `id` field of HELLO.
//! - `Port`: CONFIG GET port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use mirage_proto::resp::{ReplyWriter, Value, parse_value};
use mirage_testkit::{KillOnDrop, free_port, require_tool, wait_for_port};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Norm {
    Exact,
    Info,
    ClientLine,
    Unordered,
    Pairs,
    Integer,
    HelloId,
    Port,
}

use Norm::*;

fn read_reply(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Value, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some((v, used))) = parse_value(buf) {
            let raw: Vec<u8> = buf.drain(..used).collect();
            return Some((v, raw));
        }
        if Instant::now() > deadline {
            return None;
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return None,
        }
    }
}

/// Send each request, read `n` replies for it; `None` marks a closed
/// connection (compared too).
fn run_script(
    addr: SocketAddr,
    script: &[(&[u8], usize, Norm)],
) -> Vec<(Option<Vec<u8>>, Option<Value>, Norm)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for (req, n, norm) in script {
        s.write_all(req).unwrap();
        for _ in 0..*n {
            match read_reply(&mut s, &mut buf) {
                Some((v, raw)) => out.push((Some(raw), Some(v), *norm)),
                None => out.push((None, None, *norm)),
            }
        }
    }
    // Whether the server closed the connection after the script.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 16];
    let closed = matches!(s.read(&mut b), Ok(0));
    out.push((Some(vec![closed as u8]), None, Exact));
    out
}

const VOLATILE_INFO: &[&str] = &[
    "process_id",
    "run_id",
    "tcp_port",
    "server_time_usec",
    "uptime_in_seconds",
    "uptime_in_days",
    "lru_clock",
    "executable",
    "client_recent_max_input_buffer",
    "client_recent_max_output_buffer",
    "rdb_last_save_time",
    "total_connections_received",
    "total_commands_processed",
    "total_net_input_bytes",
    "total_net_output_bytes",
    "instantaneous_input_kbps",
    "instantaneous_output_kbps",
    "instantaneous_ops_per_sec",
    "total_reads_processed",
    "total_writes_processed",
    "reply_buffer_shrinks",
    "reply_buffer_expands",
    "master_replid",
    "keyspace_hits",
    "keyspace_misses",
    "total_error_replies",
    "total_forks",
    "latest_fork_usec",
    "rdb_last_bgsave_time_sec",
    "rdb_last_cow_size",
    "rdb_saves",
    "rdb_changes_since_last_save",
    "expired_keys",
    "total_system_memory",
    "total_system_memory_human",
];

fn norm_info(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    let mut section = "";
    for line in text.split("\r\n") {
        if let Some(t) = line.strip_prefix("# ") {
            section = if t == "Commandstats" || t == "Latencystats" || t == "Errorstats" {
                "skip"
            } else {
                ""
            };
            out.push_str(line);
            out.push_str("\r\n");
            continue;
        }
        if section == "skip" {
            continue;
        }
        let masked = match line.split_once(':') {
            Some((k, _))
                if VOLATILE_INFO.contains(&k)
                    || k.starts_with("used_memory")
                    || k.starts_with("mem_")
                    || k.starts_with("allocator_")
                    || k.starts_with("rss_")
                    || k.starts_with("used_cpu_") =>
            {
                format!("{k}:*")
            }
            _ => line.to_string(),
        };
        out.push_str(&masked);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn norm_client(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let masked: Vec<String> = text
        .split('\n')
        .map(|line| {
            line.split(' ')
                .map(|f| match f.split_once('=') {
                    Some((k, _))
                        if [
                            "id",
                            "addr",
                            "laddr",
                            "fd",
                            "age",
                            "idle",
                            "qbuf",
                            "qbuf-free",
                            "argv-mem",
                            "tot-mem",
                            "obl",
                            "rbs",
                            "rbp",
                        ]
                        .contains(&k) =>
                    {
                        format!("{k}=*")
                    }
                    _ => f.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    masked.join("\n").into_bytes()
}

fn encode(v: &Value) -> Vec<u8> {
    let mut w = ReplyWriter::new(false);
    v.encode(&mut w);
    w.take()
}

/// Sort an array's elements (SCAN replies keep their cursor first), and
/// inside them every list whose order is a hash order: arrays of arrays
/// (subcommand tables) and name/value lists (subcommand docs).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            if items.len() == 2
                && matches!(items[0], Value::Bulk(_))
                && matches!(items[1], Value::Array(_))
            {
                return Value::Array(vec![items[0].clone(), sorted(&items[1])]);
            }
            let mut enc: Vec<Vec<u8>> = items.iter().map(|x| encode(&deep(x))).collect();
            enc.sort();
            Value::Array(enc.into_iter().map(Value::Bulk).collect())
        }
        other => other.clone(),
    }
}

/// Sort a flat (name, value, name, value...) array by pairs; the value of
/// `port` (CONFIG GET *) is masked.
fn sorted_pairs(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut pairs: Vec<Vec<u8>> = items
                .chunks(2)
                .map(|c| {
                    if c[0].as_bytes() == Some(b"port") {
                        return b"port".to_vec();
                    }
                    c.iter().flat_map(|x| encode(&deep(x))).collect()
                })
                .collect();
            pairs.sort();
            Value::Array(pairs.into_iter().map(Value::Bulk).collect())
        }
        other => other.clone(),
    }
}

/// Recursively put hash-ordered nested lists in a canonical order.
fn deep(v: &Value) -> Value {
    let Value::Array(items) = v else {
        return v.clone();
    };
    let all_arrays = !items.is_empty() && items.iter().all(|x| matches!(x, Value::Array(_)));
    let doc_pairs = items.len() >= 2
        && items.len() % 2 == 0
        && items.iter().step_by(2).all(|x| matches!(x, Value::Bulk(_)))
        && items
            .iter()
            .skip(1)
            .step_by(2)
            .all(|x| matches!(x, Value::Array(_)));
    if all_arrays {
        let mut enc: Vec<Vec<u8>> = items.iter().map(|x| encode(&deep(x))).collect();
        enc.sort();
        return Value::Array(enc.into_iter().map(Value::Bulk).collect());
    }
    if doc_pairs {
        return sorted_pairs(v);
    }
    Value::Array(items.iter().map(deep).collect())
}

fn normalise(raw: &[u8], v: &Value, norm: Norm) -> Vec<u8> {
    match (norm, v) {
        (Exact, _) => raw.to_vec(),
        (Info, Value::Bulk(b)) => norm_info(b),
        (ClientLine, Value::Bulk(b)) => norm_client(b),
        (Unordered, v) => encode(&sorted(v)),
        (Pairs, v) => encode(&sorted_pairs(v)),
        (Integer, Value::Integer(_)) => b":*".to_vec(),
        (HelloId, Value::Array(items)) => {
            let mut items = items.clone();
            if let Some(pos) = items.iter().position(|x| x.as_bytes() == Some(b"id")) {
                items[pos + 1] = Value::Integer(0);
            }
            encode(&Value::Array(items))
        }
        (Port, Value::Array(items)) if items.len() == 2 => b"port".to_vec(),
        _ => raw.to_vec(),
    }
}

fn scripts() -> Vec<Vec<(&'static [u8], usize, Norm)>> {
    vec![
        // Basics, inline and multibulk, errors.
        vec![
            (b"PING\r\n", 1, Exact),
            (b"*1\r\n$4\r\nPING\r\n", 1, Exact),
            (b"*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n", 1, Exact),
            (b"PING a b\r\n", 1, Exact),
            (b"ECHO \"hi there\"\r\n", 1, Exact),
            (b"ECHO\r\n", 1, Exact),
            (b"echo 'it\\'s' \"\\x41\\n\"\r\n", 1, Exact),
            (b"\r\n", 0, Exact),
            (b"*0\r\n", 0, Exact),
            (b"FOO bar baz\r\n", 1, Exact),
            (b"*3\r\n$6\r\nFLURBL\r\n$1\r\na\r\n$1\r\nb\r\n", 1, Exact),
            (b"NOSUCH\r\n", 1, Exact),
            (b"GET\r\n", 1, Exact),
            (b"AUTH x\r\n", 1, Exact),
            (b"AUTH a b\r\n", 1, Exact),
            (b"AUTH default whatever\r\n", 1, Exact),
            (b"AUTH a b c\r\n", 1, Exact),
            (b"SELECT 1\r\n", 1, Exact),
            (b"SELECT 16\r\n", 1, Exact),
            (b"SELECT x\r\n", 1, Exact),
            (b"SELECT -1\r\n", 1, Exact),
            (b"SELECT 0\r\n", 1, Exact),
        ],
        // Strings, TTLs, counters, keys.
        vec![
            (b"FLUSHALL\r\n", 1, Exact),
            (b"GET k\r\n", 1, Exact),
            (b"SET k v\r\n", 1, Exact),
            (b"GET k\r\n", 1, Exact),
            (b"SET k v2 NX\r\n", 1, Exact),
            (b"SET k v3 XX\r\n", 1, Exact),
            (b"SET n v XX\r\n", 1, Exact),
            (b"SET k v4 GET\r\n", 1, Exact),
            (b"SET k v EX 100\r\n", 1, Exact),
            (b"TTL k\r\n", 1, Exact),
            (b"SET k v PX 100000\r\n", 1, Exact),
            (b"TTL k\r\n", 1, Exact),
            (b"SET k v KEEPTTL\r\n", 1, Exact),
            (b"TTL k\r\n", 1, Exact),
            (b"SET k v EX 0\r\n", 1, Exact),
            (b"SET k v EX x\r\n", 1, Exact),
            (b"SET k v EX 10 PX 10\r\n", 1, Exact),
            (b"SET k v NX XX\r\n", 1, Exact),
            (b"SET k v BOGUS\r\n", 1, Exact),
            (b"SET k\r\n", 1, Exact),
            (b"TTL nokey\r\n", 1, Exact),
            (b"SET p v\r\n", 1, Exact),
            (b"TTL p\r\n", 1, Exact),
            (b"EXPIRE p 100\r\n", 1, Exact),
            (b"TTL p\r\n", 1, Exact),
            (b"EXPIRE p 100 NX\r\n", 1, Exact),
            (b"EXPIRE p 200 GT\r\n", 1, Exact),
            (b"EXPIRE p x\r\n", 1, Exact),
            (b"EXPIRE nokey 10\r\n", 1, Exact),
            (b"EXPIRE p 10 BOGUS\r\n", 1, Exact),
            (b"EXPIRE p -1\r\n", 1, Exact),
            (b"EXISTS p\r\n", 1, Exact),
            (b"TYPE k\r\n", 1, Exact),
            (b"TYPE nokey\r\n", 1, Exact),
            (b"EXISTS k k nokey\r\n", 1, Exact),
            (b"INCR c\r\n", 1, Exact),
            (b"INCR c\r\n", 1, Exact),
            (b"DECR c\r\n", 1, Exact),
            (b"DECR d\r\n", 1, Exact),
            (b"INCR k\r\n", 1, Exact),
            (b"SET big 9223372036854775807\r\n", 1, Exact),
            (b"INCR big\r\n", 1, Exact),
            (b"DBSIZE\r\n", 1, Exact),
            (b"KEYS *\r\n", 1, Unordered),
            (b"KEYS b*\r\n", 1, Exact),
            (b"KEYS [cd]\r\n", 1, Unordered),
            (b"SCAN 0\r\n", 1, Unordered),
            (b"SCAN 0 MATCH c* COUNT 100\r\n", 1, Unordered),
            (b"SCAN x\r\n", 1, Exact),
            (b"SCAN 0 COUNT 0\r\n", 1, Exact),
            (b"SCAN 0 COUNT x\r\n", 1, Exact),
            (b"SCAN 0 MATCH\r\n", 1, Exact),
            (b"DEL k c nokey\r\n", 1, Exact),
            (b"DBSIZE\r\n", 1, Exact),
            (b"SELECT 3\r\n", 1, Exact),
            (b"SET x 1\r\n", 1, Exact),
            (b"DBSIZE\r\n", 1, Exact),
            (b"FLUSHDB\r\n", 1, Exact),
            (b"DBSIZE\r\n", 1, Exact),
            (b"FLUSHALL ASYNC\r\n", 1, Exact),
            (b"FLUSHALL X\r\n", 1, Exact),
            (b"SELECT 0\r\n", 1, Exact),
            (b"DBSIZE\r\n", 1, Exact),
        ],
        // Server commands.
        vec![
            (b"SET a 1\r\n", 1, Exact),
            (b"SET b 2 EX 1000\r\n", 1, Exact),
            (b"INFO keyspace\r\n", 1, Exact),
            (b"INFO server\r\n", 1, Info),
            (b"INFO clients\r\n", 1, Info),
            (b"INFO persistence\r\n", 1, Info),
            (b"INFO replication\r\n", 1, Info),
            (b"INFO cluster\r\n", 1, Exact),
            (b"INFO server clients\r\n", 1, Info),
            (b"INFO nosuch\r\n", 1, Exact),
            (b"INFO\r\n", 1, Info),
            (b"INFO everything\r\n", 1, Info),
            (b"CONFIG GET maxmemory\r\n", 1, Exact),
            (b"CONFIG GET dir\r\n", 1, Exact),
            (b"CONFIG GET save\r\n", 1, Exact),
            (b"CONFIG GET port\r\n", 1, Port),
            (b"CONFIG GET *max*\r\n", 1, Pairs),
            (b"CONFIG GET *\r\n", 1, Pairs),
            (b"CONFIG GET nosuch\r\n", 1, Exact),
            (b"CONFIG GET\r\n", 1, Exact),
            (b"CONFIG SET maxmemory-policy allkeys-lru\r\n", 1, Exact),
            (b"CONFIG GET maxmemory-policy\r\n", 1, Exact),
            (b"CONFIG SET nosuch 1\r\n", 1, Exact),
            (b"CONFIG SET appendonly maybe\r\n", 1, Exact),
            (b"CONFIG SET dir /tmp\r\n", 1, Exact),
            (b"CONFIG SET dbfilename x.rdb\r\n", 1, Exact),
            (b"CONFIG SET databases 4\r\n", 1, Exact),
            (b"CONFIG SET a\r\n", 1, Exact),
            (b"CONFIG FOO\r\n", 1, Exact),
            (b"CONFIG\r\n", 1, Exact),
            (b"SAVE\r\n", 1, Exact),
            (b"LASTSAVE\r\n", 1, Integer),
            (b"SLAVEOF 127.0.0.1 1\r\n", 1, Exact),
            (b"REPLICAOF 127.0.0.1 1\r\n", 1, Exact),
            (b"REPLICAOF no one\r\n", 1, Exact),
            (b"SLAVEOF a\r\n", 1, Exact),
            (b"MODULE LIST\r\n", 1, Exact),
            (b"MODULE LOAD /tmp/exp.so\r\n", 1, Exact),
            (b"MODULE FOO\r\n", 1, Exact),
            (b"CLIENT ID\r\n", 1, Integer),
            (b"CLIENT GETNAME\r\n", 1, Exact),
            (b"CLIENT SETNAME bad name\r\n", 1, Exact),
            (b"CLIENT SETNAME \"bad name\"\r\n", 1, Exact),
            (b"CLIENT SETNAME scanner\r\n", 1, Exact),
            (b"CLIENT GETNAME\r\n", 1, Exact),
            (b"CLIENT INFO\r\n", 1, ClientLine),
            (b"CLIENT LIST\r\n", 1, ClientLine),
            (b"CLIENT FOO\r\n", 1, Exact),
            (b"COMMAND COUNT\r\n", 1, Exact),
            (b"COMMAND DOCS get\r\n", 1, Exact),
            (b"COMMAND DOCS set config\r\n", 1, Pairs),
            (b"COMMAND DOCS nosuch\r\n", 1, Exact),
            (b"COMMAND INFO get\r\n", 1, Exact),
            (b"COMMAND\r\n", 1, Unordered),
            (b"COMMAND DOCS\r\n", 1, Pairs),
            (b"COMMAND FOO\r\n", 1, Exact),
            (b"SCRIPT LOAD \"return 1\"\r\n", 1, Exact),
            (b"EVALSHA 0000000000000000000000000000000000000000 0\r\n", 1, Exact),
            (b"EVAL 'return 1' x\r\n", 1, Exact),
            (b"EVAL 'return 1' 5\r\n", 1, Exact),
            (b"HELLO 4\r\n", 1, Exact),
            (b"HELLO x\r\n", 1, Exact),
            (b"HELLO 2 AUTH a b\r\n", 1, Exact),
            (b"HELLO 2 FOO\r\n", 1, Exact),
            (b"HELLO 2\r\n", 1, HelloId),
            (b"BGSAVE x\r\n", 1, Exact),
            (b"QUIT\r\n", 1, Exact),
        ],
        // A pipelined burst in one write.
        vec![(
            b"*1\r\n$4\r\nPING\r\nSET pk pv\r\n*2\r\n$3\r\nGET\r\n$2\r\npk\r\nINCR pc\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nDEL pk pc\r\nNOPE\r\nGET pk\r\n",
            8,
            Exact,
        )],
        // Protocol errors: Redis replies, then closes.
        vec![(b"*1\r\n$4\r\nPING\r\n*x\r\n", 2, Exact)],
        vec![(b"*1\r\n$x\r\n", 1, Exact)],
        vec![(b"*1\r\nx4\r\n", 1, Exact)],
        vec![(b"*1\r\n$-3\r\n", 1, Exact)],
        vec![(b"SET \"abc\r\n", 1, Exact)],
        vec![(b"GET 'a'b\r\n", 1, Exact)],
        vec![(b"*2147483647\r\n", 1, Exact)],
        vec![(b"*1\r\n$2147483647\r\n", 1, Exact)],
        // Redis skips the two bytes after a bulk without checking them.
        vec![(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", 2, Exact)],
        // Cross-protocol guard: closed without a reply.
        vec![(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 1, Exact)],
    ]
}

fn uname() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    format!(
        "{} {} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

#[test]
fn replies_match_real_redis_7_0_15() {
    let redis_server = require_tool("redis-server");
    let out = Command::new(&redis_server)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("v=7.0.15"),
        "needs redis-server 7.0.15, got {text}"
    );

    let real_dir = tempfile::tempdir().unwrap();
    let real_port = free_port();
    let _real = KillOnDrop::spawn(
        Command::new(&redis_server)
            .args([
                "--port",
                &real_port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(real_dir.path())
            .current_dir(real_dir.path())
            .stdout(std::process::Stdio::null()),
    );
    let real_addr: SocketAddr = format!("127.0.0.1:{real_port}").parse().unwrap();
    wait_for_port(real_addr, Duration::from_secs(10));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let hp_port = free_port();
    let mut config = mirage_config::Config::default();
    config.sensor.log_dir = log_dir.path().to_path_buf();
    let r = &mut config.services.redis;
    r.version = "7.0.15".into();
    r.listen = vec![format!("127.0.0.1:{hp_port}").parse().unwrap()];
    r.fallback_listen = vec![];
    r.dir = real_dir.path().to_string_lossy().into_owned();
    r.save = String::new();
    r.os = uname();
    // Redis 7 accepts multibulk counts up to INT_MAX (nothing is allocated
    // ahead of the data, here or there); the default cap is 5.x/6.x's 1M.
    r.max_multibulk_len = i32::MAX as u64;
    let sensor = rt.block_on(mirage_sensor::start(config)).unwrap();
    let hp_addr: SocketAddr = format!("127.0.0.1:{hp_port}").parse().unwrap();
    wait_for_port(hp_addr, Duration::from_secs(10));

    let mut failures = Vec::new();
    let mut compared = 0;
    for script in scripts() {
        let real = run_script(real_addr, &script);
        let hp = run_script(hp_addr, &script);
        for (i, ((r_raw, r_val, norm), (h_raw, h_val, _))) in real.iter().zip(hp.iter()).enumerate()
        {
            compared += 1;
            let (r, h) = match (r_raw, r_val, h_raw, h_val) {
                (Some(rr), Some(rv), Some(hr), Some(hv)) => {
                    (normalise(rr, rv, *norm), normalise(hr, hv, *norm))
                }
                _ => (
                    r_raw.clone().unwrap_or_default(),
                    h_raw.clone().unwrap_or_default(),
                ),
            };
            if r != h {
                let req = script
                    .iter()
                    .map(|s| String::from_utf8_lossy(s.0))
                    .collect::<Vec<_>>();
                // Show where they part, not the whole (possibly huge) reply.
                let at = r.iter().zip(h.iter()).take_while(|(a, b)| a == b).count();
                let from = at.saturating_sub(120);
                failures.push(format!(
                    "script starting {:?}, reply #{i} ({norm:?}), differs at byte {at}:\n  redis:    {:?}\n  honeypot: {:?}",
                    req.first(),
                    String::from_utf8_lossy(&r[from..r.len().min(at + 200)]),
                    String::from_utf8_lossy(&h[from..h.len().min(at + 200)])
                ));
            }
        }
        assert_eq!(real.len(), hp.len());
    }
    rt.block_on(sensor.shutdown());
    assert!(compared > 150, "only {compared} replies compared");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
