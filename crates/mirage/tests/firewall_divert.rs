//! `mirage firewall` against the real kernel, in two network namespaces
//! (attacker, sensor) joined by a veth pair with IPv4 and IPv6: every port
//! reaches one listener with its original destination kept (redirect and
//! tproxy for TCP, tproxy for UDP), excluded ports (the sensor's services,
//! `--exclude`, the SSH session) are untouched, a re-run replaces rather
//! than stacks, and `--remove` deletes exactly its table and route.
//!
//! The listener is `tests/data/divert_listener.py`, which reads the
//! original destination the way the catch-all does (SO_ORIGINAL_DST,
//! transparent sockets, IP_RECVORIGDSTADDR), so these tests check the
//! firewall alone; the catch-all's own tests drive both together.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Netns;

const MIRAGE: &str = env!("CARGO_BIN_EXE_mirage");
/// What the tests pretend the operator's SSH session is.
const SSH_SESSION: &str = "10.77.0.1 50000 10.77.0.2 4022";

/// Connects to each `port` of `ip` (TCP: "open" or "closed" per port) and
/// sends one datagram to each of the UDP ports given after `--udp`.
const CLIENT: &str = r#"
import socket, sys
ip, args = sys.argv[1], sys.argv[2:]
fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
udp = False
for a in args:
    if a == "--udp":
        udp = True
        continue
    port = int(a)
    if udp:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.sendto(b"probe", (ip, port))
        s.close()
        continue
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((ip, port))
        print(port, "open")
    except OSError:
        print(port, "closed")
    s.close()
"#;

struct Lab {
    attacker: Netns,
    sensor: Netns,
    config: PathBuf,
    listener: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Two namespaces, a veth pair (10.77.0.1/fd77::1 attacker,
    /// 10.77.0.2/fd77::2 sensor) and the listener on the catch-all port.
    fn new(mode: &str) -> Lab {
        let attacker = Netns::named("fwa");
        let sensor = Netns::named("fws");
        attacker.ip(&[
            "link", "add", "va", "type", "veth", "peer", "name", "vs", "netns", &sensor.0,
        ]);
        for (ns, dev, v4, v6) in [
            (&attacker, "va", "10.77.0.1/24", "fd77::1/64"),
            (&sensor, "vs", "10.77.0.2/24", "fd77::2/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev]);
            ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sensor.toml");
        std::fs::write(
            &config,
            format!("[services.catchall]\nenabled = true\nmode = \"{mode}\"\n"),
        )
        .unwrap();
        let script = data("divert_listener.py");
        let mut listener = sensor
            .cmd("python3")
            .args([script.to_str().unwrap(), mode, "65530"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let out = listener.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = tx.send(());
                } else {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("listener did not start");
        Lab {
            attacker,
            sensor,
            config,
            listener,
            lines,
            _dir: dir,
        }
    }

    /// `mirage firewall --config … ARGS` inside the sensor namespace.
    fn firewall(&self, args: &[&str]) -> Output {
        self.sensor
            .cmd(MIRAGE)
            .arg("firewall")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("SSH_CONNECTION", SSH_SESSION)
            .output()
            .unwrap()
    }

    fn firewall_ok(&self, args: &[&str]) {
        let out = self.firewall(args);
        assert!(
            out.status.success(),
            "mirage firewall {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// TCP probes from the attacker: the ports that connected.
    fn open_ports(&self, ip: &str, ports: &[u16]) -> Vec<u16> {
        let out = self.client(ip, ports, &[]);
        out.lines()
            .filter_map(|l| l.strip_suffix(" open"))
            .map(|p| p.parse().unwrap())
            .collect()
    }

    fn client(&self, ip: &str, tcp: &[u16], udp: &[u16]) -> String {
        let mut args: Vec<String> = vec!["-c".into(), CLIENT.into(), ip.into()];
        args.extend(tcp.iter().map(u16::to_string));
        args.push("--udp".into());
        args.extend(udp.iter().map(u16::to_string));
        let out = self.attacker.cmd("python3").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the listener has reported `want` (in any order).
    fn expect_arrivals(&self, want: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.lines.lock().unwrap().clone();
            if want.iter().all(|w| got.contains(w)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "wanted {want:?}, listener saw {got:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sensor_out(&self, program: &str, args: &[&str]) -> String {
        let out = self.sensor.cmd(program).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn arrivals(kind: &str, peer: &str, dst: &str, ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("{kind} {peer} {dst} {p}"))
        .collect()
}

/// Redirect mode, IPv4 and IPv6: every probed port arrives with its
/// original port; UDP (always tproxy) too; excluded ports are untouched;
/// re-running replaces; `--remove` removes only what it made.
#[test]
fn redirect_mode_diverts_every_port_but_the_excluded() {
    mirage_testkit::require_tool("nft");
    let lab = Lab::new("redirect");
    // A table of someone else's, which must survive everything below.
    let other = lab
        .sensor
        .cmd("nft")
        .args(["add", "table", "inet", "operator_table"])
        .status()
        .unwrap();
    assert!(other.success());
    // The sensor's own Redis service port (6379, excluded because the
    // config enables redis) is served by whatever listens there.
    let redis = mirage_testkit::require_tool("redis-server");
    let mut real_redis = lab
        .sensor
        .cmd(redis)
        .args(["--port", "6379", "--save", "", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    lab.firewall_ok(&["--exclude", "4444"]);
    let diverted = [1u16, 25, 110, 12345, 65000, 65535];
    for (ip, peer) in [("10.77.0.2", "10.77.0.1"), ("fd77::2", "fd77::1")] {
        assert_eq!(lab.open_ports(ip, &diverted), diverted, "{ip}");
        lab.expect_arrivals(&arrivals("tcp", peer, ip, &diverted));
        // --exclude, the SSH session's port: nothing listens, so refused.
        assert_eq!(lab.open_ports(ip, &[4444, 4022]), Vec::<u16>::new(), "{ip}");
        lab.client(ip, &[], &[53, 161, 40000]);
        lab.expect_arrivals(&arrivals("udp", peer, ip, &[53, 161, 40000]));
    }
    common::wait_ping(&lab.sensor, 6379);
    let cli = mirage_testkit::require_tool("redis-cli");
    let pong = lab
        .attacker
        .cmd(cli)
        .args(["-h", "10.77.0.2", "ping"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pong.stdout).trim(), "PONG");
    let seen = lab.lines.lock().unwrap().clone();
    for port in [4444, 4022, 6379] {
        assert!(
            !seen.iter().any(|l| l.ends_with(&format!(" {port}"))),
            "{port} was diverted: {seen:?}"
        );
    }

    // A second run replaces the table and the policy route, never stacks.
    lab.firewall_ok(&["--exclude", "4444"]);
    let rules = lab.sensor_out("ip", &["rule", "show"]);
    assert_eq!(rules.matches("fwmark 0x6d67").count(), 1, "{rules}");
    let rules6 = lab.sensor_out("ip", &["-6", "rule", "show"]);
    assert_eq!(rules6.matches("fwmark 0x6d67").count(), 1, "{rules6}");
    let show = lab.firewall(&["--show"]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("redirect to :65530"), "{show}");
    assert!(show.contains("4022") && show.contains("4444"), "{show}");

    lab.firewall_ok(&["--remove"]);
    let tables = lab.sensor_out("nft", &["list", "tables"]);
    assert!(!tables.contains("mirage_catchall"), "{tables}");
    assert!(tables.contains("operator_table"), "{tables}");
    assert!(!lab.sensor_out("ip", &["rule", "show"]).contains("0x6d67"));
    assert!(
        !lab.sensor_out("ip", &["-6", "rule", "show"])
            .contains("0x6d67")
    );
    assert_eq!(lab.open_ports("10.77.0.2", &[12345]), Vec::<u16>::new());
    // Removing twice is fine.
    lab.firewall_ok(&["--remove"]);
    let _ = real_redis.kill();
    let _ = real_redis.wait();
}

/// Tproxy mode, IPv4 and IPv6: the listener's transparent sockets get
/// every port with the original destination as their local address.
#[test]
fn tproxy_mode_diverts_tcp_and_udp_transparently() {
    mirage_testkit::require_tool("nft");
    let lab = Lab::new("tproxy");
    lab.firewall_ok(&[]);
    let diverted = [2u16, 8081, 31337, 65534];
    for (ip, peer) in [("10.77.0.2", "10.77.0.1"), ("fd77::2", "fd77::1")] {
        assert_eq!(lab.open_ports(ip, &diverted), diverted, "{ip}");
        lab.expect_arrivals(&arrivals("tcp", peer, ip, &diverted));
        assert_eq!(lab.open_ports(ip, &[4022]), Vec::<u16>::new(), "{ip}");
        lab.client(ip, &[], &[123, 1900]);
        lab.expect_arrivals(&arrivals("udp", peer, ip, &[123, 1900]));
    }
    let show = String::from_utf8_lossy(&lab.firewall(&["--show"]).stdout).into_owned();
    assert!(show.contains("tcp tproxy to :65530"), "{show}");
    assert!(!show.contains("redirect"), "{show}");
    lab.firewall_ok(&["--remove"]);
    assert!(
        !lab.sensor_out("nft", &["list", "tables"])
            .contains("mirage_catchall")
    );
}

/// `--dry-run` changes nothing and shows the exclusions; a bad config is
/// one line naming the key, exit 2.
#[test]
fn dry_run_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, "[services.catchall]\nexclude_ports = [7000]\n").unwrap();
    let out = Command::new(MIRAGE)
        .args(["firewall", "--dry-run", "--exclude", "7001", "--config"])
        .arg(&cfg)
        .env("SSH_CONNECTION", SSH_SESSION)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let tcp_set = text
        .lines()
        .skip_while(|l| !l.contains("set exclude_tcp"))
        .nth(2)
        .unwrap();
    for p in ["4022", "7000", "7001", "6379", "22"] {
        assert!(tcp_set.split([' ', ',']).any(|x| x == p), "{p}: {tcp_set}");
    }
    assert!(text.contains("# policy route for tproxy"), "{text}");

    std::fs::write(&cfg, "[services.catchall]\nmode = \"nat\"\n").unwrap();
    let out = Command::new(MIRAGE)
        .args(["firewall", "--dry-run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("services.catchall.mode") && err.contains("s.toml"),
        "{err}"
    );
}
