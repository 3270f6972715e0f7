//! The loop closed end to end in a private network namespace: `mirage
//! server` with its policy API, `mirage agent` enrolled with a one-time
//! token, tailing an sshd log and enforcing with real nftables. An
//! operator's decision and a brute force detected from the log both land in
//! the agent's nft sets; a deletion takes the address out; a clean stop
//! removes the table.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirage_testkit::KillOnDrop;

struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!("menf_{}", mirage_testkit::unique_suffix());
        for args in [
            vec!["netns", "add", &name],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            assert!(
                Command::new("ip").args(&args).status().unwrap().success(),
                "needs root"
            );
        }
        Ns(name)
    }
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
    fn nft_table(&self) -> Option<String> {
        let out = self
            .cmd("nft")
            .args(["list", "table", "inet", "mirage"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn mirage(args: &[&str], data: &Path) -> String {
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

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn decisions_reach_the_agents_nftables_and_leave_with_it() {
    mirage_testkit::require_tool("nft");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let ns = Ns::new();
    let bin = env!("CARGO_BIN_EXE_mirage");

    let server_log = std::fs::File::create(d.join("server.log")).unwrap();
    let _server = KillOnDrop::spawn(
        ns.cmd(bin)
            .args([
                "server",
                "--syslog",
                "127.0.0.1:10514",
                "--listen",
                "127.0.0.1:8515",
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(server_log),
    );
    wait("the server", Duration::from_secs(20), || {
        std::fs::read_to_string(d.join("server.log"))
            .is_ok_and(|l| l.contains("policy API: listening"))
    });
    let token = mirage(&["server", "tokens", "create", "--ttl", "10m"], &data)
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64);

    let sshd_log = d.join("sshd.log");
    std::fs::write(&sshd_log, "").unwrap();
    let agent_log = std::fs::File::create(d.join("agent.log")).unwrap();
    let mut agent = KillOnDrop::spawn(
        ns.cmd(bin)
            .args([
                "agent",
                "--server",
                "127.0.0.1:8515",
                "--enroll",
                &token,
                "--mode",
                "deception",
            ])
            .args([
                "--redirect",
                "22=10.98.0.2:2222",
                "--syslog",
                "127.0.0.1:10514",
            ])
            .arg("--tail")
            .arg(format!("ssh:{}", sshd_log.display()))
            .arg("--state-dir")
            .arg(d.join("agent-state"))
            .env("MIRAGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(agent_log),
    );
    let agent_log = || std::fs::read_to_string(d.join("agent.log")).unwrap_or_default();
    wait("the agent's table", Duration::from_secs(20), || {
        ns.nft_table().is_some()
    });
    assert!(d.join("agent-state/policy.key").exists());
    // The token was used up.
    let out = Command::new(bin)
        .args(["server", "agents", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());

    // An operator's decision.
    mirage(
        &[
            "server",
            "decisions",
            "add",
            "203.0.113.50",
            "--type",
            "deceive",
            "--ttl",
            "1h",
        ],
        &data,
    );
    let took = wait("203.0.113.50 in nft", Duration::from_secs(10), || {
        ns.nft_table().is_some_and(|t| t.contains("203.0.113.50"))
    });
    eprintln!("operator decision -> nft set element: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}\n{}", agent_log());

    // Deleted: the element goes.
    mirage(&["server", "decisions", "delete", "203.0.113.50"], &data);
    wait("203.0.113.50 out of nft", Duration::from_secs(10), || {
        ns.nft_table().is_some_and(|t| !t.contains("203.0.113.50"))
    });

    // Detection from the host's own log: five failures for one account.
    let start = Instant::now();
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&sshd_log)
            .unwrap();
        for i in 0..5 {
            writeln!(
                f,
                "Failed password for root from 198.51.100.77 port {} ssh2",
                40000 + i
            )
            .unwrap();
        }
    }
    wait("198.51.100.77 in nft", Duration::from_secs(10), || {
        ns.nft_table().is_some_and(|t| t.contains("198.51.100.77"))
    });
    eprintln!(
        "5th failed line written -> nft set element: {:?}",
        start.elapsed()
    );

    // A clean stop removes the table.
    assert!(
        Command::new("kill")
            .args(["-TERM", &agent.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{}", agent_log());
    assert!(ns.nft_table().is_none(), "table left behind");
}
