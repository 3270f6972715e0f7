//! Hostile input and floods: the sensor keeps answering within its memory
//! cap. Huge declared lengths allocate nothing, an endless line is cut at
//! Redis's inline limit, and 5,000 idle connections cost little.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Sensor, of_kind};

/// The memory cap the sensor must stay under in this test (RSS, MiB): the
/// documented budget for 5,000 idle sessions plus the hostile inputs below.
const RSS_CAP_MIB: u64 = 128;

fn ping_within(addr: std::net::SocketAddr, limit: Duration) {
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(limit)).unwrap();
    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    assert!(start.elapsed() < limit, "PING took {:?}", start.elapsed());
}

/// Send a request and read until the server closes; returns what it said.
fn reply_then_close(addr: std::net::SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(req).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

#[test]
fn hostile_lengths_long_lines_and_idle_flood() {
    mirage_net::raise_fd_limit().unwrap();
    let s = Sensor::redis("[limits]\nmax_connections_per_ip = 6000\n");
    let addr = s.addr;
    let (rss_start, _) = s.rss_kib();

    // Huge declared lengths: an error and a close, nothing allocated.
    let r = reply_then_close(addr, b"*2147483647\r\n");
    assert!(
        r.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let r = reply_then_close(addr, b"*1\r\n$2147483647\r\n");
    assert!(
        r.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&r)
    );

    // Declared bulk lengths within the limit but never sent: 300 sessions
    // each promising 8 MB must not reserve 2.4 GB.
    let mut promisers = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"*2\r\n$3\r\nSET\r\n$8000000\r\nabc").unwrap();
        promisers.push(c);
    }

    // 100 MB without a newline: cut at the inline limit, like Redis.
    let mut long = TcpStream::connect(addr).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let chunk = vec![b'A'; 1 << 20];
    let mut sent = 0usize;
    for _ in 0..100 {
        match long.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break, // the sensor closed on us, as it should
        }
    }
    let mut reply = Vec::new();
    let _ = long.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"-ERR Protocol error: too big inline request"),
        "after {sent} bytes: {}",
        String::from_utf8_lossy(&reply)
    );

    // 5,000 idle connections.
    let idle = common::idle_connections(addr, 5000);
    std::thread::sleep(Duration::from_millis(500));
    ping_within(addr, Duration::from_secs(1));
    eprintln!("rss at start {rss_start} KiB");
    s.assert_peak_rss_under(RSS_CAP_MIB, "5000 idle + hostile");

    drop(idle);
    drop(promisers);
    let mut s = s;
    let events = s.stop_after_hostile_input();
    let errors = of_kind(&events, "protocol.error");
    assert!(errors.len() >= 3, "{errors:#?}");
    assert!(errors.iter().all(|e| e["src_ip"] == "127.0.0.1"));
    assert!(of_kind(&events, "session.connect").len() >= 5303);
}

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8
/// is all local, so a test can be two sources).
fn connect_from(from: [u8; 4], addr: std::net::SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// The review's attack on the sensor's memory: 300 connections from two
/// addresses, each sending all but the end of an 8 MB bulk (2.4 GB held
/// if each were let grow, inside every per-session limit). With a 64 MiB
/// budget the sensor stays near it, cuts the sessions that wanted more
/// (`memory_budget`), and still answers PING at once.
#[test]
fn partial_bulks_stay_inside_the_memory_budget() {
    const BUDGET_MIB: u64 = 64;
    /// The budget plus what the sensor holds with no session at all
    /// (runtime, keyspace, event queue), with room for allocator slack.
    const CAP_MIB: u64 = BUDGET_MIB + 48;
    mirage_net::raise_fd_limit().unwrap();
    let s = Sensor::redis(&format!("[limits]\nmemory_budget = {}\n", BUDGET_MIB << 20));
    let addr = s.addr;
    let head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8000000\r\n";
    let body = std::sync::Arc::new(vec![b'x'; 7_999_000]);
    let senders: Vec<_> = (0..300)
        .map(|i| {
            let body = body.clone();
            std::thread::spawn(move || {
                let from = if i % 2 == 0 {
                    [127, 0, 0, 1]
                } else {
                    [127, 0, 0, 2]
                };
                let mut c = connect_from(from, addr);
                c.write_all(head).unwrap();
                // A session cut by the budget resets the rest of the write.
                let held = c.write_all(&body).is_ok();
                (c, held)
            })
        })
        .collect();
    let conns: Vec<(TcpStream, bool)> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    ping_within(addr, Duration::from_secs(1));
    s.assert_peak_rss_under(CAP_MIB, "300 partial 8 MB bulks");
    let written = conns.iter().filter(|(_, held)| *held).count();
    eprintln!("{written} of 300 writers sent their whole partial bulk");
    drop(conns);

    let mut s = s;
    let events = s.stop_after_hostile_input();
    let cut = of_kind(&events, "session.close")
        .into_iter()
        .filter(|e| e["reason"] == "memory_budget")
        .count();
    // At most 64 MiB / 8 MB sessions fit whole; all the others were cut.
    assert!(cut >= 290, "only {cut} sessions cut by the memory budget");
}
