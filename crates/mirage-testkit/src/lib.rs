//! Helpers shared by mirage's integration tests.
//!
//! Tests use real peers (redis-server, redis-cli, nmap, Python client
//! libraries). `.ci/run` (via `scripts/install-test-deps.sh`) installs them;
//! when one is missing a test fails with a message saying how to get it,
//! rather than silently passing.
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Path of an executable on PATH, or a panic saying how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("test needs `{name}` on PATH: run `bash scripts/install-test-deps.sh` (as root) first");
}

/// The Python interpreter of the test virtualenv (`.venv` at the repo root),
/// which holds the Python client libraries tests drive.
pub fn venv_python() -> PathBuf {
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "test needs the Python virtualenv {}: run `bash scripts/install-test-deps.sh` first",
        p.display()
    );
    p
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Wait until `addr` accepts TCP connections, or panic after `timeout`.
pub fn wait_for_port(addr: std::net::SocketAddr, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} did not start listening within {timeout:?}");
}

/// A child process killed (by its own PID) when dropped.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Spawn `cmd`, to be killed on drop.
    pub fn spawn(cmd: &mut Command) -> KillOnDrop {
        KillOnDrop(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}")),
        )
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unique suffix for names of namespaces, files and containers a test makes.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{:x}", std::process::id(), nanos & 0xffff)
}
