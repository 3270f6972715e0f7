//! Bad input is counted and listed with line numbers, never a crash:
//! truncated lines, invalid JSON, invalid base64, binary garbage, a 10 MB
//! single line (both above the in-memory chunk and within it), a truncated
//! gzip stream.

mod common;

use std::io::Write as _;

use common::*;
use serde_json::{Value, json};

fn good(ts: &str) -> String {
    event(
        ts,
        "192.0.2.1",
        "203.0.113.1",
        80,
        "http",
        "s",
        "session.connect",
        json!({}),
    )
}

fn bad_capture() -> Vec<u8> {
    let mut f: Vec<u8> = Vec::new();
    let mut line = |b: &[u8]| {
        f.extend_from_slice(b);
        f.push(b'\n');
    };
    line(good("2026-01-01T00:00:00Z").as_bytes()); // 1
    line(br#"{"schema":1,"ts":"2026-01-01T00:00:01Z","src_ip":"192.0.2."#); // 2 truncated
    line(b"{not json at all}"); // 3
    line(
        event(
            "2026-01-01T00:00:02Z",
            "192.0.2.1",
            "203.0.113.1",
            80,
            "http",
            "s",
            "payload",
            json!({"data_b64": "%%%not-base64%%%", "sha256": "00", "len": 3, "truncated": false}),
        )
        .as_bytes(),
    ); // 4
    line(b"\x00\xff\xfe\x01\x02garbage\x7f\x1b[2J"); // 5
    let mut big =
        br#"{"ts":"2026-01-01T00:00:03Z","src_ip":"192.0.2.1","kind":"payload","data_b64":""#
            .to_vec();
    big.extend(std::iter::repeat_n(b'A', 10 << 20));
    line(&big); // 6: 10 MB, never closed
    line(good("2026-01-01T00:00:04Z").as_bytes()); // 7
    line(br#"{"src_ip":"192.0.2.1","kind":"session.connect"}"#); // 8 no ts
    line(br#"{"ts":"2026-01-01T00:00:05Z","src_ip":"999.1.1.1"}"#); // 9 bad address
    line(b""); // 10: blank, ignored
    line(br#"{"ts":"2026-01-01T00:00:06Z","src_ip":"192.0.2.1","dst_port":65536}"#); // 11
    f.extend_from_slice(good("2026-01-01T00:00:07Z").as_bytes()); // 12, no newline
    f
}

fn skipped_lines(r: &Value) -> Vec<(u64, String)> {
    r["skipped"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (u(&l["line"]), l["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn expected(long_reason: &str) -> Vec<(u64, String)> {
    [
        (2, "invalid JSON"),
        (3, "invalid JSON"),
        (4, "invalid base64"),
        (5, "unrecognised line"),
        (6, long_reason),
        (8, "missing or invalid timestamp"),
        (9, "missing or invalid source address"),
        (11, "invalid JSON"),
    ]
    .iter()
    .map(|(n, s)| (*n, (*s).to_owned()))
    .collect()
}

#[test]
fn bad_lines_are_skipped_with_line_numbers() {
    let dir = tmp_dir("bad");
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, bad_capture()).unwrap();
    let p = path.to_string_lossy().into_owned();

    // Default limit (1 MiB): the 10 MB line is measured, never held.
    let r = json_report(&[&p]);
    assert_eq!(u(&r["totals"]["lines"]), 12);
    assert_eq!(u(&r["totals"]["events"]), 3);
    assert_eq!(u(&r["totals"]["skipped"]), 8);
    assert_eq!(skipped_lines(&r), expected("line too long"));
    let mut reasons: Vec<(String, u64)> = r["skipped"]["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), u(&c["events"])))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("invalid JSON".to_owned(), 3),
            ("invalid base64".to_owned(), 1),
            ("line too long".to_owned(), 1),
            ("missing or invalid source address".to_owned(), 1),
            ("missing or invalid timestamp".to_owned(), 1),
            ("unrecognised line".to_owned(), 1),
        ]
    );

    // A limit above 10 MB: the line is read whole and fails as JSON.
    let r = json_report(&[&p, "--max-line-bytes", "20000000"]);
    assert_eq!(skipped_lines(&r), expected("invalid JSON"));
    assert_eq!(u(&r["totals"]["events"]), 3);

    // A small limit inside the chunk: the good lines are short enough.
    let r = json_report(&[&p, "--max-line-bytes", "4096"]);
    assert_eq!(skipped_lines(&r), expected("line too long"));

    // The text report lists them too, and stays printable.
    let text = run(&[&p]).unwrap();
    assert!(text.contains("Skipped lines: 8"), "{text}");
    assert!(
        text.contains(&format!("{p} 6 line too long")) || text.contains("    6 line too long"),
        "{text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\0'));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn line_numbers_survive_many_chunks_and_threads() {
    // 300 000 lines (> 4 MiB, so several chunks over several threads) with a
    // bad line at known places.
    let dir = tmp_dir("bad-chunks");
    let path = dir.join("big.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let g = good("2026-01-01T00:00:00Z");
    let bad_at = [1u64, 77_777, 150_001, 299_999];
    for n in 1..=300_000u64 {
        if bad_at.contains(&n) {
            writeln!(f, "{{\"broken\":").unwrap();
        } else {
            writeln!(f, "{g}").unwrap();
        }
    }
    drop(f);
    let p = path.to_string_lossy().into_owned();
    let r = json_report(&[&p, "--threads", "3"]);
    assert_eq!(u(&r["totals"]["lines"]), 300_000);
    assert_eq!(u(&r["totals"]["events"]), 300_000 - 4);
    let lines: Vec<u64> = skipped_lines(&r).iter().map(|l| l.0).collect();
    assert_eq!(lines, bad_at);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_gzip_is_reported_not_fatal() {
    let dir = tmp_dir("bad-gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..50_000 {
        writeln!(
            enc,
            "{}",
            good(&format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60))
        )
        .unwrap();
    }
    let gz = enc.finish().unwrap();
    let path = dir.join("cut.jsonl.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let p = path.to_string_lossy().into_owned();
    let r = json_report(&[&p]);
    let events = u(&r["totals"]["events"]);
    assert!(events > 1000 && events < 50_000, "{events}");
    let reasons: Vec<String> = skipped_lines(&r).into_iter().map(|l| l.1).collect();
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("truncated or corrupt compressed data")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_are_reported_as_such() {
    for bad in [
        vec!["--bucket", "30x"],
        vec!["--src", "10.0.0.0/33"],
        vec!["--grep", "("],
        vec!["--since", "yesterday"],
        vec!["/nonexistent/capture.jsonl"],
        vec!["--geoip", "/nonexistent.mmdb", "-"],
    ] {
        match run(&bad) {
            Err(mirage_report::ReportError::Usage(msg)) => {
                assert!(!msg.contains('\n'), "{msg}");
            }
            other => panic!("{bad:?}: expected a usage error, got {other:?}"),
        }
    }
}
