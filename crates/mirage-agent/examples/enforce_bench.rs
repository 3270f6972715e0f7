//! Enforcement benchmark driver for `bench/enforce/run.sh` (not a test).
//!
//! Three roles, each run inside one of the script's network namespaces:
//!
//! * `serve NAME PORT`: answers every TCP connection with `NAME\n` and
//!   closes (the real service in the host namespace, the honeypot in its
//!   own); a thread per connection is plenty for one prober.
//! * `probe HOST:PORT SOURCE`: connects again and again from `SOURCE` and
//!   prints a line each time the answer changes (`real`, `honeypot`,
//!   `dropped`), flushed at once, so the controller sees the switch within
//!   one connection of it.
//! * `control ATT_NS`: in the host namespace, drives [`Nft`] directly (nft
//!   without `ip netns exec`, as the agent runs it): steering latency over
//!   many trials (from the call to `apply_delta` to the prober's first
//!   honeypot answer, and back after the delete), then batch costs for
//!   snapshots and deltas of 1 to 100,000 decisions, and the anchor: one nft
//!   process per element.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirage_agent::firewall::{
    Decision, DecisionType, DeletedDecision, Delta, Nft, NftConfig, Policy,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 4 => serve(&args[2], &args[3]),
        Some("probe") if args.len() == 4 => probe(&args[2], &args[3]),
        Some("control") if args.len() >= 3 => {
            let trials = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(200);
            control(&args[2], trials);
        }
        _ => {
            eprintln!(
                "usage: enforce_bench serve NAME PORT | probe HOST:PORT SOURCE | control ATT_NS [TRIALS]"
            );
            std::process::exit(2);
        }
    }
}

fn serve(name: &str, port: &str) {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    let reply = format!("{name}\n");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let reply = reply.clone();
        std::thread::spawn(move || {
            let _ = conn.write_all(reply.as_bytes());
        });
    }
}

fn probe(target: &str, source: &str) {
    let target: SocketAddr = target.parse().expect("HOST:PORT");
    let source: IpAddr = source.parse().expect("SOURCE address");
    let mut last = String::new();
    let stdout = std::io::stdout();
    loop {
        let now = attempt(target, source);
        if now != last {
            let mut out = stdout.lock();
            // The controller kills us when done; a closed pipe ends us too.
            if writeln!(out, "{now}").and_then(|_| out.flush()).is_err() {
                return;
            }
            last = now;
        }
        // About 3k connections/s at most: conntrack in the host namespace
        // keeps each for 120 s in TIME_WAIT.
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn attempt(target: SocketAddr, source: IpAddr) -> String {
    use socket2::{Domain, Socket, Type};
    let Ok(sock) = Socket::new(Domain::for_address(target), Type::STREAM, None) else {
        return "error".into();
    };
    if sock.bind(&SocketAddr::new(source, 0).into()).is_err() {
        return "error".into();
    }
    if sock
        .connect_timeout(&target.into(), Duration::from_millis(500))
        .is_err()
    {
        return "dropped".into();
    }
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    let mut stream: std::net::TcpStream = sock.into();
    let mut buf = String::new();
    let _ = stream.read_to_string(&mut buf);
    buf.trim().to_owned()
}

const ATTACKER: &str = "10.99.0.2";

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn base_policy(version: u64) -> Policy {
    serde_json::from_value(serde_json::json!({
        "version": version,
        "mode": "deception",
        "services": [{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "10.98.0.2:2222"}],
    }))
    .expect("policy")
}

fn decisions(n: u32, expires_unix: i64) -> Vec<Decision> {
    (0..n)
        .map(|i| Decision {
            // 100.64.0.0/10: nothing in the lab uses it.
            ip: IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i)),
            decision: DecisionType::Deceive,
            expires_unix,
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, v: &mut [Duration]) {
    v.sort();
    println!(
        "{name:<34} n={:<4} p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
        v.len(),
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.9)),
        ms(percentile(v, 0.99)),
        ms(percentile(v, 1.0)),
    );
}

/// Reads the prober's lines, stamped on arrival.
fn spawn_prober(att_ns: &str) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new("ip")
        .args(["netns", "exec", att_ns])
        .arg(exe)
        .args(["probe", "10.99.0.1:22", ATTACKER])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn prober");
    let stdout = child.stdout.take().expect("prober stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<(Instant, String)>, want: &str) -> Instant {
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok((t, line)) if line == want => return t,
            Ok(_) => continue,
            Err(e) => panic!("prober never said {want:?}: {e}"),
        }
    }
}

fn control(att_ns: &str, trials: usize) {
    let config = NftConfig {
        table: "mirage_bench".into(),
        ..NftConfig::default()
    };
    let mut nft = Nft::new(config.clone()).expect("backend");
    nft.apply_snapshot(&base_policy(1)).expect("snapshot");

    let (mut prober, rx) = spawn_prober(att_ns);
    wait_line(&rx, "real");

    println!("== steering latency, one decision per delta, {trials} trials");
    let mut commit_on = Vec::new();
    let mut steer_on = Vec::new();
    let mut commit_off = Vec::new();
    let mut steer_off = Vec::new();
    let ip: IpAddr = ATTACKER.parse().expect("ip");
    let mut version = 1;
    for _ in 0..trials {
        version += 1;
        let add = Delta {
            version,
            new: vec![Decision {
                ip,
                decision: DecisionType::Deceive,
                expires_unix: now_unix() + 3600,
            }],
            deleted: vec![],
        };
        let t0 = Instant::now();
        nft.apply_delta(&add).expect("delta");
        commit_on.push(t0.elapsed());
        steer_on.push(wait_line(&rx, "honeypot") - t0);

        version += 1;
        let del = Delta {
            version,
            new: vec![],
            deleted: vec![DeletedDecision {
                ip,
                decision: DecisionType::Deceive,
            }],
        };
        let t0 = Instant::now();
        nft.apply_delta(&del).expect("delta");
        commit_off.push(t0.elapsed());
        steer_off.push(wait_line(&rx, "real") - t0);
    }
    let _ = prober.kill();
    let _ = prober.wait();
    summary("delta committed (add)", &mut commit_on);
    summary("attacker on honeypot (add)", &mut steer_on);
    summary("delta committed (delete)", &mut commit_off);
    summary("attacker on real service (delete)", &mut steer_off);

    println!("== batch cost (time for apply_* to return, nft commit included)");
    for n in [1u32, 1_000, 10_000, 100_000] {
        let expires = now_unix() + 3600;
        let mut p = base_policy(1_000_000);
        p.decisions = decisions(n, expires);
        // A fresh backend: the table is recreated (an agent's first start).
        let mut fresh = Nft::new(config.clone()).expect("backend");
        let t = Instant::now();
        let r = fresh.apply_snapshot(&p).expect("snapshot");
        let full = t.elapsed();
        // Same layout again: decision sets flushed and refilled.
        let t = Instant::now();
        let r2 = fresh.apply_snapshot(&p).expect("snapshot");
        let refill = t.elapsed();
        assert!(r.full && !r2.full);
        // The same decisions as one delta on empty sets.
        fresh
            .apply_snapshot(&base_policy(2_000_000))
            .expect("snapshot");
        let d = Delta {
            version: 2_000_001,
            new: p.decisions.clone(),
            deleted: vec![],
        };
        let t = Instant::now();
        fresh.apply_delta(&d).expect("delta");
        let delta = t.elapsed();
        println!(
            "{n:>7} decisions: snapshot (new table) {:>10}  snapshot (refill) {:>10}  delta {:>10}",
            ms(full),
            ms(refill),
            ms(delta)
        );
        let rules = Command::new("nft")
            .args(["-a", "list", "chain", "inet", "mirage_bench", "nat_pre"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .matches("# handle")
                    .count()
            })
            .unwrap_or(0);
        println!("{:>7}   rules in nat_pre: {rules}", "");
    }

    println!("== anchor: one nft process per element (the per-IP way)");
    let n = 200u32;
    let t = Instant::now();
    for i in 0..n {
        let ip = Ipv4Addr::from(0x6480_0000 + i);
        let status = Command::new("nft")
            .args([
                "add",
                "element",
                "inet",
                "mirage_bench",
                "deceive_v4",
                &format!("{{ {ip} timeout 1h }}"),
            ])
            .status()
            .expect("nft");
        assert!(status.success());
    }
    let per = t.elapsed() / n;
    println!(
        "{n} elements one process each: {} per element ({} for 10,000 at that rate)",
        ms(per),
        ms(per * 10_000)
    );

    nft.remove().expect("remove");
}
