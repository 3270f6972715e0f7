//! Detection benchmark: replay a syslog file (`/var/log/auth.log` format)
//! through syslog header parsing, the service parsers and the built-in rule
//! pack on one thread, then print throughput, decisions and peak RSS.
//!
//! `cargo run --release -p mirage-rules --example replay -- FILE [YEAR]`
//! (see `bench/detect/run.sh`).

use std::io::{BufRead, BufReader};
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

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: replay FILE [YEAR]");
        std::process::exit(2);
    };
    let year: i32 = args.next().and_then(|y| y.parse().ok()).unwrap_or(2026);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("replay: {path}: {e}");
            std::process::exit(2);
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut engine = Engine::new(RuleSet::builtin());
    let mut parser = LogParser::new();
    let mut records: Vec<LogRecord> = Vec::new();
    let mut out = Outcome::default();
    let (mut lines, mut bytes, mut unparsed, mut nrecords) = (0u64, 0u64, 0u64, 0u64);
    let (mut decisions, mut renewed, mut alerts, mut expired) = (0u64, 0u64, 0u64, 0u64);
    let mut line = Vec::with_capacity(1024);
    let start = Instant::now();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => {
                eprintln!("replay: {e}");
                std::process::exit(1);
            }
        }
        lines += 1;
        let Ok(msg) = syslog::parse_unprefixed(&line) else {
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
    let secs = start.elapsed().as_secs_f64();
    let st = engine.stats();
    println!("file:              {path}");
    println!(
        "lines:             {lines} ({:.1} MB, {unparsed} not syslog)",
        bytes as f64 / 1e6
    );
    println!("records:           {nrecords}");
    println!("elapsed:           {secs:.3} s");
    println!(
        "throughput:        {:.0} lines/s (one core)",
        lines as f64 / secs
    );
    println!(
        "decisions:         {decisions} new, {renewed} renewed, {expired} expired, {} active",
        st.active_decisions
    );
    println!("alerts:            {alerts}");
    println!(
        "tracked keys:      {} ({} evicted)",
        st.tracked_keys, st.key_evictions
    );
    match peak_rss_kib() {
        Some(k) => println!("peak RSS:          {:.1} MB", k as f64 / 1024.0),
        None => println!("peak RSS:          unknown"),
    }
}
