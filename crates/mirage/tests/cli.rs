//! The command-line contract: exit codes, one-line config errors, `init`,
//! completions and `--version`.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn mirage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version() {
    let o = mirage(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("mirage {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_config_key_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[services.redis]\nversoin = \"6.0.16\"\n").unwrap();
    let o = mirage(&["sensor", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains(&format!("{}:2:1", path.display())), "{e}");
    assert!(e.contains("versoin"), "{e}");
}

#[test]
fn bad_config_value_names_key_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[limits]\nmax_connections = 0\n").unwrap();
    let o = mirage(&["sensor", "--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.contains("limits.max_connections") && e.contains(path.to_str().unwrap()),
        "{e}"
    );
}

#[test]
fn missing_config_file_exit_2() {
    let o = mirage(&["sensor", "--config", "/nonexistent/mirage.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/mirage.toml"));
}

#[test]
fn bad_service_flags_exit_2() {
    let o = mirage(&["sensor", "--service", "gopher=127.0.0.1:7070"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown service 'gopher'"),
        "{}",
        stderr(&o)
    );
    let o = mirage(&["sensor", "--service", "redis"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mirage(&["sensor", "--service", "redis=not-an-address"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn port_in_use_without_fallback_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = mirage(&[
        "sensor",
        "--service",
        &format!("redis={addr}"),
        "--log-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    // One line naming the address, and nothing bound instead: `--service`
    // names an exact address, it has no fallback.
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.contains(&format!("cannot listen for redis on {addr}: ")),
        "{e}"
    );
}

/// Run `mirage ARGS…` that must fail at once: its exit code and stderr. A
/// sensor that got past the check would serve until killed, hence the
/// timeout.
fn mirage_failing(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_with_timeout(&mut child, Duration::from_secs(20))
}

/// Exit 2 and exactly one stderr line, which contains every `needle`.
fn assert_usage_line(args: &[&str], needles: &[&str]) {
    let (code, e) = mirage_failing(args);
    assert_eq!(code, Some(2), "{args:?}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: {n:?} not in {e}");
    }
}

#[test]
fn bad_flag_values_are_one_line_naming_the_flag_exit_2() {
    // Each would otherwise start serving on real ports: a free loopback
    // one is given wherever the flag under test is not --service.
    let free = format!("redis=127.0.0.1:{}", mirage_testkit::free_port());
    assert_usage_line(
        &["sensor", "--service", "redis"],
        &["--service", "NAME=ADDR"],
    );
    assert_usage_line(
        &["sensor", "--service", "redis=70000"],
        &["--service", "port 70000 is out of range (1-65535)"],
    );
    assert_usage_line(
        &["sensor", "--service", "redis=127.0.0.1:65536"],
        &["--service", "port 65536 is out of range"],
    );
    assert_usage_line(
        &["sensor", "--service", "redis=127.0.0.1:0"],
        &["--service", "port 0 is out of range"],
    );
    assert_usage_line(
        &["sensor", "--service", "redis=localhost:6379"],
        &["--service", "'localhost' is not an IPv4 address"],
    );
    assert_usage_line(
        &["sensor", "--service", "gopher=127.0.0.1:7070"],
        &["--service", "unknown service 'gopher'"],
    );
    assert_usage_line(
        &["report", "--format", "xml", "/dev/null"],
        &["--format", "'xml'", "text, json, csv, html"],
    );
    assert_usage_line(
        &["server", "events", "--format", "yaml"],
        &["--format", "'yaml'"],
    );
    assert_usage_line(&["sensor", "--service", &free, "--bogus"], &["--bogus"]);
}

#[test]
fn unwritable_log_dir_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where a directory is wanted: no one, not even root,
    // can write events under it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("events");
    let free = format!("redis=127.0.0.1:{}", mirage_testkit::free_port());
    assert_usage_line(
        &[
            "sensor",
            "--service",
            &free,
            "--log-dir",
            under_file.to_str().unwrap(),
        ],
        &["--log-dir", under_file.to_str().unwrap()],
    );
    // The same from the config file names the file and the key.
    let cfg = dir.path().join("mirage.toml");
    std::fs::write(
        &cfg,
        format!("[sensor]\nlog_dir = {:?}\n", file.to_str().unwrap()),
    )
    .unwrap();
    assert_usage_line(
        &[
            "sensor",
            "--config",
            cfg.to_str().unwrap(),
            "--service",
            &free,
        ],
        &[cfg.to_str().unwrap(), "key 'sensor.log_dir'"],
    );
    // A directory that can be written is created as before.
    let fresh = dir.path().join("new/events");
    let mut sensor = Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(["sensor", "--service", &free, "--log-dir"])
        .arg(&fresh)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = free.trim_start_matches("redis=").parse().unwrap();
    mirage_testkit::wait_for_port(addr, Duration::from_secs(20));
    let _ = sensor.kill();
    let _ = sensor.wait();
    assert!(fresh.is_dir());
}

#[test]
fn init_writes_the_example_and_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirage.toml");
    let o = mirage(&["init", "--out", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[services.redis]"));
    // Refuses to overwrite without --force.
    assert_eq!(
        mirage(&["init", "--out", path.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert!(
        mirage(&["init", "--out", path.to_str().unwrap(), "--force"])
            .status
            .success()
    );
    // `-` prints it.
    let o = mirage(&["init", "--out", "-"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), text);
}

#[test]
fn completions_for_bash() {
    let o = mirage(&["completions", "bash"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("_mirage()") && s.contains("sensor"), "{s}");
}
