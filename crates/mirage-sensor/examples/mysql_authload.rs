//! Load generator for the MySQL benchmark (`bench/mysql/run.sh`): many
//! concurrent clients, each doing complete login attempts in a loop
//! (connect, read the handshake, send a `mysql_native_password` response
//! for a wrong password, answer an auth switch if one comes, read the
//! error, close). Prints attempts per second.
//!
//! ```text
//! mysql_authload ADDR [CONCURRENCY=64] [SECONDS=10] [USER=root] [PASSWORD=wrong]
//! ```
//!
//! Written on tokio with no per-attempt allocation beyond the packets, so
//! on a 2-core machine the server under test, not this client, is what
//! saturates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn native_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    let s1 = Sha1::digest(password);
    let s2 = Sha1::digest(s1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(s2);
    let m = h.finalize();
    s1.iter().zip(m.iter()).map(|(a, b)| a ^ b).collect()
}

async fn read_packet(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u8> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    buf.resize(len, 0);
    s.read_exact(buf).await?;
    Ok(h[3])
}

fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut v = Vec::with_capacity(n + 4);
    v.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
    v.extend_from_slice(payload);
    v
}

/// One login attempt; Ok(true) when the server answered with an error
/// (denied), Ok(false) for anything else.
async fn attempt(addr: SocketAddr, user: &str, password: &str) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(256);
    read_packet(&mut s, &mut buf).await?;
    // Handshake: protocol, version NUL, id(4), scramble1(8), 0, caps(2),
    // charset, status(2), caps(2), len, reserved(10), scramble2(12) NUL.
    let v_end = buf.iter().skip(1).position(|&b| b == 0).unwrap_or(0) + 1;
    let p = v_end + 1;
    let mut scramble = Vec::with_capacity(20);
    scramble.extend_from_slice(buf.get(p + 4..p + 12).unwrap_or(&[]));
    scramble.extend_from_slice(buf.get(p + 31..p + 43).unwrap_or(&[]));
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD | TRANSACTIONS
    let caps: u32 = 0x0200 | 0x8000 | 0x8_0000 | 0x1 | 0x2000;
    let mut r = Vec::with_capacity(128);
    r.extend_from_slice(&caps.to_le_bytes());
    r.extend_from_slice(&(16u32 << 20).to_le_bytes());
    r.push(45);
    r.extend_from_slice(&[0; 23]);
    r.extend_from_slice(user.as_bytes());
    r.push(0);
    let tok = native_token(password.as_bytes(), &scramble);
    r.push(tok.len() as u8);
    r.extend_from_slice(&tok);
    r.extend_from_slice(b"mysql_native_password\0");
    s.write_all(&frame(1, &r)).await?;
    let mut seq = read_packet(&mut s, &mut buf).await?;
    if buf.first() == Some(&0xfe) && buf.len() > 1 {
        // Auth switch: answer for the plugin's new scramble.
        let name_end = buf.iter().skip(1).position(|&b| b == 0).unwrap_or(0) + 1;
        let data = buf.get(name_end + 1..).unwrap_or(&[]);
        let data = &data[..data.len().min(20)];
        let tok = native_token(password.as_bytes(), data);
        s.write_all(&frame(seq.wrapping_add(1), &tok)).await?;
        seq = read_packet(&mut s, &mut buf).await?;
    }
    let _ = seq;
    Ok(buf.first() == Some(&0xff))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: mysql_authload ADDR [CONCURRENCY] [SECONDS] [USER] [PASSWORD]");
        std::process::exit(2);
    };
    let conc: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let user = Arc::new(args.get(4).cloned().unwrap_or_else(|| "root".into()));
    let password = Arc::new(args.get(5).cloned().unwrap_or_else(|| "wrong".into()));
    let denied = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (user, password) = (user.clone(), password.clone());
        let (denied, other, errors) = (denied.clone(), other.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match attempt(addr, &user, &password).await {
                    Ok(true) => denied.fetch_add(1, Ordering::Relaxed),
                    Ok(false) => other.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let d = denied.load(Ordering::Relaxed);
    println!(
        "attempts/s: {:.0}  denied: {d}  other: {}  errors: {}  seconds: {elapsed:.2}  concurrency: {conc}",
        d as f64 / elapsed,
        other.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
}
