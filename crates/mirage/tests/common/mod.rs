//! Running the real `mirage` binary as a sensor in tests.

#![allow(dead_code)] // each test file uses a different part

pub mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `mirage sensor` child process with its own log dir, killed on drop.
pub struct Sensor {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Sensor {
    /// Start `mirage sensor` serving redis on a free loopback port, with
    /// `config` (TOML text, may be empty) written to a file.
    pub fn redis(config: &str) -> Sensor {
        Sensor::redis_in(config, tempfile::tempdir().unwrap())
    }

    /// As [`Sensor::redis`], with events under `dir/events` (to restart a
    /// sensor on the files an earlier one left).
    pub fn redis_in(config: &str, dir: tempfile::TempDir) -> Sensor {
        Sensor::start("redis", config, dir)
    }

    /// Start `mirage sensor` serving only `service` on a free loopback
    /// port, with `config` written to `dir/mirage.toml` and events under
    /// `dir/events`.
    pub fn start(service: &str, config: &str, dir: tempfile::TempDir) -> Sensor {
        let cfg = dir.path().join("mirage.toml");
        std::fs::write(&cfg, config).unwrap();
        // `free_port` can race with other tests binding the same port in
        // between: if our sensor could not bind it (it exits) and someone
        // else answers on it, try another port.
        for _ in 0..5 {
            let port = mirage_testkit::free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_mirage"))
                .args(["sensor", "--config"])
                .arg(&cfg)
                .args(["--service", &format!("{service}={addr}"), "--log-dir"])
                .arg(dir.path().join("events"))
                .args(["--name", "test-sensor"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Wait until the port is ours: another test's sensor may answer
            // on it while ours is still starting, and ours then fails to
            // bind and exits.
            let start = Instant::now();
            let owner = format!("pid={},", child.id());
            while start.elapsed() < Duration::from_secs(10) {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                let ss = Command::new("ss")
                    .args(["-Hltnp", &format!("sport = :{port}")])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&ss.stdout).contains(&owner) {
                    return Sensor {
                        child: Some(child),
                        addr,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the sensor could not bind a free port in 5 tries");
    }

    /// Start `mirage sensor ARGS…` inside the network namespace `ns`, with
    /// `config` written to `dir/mirage.toml` and events under `dir/events`;
    /// returns once it listens on TCP `addr` there (its own namespace, so
    /// no other test can take the port).
    pub fn start_in_netns(
        ns: &Netns,
        config: &str,
        args: &[&str],
        dir: tempfile::TempDir,
        addr: SocketAddr,
    ) -> Sensor {
        let cfg = dir.path().join("mirage.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = ns
            .cmd(env!("CARGO_BIN_EXE_mirage"))
            .args(["sensor", "--config"])
            .arg(&cfg)
            .args(args)
            .arg("--log-dir")
            .arg(dir.path().join("events"))
            .args(["--name", "test-sensor"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `ip netns exec` execs the program: the child's pid is the sensor's.
        let owner = format!("pid={},", child.id());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.wait();
                panic!("the sensor exited ({status}): {err}");
            }
            let ss = ns
                .cmd("ss")
                .args(["-Hltnp", &format!("sport = :{}", addr.port())])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&ss.stdout).contains(&owner) {
                return Sensor {
                    child: Some(child),
                    addr,
                    dir,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the sensor did not listen on {addr} within 20 s");
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn event_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// SIGTERM and wait: the graceful path (drain, flush). Returns stderr.
    pub fn stop(&mut self) -> String {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let out = wait_with_timeout(&mut child, Duration::from_secs(20));
        assert_eq!(out.0, Some(0), "sensor exited badly: {}", out.1);
        out.1
    }

    /// SIGKILL and wait: the crash path.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "KILL");
        let _ = child.wait();
    }

    /// Resident memory of the sensor in KiB (VmRSS), and its peak (VmHWM).
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Asserts the sensor's peak RSS stayed under `cap_mib` (the memory cap
    /// a flood test holds it to) and prints the figures under `label`.
    pub fn assert_peak_rss_under(&self, cap_mib: u64, label: &str) {
        let (rss, peak) = self.rss_kib();
        eprintln!("{label}: rss {rss} KiB, peak {peak} KiB");
        assert!(
            peak < cap_mib * 1024,
            "{label}: peak RSS {peak} KiB over the {cap_mib} MiB cap"
        );
    }

    /// Stops the sensor after a flood of hostile input and checks what
    /// every emulator owes it: attacker garbage is an event, never a WARN,
    /// ERROR or panic in the log, and every session that connected was
    /// closed. Returns the events for the protocol's own checks.
    pub fn stop_after_hostile_input(&mut self) -> Vec<Value> {
        let stderr = self.stop();
        assert!(
            !stderr.contains("ERROR") && !stderr.contains("WARN") && !stderr.contains("panic"),
            "{stderr}"
        );
        let events = read_events(&self.event_dir());
        assert_eq!(
            of_kind(&events, "session.connect").len(),
            of_kind(&events, "session.close").len(),
            "a session was left unclosed"
        );
        events
    }
}

/// `n` connections to `addr` that never send a byte (half-open sessions
/// for flood tests); dropping the vector closes them.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect()
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` (every 20 ms) until true; panic naming `what` after
/// `timeout`. Returns how long it took.
pub fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Run `mirage ARGS --data-dir DATA` (an operator subcommand), assert it
/// succeeded, return its stdout.
pub fn mirage_cli(args: &[&str], data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mirage"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `path` opened for appending (created when missing): a child's log that
/// survives its restarts.
pub fn append_log(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> (Option<i32>, String) {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("sensor did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every event line in `dir`, parsed; panics on a line that is not JSON.
pub fn read_events(dir: &Path) -> Vec<Value> {
    read_events_allowing(dir, 0)
}

/// As [`read_events`], but up to `torn` lines may be torn (not JSON): a
/// crash can cut the last write short.
pub fn read_events_allowing(dir: &Path, torn: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut bad = 0;
    // Only the day files: not the shipper's checkpoint, not the quarantine.
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with("events-") && name.ends_with(".jsonl")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        if torn == 0 {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends mid-line",
                f.display()
            );
        }
        for (i, line) in text.lines().enumerate() {
            match serde_json::from_str(line) {
                Ok(v) => out.push(v),
                Err(e) => {
                    bad += 1;
                    assert!(bad <= torn, "{}:{}: {e}: {line}", f.display(), i + 1);
                }
            }
        }
    }
    out
}

/// Waits until `done` holds on the sensor's events (they are written
/// asynchronously) or `timeout` passes; returns the events read last, so
/// the caller's assertions say what was missing.
pub fn wait_events(
    sensor: &Sensor,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let ev = read_events(&sensor.event_dir());
        if done(&ev) || start.elapsed() > timeout {
            return ev;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `nmap -sV -Pn -n EXTRA… -p PORT 127.0.0.1`, inside `ns` when given;
/// nmap's whole report (it must exit 0).
pub fn nmap_sv(ns: Option<&Netns>, port: u16, extra: &[&str]) -> String {
    let nmap = mirage_testkit::require_tool("nmap");
    let mut cmd = match ns {
        Some(ns) => ns.cmd(&nmap),
        None => Command::new(&nmap),
    };
    let out = cmd
        .args(["-sV", "-Pn", "-n"])
        .args(extra)
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nmap: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The `PORT/tcp …` line of an nmap report.
pub fn nmap_port_line(report: &str, port: u16) -> String {
    let prefix = format!("{port}/tcp");
    report
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{report}"))
        .to_owned()
}

/// nmap -sV against `service` on its standard `port`: nmap tries some
/// version probes early only on a service's usual port, so the sensor runs
/// alone on 127.0.0.1:PORT in a private namespace, with `config`. Returns
/// the port's line once the sensor is known to have outlived the scan.
pub fn nmap_standard_port(service: &str, port: u16, config: &str) -> String {
    let ns = Netns::new();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sensor = Sensor::start_in_netns(
        &ns,
        config,
        &["--service", &format!("{service}={addr}")],
        tempfile::tempdir().unwrap(),
        addr,
    );
    let report = nmap_sv(Some(&ns), port, &[]);
    let alive = sensor.child.as_mut().unwrap().try_wait().unwrap().is_none();
    assert!(alive, "the sensor died during the scan");
    nmap_port_line(&report, port)
}

/// The technique of every `attack` event, in order.
pub fn techniques(events: &[Value]) -> Vec<String> {
    of_kind(events, "attack")
        .iter()
        .map(|e| e["technique"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Run redis-cli against the sensor; returns stdout. `input` goes to stdin.
pub fn redis_cli(port: u16, args: &[&str], input: Option<&[u8]>) -> String {
    use std::io::Write;
    let cli = mirage_testkit::require_tool("redis-cli");
    let mut child = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(data) = input {
        stdin.write_all(data).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private network namespace (needs root) with loopback up. On drop the
/// processes still running inside it (only ones this test started there)
/// are killed and the namespace is deleted.
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Netns {
        Netns::named("mdef")
    }

    /// A namespace named `PREFIX_<unique suffix>`.
    pub fn named(prefix: &str) -> Netns {
        let name = format!("{prefix}_{}", mirage_testkit::unique_suffix());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "`ip netns add` failed: this test needs root");
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let ok = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip -n {} {args:?}", self.0);
    }

    /// `program` run inside the namespace.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Does redis-cli inside `ns` get PONG from `port`?
pub fn ping_in(ns: &Netns, port: u16) -> bool {
    let cli = mirage_testkit::require_tool("redis-cli");
    let out = ns
        .cmd(cli.to_str().unwrap())
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

/// Wait (up to 10 s) for PONG from `port` inside `ns`.
pub fn wait_ping(ns: &Netns, port: u16) {
    let start = Instant::now();
    while !ping_in(ns, port) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no PONG on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
