//! Countries through real MaxMind databases: the GeoLite2-City database that
//! the PyPI package `maxminddb-geolite2` ships (found in the test
//! virtualenv), cross-checked against the `maxminddb` Python reader, and the
//! tiny database the tests write with `mmdb-writer`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn geolite2_city() -> PathBuf {
    let out = Command::new(mirage_testkit::venv_python())
        .args([
            "-c",
            "import os, _maxminddb_geolite2 as g; \
             print(os.path.join(os.path.dirname(g.__file__), 'GeoLite2-City.mmdb'))",
        ])
        .output()
        .expect("run the venv python");
    assert!(
        out.status.success(),
        "the test virtualenv needs `maxminddb-geolite2`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(p.is_file(), "{} missing", p.display());
    p
}

/// (address, events, country expected)
const SOURCES: &[(&str, u32, Option<&str>)] = &[
    ("8.8.8.8", 5, Some("US")),
    ("114.114.114.114", 4, Some("CN")),
    ("77.88.8.8", 3, Some("RU")),
    ("193.0.6.139", 2, Some("NL")),
    ("2001:4860:4860::8888", 2, Some("US")),
    ("202.12.27.33", 1, Some("JP")),
    ("10.0.0.1", 1, None),
];

#[test]
fn countries_from_the_real_geolite2_database() {
    let db = geolite2_city();
    let dir = tmp_dir("geolite2");
    let mut lines = Vec::new();
    for (i, (ip, n, _)) in SOURCES.iter().enumerate() {
        for k in 0..*n {
            let ts = format!("2026-02-01T00:{:02}:{:02}Z", i, k);
            lines.push(event(
                &ts,
                ip,
                "203.0.113.1",
                445,
                "catchall",
                "s",
                "session.connect",
                json!({}),
            ));
        }
    }
    let cap = dir.join("events.jsonl");
    std::fs::write(&cap, lines.join("\n")).unwrap();

    // What the reference (Python) reader says about each address.
    let script = "import sys, maxminddb\nr = maxminddb.open_database(sys.argv[1])\n\
                  for ip in sys.argv[2:]:\n    x = r.get(ip) or {}\n    \
                  print(ip, (x.get('country') or x.get('registered_country') or {}).get('iso_code', '-'))";
    let mut cmd = Command::new(mirage_testkit::venv_python());
    cmd.arg("-c").arg(script).arg(&db);
    for (ip, _, _) in SOURCES {
        cmd.arg(ip);
    }
    let out = cmd.output().expect("python maxminddb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = SOURCES
        .iter()
        .map(|(ip, _, c)| format!("{ip} {}", c.unwrap_or("-")))
        .collect();
    assert_eq!(
        reference, want,
        "the database disagrees with the expected countries"
    );

    let r = json_report(&[&cap.to_string_lossy(), "--geoip", &db.to_string_lossy()]);
    assert_eq!(r["geo"]["databases"][0][1], "GeoLite2-City");
    assert_eq!(
        r["geo"]["countries"],
        json!([
            {"code": "US", "name": "United States", "events": 7, "sources": 2},
            {"code": "CN", "name": "China", "events": 4, "sources": 1},
            {"code": "RU", "name": "Russia", "events": 3, "sources": 1},
            {"code": "NL", "name": "Netherlands", "events": 2, "sources": 1},
            {"code": "JP", "name": "Japan", "events": 1, "sources": 1},
        ])
    );
    assert_eq!(
        (
            u(&r["geo"]["unknown_events"]),
            u(&r["geo"]["unknown_sources"])
        ),
        (1, 1)
    );
    // Each top source carries its country.
    for s in r["top_sources"].as_array().unwrap() {
        let ip = s["ip"].as_str().unwrap();
        let (_, _, c) = SOURCES.iter().find(|x| x.0 == ip).unwrap();
        assert_eq!(s["country"], c.map_or(Value::Null, |c| json!(c)), "{ip}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lookups_through_a_tiny_written_database() {
    let dir = tmp_dir("tinydb");
    let db = tiny_mmdb(&dir);
    let geo = mirage_report::geo::Geo::open(std::slice::from_ref(&db)).expect("open tiny db");
    let look = |ip: &str| geo.lookup(ip.parse().unwrap());
    let nl = look("198.51.100.250");
    assert_eq!(nl.country, Some(("NL".into(), "Netherlands".into())));
    assert_eq!(nl.asn, Some((64500, "Example NL Hosting".into())));
    assert_eq!(look("192.0.2.127").country.map(|c| c.0), Some("RU".into()));
    assert_eq!(look("192.0.2.128").country.map(|c| c.0), Some("CN".into()));
    assert_eq!(look("192.0.3.1"), Default::default());
    assert_eq!(look("2001:db8::1"), Default::default());
    // Two databases: the first answer of each kind wins.
    let city = geolite2_city();
    let both = mirage_report::geo::Geo::open(&[city, db]).unwrap();
    assert_eq!(
        both.lookup("8.8.8.8".parse().unwrap()).country.map(|c| c.0),
        Some("US".into())
    );
    let tiny_only = both.lookup("198.51.100.1".parse().unwrap());
    assert_eq!(tiny_only.asn.map(|a| a.0), Some(64500));
    // Not a database: a usage error naming the file.
    let junk = dir.join("junk.mmdb");
    std::fs::write(&junk, b"not a database").unwrap();
    let err = mirage_report::geo::Geo::open(&[junk])
        .err()
        .expect("junk rejected");
    assert!(err.contains("junk.mmdb"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
