//! A fallback port never widens a bind (issue 20): a service configured on
//! 127.0.0.1 whose port is busy falls back to 127.0.0.1, and only one
//! configured on all addresses falls back to all addresses; the start-up
//! log says per service where it listens and why. Each test runs the real
//! sensor in a network namespace of its own (needs root, as CI has), so the
//! standard and fallback ports are free whatever else runs on the machine,
//! and `ss` there sees only the sockets this test made.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, wait_ping, wait_with_timeout};
use mirage_testkit::KillOnDrop;

/// A sensor config running only redis, on `listen`, with the default
/// fallback (`0.0.0.0:16379`, `[::]:16379`) left as it is.
fn redis_only(listen: &[&str], log_dir: &std::path::Path) -> String {
    let mut cfg = format!(
        "[sensor]\nlog_dir = {:?}\n\n[services.redis]\nlisten = {listen:?}\n",
        log_dir.display().to_string()
    );
    for name in mirage_config::SERVICE_NAMES {
        if !matches!(*name, "redis" | "catchall") {
            cfg.push_str(&format!("\n[services.{name}]\nenabled = false\n"));
        }
    }
    cfg
}

/// Something else holding TCP `addr` inside `ns`, listening once this returns.
fn squat(ns: &Netns, addr: &str) -> KillOnDrop {
    let a: SocketAddr = addr.parse().unwrap();
    let script = format!(
        "import socket,time\ns=socket.socket(); s.bind(('{}',{})); s.listen()\ntime.sleep(120)",
        a.ip(),
        a.port()
    );
    let squatter = KillOnDrop::spawn(ns.cmd("python3").args(["-c", &script]));
    let start = Instant::now();
    while !listening(ns, None).contains(&a) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "squatter never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    squatter
}

/// The TCP addresses listening in `ns` (only those of `pid`, if given),
/// from the kernel's socket table.
fn listening(ns: &Netns, pid: Option<u32>) -> Vec<SocketAddr> {
    let out = ns.cmd("ss").args(["-Hltnp"]).output().unwrap();
    assert!(out.status.success(), "ss failed");
    let owner = pid.map(|p| format!("pid={p},"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| owner.as_ref().is_none_or(|o| l.contains(o.as_str())))
        // State Recv-Q Send-Q Local:Port Peer:Port Process
        .filter_map(|l| l.split_whitespace().nth(3))
        // `ss -n` prints `127.0.0.1:P`, `0.0.0.0:P` and `[::]:P`.
        .map(|a| {
            a.parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("ss address {a:?}: {e}"))
        })
        .collect()
}

/// Start the sensor in `ns` with `config`; returns once it answers PING on
/// `port` there.
fn sensor(ns: &Netns, config: &std::path::Path, port: u16) -> Child {
    let child = ns
        .cmd(env!("CARGO_BIN_EXE_mirage"))
        .args(["sensor", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("MIRAGE_LOG", "info")
        .spawn()
        .unwrap();
    wait_ping(ns, port);
    child
}

/// SIGTERM the sensor and return what it wrote on stderr.
fn stop(mut child: Child) -> String {
    common::signal(child.id(), "TERM");
    let (code, err) = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    err
}

#[test]
fn loopback_service_with_a_busy_port_falls_back_on_loopback_only() {
    let ns = Netns::named("mbind");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let cfg = dir.path().join("mirage.toml");
    std::fs::write(&cfg, redis_only(&["127.0.0.1:6379"], &events)).unwrap();
    let _squatter = squat(&ns, "127.0.0.1:6379");

    let child = sensor(&ns, &cfg, 16379);
    // The kernel's view: the sensor holds 127.0.0.1:16379 and nothing else,
    // in particular not 0.0.0.0:16379 or [::]:16379 (the configured
    // fallback, which would put a loopback honeypot on every interface).
    let mine = listening(&ns, Some(child.id()));
    assert_eq!(mine, vec!["127.0.0.1:16379".parse().unwrap()], "{mine:?}");
    let err = stop(child);

    let redis: Vec<&str> = err.lines().filter(|l| l.contains("redis:")).collect();
    assert_eq!(redis.len(), 1, "one summary line for redis: {err}");
    assert!(
        redis[0].contains("redis: listening on 127.0.0.1:16379 (fallback: 127.0.0.1:6379: "),
        "{err}"
    );
    let want_events = format!("events: {}", events.join("events-").display());
    assert!(
        err.lines().filter(|l| l.contains(&want_events)).count() == 1,
        "where events go: {err}"
    );
}

#[test]
fn all_addresses_service_with_a_busy_port_falls_back_on_all_addresses() {
    let ns = Netns::named("mbind");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let cfg = dir.path().join("mirage.toml");
    std::fs::write(&cfg, redis_only(&["0.0.0.0:6379", "[::]:6379"], &events)).unwrap();
    let _squatter = squat(&ns, "0.0.0.0:6379");

    let child = sensor(&ns, &cfg, 16379);
    let mut mine = listening(&ns, Some(child.id()));
    mine.sort();
    let want: Vec<SocketAddr> = vec![
        "0.0.0.0:16379".parse().unwrap(),
        "[::]:16379".parse().unwrap(),
    ];
    assert_eq!(mine, want, "{mine:?}");
    let err = stop(child);
    assert!(
        err.lines().any(|l| l
            .contains("redis: listening on 0.0.0.0:16379, [::]:16379 (fallback: 0.0.0.0:6379: ")),
        "{err}"
    );
}

#[test]
fn service_not_on_a_fallback_logs_its_addresses() {
    let ns = Netns::named("mbind");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let cfg = dir.path().join("mirage.toml");
    std::fs::write(&cfg, redis_only(&["127.0.0.1:6379"], &events)).unwrap();
    let child = sensor(&ns, &cfg, 6379);
    assert_eq!(
        listening(&ns, Some(child.id())),
        vec!["127.0.0.1:6379".parse::<SocketAddr>().unwrap()]
    );
    let err = stop(child);
    let redis: Vec<&str> = err.lines().filter(|l| l.contains("redis:")).collect();
    assert_eq!(redis.len(), 1, "{err}");
    assert!(
        redis[0].ends_with("redis: listening on 127.0.0.1:6379"),
        "{err}"
    );
}
