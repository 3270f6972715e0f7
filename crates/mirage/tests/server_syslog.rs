//! `mirage server` fed by real syslog producers: util-linux `logger` in
//! every framing and format it has, and rsyslog forwarding over TCP with
//! octet counting, TCP with LF framing, and UDP. Each sends sshd's failed
//! password lines; the server must parse every line and raise the seed's
//! SSH brute-force decision (same account, same host, 5 failures in 2
//! minutes) with the rule's TTL, and not raise it for 4 failures.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{MirageServer, failed_password};
use serde_json::Value;

/// The built-in rule's TTL (4h), in seconds.
const TTL: u64 = 4 * 3600;

fn logger(server: &MirageServer, flags: &[&str], lines: &[String]) {
    let bin = mirage_testkit::require_tool("logger");
    let mut child = Command::new(bin)
        .args([
            "-n",
            "127.0.0.1",
            "-P",
            &server.port().to_string(),
            "-t",
            "sshd",
            "-p",
            "auth.info",
        ])
        .args(flags)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success(), "logger {flags:?} failed");
}

fn failures(ip: &str, n: u16) -> Vec<String> {
    (0..n)
        .map(|i| failed_password("root", ip, 40000 + i))
        .collect()
}

fn assert_bruteforce_decision(server: &MirageServer, ip: &str) {
    let d = server.wait_decision(ip, Duration::from_secs(15));
    assert_eq!(d["rule"], "ssh-bruteforce-account", "{d}");
    assert_eq!(d["decision"], "deceive", "{d}");
    let ttl = d["ttl_secs"].as_u64().unwrap();
    assert!((TTL - 120..=TTL).contains(&ttl), "ttl {ttl}: {d}");
    assert_eq!(d["evidence"], 5, "{d}");
}

fn auth_events_for(server: &MirageServer, ip: &str) -> Vec<Value> {
    let out = server.cli(&[
        "events",
        "--format",
        "json",
        "--ip",
        ip,
        "--kind",
        "auth.attempt",
    ]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn logger_in_every_framing_and_format_raises_the_ssh_decision() {
    let dir = tempfile::tempdir().unwrap();
    let server = MirageServer::start(
        // Over UDP too: these tests are about framing; spoofed UDP
        // deciding nothing by default is control_channel's.
        "[syslog]\nudp_decides = true\n",
        dir.path(),
    );
    let variants: [(&str, &[&str]); 5] = [
        ("203.0.113.1", &["--tcp", "--rfc5424"]),
        ("203.0.113.2", &["--tcp", "--rfc3164"]),
        ("203.0.113.3", &["--tcp", "--octet-count", "--rfc5424"]),
        ("203.0.113.4", &["--udp", "--rfc5424"]),
        ("203.0.113.5", &["--udp", "--rfc3164"]),
    ];
    for (ip, flags) in variants {
        logger(&server, flags, &failures(ip, 5));
    }
    // Four failures stay below the threshold.
    logger(
        &server,
        &["--tcp", "--rfc5424"],
        &failures("203.0.113.9", 4),
    );
    for (ip, flags) in variants {
        assert_bruteforce_decision(&server, ip);
        let events = auth_events_for(&server, ip);
        assert_eq!(events.len(), 5, "{flags:?}: {events:?}");
        for e in &events {
            assert_eq!(e["service"], "ssh");
            assert_eq!(e["username"], "root");
            assert_eq!(e["result"], "failure");
            assert!(
                e["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "from_log")
            );
        }
    }
    assert_eq!(auth_events_for(&server, "203.0.113.9").len(), 4);
    assert!(
        !server.decisions().iter().any(|d| d["ip"] == "203.0.113.9"),
        "4 failures must not decide"
    );
}

#[test]
fn rsyslog_forwarding_octet_counted_lf_and_udp_raises_the_ssh_decision() {
    let rsyslogd = mirage_testkit::require_tool("rsyslogd");
    let dir = tempfile::tempdir().unwrap();
    let server = MirageServer::start(
        // Over UDP too: these tests are about framing; spoofed UDP
        // deciding nothing by default is control_channel's.
        "[syslog]\nudp_decides = true\n",
        dir.path(),
    );
    let d = dir.path();
    std::fs::create_dir_all(d.join("work")).unwrap();
    let p = server.port();
    // One Unix socket per forwarding style, each bound to its own ruleset,
    // so every message takes exactly one path. The retry settings are the
    // ones an operator needs so rsyslog does not drop while mirage restarts.
    let conf = format!(
        r#"global(workDirectory="{d}/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/octet.sock" Ruleset="octet")
input(type="imuxsock" Socket="{d}/lf.sock" Ruleset="lf")
input(type="imuxsock" Socket="{d}/udp.sock" Ruleset="udp")
ruleset(name="octet") {{
  action(type="omfwd" target="127.0.0.1" port="{p}" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
}}
ruleset(name="lf") {{
  action(type="omfwd" target="127.0.0.1" port="{p}" protocol="tcp" template="RSYSLOG_ForwardFormat"
         queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")
}}
ruleset(name="udp") {{
  action(type="omfwd" target="127.0.0.1" port="{p}" protocol="udp")
}}
"#,
        d = d.display()
    );
    std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
    let _rsyslog = mirage_testkit::KillOnDrop::spawn(
        Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let sockets = [
        ("octet", "198.51.100.1"),
        ("lf", "198.51.100.2"),
        ("udp", "198.51.100.3"),
    ];
    for (name, _) in sockets {
        let sock = d.join(format!("{name}.sock"));
        server.wait_for(
            &format!("rsyslog socket {name}"),
            Duration::from_secs(10),
            || sock.exists().then_some(()),
        );
    }
    let logger = mirage_testkit::require_tool("logger");
    for (name, ip) in sockets {
        for line in failures(ip, 5) {
            let ok = Command::new(&logger)
                .arg("-u")
                .arg(d.join(format!("{name}.sock")))
                .args(["-t", "sshd", "-p", "authpriv.info", &line])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
    }
    for (name, ip) in sockets {
        assert_bruteforce_decision(&server, ip);
        let events = server.wait_for(
            &format!("5 events via {name}"),
            Duration::from_secs(10),
            || {
                let e = auth_events_for(&server, ip);
                (e.len() >= 5).then_some(e)
            },
        );
        assert_eq!(events.len(), 5, "{name}: no line twice");
    }
}
