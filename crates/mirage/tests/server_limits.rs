//! Hostile input to `mirage server`'s syslog receivers: random bytes over
//! TCP and UDP, an octet count announcing a gigabyte, an endless line. The
//! server stays responsive, bounded in memory, and logs no warning or
//! error for any of it (garbage is counted, not logged above debug).

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::server::{MirageServer, status_kib};

#[test]
fn garbage_floods_leave_the_server_responsive_bounded_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let server = MirageServer::start("", dir.path());
    let pid = server.child.as_ref().unwrap().id();
    // Deterministic pseudo-random bytes (xorshift), 32 MiB over 8
    // connections.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..8 {
        let mut s = TcpStream::connect(server.syslog).unwrap();
        for _ in 0..4 {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if s.write_all(&chunk).is_err() {
                break; // closed on a framing error: fine
            }
        }
    }
    // An octet count announcing 999 MB, then a little data and EOF.
    let mut s = TcpStream::connect(server.syslog).unwrap();
    s.write_all(b"999999999 <13>1 - - - - - - x").unwrap();
    drop(s);
    // A 20 MiB line without LF.
    let mut s = TcpStream::connect(server.syslog).unwrap();
    let line = vec![b'a'; 20 << 20];
    let _ = s.write_all(&line);
    drop(s);
    // 20,000 random datagrams.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20_000u32 {
        let n = 1 + (i as usize * 7919) % 1400;
        let _ = u.send_to(&chunk[..n], server.syslog);
    }

    // Still working: five failures decide.
    let _s = server.send_failures("192.0.2.200", 5);
    let d = server.wait_decision("192.0.2.200", Duration::from_secs(30));
    assert_eq!(d["rule"], "ssh-bruteforce-account");
    let peak = status_kib(pid, "VmHWM");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    eprintln!("peak RSS under the flood: {} MiB", peak / 1024);
}
