//! `mirage server` on a data disk that fills up (a small tmpfs): sensors'
//! signed ingest is refused (503) while the store cannot write, the error
//! is logged once for the episode, the server recovers by itself when
//! space returns, and after a `kill -9` every event it acknowledged with
//! `200` is stored exactly once. Shutdown while the disk is full ends
//! within its deadline.
//!
//! Needs root (tmpfs mounts), as CI runs.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::MirageServer;
use serde_json::json;

const KEY: &str = "shared-secret-of-more-than-32-bytes-0123456789";

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs (needs root)");
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The server's ingest endpoint: address and certificate pin (TLS).
struct Ingest {
    addr: String,
    pin: mirage_net::Pin,
}

/// A server with ingest on, its data dir on a tmpfs of `size`.
fn server_on_tmpfs(d: &Path, size: &str) -> (Tmpfs, MirageServer, Ingest) {
    let key_file = d.join("ingest.key");
    std::fs::write(&key_file, KEY).unwrap();
    let fs = Tmpfs::mount(&d.join("server").join("data"), size);
    let (server, ingest) = MirageServer::with_ingest(&key_file, "", &d.join("server"));
    let pin = server.pin();
    (fs, server, Ingest { addr: ingest, pin })
}

/// A batch of `n` schema events (with some padding, so a small disk fills
/// in a few dozen batches) and their ids.
fn batch(n: usize) -> (Vec<u8>, Vec<String>) {
    let mut body = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = mirage_core::new_id().to_string();
        let ev = json!({
            "schema": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(),
            "sensor": "hp1", "service": "redis", "transport": "tcp",
            "src_ip": "203.0.113.9", "src_port": 40000, "dst_ip": "10.0.0.1", "dst_port": 6379,
            "kind": "command", "command": "set", "args": [], "raw": "x".repeat(600),
        });
        body.extend_from_slice(ev.to_string().as_bytes());
        body.push(b'\n');
        ids.push(id);
    }
    (body, ids)
}

fn post(rt: &tokio::runtime::Runtime, ingest: &Ingest, body: Vec<u8>) -> Result<u16, String> {
    rt.block_on(mirage_net::signed_post::post(
        &ingest.addr,
        Some(ingest.pin),
        "/api/v1/events",
        Some(KEY.as_bytes()),
        &[],
        "application/x-ndjson",
        body,
        Duration::from_secs(20),
    ))
    .map(|(status, _)| status)
}

fn stored_ids(server: &MirageServer) -> Vec<String> {
    server
        .events(10_000_000)
        .into_iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_full_disk_refuses_ingest_recovers_alone_and_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut server, ingest) = server_on_tmpfs(dir.path(), "1500k");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut acked: Vec<String> = Vec::new();

    // Fill the disk.
    let mut refused = None;
    for _ in 0..400 {
        let (body, ids) = batch(100);
        let started = Instant::now();
        match post(&rt, &ingest, body) {
            Ok(200) => acked.extend(ids),
            Ok(status) => {
                refused = Some((status, started.elapsed()));
                break;
            }
            Err(e) => panic!("ingest failed at the transport: {e}\n{}", server.log()),
        }
    }
    let (status, took) = refused.expect("a 1.5 MiB disk fills up");
    assert_eq!(status, 503, "{}", server.log());
    assert!(took < Duration::from_secs(10), "refusal took {took:?}");
    // While full: refused at once, every time.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(post(&rt, &ingest, batch(10).0), Ok(503));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log();
    let reports = log.matches("disk full").count();
    assert!(
        (1..=2).contains(&reports),
        "disk full reported {reports} times:\n{log}"
    );

    // Space returns: ingest works again without a restart.
    fs.resize("64m");
    let started = Instant::now();
    loop {
        let (body, ids) = batch(100);
        if post(&rt, &ingest, body) == Ok(200) {
            acked.extend(ids);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no recovery after space returned:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..5 {
        let (body, ids) = batch(100);
        assert_eq!(post(&rt, &ingest, body), Ok(200));
        acked.extend(ids);
    }
    assert!(server.log().contains("writable again"), "{}", server.log());
    // Operators can write beside it: no lock left behind.
    let out = server.cli(&[
        "decisions",
        "add",
        "198.51.100.1",
        "--type",
        "block",
        "--ttl",
        "1h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // kill -9, restart: every acknowledged event is there, once.
    let mut child = server.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    server.restart();
    let stored = stored_ids(&server);
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event stored twice");
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost",
        missing.len(),
        acked.len()
    );
    eprintln!(
        "acknowledged {} events across the episode, all stored once",
        acked.len()
    );
}

#[test]
fn shutdown_on_a_full_disk_ends_within_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (_fs, mut server, ingest) = server_on_tmpfs(dir.path(), "1m");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut full = false;
    for _ in 0..400 {
        if post(&rt, &ingest, batch(100).0) != Ok(200) {
            full = true;
            break;
        }
    }
    assert!(full);
    // Not a byte left (the WAL could otherwise reuse its own pages), and
    // plain syslog keeps arriving while the store cannot write.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!(
            "of={}",
            dir.path().join("server/data/filler").display()
        ))
        .stderr(std::process::Stdio::null())
        .status();
    let mut s = std::net::TcpStream::connect(server.syslog).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..20_000 {
        use std::io::Write;
        let line = format!(
            "<38>1 - web1 sshd 1 - - Failed password for user{i} from 192.0.2.{} port {i} ssh2\n",
            i % 250
        );
        if s.write_all(line.as_bytes()).is_err() {
            break; // back-pressure: the server stopped reading
        }
    }
    drop(s);
    std::thread::sleep(Duration::from_secs(2));
    let mut child = server.child.take().unwrap();
    let started = Instant::now();
    common::signal(child.id(), "TERM");
    let (code, _) = common::wait_with_timeout(&mut child, Duration::from_secs(30));
    let took = started.elapsed();
    assert!(code.is_some(), "still running 30 s after SIGTERM");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    let log = server.log();
    assert!(
        log.contains("not stored"),
        "the loss is not reported:\n{log}"
    );
}
