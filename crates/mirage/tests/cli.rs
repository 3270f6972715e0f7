//! The command-line contract: exit codes, one-line config errors, `init`,
//! completions and `--version`.

use std::process::{Command, Output};

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
    assert!(stderr(&o).contains(&addr.to_string()), "{}", stderr(&o));
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
