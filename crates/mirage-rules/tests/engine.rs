//! Rule-engine behaviour through its public API, with records from the real
//! parsers: window edges, whitelist, TTL expiry, bounded memory, reload.

use std::net::IpAddr;

use chrono::DateTime;
use mirage_core::{Event, EventKind, SCHEMA_VERSION, Transport};
use mirage_logparse::{LogParser, LogRecord, Service};
use mirage_rules::{DecisionType, Engine, LogEvent, Outcome, RuleSet};

const S: i64 = 1_000_000;
const T0: i64 = 1_795_259_374 * S;

fn ssh(line: &str) -> LogRecord {
    let mut out = Vec::new();
    LogParser::new().parse(Service::Ssh, line.as_bytes(), &mut out);
    assert_eq!(out.len(), 1, "{line}");
    out.pop().unwrap()
}

fn failed(user: &str, ip: &str) -> LogRecord {
    ssh(&format!(
        "Failed password for {user} from {ip} port 51544 ssh2"
    ))
}

fn feed(engine: &mut Engine, rec: &LogRecord, host: &str, t: i64) -> Outcome {
    let mut out = Outcome::default();
    engine.process(&LogEvent::new(rec, host, t), &mut out);
    out
}

/// One rule of the shipped pack, cut from its text (so tests use the real
/// definition), with the pack's whitelist (loopback only).
fn only(rule: &str) -> RuleSet {
    let text = mirage_rules::BUILTIN_RULES;
    let start = text.find(&format!("name = \"{rule}\"")).unwrap();
    let block_start = text[..start].rfind("[[rule]]").unwrap();
    let block_end = text[start..]
        .find("[[rule]]")
        .map_or(text.len(), |e| start + e);
    RuleSet::parse(&text[block_start..block_end]).unwrap()
}

#[test]
fn four_in_two_minutes_is_not_enough_five_is() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    for i in 0..4 {
        assert!(feed(&mut e, &r, "vm", T0 + i * 30 * S).decisions.is_empty());
    }
    let out = feed(&mut e, &r, "vm", T0 + 120 * S);
    assert_eq!(out.decisions.len(), 1);
    let d = &out.decisions[0];
    assert_eq!(d.ip, "10.0.0.9".parse::<IpAddr>().unwrap());
    assert_eq!(d.decision, DecisionType::Deceive);
    assert_eq!(d.rule, "ssh-bruteforce-account");
    assert_eq!(d.evidence, 5);
    assert_eq!(d.expires_micros - d.created_micros, 4 * 3600 * S);
    assert_eq!(d.key, "10.0.0.9|root|vm");
    assert_eq!(out.alerts.len(), 1);
}

#[test]
fn five_spread_over_two_minutes_and_a_second_is_not() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    for t in [0, 30, 60, 90, 121] {
        assert!(
            feed(&mut e, &r, "vm", T0 + t * S).decisions.is_empty(),
            "t={t}"
        );
    }
}

#[test]
fn account_and_host_are_part_of_the_key() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    // Five failures, but spread over accounts or hosts: no decision.
    for (i, (user, host)) in [
        ("root", "a"),
        ("root", "b"),
        ("admin", "a"),
        ("root", "c"),
        ("x", "a"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = feed(&mut e, &failed(user, "10.0.0.9"), host, T0 + i as i64 * S);
        assert!(out.decisions.is_empty());
    }
}

#[test]
fn whitelist_suppresses() {
    let mut set = only("ssh-bruteforce-account");
    set.set_whitelist(&["10.0.0.0/8"]).unwrap();
    let mut e = Engine::new(set);
    let r = failed("root", "10.0.0.9");
    for i in 0..10 {
        assert!(feed(&mut e, &r, "vm", T0 + i * S).is_empty());
    }
    assert_eq!(e.stats().whitelisted, 10);
    assert_eq!(e.stats().tracked_keys, 0);
    // Outside the list it fires.
    let r = failed("root", "192.0.2.1");
    let fired: usize = (0..5)
        .map(|i| feed(&mut e, &r, "vm", T0 + i * S).decisions.len())
        .sum();
    assert_eq!(fired, 1);
}

#[test]
fn decisions_expire_by_ttl_on_event_time() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    for i in 0..5 {
        feed(&mut e, &r, "vm", T0 + i * S);
    }
    assert_eq!(e.active_decisions().len(), 1);
    let d = e.active_decisions()[0].clone();
    assert_eq!(d.ttl_secs_at(T0 + 4 * S), 4 * 3600);
    // One microsecond before the end it is still active.
    let mut out = Outcome::default();
    e.expire(d.expires_micros - 1, &mut out);
    assert!(out.expired.is_empty());
    e.expire(d.expires_micros, &mut out);
    assert_eq!(out.expired, vec![d]);
    assert!(e.active_decisions().is_empty());
    // An unrelated later event also advances the clock and expires.
    for i in 0..5 {
        feed(&mut e, &r, "vm", T0 + 10 * 3600 * S + i * S);
    }
    let out = feed(&mut e, &failed("x", "192.0.2.9"), "vm", T0 + 20 * 3600 * S);
    assert_eq!(out.expired.len(), 1);
}

#[test]
fn repeated_firing_renews_instead_of_duplicating() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    let mut new = 0;
    let mut renewed = 0;
    // 5 failures every 10 minutes for 8 hours.
    for i in 0..(8 * 6 * 5) {
        let t = T0 + (i / 5) * 600 * S + (i % 5) * S;
        for d in feed(&mut e, &r, "vm", t).decisions {
            if d.renewed { renewed += 1 } else { new += 1 }
        }
    }
    assert_eq!(new, 1);
    assert!((2..=4).contains(&renewed), "{renewed}");
    assert_eq!(e.active_decisions().len(), 1);
}

#[test]
fn a_renewal_by_another_rule_is_credited_to_it() {
    let mut e = Engine::new(RuleSet::builtin());
    let r = failed("root", "192.0.2.77");
    let mut made = Vec::new();
    for i in 0..5 {
        made.extend(feed(&mut e, &r, "vm", T0 + i * S).decisions);
    }
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].rule, "ssh-bruteforce-account");
    // A minute later the same source touches a honeypot: the 24 h rule
    // renews the 4 h decision, and the decision now says it is its.
    let t = T0 + 64 * S;
    let mut out = Outcome::default();
    e.process(
        &sensor_event("redis", "192.0.2.77", 6379, t, EventKind::SessionConnect {}),
        &mut out,
    );
    assert_eq!(out.decisions.len(), 1, "{out:?}");
    let d = &out.decisions[0];
    assert!(d.renewed);
    assert_eq!(d.rule, "honeypot-contact");
    assert_eq!(d.severity.as_str(), "high");
    assert!(d.reason.starts_with("honeypot-contact:"), "{}", d.reason);
    assert_eq!(d.expires_micros - d.renewed_micros, 24 * 3600 * S);
    assert_eq!(d.renewed_micros, t);
    assert_eq!(d.created_micros, made[0].created_micros, "made when it was");
    assert_eq!(d.evidence, 6);
    assert_eq!(e.active_decisions(), std::slice::from_ref(d));
}

#[test]
fn bounded_memory_under_a_million_spoofed_sources() {
    let mut set = only("ssh-bruteforce-source");
    set.set_limits(50_000, 1_000);
    let mut e = Engine::new(set);
    let mut rec = failed("root", "10.0.0.1");
    let mut out = Outcome::default();
    for i in 0u32..1_000_000 {
        rec.src_ip = IpAddr::V4((0x0b00_0000 + i).into());
        e.process(&LogEvent::new(&rec, "vm", T0 + i64::from(i)), &mut out);
    }
    let st = e.stats();
    assert!(st.tracked_keys <= 50_000, "{st:?}");
    assert_eq!(st.key_evictions, 1_000_000 - 50_000);
    assert!(out.decisions.is_empty());
    // A real attacker among the flood is still caught.
    rec.src_ip = "192.0.2.66".parse().unwrap();
    let mut fired = 0;
    for i in 0..10 {
        let mut o = Outcome::default();
        e.process(&LogEvent::new(&rec, "vm", T0 + 2_000_000 + i), &mut o);
        fired += o.decisions.len();
    }
    assert_eq!(fired, 1);
}

#[test]
fn active_decisions_are_capped() {
    let mut set = only("ssh-bruteforce-account");
    set.set_limits(1000, 3);
    let mut e = Engine::new(set);
    let mut out = Outcome::default();
    for n in 0..5u8 {
        let r = failed("root", &format!("192.0.2.{n}"));
        for i in 0..5 {
            e.process(
                &LogEvent::new(&r, "vm", T0 + i64::from(n) * 10 * S + i),
                &mut out,
            );
        }
    }
    assert_eq!(out.decisions.len(), 5);
    assert_eq!(e.active_decisions().len(), 3);
    assert_eq!(out.expired.len(), 2);
    assert_eq!(out.expired[0].ip, "192.0.2.0".parse::<IpAddr>().unwrap());
}

#[test]
fn reload_with_a_broken_file_keeps_the_old_rules() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    for i in 0..3 {
        feed(&mut e, &r, "vm", T0 + i * S);
    }
    let broken =
        "[[rule]]\nname = \"x\"\nservice = [\"ssh\"]\nfields = { username = \"(unclosed\" }\n";
    let err = RuleSet::parse(broken).unwrap_err();
    assert_eq!((err.line, err.column), (4, 23));
    assert!(
        err.to_string()
            .starts_with("line 4, column 23: invalid regex"),
        "{err}"
    );
    let err = RuleSet::parse("[[rule]\nname = 1").unwrap_err();
    assert_eq!(err.line, 1, "{err}");
    // The caller keeps `e`; its windows continue: two more fire.
    feed(&mut e, &r, "vm", T0 + 3 * S);
    assert_eq!(feed(&mut e, &r, "vm", T0 + 4 * S).decisions.len(), 1);
}

#[test]
fn reload_keeps_state_of_unchanged_rules_only() {
    let mut e = Engine::new(only("ssh-bruteforce-account"));
    let r = failed("root", "10.0.0.9");
    for i in 0..4 {
        feed(&mut e, &r, "vm", T0 + i * S);
    }
    e.replace_rules(only("ssh-bruteforce-account"));
    assert_eq!(feed(&mut e, &r, "vm", T0 + 4 * S).decisions.len(), 1);
    for i in 0..4 {
        feed(&mut e, &failed("a", "10.0.0.8"), "vm", T0 + 10 * S + i * S);
    }
    let changed = mirage_rules::BUILTIN_RULES
        .replace("count = 5, window = \"2m\"", "count = 6, window = \"2m\"");
    e.replace_rules(RuleSet::parse(&changed).unwrap());
    // The changed rule starts afresh: the fifth is now the first.
    assert!(
        feed(&mut e, &failed("a", "10.0.0.8"), "vm", T0 + 15 * S)
            .decisions
            .is_empty()
    );
    assert_eq!(
        e.active_decisions().len(),
        1,
        "active decisions survive reloads"
    );
}

fn sensor_event(service: &str, ip: &str, dst_port: u16, t: i64, kind: EventKind) -> Event {
    Event {
        schema: SCHEMA_VERSION,
        id: mirage_core::new_id(),
        ts: DateTime::from_timestamp_micros(t).unwrap(),
        sensor: "hp1".into(),
        service: service.into(),
        transport: Transport::Tcp,
        src_ip: ip.parse().unwrap(),
        src_port: Some(40000),
        dst_ip: Some("10.0.0.2".parse().unwrap()),
        dst_port: Some(dst_port),
        session: Some(mirage_core::new_id()),
        tags: vec![],
        kind,
    }
}

#[test]
fn builtin_pack_honeypot_contact_and_port_scan() {
    let mut e = Engine::new(RuleSet::builtin());
    let mut out = Outcome::default();
    e.process(
        &sensor_event(
            "catchall",
            "198.51.100.7",
            23,
            T0,
            EventKind::SessionConnect {},
        ),
        &mut out,
    );
    assert_eq!(out.decisions.len(), 1);
    assert_eq!(out.decisions[0].rule, "honeypot-contact");
    // Port scan: 20 distinct ports within a minute.
    out.clear();
    for p in 0..20u16 {
        e.process(
            &sensor_event(
                "catchall",
                "198.51.100.7",
                1000 + p,
                T0 + i64::from(p) * S,
                EventKind::SessionConnect {},
            ),
            &mut out,
        );
    }
    let scans: Vec<_> = out
        .decisions
        .iter()
        .filter(|d| d.rule == "port-scan")
        .collect();
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].decision, DecisionType::Block);
    // Log records are not "sensor" contact.
    out.clear();
    let r = ssh("Accepted password for alice from 192.0.2.10 port 5000 ssh2");
    e.process(&LogEvent::new(&r, "vm", T0), &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn builtin_pack_redis_rsync_ftp_mysql() {
    let mut e = Engine::new(RuleSet::builtin());
    let mut p = LogParser::new();
    let mut decided = |svc: Service, line: &str, t: i64| -> Vec<String> {
        let mut recs = Vec::new();
        p.parse(svc, line.as_bytes(), &mut recs);
        let mut out = Outcome::default();
        for r in &recs {
            e.process(&LogEvent::new(r, "prod1", t), &mut out);
        }
        out.decisions.into_iter().map(|d| d.rule).collect()
    };
    assert!(
        decided(
            Service::Redis,
            r#"1795259374.000001 [0 203.0.113.5:5000] "GET" "k""#,
            T0
        )
        .is_empty()
    );
    assert_eq!(
        decided(
            Service::Redis,
            r#"1795259374.000002 [0 203.0.113.5:5000] "CONFIG" "SET" "dir" "/root/.ssh""#,
            T0
        ),
        vec!["redis-dangerous-command"]
    );
    assert_eq!(
        decided(
            Service::Redis,
            r#"1795259374.000003 [0 203.0.113.6:5000] "slaveof" "198.51.100.1" "6379""#,
            T0
        ),
        vec!["redis-dangerous-command"]
    );
    assert!(
        decided(
            Service::Redis,
            r#"1795259374.000004 [0 203.0.113.7:5000] "CONFIG" "GET" "dir""#,
            T0
        )
        .is_empty()
    );
    let auth: usize = (0..10)
        .map(|i| {
            decided(
                Service::Redis,
                &format!(r#"1795259375.{i:06} [0 203.0.113.8:5000] "AUTH" "(redacted)""#),
                T0,
            )
            .len()
        })
        .sum();
    assert_eq!(auth, 1);
    assert_eq!(
        decided(
            Service::Rsync,
            "module-list request from x (203.0.113.9)",
            T0
        ),
        vec!["rsync-module-list"]
    );
    assert_eq!(
        decided(Service::Rsync, "rsync on data/ from x (203.0.113.10)", T0),
        vec!["rsync-download"]
    );
    assert_eq!(
        decided(Service::Rsync, "rsync to data/up from x (203.0.113.11)", T0),
        vec!["rsync-upload"]
    );
    let ftp: usize = (0..5)
        .map(|i| {
            decided(
                Service::Ftp,
                "[pid 9] [admin] FAIL LOGIN: Client \"::ffff:203.0.113.12\"",
                T0 + i * S,
            )
            .len()
        })
        .sum();
    assert_eq!(ftp, 1);
    let mysql: usize = (0..5)
        .map(|i| {
            decided(Service::Mysql, &format!("\t\t{i} Connect\tAccess denied for user 'root'@'203.0.113.13' (using password: YES)"), T0 + i * S)
                .len()
        })
        .sum();
    assert_eq!(mysql, 1);
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut e = Engine::new(RuleSet::builtin());
        let mut all = Vec::new();
        for i in 0..5000i64 {
            let r = failed(
                ["root", "admin", "oracle"][(i % 3) as usize],
                &format!("192.0.2.{}", i % 7),
            );
            let mut out = Outcome::default();
            e.process(
                &LogEvent::new(&r, ["a", "b"][(i % 2) as usize], T0 + i * 3 * S),
                &mut out,
            );
            all.push(out);
        }
        all
    };
    assert_eq!(run(), run());
}
