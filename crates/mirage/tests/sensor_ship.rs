//! A sensor shipping its events to `mirage server` (`[sensor.ship]`): real
//! redis-cli sessions against the honeypot become stored server events and
//! a decision, and a server outage loses nothing and duplicates nothing;
//! shipping is TLS pinned to the server's certificate, and a sensor with
//! another pin ships nothing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::server::MirageServer;
use common::{Sensor, read_events, redis_cli};

const KEY: &str = "shared-secret-of-more-than-32-bytes-0123456789";

/// The shared ingest key, written to `d/ingest.key`.
fn key_file(d: &std::path::Path) -> std::path::PathBuf {
    let f = d.join("ingest.key");
    std::fs::write(&f, format!("{KEY}\n")).unwrap();
    f
}

/// A sensor's `[sensor.ship]` to `ingest`, pinned to `pin`, then `more`.
fn ship(ingest: &str, key_file: &std::path::Path, pin: &str, more: &str) -> String {
    format!(
        "[sensor.ship]\nserver = \"{ingest}\"\nkey_file = \"{}\"\nserver_pin = \"{pin}\"\n{more}",
        key_file.display()
    )
}

#[test]
fn sensor_events_reach_the_server_once_across_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = key_file(d);
    // The attacker here is 127.0.0.1, which the built-in pack whitelists.
    let (mut server, ingest) =
        MirageServer::with_ingest(&key_file, &rules_without_whitelist(d), &d.join("server"));
    let pin = server.pin().hex();
    let mut sensor = Sensor::redis(&ship(&ingest, &key_file, &pin, "batch_events = 7\n"));

    redis_cli(sensor.port(), &["ping"], None);
    redis_cli(sensor.port(), &["config", "set", "dir", "/root/.ssh"], None);
    let decision = server.wait_decision("127.0.0.1", Duration::from_secs(20));
    assert!(
        ["honeypot-contact", "redis-dangerous-command"]
            .contains(&decision["rule"].as_str().unwrap()),
        "{decision}"
    );

    // Outage: the sensor keeps recording; the events wait in its files.
    server.stop();
    for i in 0..20 {
        redis_cli(sensor.port(), &["set", &format!("k{i}"), "v"], None);
    }
    std::thread::sleep(Duration::from_secs(2));
    server.restart();
    sensor.stop();

    let local = read_events(&sensor.event_dir());
    assert!(local.len() > 60, "{}", local.len());
    let want: HashSet<String> = local
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // The sensor stopped before shipping its last events: a new one on the
    // same directory resumes from the checkpoint and ships them.
    let same_dir = std::mem::replace(&mut sensor.dir, tempfile::tempdir().unwrap());
    let _sensor2 = Sensor::redis_in(&ship(&ingest, &key_file, &pin, ""), same_dir);
    let stored = server.wait_for("every sensor event", Duration::from_secs(30), || {
        let got = server.events(10_000);
        let ids: HashSet<String> = got
            .iter()
            .filter(|e| e["sensor"] == "test-sensor")
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        want.is_subset(&ids).then_some(got)
    });
    let ids: Vec<&str> = stored
        .iter()
        .filter(|e| e["sensor"] == "test-sensor")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "an event was stored twice");
}

/// The built-in pack without its loopback whitelist (the attacker in
/// these tests is 127.0.0.1), written to `d/rules.toml`, as the server's
/// `[rules]` config.
fn rules_without_whitelist(d: &std::path::Path) -> String {
    let rules = std::fs::read_to_string(
        mirage_testkit::repo_root().join("crates/mirage-rules/rules/builtin.toml"),
    )
    .unwrap()
    .replace(r#"cidrs = ["127.0.0.0/8", "::1/128"]"#, "cidrs = []");
    std::fs::write(d.join("rules.toml"), rules).unwrap();
    format!("[rules]\nfile = \"{}\"\n", d.join("rules.toml").display())
}

/// sshd's failures (syslog) decide for 4 h, then the same source touches
/// the honeypot (a real sensor session, shipped): `honeypot-contact`
/// renews the decision for 24 h, and the log and `decisions list` credit
/// that rule with its reason and TTL, the history keeping both.
#[test]
fn a_decision_renewed_by_another_rule_names_that_rule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = key_file(d);
    let (server, ingest) =
        MirageServer::with_ingest(&key_file, &rules_without_whitelist(d), &d.join("server"));
    let pin = server.pin().hex();

    server.send_failures("127.0.0.1", 5);
    let first = server.wait_decision("127.0.0.1", Duration::from_secs(10));
    assert_eq!(first["rule"], "ssh-bruteforce-account", "{first}");
    assert!(
        (14_300..=14_400).contains(&first["ttl_secs"].as_u64().unwrap()),
        "{first}"
    );

    let sensor = Sensor::redis(&ship(&ingest, &key_file, &pin, ""));
    redis_cli(sensor.port(), &["ping"], None);
    let renewed = server.wait_for("the renewal", Duration::from_secs(20), || {
        server
            .decisions()
            .into_iter()
            .find(|d| d["ip"] == "127.0.0.1" && d["rule"] != "ssh-bruteforce-account")
    });
    assert_eq!(renewed["rule"], "honeypot-contact", "{renewed}");
    assert_eq!(renewed["severity"], "high", "{renewed}");
    assert!(
        renewed["reason"]
            .as_str()
            .unwrap()
            .starts_with("honeypot-contact:"),
        "{renewed}"
    );
    assert!(
        (86_300..=86_400).contains(&renewed["ttl_secs"].as_u64().unwrap()),
        "{renewed}"
    );
    assert_eq!(renewed["created"], first["created"], "{renewed}");
    let history: Vec<(&str, &str, u64)> = renewed["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap(),
                c["rule"].as_str().unwrap(),
                c["ttl_secs"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("made", "ssh-bruteforce-account", 14_400),
            ("renewed", "honeypot-contact", 86_400)
        ],
        "{renewed}"
    );
    assert_eq!(server.decisions().len(), 1);

    // The text table: the rule in force on the decision's line, the
    // history under it.
    let out = server.cli(&["decisions", "list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with("127.0.0.1 ") && lines[1].contains(" honeypot-contact "),
        "{text}"
    );
    assert!(
        lines[2].contains(" made ") && lines[2].contains(" 14400s  ssh-bruteforce-account "),
        "{text}"
    );
    assert!(
        lines[3].contains(" renewed ") && lines[3].contains(" 86400s  honeypot-contact "),
        "{text}"
    );

    // And the server's log line names the renewing rule with its TTL.
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("decision renewed: deceive 127.0.0.1"))
        .unwrap_or_else(|| panic!("no renewal logged:\n{log}"));
    assert!(line.contains("for 86400s by honeypot-contact"), "{line}");
}

/// A sensor pinned to another certificate (a server it was not set up
/// for, or one in the middle) refuses the handshake: nothing is shipped,
/// the events wait in its files, and it says why.
#[test]
fn a_sensor_pinned_to_another_certificate_ships_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = key_file(d);
    let (server, ingest) = MirageServer::with_ingest(&key_file, "", &d.join("server"));
    let mut other = server.pin().0;
    other[0] ^= 0xff;
    let other = mirage_net::Pin(other).hex();
    let mut sensor = Sensor::redis(&ship(&ingest, &key_file, &other, ""));
    redis_cli(sensor.port(), &["ping"], None);
    std::thread::sleep(Duration::from_secs(3));
    let log = sensor.stop();
    assert!(
        server
            .events(1000)
            .iter()
            .all(|e| e["sensor"] != "test-sensor"),
        "events crossed a handshake with the wrong certificate"
    );
    assert!(!read_events(&sensor.event_dir()).is_empty());
    assert!(log.contains("ship: server") && log.contains("pin"), "{log}");
}
