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

use common::Netns as Ns;
use common::{append_log, mirage_cli, wait};

/// The agent's live table in `ns`, if there is one.
fn nft_table(ns: &Ns) -> Option<String> {
    let out = ns
        .cmd("nft")
        .args(["list", "table", "inet", "mirage"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

const BIN: &str = env!("CARGO_BIN_EXE_mirage");

/// `mirage server` inside `ns` (syslog 10514, policy API 8515), logging to
/// `d/server.log` (appended across restarts).
fn start_server(ns: &Ns, d: &Path) -> KillOnDrop {
    let log = append_log(&d.join("server.log"));
    let before = std::fs::read_to_string(d.join("server.log"))
        .unwrap_or_default()
        .matches("policy API: listening")
        .count();
    let server = KillOnDrop::spawn(
        ns.cmd(BIN)
            .args([
                "server",
                "--syslog",
                "127.0.0.1:10514",
                "--listen",
                "127.0.0.1:8515",
                "--data-dir",
            ])
            .arg(d.join("data"))
            .stdout(Stdio::null())
            .stderr(log),
    );
    wait("the server", Duration::from_secs(20), || {
        std::fs::read_to_string(d.join("server.log"))
            .is_ok_and(|l| l.matches("policy API: listening").count() > before)
    });
    server
}

/// `mirage agent` inside `ns` in deception mode, tailing `d/sshd.log`;
/// enrolls with `token` when given.
fn start_agent(ns: &Ns, d: &Path, token: Option<&str>) -> KillOnDrop {
    let log = append_log(&d.join("agent.log"));
    let mut cmd = ns.cmd(BIN);
    cmd.args(["agent", "--server", "127.0.0.1:8515", "--mode", "deception"])
        .args([
            "--redirect",
            "22=10.98.0.2:2222",
            "--syslog",
            "127.0.0.1:10514",
        ])
        .arg("--tail")
        .arg(format!("ssh:{}", d.join("sshd.log").display()))
        .arg("--state-dir")
        .arg(d.join("agent-state"))
        .env("MIRAGE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(t) = token {
        cmd.args(["--enroll", t]);
    }
    KillOnDrop::spawn(&mut cmd)
}

fn kill9(p: &mut KillOnDrop) {
    let _ = p.0.kill();
    let _ = p.0.wait();
}

#[test]
fn a_killed_agent_and_server_come_back_to_the_servers_decisions() {
    mirage_testkit::require_tool("nft");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::write(d.join("sshd.log"), "").unwrap();
    let ns = Ns::named("menf");
    let mut server = start_server(&ns, d);
    let token = mirage_cli(&["server", "tokens", "create"], &data)
        .trim()
        .to_owned();
    let mut agent = start_agent(&ns, d, Some(&token));
    wait("the agent's table", Duration::from_secs(20), || {
        nft_table(&ns).is_some()
    });
    for ip in ["203.0.113.1", "203.0.113.2"] {
        mirage_cli(
            &["server", "decisions", "add", ip, "--type", "deceive"],
            &data,
        );
    }
    wait("both enforced", Duration::from_secs(10), || {
        nft_table(&ns).is_some_and(|t| t.contains("203.0.113.1") && t.contains("203.0.113.2"))
    });

    // kill -9 both while decisions change: the table stays in the kernel
    // with what it had.
    kill9(&mut agent);
    mirage_cli(&["server", "decisions", "delete", "203.0.113.1"], &data);
    mirage_cli(
        &[
            "server",
            "decisions",
            "add",
            "203.0.113.3",
            "--type",
            "block",
        ],
        &data,
    );
    kill9(&mut server);
    mirage_cli(
        &[
            "server",
            "decisions",
            "add",
            "203.0.113.4",
            "--type",
            "deceive",
        ],
        &data,
    );
    let stale = nft_table(&ns).unwrap();
    assert!(stale.contains("203.0.113.1") && !stale.contains("203.0.113.3"));

    // Both back (the agent with its stored key, no token): the table equals
    // the server's decisions.
    let _server = start_server(&ns, d);
    let _agent = start_agent(&ns, d, None);
    wait("the reconciled table", Duration::from_secs(20), || {
        nft_table(&ns).is_some_and(|t| {
            !t.contains("203.0.113.1")
                && t.contains("203.0.113.2")
                && t.contains("203.0.113.3")
                && t.contains("203.0.113.4")
        })
    });
    let decided: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&mirage_cli(
        &["server", "decisions", "list", "--format", "json"],
        &data,
    ))
    .unwrap()
    .iter()
    .map(|d| d["ip"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(decided, ["203.0.113.2", "203.0.113.3", "203.0.113.4"]);
    // `mirage agent firewall show` prints the same live table.
    let out = ns
        .cmd(BIN)
        .args(["agent", "firewall", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("table inet mirage") && shown.contains("203.0.113.4"),
        "{shown}"
    );
}

#[test]
fn decisions_reach_the_agents_nftables_and_leave_with_it() {
    mirage_testkit::require_tool("nft");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let ns = Ns::named("menf");
    let bin = BIN;
    let _server = start_server(&ns, d);
    let token = mirage_cli(&["server", "tokens", "create", "--ttl", "10m"], &data)
        .trim()
        .to_owned();
    // SECRET.PIN: 32 hex digits, then the API certificate's SHA-256.
    let (secret, pin) = token.split_once('.').expect("a pin in the token");
    assert_eq!((secret.len(), pin.len()), (32, 64), "{token}");
    let sshd_log = d.join("sshd.log");
    std::fs::write(&sshd_log, "").unwrap();
    let mut agent = start_agent(&ns, d, Some(&token));
    let agent_log = || std::fs::read_to_string(d.join("agent.log")).unwrap_or_default();
    wait("the agent's table", Duration::from_secs(20), || {
        nft_table(&ns).is_some()
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
    mirage_cli(
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
        nft_table(&ns).is_some_and(|t| t.contains("203.0.113.50"))
    });
    eprintln!("operator decision -> nft set element: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}\n{}", agent_log());

    // Deleted: the element goes.
    mirage_cli(&["server", "decisions", "delete", "203.0.113.50"], &data);
    wait("203.0.113.50 out of nft", Duration::from_secs(10), || {
        nft_table(&ns).is_some_and(|t| !t.contains("203.0.113.50"))
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
        nft_table(&ns).is_some_and(|t| t.contains("198.51.100.77"))
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
    assert!(nft_table(&ns).is_none(), "table left behind");
}

/// The elements of one set of the agent's table (`nft list set`).
fn nft_set(ns: &Ns, set: &str) -> String {
    ns.cmd("nft")
        .args(["list", "set", "inet", "mirage", set])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The agent's IPv4 service map (`nft list map`).
fn nft_map(ns: &Ns) -> String {
    ns.cmd("nft")
        .args(["list", "map", "inet", "mirage", "honeypot_v4"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `mirage server agents set`: an operator changes a running agent's mode
/// and redirects on the server, and the agent's table follows within
/// seconds, without re-enrolling; a bad value is refused with exit 2 and
/// nothing changes.
#[test]
fn an_operator_changes_an_agents_settings_on_the_server() {
    mirage_testkit::require_tool("nft");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::write(d.join("sshd.log"), "").unwrap();
    let ns = Ns::named("meset");
    let _server = start_server(&ns, d);
    let token = mirage_cli(&["server", "tokens", "create"], &data)
        .trim()
        .to_owned();
    let _agent = start_agent(&ns, d, Some(&token));
    let agent_log = || std::fs::read_to_string(d.join("agent.log")).unwrap_or_default();
    wait("the agent's table", Duration::from_secs(20), || {
        nft_table(&ns).is_some()
    });
    let agent_id = std::fs::read_to_string(d.join("agent-state/agent-id"))
        .unwrap()
        .trim()
        .to_owned();
    mirage_cli(
        &[
            "server",
            "decisions",
            "add",
            "203.0.113.60",
            "--type",
            "deceive",
        ],
        &data,
    );
    // Deception mode: a deceive decision lands in the deceive set.
    wait("203.0.113.60 deceived", Duration::from_secs(10), || {
        nft_set(&ns, "deceive_v4").contains("203.0.113.60")
    });
    assert!(nft_map(&ns).contains("tcp . 22 : 10.98.0.2 . 2222"));

    // Firewall mode: the same decision now drops.
    let start = Instant::now();
    let out = mirage_cli(
        &["server", "agents", "set", &agent_id, "--mode", "firewall"],
        &data,
    );
    assert!(out.contains("\"mode\": \"firewall\""), "{out}");
    let took = wait("203.0.113.60 blocked", Duration::from_secs(10), || {
        nft_set(&ns, "block_v4").contains("203.0.113.60")
    });
    eprintln!("settings changed on the server -> agent table rebuilt: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}\n{}", agent_log());
    assert!(!nft_set(&ns, "deceive_v4").contains("203.0.113.60"));
    let _ = start;

    // Back to deception, with Redis redirected instead of SSH.
    mirage_cli(
        &[
            "server",
            "agents",
            "set",
            &agent_id,
            "--mode",
            "deception",
            "--redirect",
            "6379=10.98.0.3:6379",
        ],
        &data,
    );
    wait("the new service map", Duration::from_secs(10), || {
        let map = nft_map(&ns);
        map.contains("tcp . 6379 : 10.98.0.3 . 6379") && !map.contains("tcp . 22 ")
    });
    assert!(nft_set(&ns, "deceive_v4").contains("203.0.113.60"));

    // Refused: a bad CIDR, an unknown agent. Exit 2, nothing stored.
    for (args, needle) in [
        (
            vec![
                "server",
                "agents",
                "set",
                &agent_id,
                "--whitelist",
                "10.0.0.0/33",
            ],
            "--whitelist '10.0.0.0/33'",
        ),
        (
            vec![
                "server",
                "agents",
                "set",
                "no-such-agent",
                "--mode",
                "reflect",
            ],
            "no enrolled agent",
        ),
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(nft_set(&ns, "deceive_v4").contains("203.0.113.60"));
}
