//! Detection benchmark: replay a syslog file (`/var/log/auth.log` format)
//! through syslog header parsing, the service parsers and the built-in rule
//! pack on one thread, then print throughput, decisions and peak RSS.
//!
//! `cargo run --release -p mirage-rules --example replay -- FILE [YEAR]`
//! (see `bench/detect/run.sh`).

use std::io::Read;
use std::time::Instant;

use mirage_logparse::{LogParser, LogRecord};
use mirage_proto::syslog;
use mirage_rules::{Engine, LogEvent, Outcome, RuleSet};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// What one pass over the log produced; every pass must agree.
#[derive(Debug, PartialEq)]
struct Counts {
    lines: u64,
    bytes: u64,
    unparsed: u64,
    records: u64,
    decisions: u64,
    renewed: u64,
    alerts: u64,
    expired: u64,
    active: usize,
    tracked_keys: usize,
    evictions: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: replay FILE [YEAR] [PASSES]");
        std::process::exit(2);
    };
    let year: i32 = args.next().and_then(|y| y.parse().ok()).unwrap_or(2026);
    // A pass over 1M lines lasts about a second, short enough for one run's
    // figure to swing by 15 % on a shared machine: time several passes (each
    // with a fresh engine) and report the median.
    let passes: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(5).max(1);
    let mut rates = Vec::with_capacity(passes);
    let mut first: Option<Counts> = None;
    for _ in 0..passes {
        let (counts, secs) = pass(&path, year);
        rates.push(counts.lines as f64 / secs);
        match &first {
            None => first = Some(counts),
            Some(f) => assert_eq!(
                f, &counts,
                "passes disagree: the replay is not deterministic"
            ),
        }
    }
    let Some(c) = first else { return };
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!("file:              {path}");
    println!(
        "lines:             {} ({:.1} MB, {} not syslog)",
        c.lines,
        c.bytes as f64 / 1e6,
        c.unparsed
    );
    println!("records:           {}", c.records);
    println!("passes:            {passes} (identical results)");
    println!(
        "throughput:        {median:.0} lines/s (one core, median; min {:.0}, max {:.0})",
        rates[0],
        rates[rates.len() - 1]
    );
    println!(
        "decisions:         {} new, {} renewed, {} expired, {} active",
        c.decisions, c.renewed, c.expired, c.active
    );
    println!("alerts:            {}", c.alerts);
    println!(
        "tracked keys:      {} ({} evicted)",
        c.tracked_keys, c.evictions
    );
    match peak_rss_kib() {
        Some(k) => println!("peak RSS:          {:.1} MB", k as f64 / 1024.0),
        None => println!("peak RSS:          unknown"),
    }
}

/// Replay the whole file once through a fresh parser and engine.
fn pass(path: &str, year: i32) -> (Counts, f64) {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("replay: {path}: {e}");
            std::process::exit(2);
        }
    };
    let mut engine = Engine::new(RuleSet::builtin());
    let mut parser = LogParser::new();
    let mut records: Vec<LogRecord> = Vec::new();
    let mut out = Outcome::default();
    let (mut lines, mut bytes, mut unparsed, mut nrecords) = (0u64, 0u64, 0u64, 0u64);
    let (mut decisions, mut renewed, mut alerts, mut expired) = (0u64, 0u64, 0u64, 0u64);
    // Lines are taken in place from a 1 MiB buffer (as the server takes
    // frames from its socket buffer), not copied out one by one.
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0usize;
    let mut eof = false;
    let start = Instant::now();
    while !eof || filled > 0 {
        if !eof && filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) => {
                    eprintln!("replay: {e}");
                    std::process::exit(1);
                }
            }
        }
        let mut pos = 0;
        loop {
            let rest = &buf[pos..filled];
            let line = match memchr::memchr(b'\n', rest) {
                Some(i) => &rest[..=i],
                // The last line may lack its LF at end of file.
                None if eof && !rest.is_empty() => rest,
                None => break,
            };
            pos += line.len();
            bytes += line.len() as u64;
            lines += 1;
            let Ok(msg) = syslog::parse_unprefixed(line) else {
                unparsed += 1;
                continue;
            };
            let Some(app) = msg.app_name else { continue };
            records.clear();
            if parser.parse_app(app, msg.message, &mut records) == 0 {
                continue;
            }
            let ts = msg
                .timestamp
                .and_then(|t| t.to_unix_micros(year, 0))
                .unwrap_or(0);
            let host = msg.hostname.unwrap_or("-");
            for r in &records {
                nrecords += 1;
                out.clear();
                engine.process(&LogEvent::new(r, host, ts), &mut out);
                for d in &out.decisions {
                    if d.renewed {
                        renewed += 1;
                    } else {
                        decisions += 1;
                    }
                }
                alerts += out.alerts.len() as u64;
                expired += out.expired.len() as u64;
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            eprintln!("replay: a line longer than 1 MiB");
            std::process::exit(1);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let st = engine.stats();
    let counts = Counts {
        lines,
        bytes,
        unparsed,
        records: nrecords,
        decisions,
        renewed,
        alerts,
        expired,
        active: st.active_decisions,
        tracked_keys: st.tracked_keys,
        evictions: st.key_evictions,
    };
    (counts, secs)
}
