//! The whole detection loop with real programs: `mirage agent` tails what a
//! real sshd writes (`-E FILE`) and watches a real redis-server through
//! MONITOR, ships it to `mirage server`, and the server decides. Also the
//! agent's store-and-forward through a server outage: every line arrives,
//! none twice.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::MirageServer;
use mirage_testkit::KillOnDrop;
use serde_json::Value;

/// `mirage agent` with `sources` (TOML `[[sources]]` tables) shipping to
/// `server` over TCP, state under `dir`.
fn agent(server: &MirageServer, dir: &Path, sources: &str) -> KillOnDrop {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"test-agent\"\nhostname = \"prod1\"\nstate_dir = \"{}\"\nheartbeat_secs = 1\n\n\
             [output]\ntransport = \"tcp\"\naddress = \"{}\"\n\n{sources}",
            dir.join("agent-state").display(),
            server.syslog
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_mirage"))
            .args(["agent", "--config"])
            .arg(&cfg)
            .env("MIRAGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// Built-in rules without the loopback whitelist, for tests whose
/// attacker can only be 127.0.0.1.
fn rules_without_whitelist(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        mirage_testkit::repo_root().join("crates/mirage-rules/rules/builtin.toml"),
    )
    .unwrap();
    let text = text.replace(r#"cidrs = ["127.0.0.0/8", "::1/128"]"#, "cidrs = []");
    let p = dir.join("rules.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A private namespace whose loopback also carries 10.77.0.0/24, so sshd
/// and its clients have non-loopback addresses (loopback is whitelisted).
fn ssh_ns() -> common::Netns {
    let ns = common::Netns::named("mssh");
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "lo"]);
    ns
}

fn wait_file_contains(path: &Path, needle: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{} never contained {needle:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn real_sshd_failures_tailed_by_the_agent_raise_the_brute_force_decision() {
    let sshd = mirage_testkit::require_tool("sshd");
    let sshpass = mirage_testkit::require_tool("sshpass");
    let hydra = mirage_testkit::require_tool("hydra");
    let ssh_keygen = mirage_testkit::require_tool("ssh-keygen");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = MirageServer::start("", &d.join("server"));

    // A real OpenSSH server, logging to a file as `sshd -E` does.
    let ns = ssh_ns();
    assert!(
        Command::new(ssh_keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("hostkey"))
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port 2222\nListenAddress 10.77.0.1\nHostKey {}\nPidFile {}\nPasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\nUsePAM no\nLogLevel INFO\nMaxStartups 100\n",
            d.join("hostkey").display(),
            d.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let sshd_log = d.join("sshd.log");
    let _sshd = KillOnDrop::spawn(
        ns.cmd(&sshd)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(&sshd_log),
    );
    wait_file_contains(&sshd_log, "Server listening", Duration::from_secs(10));

    let _agent = agent(
        &server,
        d,
        &format!(
            "[[sources]]\nname = \"sshd\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"{}\"]\n\
             format = \"raw\"\nread_from = \"start\"\n",
            sshd_log.display()
        ),
    );

    // Five wrong passwords for root from 10.77.0.5, one connection each.
    for _ in 0..5 {
        let out = ns
            .cmd(&sshpass)
            .args(["-p", "wrong-password"])
            .args([
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "BindAddress=10.77.0.5",
                "-p",
                "2222",
                "root@10.77.0.1",
                "true",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "a wrong password logged in?");
    }
    let d5 = server.wait_decision("10.77.0.5", Duration::from_secs(20));
    assert_eq!(d5["rule"], "ssh-bruteforce-account", "{d5}");
    assert_eq!(d5["decision"], "deceive");
    let ttl = d5["ttl_secs"].as_u64().unwrap();
    assert!((14_280..=14_400).contains(&ttl), "ttl {ttl}");
    let events: Vec<Value> = server
        .events(1000)
        .into_iter()
        .filter(|e| e["src_ip"] == "10.77.0.5" && e["kind"] == "auth.attempt")
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["sensor"] == "prod1" && e["username"] == "root")
    );

    // hydra, from the namespace's own address (10.77.0.1), 8 passwords.
    std::fs::write(
        d.join("passwords"),
        (0..8).map(|i| format!("guess{i}\n")).collect::<String>(),
    )
    .unwrap();
    let out = ns
        .cmd(&hydra)
        .current_dir(d)
        .args(["-l", "admin", "-P"])
        .arg(d.join("passwords"))
        .args(["-t", "2", "-I", "ssh://10.77.0.1:2222"])
        .output()
        .unwrap();
    let hydra_out = String::from_utf8_lossy(&out.stdout);
    assert!(hydra_out.contains("0 valid password"), "{hydra_out}");
    let d1 = server.wait_decision("10.77.0.1", Duration::from_secs(20));
    assert!(
        [
            "ssh-bruteforce-account",
            "ssh-invalid-users",
            "ssh-bruteforce-source"
        ]
        .contains(&d1["rule"].as_str().unwrap()),
        "{d1}"
    );

    // The agent's heartbeat arrived and names its source.
    let agents = server.wait_for("the agent's heartbeat", Duration::from_secs(10), || {
        let out = server.cli(&["agents", "--format", "json"]);
        let v: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        v.into_iter().find(|a| a["agent_id"] == "test-agent")
    });
    assert_eq!(agents["hostname"], "prod1");
    assert_eq!(agents["status"]["sources"][0]["name"], "sshd", "{agents}");
}

#[test]
fn redis_monitor_source_ships_commands_and_dangerous_ones_decide() {
    let redis_server = mirage_testkit::require_tool("redis-server");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = rules_without_whitelist(d);
    let server = MirageServer::start(
        &format!("[rules]\nfile = \"{}\"\n", rules.display()),
        &d.join("server"),
    );
    let port = mirage_testkit::free_port();
    let _redis = KillOnDrop::spawn(
        Command::new(redis_server)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null()),
    );
    mirage_testkit::wait_for_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(10),
    );
    let _agent = agent(
        &server,
        d,
        &format!(
            "[[sources]]\nname = \"cache\"\nkind = \"redis_monitor\"\nservice = \"redis\"\naddress = \"127.0.0.1:{port}\"\n"
        ),
    );
    // Wait until the agent's MONITOR is attached (CLIENT LIST shows it).
    let start = Instant::now();
    while !common::redis_cli(port, &["client", "list"], None).contains("cmd=monitor") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "agent never attached MONITOR"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    common::redis_cli(port, &["set", "greeting", "hello world"], None);
    // Redis 7 refuses CONFIG SET dir/dbfilename (protected configs) and
    // MONITOR shows only executed commands: FLUSHALL on this empty test
    // instance is the dangerous command that runs.
    common::redis_cli(port, &["flushall"], None);
    let d = server.wait_decision("127.0.0.1", Duration::from_secs(20));
    assert_eq!(d["rule"], "redis-dangerous-command", "{d}");
    let commands: Vec<Value> = server
        .events(1000)
        .into_iter()
        .filter(|e| e["service"] == "redis" && e["kind"] == "command")
        .collect();
    let raws: Vec<&str> = commands.iter().filter_map(|e| e["raw"].as_str()).collect();
    assert!(
        raws.iter()
            .any(|r| r.contains("greeting") && r.contains("hello world")),
        "{raws:?}"
    );
    assert!(
        raws.iter()
            .any(|r| r.to_ascii_lowercase().contains("flushall")),
        "{raws:?}"
    );
}

#[test]
fn agent_store_and_forward_delivers_10000_lines_exactly_once_across_a_server_outage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = MirageServer::start("", &d.join("server"));
    let log = d.join("sshd.log");
    std::fs::write(&log, "").unwrap();
    let _agent = agent(
        &server,
        d,
        &format!(
            "[[sources]]\nname = \"sshd\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"{}\"]\n\
             format = \"raw\"\nread_from = \"start\"\n",
            log.display()
        ),
    );
    let line = |i: u32| {
        format!(
            "Failed password for user{i} from 10.{}.{}.{} port {} ssh2\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            1024 + (i % 60000)
        )
    };
    let append = |range: std::ops::Range<u32>| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let text: String = range.map(line).collect();
        f.write_all(text.as_bytes()).unwrap();
    };
    let count = |server: &MirageServer| {
        server
            .events(20_000)
            .iter()
            .filter(|e| e["kind"] == "auth.attempt")
            .count()
    };

    // Some lines while the server is up, so the agent is connected when it
    // goes away (what it sent into the dying connection is re-sent).
    append(0..1000);
    server.wait_for("the first 1000", Duration::from_secs(30), || {
        (count(&server) == 1000).then_some(())
    });
    server.stop();
    append(1000..10_000);
    // Let the agent read and queue them while nobody listens.
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    server.wait_for("all 10000", Duration::from_secs(60), || {
        (count(&server) >= 10_000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let events = server.events(20_000);
    let auth: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "auth.attempt")
        .collect();
    assert_eq!(auth.len(), 10_000);
    let distinct: HashSet<String> = auth
        .iter()
        .map(|e| e["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(distinct.len(), 10_000, "a line arrived twice");
}
