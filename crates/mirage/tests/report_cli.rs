//! `mirage report` as a command: standard input, `--out`, exit codes (0 ok,
//! 2 usage with one line on stderr, 1 runtime failure) and a quiet stderr
//! when it is not a terminal (no progress bar).

use std::io::Write as _;
use std::process::{Command, Stdio};

fn mirage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
}

const LINE: &str = r#"{"schema":1,"id":"x","ts":"2026-04-01T10:00:00.000000Z","sensor":"hp1","service":"catchall","transport":"tcp","src_ip":"192.0.2.7","src_port":40000,"dst_ip":"203.0.113.1","dst_port":445,"session":"s","kind":"session.connect"}"#;

#[test]
fn reads_standard_input_and_writes_json() {
    let mut child = mirage()
        .args(["report", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mirage");
    {
        let mut stdin = child.stdin.take().unwrap();
        for _ in 0..3 {
            writeln!(stdin, "{LINE}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"][0]["path"], "-");
    assert_eq!(v["totals"]["events"], 3);
    assert_eq!(v["top_ports"][0]["port"], 445);
}

#[test]
fn out_file_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("events-2026-04-01.jsonl");
    std::fs::write(&cap, format!("{LINE}\n")).unwrap();
    let html = dir.path().join("r.html");
    let out = mirage()
        .arg("report")
        .arg(&cap)
        .args(["--format", "html", "--out"])
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));

    for args in [
        vec!["report", "--bucket", "5y"],
        vec!["report", "--src", "not-an-ip"],
        vec!["report", "/nonexistent/events.jsonl"],
        vec!["report", "--sessions"],
        vec!["report", "--format", "pdf"],
    ] {
        let out = mirage().args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        if !args.contains(&"--format") && !args.contains(&"--sessions") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }

    let out = mirage()
        .arg("report")
        .arg(&cap)
        .args(["--out", "/nonexistent-dir/r.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}
