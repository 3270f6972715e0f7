//! Replays `tests/data/<service>.log`: every log line is preceded by its
//! expected records, one `#> {json}` line each, or `#> ignore` (see
//! `tests/data/README.md`). Lines starting with `##` are comments.

use std::path::Path;

use mirage_logparse::{LogParser, LogRecord, Service};
use mirage_proto::syslog;
use serde_json::Value;

fn service_of(stem: &str) -> Service {
    match stem {
        "sshd" => Service::Ssh,
        "vsftpd" => Service::Ftp,
        "rsyncd" => Service::Rsync,
        "mysql" => Service::Mysql,
        "redis" => Service::Redis,
        other => panic!("fixture {other}.log: unknown service"),
    }
}

/// Parse one fixture line as the server would: a syslog line (file form or
/// with `<PRI>`) is split and dispatched by its tag; anything else is a raw
/// line of the file's service (as an agent's file source sends it).
fn parse_line(p: &mut LogParser, default: Service, line: &str) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let msg = if line.starts_with('<') {
        syslog::parse(line.as_bytes()).ok()
    } else {
        syslog::parse_unprefixed(line.as_bytes()).ok()
    };
    match msg
        .as_ref()
        .and_then(|m| m.app_name.and_then(Service::from_app_name).map(|s| (s, m)))
    {
        Some((s, m)) => {
            p.parse(s, m.message, &mut out);
        }
        None => {
            p.parse(default, line.as_bytes(), &mut out);
        }
    }
    out
}

fn run(path: &Path) -> (usize, Vec<String>) {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let default = service_of(stem);
    let text = std::fs::read_to_string(path).unwrap();
    let mut parser = LogParser::new();
    let mut expected: Vec<Value> = Vec::new();
    let mut ignore = false;
    let mut have_expectation = false;
    let mut failures = Vec::new();
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() || line.starts_with("##") {
            continue;
        }
        if let Some(exp) = line.strip_prefix("#> ") {
            have_expectation = true;
            if exp.trim() == "ignore" {
                ignore = true;
            } else {
                match serde_json::from_str::<Value>(exp) {
                    Ok(v) => expected.push(v),
                    Err(e) => failures.push(format!("{stem}.log:{n}: bad expectation JSON: {e}")),
                }
            }
            continue;
        }
        lines += 1;
        if !have_expectation {
            failures.push(format!("{stem}.log:{n}: log line without an expectation"));
        }
        if ignore && !expected.is_empty() {
            failures.push(format!("{stem}.log:{n}: both ignore and records expected"));
        }
        // Fixture files keep tabs (MySQL) as the two characters `\t`.
        let line = line.replace("\\t", "\t");
        let got: Vec<Value> = parse_line(&mut parser, default, &line)
            .iter()
            .map(LogRecord::to_json)
            .collect();
        if got != expected {
            failures.push(format!(
                "{stem}.log:{n}: {line}\n   expected: {}\n   got:      {}",
                serde_json::to_string(&expected).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
        expected.clear();
        ignore = false;
        have_expectation = false;
    }
    (lines, failures)
}

#[test]
fn every_fixture_line_parses_as_annotated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut total = 0;
    let mut failures = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            files += 1;
            let (n, f) = run(&path);
            assert!(n >= 10, "{}: only {n} lines", path.display());
            total += n;
            failures.extend(f);
        }
    }
    assert_eq!(files, 5, "one fixture per service");
    assert!(
        failures.is_empty(),
        "{} of {total} lines failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Replays the committed fuzz corpus (and any crash inputs saved there).
#[test]
fn fuzz_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/logparse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/logparse exists") {
        mirage_logparse::fuzz_logparse(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}
