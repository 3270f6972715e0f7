//! The deception loop of issue 4 with real programs in four network
//! namespaces:
//!
//! ```text
//! attacker 10.99.0.2 ──┐                     ┌── honeypot 10.98.0.2: sandbox sshd :2222
//! client   10.97.0.2 ──┴─ host 10.99.0.1 ────┘                       mirage sensor (redis) :6379
//!                         real sshd :22, real redis-server :6379,
//!                         mirage server, mirage agent (nftables)
//! ```
//!
//! The attacker fails five logins on the host's real sshd; the agent ships
//! sshd's log, the server decides, the agent redirects: the attacker's next
//! connections to the host's :22 and :6379 reach the honeypot (which sees
//! the attacker's real address), while the other client still reaches the
//! real services. Deleting the decision gives the attacker the real sshd
//! again.
//!
//! Both views meet on the server: the agent reports every steered
//! connection (`steer` events: the host address and service the attacker
//! aimed at, where it was sent), and the honeypot sensor ships its own
//! events there, with the attacker's real address.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use common::wait;
use mirage_testkit::{KillOnDrop, require_tool};

struct Topology {
    att: Netns,
    cli: Netns,
    host: Netns,
    hp: Netns,
}

impl Topology {
    fn new() -> Topology {
        let t = Topology {
            att: Netns::named("dl_att"),
            cli: Netns::named("dl_cli"),
            host: Netns::named("dl_host"),
            hp: Netns::named("dl_hp"),
        };
        let script = "
            ip -n $HOST link add h-att type veth peer name eth0 netns $ATT
            ip -n $HOST link add h-cli type veth peer name eth0 netns $CLI
            ip -n $HOST link add h-hp type veth peer name eth0 netns $HP
            ip -n $HOST addr add 10.99.0.1/24 dev h-att
            ip -n $HOST addr add 10.97.0.1/24 dev h-cli
            ip -n $HOST addr add 10.98.0.1/24 dev h-hp
            for d in h-att h-cli h-hp; do ip -n $HOST link set $d up; done
            ip -n $ATT addr add 10.99.0.2/24 dev eth0; ip -n $ATT link set eth0 up
            ip -n $ATT route add default via 10.99.0.1
            ip -n $CLI addr add 10.97.0.2/24 dev eth0; ip -n $CLI link set eth0 up
            ip -n $CLI route add default via 10.97.0.1
            ip -n $HP addr add 10.98.0.2/24 dev eth0; ip -n $HP link set eth0 up
            ip -n $HP route add default via 10.98.0.1
            ip netns exec $HOST sysctl -qw net.ipv4.ip_forward=1"
            .replace("$ATT", &t.att.0)
            .replace("$CLI", &t.cli.0)
            .replace("$HOST", &t.host.0)
            .replace("$HP", &t.hp.0);
        assert!(
            Command::new("sh")
                .args(["-ec", &script])
                .status()
                .unwrap()
                .success()
        );
        t
    }
}

/// The server's stored events from `ip` (`mirage server events --format json`).
fn server_events(bin: &Path, data: &Path, ip: &str) -> Vec<serde_json::Value> {
    let out = Command::new(bin)
        .args([
            "server",
            "events",
            "--format",
            "json",
            "--ip",
            ip,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait for the agent's report that the attacker's connection to `service`
/// on the host was steered, and return it.
fn wait_steer(bin: &Path, data: &Path, service: &str) -> serde_json::Value {
    let mut found = None;
    wait("a steer event", Duration::from_secs(15), || {
        found = server_events(bin, data, "10.99.0.2")
            .into_iter()
            .find(|e| e["kind"] == "steer" && e["service"] == service);
        found.is_some()
    });
    let e = found.unwrap();
    assert_eq!(e["dst_ip"], "10.99.0.1", "{e}");
    assert_eq!(e["transport"], "tcp", "{e}");
    e
}

/// The SSH banner a client in `ns` gets from `addr`.
fn ssh_banner(ns: &Netns, addr: &str) -> String {
    let socat = require_tool("socat");
    let out = ns
        .cmd(&socat)
        .args([
            "-T",
            "3",
            "-u",
            &format!("TCP:{addr},connect-timeout=3"),
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn redis_info_version(ns: &Netns, host: &str) -> String {
    let cli = require_tool("redis-cli");
    // redis-cli has no connect timeout: a dropped SYN would wait minutes.
    let out = ns
        .cmd(require_tool("timeout"))
        .arg("5")
        .arg(cli)
        .args(["-h", host, "-p", "6379", "info", "server"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn sshd(ns: &Netns, dir: &Path, name: &str, listen: &str, extra: &str) -> KillOnDrop {
    let keygen = require_tool("ssh-keygen");
    let key = dir.join(format!("{name}.key"));
    assert!(
        Command::new(keygen)
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let cfg = dir.join(format!("{name}.conf"));
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress {listen}\nHostKey {}\nPidFile {}\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nMaxStartups 100\n{extra}",
            key.display(),
            dir.join(format!("{name}.pid")).display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    KillOnDrop::spawn(
        ns.cmd(require_tool("sshd"))
            .args(["-D", "-f"])
            .arg(&cfg)
            .arg("-E")
            .arg(dir.join(format!("{name}.log"))),
    )
}

#[test]
fn an_attacker_detected_on_the_real_sshd_is_steered_into_the_honeypot() {
    run_mode("deception");
}

#[test]
fn honeypot_mode_sends_everyone_but_the_whitelist_to_the_honeypot() {
    run_mode("honeypot");
}

#[test]
fn reflect_mode_bounces_the_attacker_to_its_own_listener() {
    run_mode("reflect");
}

#[test]
fn firewall_mode_drops_the_attacker() {
    run_mode("firewall");
}

fn run_mode(mode: &str) {
    for t in ["nft", "socat", "sshpass", "redis-server", "redis-cli"] {
        require_tool(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topo = Topology::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_mirage"));

    // Honeypot namespace: a sandbox sshd that says what it is in its
    // banner, and a mirage sensor serving Redis.
    let _hp_sshd = sshd(
        &topo.hp,
        d,
        "sandbox",
        "10.98.0.2:2222",
        "VersionAddendum mirage-sandbox\n",
    );
    // The sensor ships its events to the server's ingest endpoint, which
    // listens on the host's side of the honeypot link, over TLS pinned to
    // the server's certificate (made here, before the server starts, as an
    // operator would with `mirage server pin`).
    let key = d.join("ingest.key");
    std::fs::write(&key, "k".repeat(40)).unwrap();
    let data = d.join("data");
    let pin = Command::new(bin)
        .args(["server", "pin", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(pin.status.success(), "{pin:?}");
    let pin = String::from_utf8_lossy(&pin.stdout).trim().to_owned();
    let sensor_cfg = d.join("sensor.toml");
    std::fs::write(
        &sensor_cfg,
        format!(
            "[sensor.ship]\nserver = \"10.98.0.1:8516\"\nkey_file = \"{}\"\nserver_pin = \"{pin}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let _sensor = KillOnDrop::spawn(
        topo.hp
            .cmd(bin)
            .args(["sensor", "--config"])
            .arg(&sensor_cfg)
            .args([
                "--service",
                "redis=10.98.0.2:6379",
                "--name",
                "hp1",
                "--log-dir",
            ])
            .arg(d.join("hp-events"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );

    // Host namespace: the real services, the server and the agent.
    let _real_sshd = sshd(&topo.host, d, "real", "0.0.0.0:22", "");
    let _redis = KillOnDrop::spawn(
        topo.host
            .cmd(require_tool("redis-server"))
            .args([
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null()),
    );
    let server_cfg = d.join("server.toml");
    std::fs::write(
        &server_cfg,
        format!(
            "[ingest]\nlisten = \"10.98.0.1:8516\"\nkey_file = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let server_log = std::fs::File::create(d.join("server.log")).unwrap();
    let _server = KillOnDrop::spawn(
        topo.host
            .cmd(bin)
            .arg("server")
            .arg("--config")
            .arg(&server_cfg)
            .args([
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
    let log_of = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    wait("the server", Duration::from_secs(20), || {
        log_of("server.log").contains("policy API: listening")
    });
    let token = Command::new(bin)
        .args(["server", "tokens", "create", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    wait("real sshd", Duration::from_secs(10), || {
        log_of("real.log").contains("Server listening")
    });
    let agent_log = std::fs::File::create(d.join("agent.log")).unwrap();
    let _agent = KillOnDrop::spawn(
        topo.host
            .cmd(bin)
            .args([
                "agent",
                "--server",
                "127.0.0.1:8515",
                "--enroll",
                &token,
                "--mode",
                mode,
            ])
            // The second client is whitelisted: in honeypot mode it is the
            // only one to reach the real services.
            .args(["--whitelist", "10.97.0.2/32"])
            .args([
                "--redirect",
                "22=10.98.0.2:2222",
                "--redirect",
                "6379=10.98.0.2:6379",
            ])
            .args(["--syslog", "127.0.0.1:10514"])
            .arg("--tail")
            .arg(format!("ssh:{}", d.join("real.log").display()))
            .arg("--state-dir")
            .arg(d.join("agent-state"))
            .stdout(Stdio::null())
            .stderr(agent_log),
    );
    // Whether `ip` is in one of the decision sets (the `hits_*` sets keep
    // notes of steered connections for a minute after a decision ends).
    let nft_has = |ip: &str| {
        ["deceive_v4", "reflect_v4", "block_v4"].iter().any(|set| {
            topo.host
                .cmd(require_tool("nft"))
                .args(["list", "set", "inet", "mirage", set])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(ip))
        })
    };
    wait("the agent's table", Duration::from_secs(20), || {
        topo.host
            .cmd(require_tool("nft"))
            .args(["list", "table", "inet", "mirage"])
            .output()
            .is_ok_and(|o| o.status.success())
    });

    wait("the sensor", Duration::from_secs(10), || {
        !redis_info_version(&topo.hp, "10.98.0.2").is_empty()
    });
    let hp_redis = redis_info_version(&topo.hp, "10.98.0.2");
    let real_redis = redis_info_version(&topo.cli, "10.97.0.1");
    assert_ne!(
        real_redis, hp_redis,
        "the honeypot's Redis version must differ from the real one"
    );
    let other = ssh_banner(&topo.cli, "10.97.0.1:22");
    assert!(
        !other.contains("mirage-sandbox") && other.starts_with("SSH-2.0-"),
        "{other}"
    );
    if mode == "honeypot" {
        // No decision needed: everyone not whitelisted is in the honeypot.
        wait(
            "the honeypot for the attacker",
            Duration::from_secs(10),
            || ssh_banner(&topo.att, "10.99.0.1:22").contains("mirage-sandbox"),
        );
        assert_eq!(redis_info_version(&topo.att, "10.99.0.1"), hp_redis);
        assert_eq!(redis_info_version(&topo.cli, "10.97.0.1"), real_redis);
        assert_eq!(ssh_banner(&topo.cli, "10.97.0.1:22"), other);
        let steered = wait_steer(bin, &data, "ssh");
        assert_eq!(steered["action"], "deceive");
        assert_eq!(steered["to"], "10.98.0.2:2222");
        // The whitelisted client was never steered.
        assert!(
            !server_events(bin, &data, "10.97.0.2")
                .iter()
                .any(|e| e["kind"] == "steer")
        );
        return;
    }
    // Before: everyone reaches the real services.
    let real = ssh_banner(&topo.att, "10.99.0.1:22");
    assert!(
        real.starts_with("SSH-2.0-OpenSSH") && !real.contains("mirage-sandbox"),
        "{real}"
    );
    assert_eq!(redis_info_version(&topo.att, "10.99.0.1"), real_redis);
    // In reflect mode the attacker's own machine answers on port 22.
    let _own = (mode == "reflect").then(|| {
        let l = KillOnDrop::spawn(
            topo.att
                .cmd(require_tool("socat"))
                .args([
                    "TCP-LISTEN:22,bind=10.99.0.2,fork,reuseaddr",
                    "SYSTEM:echo SSH-2.0-attackers-own-listener",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait("the attacker's listener", Duration::from_secs(10), || {
            ssh_banner(&topo.att, "10.99.0.2:22").contains("attackers-own")
        });
        l
    });

    // Five wrong passwords from the attacker on the real sshd.
    let sshpass = require_tool("sshpass");
    let start = Instant::now();
    for _ in 0..5 {
        let _ = topo
            .att
            .cmd(&sshpass)
            .args([
                "-p",
                "wrong",
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ])
            .args([
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=5",
                "root@10.99.0.1",
                "true",
            ])
            .output()
            .unwrap();
    }
    let took = wait("the attacker in nft", Duration::from_secs(20), || {
        nft_has("10.99.0.2")
    });
    eprintln!(
        "fifth failed ssh login -> attacker in the agent's nft set: {:?}",
        start.elapsed()
    );
    let _ = took;

    // After: the other client still gets the real services.
    assert_eq!(ssh_banner(&topo.cli, "10.97.0.1:22"), other);
    assert_eq!(redis_info_version(&topo.cli, "10.97.0.1"), real_redis);
    match mode {
        "reflect" => {
            let banner = ssh_banner(&topo.att, "10.99.0.1:22");
            assert!(
                banner.contains("attackers-own-listener"),
                "attacker got {banner:?}\n{}",
                log_of("agent.log")
            );
            let steered = wait_steer(bin, &data, "ssh");
            assert_eq!(steered["action"], "reflect");
            assert_eq!(steered["to"], "10.99.0.2:22");
            // UDP is reflected too: a datagram to the host's port 9999
            // reaches the attacker's own UDP listener, whose answer comes
            // back as if from the host.
            let _udp_own = KillOnDrop::spawn(
                topo.att
                    .cmd(require_tool("socat"))
                    .args([
                        "UDP-RECVFROM:9999,bind=10.99.0.2,fork",
                        "SYSTEM:echo udp-own-listener",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            let mut answer = String::new();
            wait("a reflected UDP answer", Duration::from_secs(10), || {
                let out = topo
                    .att
                    .cmd(require_tool("socat"))
                    .args(["-T", "1", "-", "UDP:10.99.0.1:9999"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .and_then(|mut c| {
                        use std::io::Write as _;
                        c.stdin.take().unwrap().write_all(b"ping\n")?;
                        c.wait_with_output()
                    });
                answer = out
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                answer.contains("udp-own-listener")
            });
            let mut udp = None;
            wait("a UDP steer event", Duration::from_secs(15), || {
                udp = server_events(bin, &data, "10.99.0.2")
                    .into_iter()
                    .find(|e| e["kind"] == "steer" && e["transport"] == "udp");
                udp.is_some()
            });
            let udp = udp.unwrap();
            assert_eq!(udp["dst_port"], 9999, "{udp}");
            assert_eq!(udp["to"], "10.99.0.2:9999", "{udp}");
            return;
        }
        "firewall" => {
            let banner = ssh_banner(&topo.att, "10.99.0.1:22");
            let table = topo
                .host
                .cmd(require_tool("nft"))
                .args(["list", "table", "inet", "mirage"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            assert_eq!(
                banner,
                "",
                "a dropped attacker got a banner\n{table}\n{}",
                log_of("agent.log")
            );
            assert_eq!(redis_info_version(&topo.att, "10.99.0.1"), "");
            let steered = wait_steer(bin, &data, "redis");
            assert_eq!(steered["action"], "block");
            assert_eq!(steered["dst_port"], 6379);
            assert!(steered.get("to").is_none(), "{steered}");
            return;
        }
        _ => {}
    }
    // Deception: the attacker gets the honeypot.
    let banner = ssh_banner(&topo.att, "10.99.0.1:22");
    assert!(
        banner.contains("mirage-sandbox"),
        "attacker got {banner:?}\n{}",
        log_of("agent.log")
    );
    assert_eq!(redis_info_version(&topo.att, "10.99.0.1"), hp_redis);
    // The honeypot saw the attacker's real address.
    let sandbox_log = log_of("sandbox.log");
    assert!(sandbox_log.contains("10.99.0.2"), "{sandbox_log}");
    // (The sensor writes its events within milliseconds; wait for them.)
    wait("the honeypot's events", Duration::from_secs(10), || {
        common::read_events_allowing(&d.join("hp-events"), 1)
            .iter()
            .any(|e| e["src_ip"] == "10.99.0.2" && e["kind"] == "command")
    });
    // The server holds both views of the attacker: the agent's (it aimed
    // at the host's Redis on 10.99.0.1:6379 and was sent to the honeypot)
    // and the honeypot's (what it did there, from its real address).
    let steered = wait_steer(bin, &data, "redis");
    assert_eq!(steered["action"], "deceive");
    assert_eq!(steered["to"], "10.98.0.2:6379");
    // (The agent names itself after the host; the namespaces share its name.)
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(steered["sensor"], hostname.trim());
    wait(
        "the honeypot's events on the server",
        Duration::from_secs(15),
        || {
            server_events(bin, &data, "10.99.0.2")
                .iter()
                .any(|e| e["sensor"] == "hp1" && e["kind"] == "command" && e["service"] == "redis")
        },
    );

    // Deleted: the attacker reaches the real sshd again.
    let out = Command::new(bin)
        .args(["server", "decisions", "delete", "10.99.0.2", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait("the attacker out of nft", Duration::from_secs(10), || {
        !nft_has("10.99.0.2")
    });
    let again = ssh_banner(&topo.att, "10.99.0.1:22");
    assert!(
        !again.contains("mirage-sandbox") && again.starts_with("SSH-2.0-"),
        "{again}"
    );
}
