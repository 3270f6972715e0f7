//! The control channel cannot be forged. A spoofed syslog datagram naming
//! an address decides nothing (UDP does not feed the rules by default); an
//! agent refuses policy answers that do not come from its server, whether
//! a fake server presents another certificate (TLS with the pin from the
//! enrollment token) or answers over plain HTTP without the server's
//! signature; and no decision, forged or not, lands on the agent's own
//! address or on a non-unicast one.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Netns as Ns;
use common::server::{MirageServer, failed_password};
use common::{append_log, mirage_cli, wait};
use mirage_testkit::KillOnDrop;

const BIN: &str = env!("CARGO_BIN_EXE_mirage");

#[test]
fn a_spoofed_udp_line_decides_nothing_and_the_same_over_tcp_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = MirageServer::start("", dir.path());
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The review's datagram: one line worth five failures, naming the
    // operator.
    let repeated = format!(
        "<38>1 - web1 sshd 1 - - message repeated 5 times: [ {}]",
        failed_password("root", "192.0.2.10", 22)
    );
    u.send_to(repeated.as_bytes(), server.syslog).unwrap();
    for i in 0..5 {
        let line = format!(
            "<38>1 - web1 sshd 1 - - {}",
            failed_password("root", "192.0.2.10", 100 + i)
        );
        u.send_to(line.as_bytes(), server.syslog).unwrap();
    }
    let stored = server.wait_for("the datagrams stored", Duration::from_secs(10), || {
        let ev: Vec<_> = server
            .events(100)
            .into_iter()
            .filter(|e| e["src_ip"] == "192.0.2.10")
            .collect();
        (ev.len() >= 6).then_some(ev)
    });
    assert!(
        stored.iter().all(|e| e["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "untrusted"))),
        "{stored:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !server.decisions().iter().any(|d| d["ip"] == "192.0.2.10"),
        "a datagram decided: {:?}",
        server.decisions()
    );
    // From the same (trusted) address over TCP, five failures decide.
    let _s = server.send_failures("192.0.2.11", 5);
    let d = server.wait_decision("192.0.2.11", Duration::from_secs(20));
    assert_eq!(d["rule"], "ssh-bruteforce-account");
}

fn nft_table(ns: &Ns) -> String {
    let out = ns
        .cmd("nft")
        .args(["list", "table", "inet", "mirage"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sets and maps of `table` that enforce decisions: all but the
/// `allow_*` sets, which hold what is protected (the host's own addresses
/// among them).
fn enforcing(table: &str) -> String {
    table
        .split("\n\tset ")
        .filter(|block| !block.starts_with("allow_"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fake policy server on 127.0.0.1:8515 in `ns` answering every request
/// with a snapshot that blocks 198.51.100.66 for ten years, over TLS with
/// its own certificate when `tls`.
fn fake_server(ns: &Ns, d: &Path, tls: bool) -> KillOnDrop {
    let snapshot = serde_json::json!({
        "type": "snapshot", "version": 999, "mode": "firewall",
        "whitelist": {"sources": [], "ports": []}, "services": [],
        "decisions": [{"ip": "198.51.100.66", "decision": "block",
                       "expires_unix": chrono::Utc::now().timestamp() + 10 * 365 * 86400}],
    })
    .to_string();
    if tls {
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=mirage-server", "-days", "1", "-keyout"])
            .arg(d.join("fake.key"))
            .arg("-out")
            .arg(d.join("fake.crt"))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let script = format!(
        r#"
import http.server, ssl, sys
BODY = {snapshot:?}.encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
        open({served:?}, "a").write("served\n")
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 8515), H)
if {tls}:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain({crt:?}, {key:?})
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#,
        served = d.join("fake-served").display().to_string(),
        tls = if tls { "True" } else { "False" },
        crt = d.join("fake.crt").display().to_string(),
        key = d.join("fake.key").display().to_string(),
    );
    std::fs::write(d.join("fake.py"), script).unwrap();
    let fake = KillOnDrop::spawn(
        ns.cmd("python3")
            .arg(d.join("fake.py"))
            .stdout(Stdio::null())
            .stderr(append_log(&d.join("fake.log"))),
    );
    wait("the fake server", Duration::from_secs(10), || {
        ns.cmd("bash")
            .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/8515"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    fake
}

fn forged_answers_are_refused(tls: bool) {
    mirage_testkit::require_tool("nft");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let ns = Ns::named(if tls { "mctlt" } else { "mctlp" });
    // The host's own address, besides loopback.
    ns.ip(&["addr", "add", "10.55.0.1/24", "dev", "lo"]);
    std::fs::write(d.join("server.toml"), format!("[api]\ntls = {tls}\n")).unwrap();
    let mut server = KillOnDrop::spawn(
        ns.cmd(BIN)
            .args(["server", "--config"])
            .arg(d.join("server.toml"))
            .args([
                "--syslog",
                "127.0.0.1:10514",
                "--listen",
                "127.0.0.1:8515",
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(append_log(&d.join("server.log"))),
    );
    wait("the server", Duration::from_secs(20), || {
        std::fs::read_to_string(d.join("server.log"))
            .is_ok_and(|l| l.contains("policy API: listening"))
    });
    let token = mirage_cli(
        &[
            "server",
            "tokens",
            "create",
            "--config",
            d.join("server.toml").to_str().unwrap(),
        ],
        &data,
    )
    .trim()
    .to_owned();
    assert_eq!(
        token.contains('.'),
        tls,
        "a pin in the token exactly with TLS: {token}"
    );
    let _agent = KillOnDrop::spawn(
        ns.cmd(BIN)
            .args([
                "agent",
                "--server",
                "127.0.0.1:8515",
                "--mode",
                "firewall",
                "--syslog",
                "127.0.0.1:10514",
            ])
            .arg("--state-dir")
            .arg(d.join("agent-state"))
            .args(["--enroll", &token])
            .env("MIRAGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(append_log(&d.join("agent.log"))),
    );
    wait("the agent's table", Duration::from_secs(20), || {
        !nft_table(&ns).is_empty()
    });

    // Decisions on the agent's own address and on non-unicast addresses
    // never reach its sets; an ordinary one does.
    for ip in [
        "10.55.0.1",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "203.0.113.50",
    ] {
        mirage_cli(
            &[
                "server",
                "decisions",
                "add",
                ip,
                "--type",
                "block",
                "--ttl",
                "1h",
            ],
            &data,
        );
    }
    wait("the ordinary decision", Duration::from_secs(20), || {
        nft_table(&ns).contains("203.0.113.50")
    });
    std::thread::sleep(Duration::from_secs(1));
    let table = nft_table(&ns);
    for ip in ["10.55.0.1", "127.0.0.1", "0.0.0.0", "255.255.255.255"] {
        assert!(
            !enforcing(&table).contains(&format!(" {ip}")),
            "{ip} is enforced:\n{table}"
        );
    }
    let agent_log = std::fs::read_to_string(d.join("agent.log")).unwrap();
    assert!(
        agent_log.contains("refused decisions on protected or non-unicast"),
        "{agent_log}"
    );

    // The server goes; a fake one takes its port.
    let _ = server.0.kill();
    let _ = server.0.wait();
    let _fake = fake_server(&ns, d, tls);
    // The agent's long poll ends and it asks the fake server, again and again.
    wait(
        "the agent to ask the fake server",
        Duration::from_secs(60),
        || {
            if tls {
                std::fs::read_to_string(d.join("agent.log")).is_ok_and(|l| l.contains("TLS"))
            } else {
                std::fs::read_to_string(d.join("fake-served")).is_ok_and(|s| s.lines().count() >= 2)
            }
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let table = nft_table(&ns);
    assert!(
        !table.contains("198.51.100.66"),
        "a forged decision is enforced:\n{table}"
    );
    assert!(
        table.contains("203.0.113.50"),
        "the real decisions stay:\n{table}"
    );
    let agent_log = std::fs::read_to_string(d.join("agent.log")).unwrap();
    assert!(
        agent_log.contains(if tls { "TLS" } else { "not signed" }),
        "{agent_log}"
    );
    assert!(!agent_log.contains("version=999"), "{agent_log}");
}

#[test]
fn a_fake_server_with_another_certificate_is_refused() {
    forged_answers_are_refused(true);
}

#[test]
fn unsigned_answers_over_plain_http_are_refused() {
    forged_answers_are_refused(false);
}
