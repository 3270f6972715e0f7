//! Running the real `mirage` binary as a detection server in tests, and
//! reading what it stored through its own CLI (`mirage server decisions …`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `mirage server` child process with its own data dir and a syslog port
/// on 127.0.0.1 (TCP and UDP), killed on drop. Its stderr goes to a file
/// (a pipe nobody reads would block a chatty server).
pub struct MirageServer {
    pub child: Option<Child>,
    pub syslog: SocketAddr,
    pub dir: PathBuf,
    config: PathBuf,
    /// A command the server runs under (e.g. `prlimit --nofile=1024:`).
    prefix: Vec<String>,
}

impl MirageServer {
    /// Start with `config` (TOML text, may be empty) under `dir`.
    pub fn start(config: &str, dir: &Path) -> MirageServer {
        MirageServer::start_under(&[], config, dir)
    }

    /// Start with signed ingest on a free loopback port, keyed by
    /// `key_file`, and `more` config after the `[ingest]` keys (more
    /// ingest keys, then other sections); returns the server once ingest
    /// accepts connections, and ingest's address.
    pub fn with_ingest(key_file: &Path, more: &str, dir: &Path) -> (MirageServer, String) {
        let ingest = format!("127.0.0.1:{}", mirage_testkit::free_port());
        let server = MirageServer::start(
            &format!(
                "[ingest]\nlisten = \"{ingest}\"\nkey_file = \"{}\"\n{more}",
                key_file.display()
            ),
            dir,
        );
        mirage_testkit::wait_for_port(ingest.parse().unwrap(), Duration::from_secs(10));
        (server, ingest)
    }

    /// As [`MirageServer::start`], run under the command `prefix`.
    pub fn start_under(prefix: &[&str], config: &str, dir: &Path) -> MirageServer {
        let port = mirage_testkit::free_port();
        let syslog: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("server.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut s = MirageServer {
            child: None,
            syslog,
            dir: dir.to_path_buf(),
            config: cfg,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        };
        s.restart();
        s
    }

    /// (Re)start on the same port, config and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mirage = env!("CARGO_BIN_EXE_mirage");
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(mirage);
                c
            }
            None => Command::new(mirage),
        };
        let child = cmd
            .args(["server", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--syslog", &self.syslog.to_string()])
            .env("MIRAGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        mirage_testkit::wait_for_port(self.syslog, Duration::from_secs(20));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.syslog.port()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        super::signal(child.id(), "TERM");
        let (code, _) = super::wait_with_timeout(&mut child, Duration::from_secs(30));
        assert_eq!(code, Some(0), "server exited badly: {}", self.log());
    }

    /// Run `mirage server ARGS --data-dir DIR`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirage"));
        cmd.arg("server")
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir());
        cmd.output().unwrap()
    }

    /// The pin of the server's certificate (`mirage server pin`), which
    /// TLS clients of ingest and the policy API check.
    pub fn pin(&self) -> mirage_net::Pin {
        let out = self.cli(&["pin"]);
        assert!(out.status.success(), "{out:?}");
        mirage_net::Pin::parse(String::from_utf8_lossy(&out.stdout).trim()).expect("a pin")
    }

    /// Active decisions, as `decisions list --format json` prints them.
    pub fn decisions(&self) -> Vec<Value> {
        let out = self.cli(&["decisions", "list", "--format", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    /// Stored events (newest first, up to `limit`), as schema JSON.
    pub fn events(&self, limit: u32) -> Vec<Value> {
        let out = self.cli(&["events", "--format", "json", "--limit", &limit.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Poll `f` until it returns `Some`, or panic with the server log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}; server log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The active decision about `ip` (any type), waiting up to `timeout`.
    pub fn wait_decision(&self, ip: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("a decision about {ip}"), timeout, || {
            self.decisions().into_iter().find(|d| d["ip"] == ip)
        })
    }
}

impl Drop for MirageServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl MirageServer {
    /// Write `n` of sshd's failed-password lines for root from `ip`, now,
    /// over one TCP connection to the syslog port (what five failures of
    /// the seed's rule need). Returns the connection, still open.
    pub fn send_failures(&self, ip: &str, n: u16) -> std::net::TcpStream {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(self.syslog).unwrap();
        // Current times: a decision lasts its TTL from the event's time.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let lines: String = (0..n)
            .map(|i| {
                format!(
                    "<38>1 {now} web1 sshd 1 - - {}\n",
                    failed_password("root", ip, 1000 + i)
                )
            })
            .collect();
        s.write_all(lines.as_bytes()).unwrap();
        s
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`), 0 when gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Auth lines as sshd writes them (message part only).
pub fn failed_password(user: &str, ip: &str, port: u16) -> String {
    format!("Failed password for {user} from {ip} port {port} ssh2")
}
