//! The whole agent (`mirage_agent::run`) with real sources against a test
//! receiver that decodes like the server: files (auth.log syslog lines,
//! raw `sshd -E` lines from a real sshd, vsftpd, the MySQL general log),
//! journald (journal files written by systemd-journal-remote, read by the
//! real journalctl), Redis MONITOR on a real redis-server, and heartbeats.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Receiver, config, file_source, last_heartbeat, source_health, start};
use mirage_config::agent::{LineFormat, SourceConfig, SourceKind, SourceService, StartAt};
use mirage_logparse::LogParser;
use mirage_testkit::{KillOnDrop, free_port, require_tool, wait_for_port};

const WAIT: Duration = Duration::from_secs(20);

fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text).unwrap();
}

/// What the server's parser makes of a frame: (service, kind) per record.
fn parsed(parser: &mut LogParser, f: &common::Frame) -> Vec<(String, String)> {
    let mut out = Vec::new();
    parser.parse_app(&f.app, &f.message, &mut out);
    out.iter()
        .map(|r| (r.service.as_str().to_owned(), r.kind.name().to_owned()))
        .collect()
}

fn assert_unique_ids(frames: &[common::Frame]) {
    let mut seen = HashSet::new();
    for f in frames {
        assert!(
            seen.insert(f.id.clone()),
            "duplicate id {} ({})",
            f.id,
            f.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sources_split_syslog_lines_and_ship_raw_lines_as_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    let sshd_e = dir.path().join("sshd.log");
    let vsftpd = dir.path().join("vsftpd.log");
    append(
        &auth,
        b"Nov 21 11:09:34 vm1 sshd[123]: Failed password for root from 203.0.113.7 port 51544 ssh2\n\
          Nov 21 11:09:35 vm1 CRON[77]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
    );
    append(&sshd_e, b"Invalid user bob from 203.0.113.8 port 42552\r\n");
    append(
        &vsftpd,
        b"Sat Nov 21 11:09:36 2026 [pid 4242] [anonymous] FAIL LOGIN: Client \"203.0.113.9\"\n",
    );
    let rx = Receiver::tcp().await;
    let state = dir.path().join("state");
    let mut c = config(&state, rx.addr, 1);
    c.sources = vec![
        file_source("auth", SourceService::Ssh, &[&auth], LineFormat::Syslog),
        file_source("sshd-e", SourceService::Ssh, &[&sshd_e], LineFormat::Auto),
        file_source("vsftpd", SourceService::Ftp, &[&vsftpd], LineFormat::Raw),
    ];
    let agent = start(c.clone());
    rx.wait("the four lines", WAIT, |f| {
        f.iter().filter(|f| f.app != "mirage-agent").count() >= 4
    })
    .await;
    // A line written while the agent runs.
    append(
        &auth,
        b"Nov 21 11:09:37 vm1 sshd[124]: Invalid user admin from 203.0.113.7 port 51600\n",
    );
    rx.wait("the appended line", WAIT, |f| {
        f.iter().any(|f| f.text().contains("Invalid user admin"))
    })
    .await;

    let frames = rx.frames();
    let find = |needle: &str| {
        frames
            .iter()
            .find(|f| f.text().contains(needle))
            .unwrap_or_else(|| panic!("no frame with {needle}"))
            .clone()
    };
    let failed = find("Failed password for root");
    assert_eq!(
        (
            failed.app.as_str(),
            failed.procid.as_str(),
            failed.host.as_str()
        ),
        ("sshd", "123", "vm1")
    );
    assert_eq!(
        failed.text(),
        "Failed password for root from 203.0.113.7 port 51544 ssh2"
    );
    let cron = find("pam_unix(cron:session)");
    assert_eq!(cron.app, "CRON");
    let raw = find("Invalid user bob");
    assert_eq!(
        (raw.app.as_str(), raw.host.as_str(), raw.text().as_str()),
        (
            "sshd",
            "agent-host",
            "Invalid user bob from 203.0.113.8 port 42552"
        )
    );
    let ftp = find("FAIL LOGIN");
    assert_eq!(ftp.app, "vsftpd");

    // The server's parser reads them as intended; other programs' lines are
    // ignored.
    let mut p = LogParser::new();
    assert!(parsed(&mut p, &failed).contains(&("ssh".into(), "auth.attempt".into())));
    assert!(parsed(&mut p, &raw).iter().any(|(s, _)| s == "ssh"));
    assert!(parsed(&mut p, &ftp).contains(&("ftp".into(), "auth.attempt".into())));
    assert!(parsed(&mut p, &cron).is_empty());

    // Heartbeat: lines counted per source.
    rx.wait("a heartbeat counting the auth lines", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "auth"))
            .is_some_and(|s| s["lines"] == 3)
    })
    .await;
    agent.stop().await;

    // Restart on the same state: only new lines, no line shipped twice.
    append(
        &auth,
        b"Nov 21 11:09:38 vm1 sshd[125]: Connection closed by 203.0.113.7 port 51601 [preauth]\n",
    );
    let agent = start(c);
    rx.wait("the line written while stopped", WAIT, |f| {
        f.iter()
            .any(|f| f.text().contains("Connection closed by 203.0.113.7"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.stop().await;
    let logs: Vec<_> = rx
        .frames()
        .into_iter()
        .filter(|f| f.app != "mirage-agent")
        .collect();
    assert_eq!(logs.len(), 6, "{logs:#?}");
    assert_unique_ids(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_read_again_gets_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(
        &log,
        b"Nov 21 11:09:34 vm1 sshd[1]: Invalid user a from 10.0.0.1 port 1\n\
          Nov 21 11:09:35 vm1 sshd[1]: Invalid user b from 10.0.0.1 port 2\n",
    );
    let rx = Receiver::tcp().await;
    let state = dir.path().join("state");
    let mut c = config(&state, rx.addr, 30);
    c.sources = vec![file_source(
        "auth",
        SourceService::Ssh,
        &[&log],
        LineFormat::Syslog,
    )];
    let agent = start(c.clone());
    rx.wait("two lines", WAIT, |f| {
        f.iter().filter(|f| f.app == "sshd").count() == 2
    })
    .await;
    agent.stop().await;
    // As after a crash before the checkpoint: the lines are read again.
    std::fs::remove_file(state.join("sources/auth.file.json")).unwrap();
    let agent = start(c);
    rx.wait("the lines again", WAIT, |f| {
        f.iter().filter(|f| f.app == "sshd").count() == 4
    })
    .await;
    agent.stop().await;
    let sshd = rx.of_app("sshd");
    assert_eq!(sshd[0].id, sshd[2].id);
    assert_eq!(sshd[1].id, sshd[3].id);
    assert_ne!(sshd[0].id, sshd[1].id);
}

/// `read_from = "end"` skips what a file held at the first start, and only
/// that: lines written while the agent was down are shipped at the next
/// start, even when the first run shipped nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_from_end_keeps_its_place_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"Nov 21 10:00:00 vm1 sshd[1]: old history\n");
    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 30);
    let mut s = file_source("auth", SourceService::Ssh, &[&log], LineFormat::Syslog);
    s.read_from = Some(StartAt::End);
    c.sources = vec![s];
    let agent = start(c.clone());
    rx.wait("the first heartbeat", WAIT, |f| !f.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.stop().await;
    append(&log, b"Nov 21 11:00:00 vm1 sshd[2]: written while down\n");
    let agent = start(c);
    rx.wait("the line written while down", WAIT, |f| {
        f.iter().any(|f| f.text() == "written while down")
    })
    .await;
    agent.stop().await;
    assert_eq!(rx.of_app("sshd").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_reports_health_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet.log");
    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 1);
    let mut disabled = file_source("off", SourceService::Ftp, &[&missing], LineFormat::Raw);
    disabled.enabled = false;
    c.sources = vec![
        file_source("late", SourceService::Ssh, &[&missing], LineFormat::Auto),
        disabled,
    ];
    let agent = start(c);
    rx.wait("a heartbeat saying the file is awaited", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "late"))
            .is_some_and(|s| {
                s["detail"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("waiting for")
            })
    })
    .await;
    let frames = rx.frames();
    let beat = frames
        .iter()
        .rev()
        .find(|f| f.app == "mirage-agent")
        .unwrap();
    assert_eq!(beat.msgid, "heartbeat");
    assert_eq!(beat.host, "agent-host");
    let hb = last_heartbeat(&frames).unwrap();
    assert_eq!(hb["agent_id"], "test-agent");
    assert_eq!(hb["hostname"], "agent-host");
    assert_eq!(hb["version"], env!("CARGO_PKG_VERSION"));
    let sources = hb["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "disabled sources are not listed: {hb}");
    let s = &sources[0];
    assert_eq!(s["kind"], "file");
    assert_eq!(s["service"], "ssh");
    assert_eq!(s["healthy"], false);
    assert_eq!(
        s["detail"],
        format!("waiting for {}", missing.display()).as_str()
    );
    assert_eq!(s["lines"], 0);
    assert!(s["last_line"].is_null());
    assert!(hb["queue"]["depth"].is_u64() && hb["queue"]["dropped"] == 0);
    let keys: HashSet<&str> = hb.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from(["agent_id", "hostname", "version", "sources", "queue"])
    );

    // The file appears: the source becomes healthy and counts the line.
    append(&missing, b"Invalid user x from 10.1.1.1 port 5\n");
    rx.wait("a healthy heartbeat", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "late"))
            .is_some_and(|s| s["healthy"] == true && s["lines"] == 1 && s["last_line"].is_string())
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_general_log_is_shipped_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mysql.log");
    // MariaDB's general log: a query spanning lines, whose second line looks
    // like an sshd syslog line (client-chosen text must not pose as sshd).
    let text = "241121 11:09:34\t    31 Connect\troot@203.0.113.50 on  using TCP/IP\n\
                \t\t    31 Query\tselect 'a\n\
                Nov 21 11:09:34 vm1 sshd[1]: Accepted password for root from 198.51.100.1 port 1 ssh2'\n\
                \t\t    31 Query\tSHOW DATABASES\n";
    append(&log, text.as_bytes());
    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 30);
    c.sources = vec![file_source(
        "mysql",
        SourceService::Mysql,
        &[&log],
        LineFormat::Auto,
    )];
    let agent = start(c);
    rx.wait("four lines", WAIT, |f| {
        f.iter().filter(|f| f.app != "mirage-agent").count() >= 4
    })
    .await;
    agent.stop().await;
    let frames = rx.of_app("mysql-general");
    let lines: Vec<String> = frames.iter().map(|f| f.text()).collect();
    let want: Vec<&str> = text.lines().collect();
    assert_eq!(lines, want);
    let mut p = LogParser::new();
    let kinds: Vec<(String, String)> = frames.iter().flat_map(|f| parsed(&mut p, f)).collect();
    assert!(
        kinds.contains(&("mysql".into(), "session.connect".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("mysql".into(), "command".into())),
        "{kinds:?}"
    );
    assert!(kinds.iter().all(|(s, _)| s == "mysql"), "{kinds:?}");
}

/// A real OpenSSH sshd logging with `-E FILE`: its lines (bare messages,
/// CRLF) reach the receiver as program `sshd`, and the server's parser
/// reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_log_file_reaches_the_server_as_sshd() {
    let sshd = require_tool("sshd");
    let ssh = require_tool("ssh");
    let keygen = require_tool("ssh-keygen");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("host_key");
    let st = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    // sshd checks its privilege separation directory exists.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    let cfg = dir.path().join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n",
            key.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("sshd.log");
    let _sshd = KillOnDrop::spawn(
        Command::new(sshd)
            .arg("-D")
            .arg("-E")
            .arg(&log)
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null()),
    );
    wait_for_port(format!("127.0.0.1:{port}").parse().unwrap(), WAIT);

    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 30);
    c.sources = vec![file_source(
        "sshd",
        SourceService::Ssh,
        &[&log],
        LineFormat::Auto,
    )];
    let agent = start(c);
    let st = Command::new(ssh)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &port.to_string(),
            "mirage-no-such-user@127.0.0.1",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!st.status.success());
    rx.wait("sshd's invalid user line", WAIT, |f| {
        f.iter().any(|f| {
            f.text()
                .starts_with("Invalid user mirage-no-such-user from 127.0.0.1")
        })
    })
    .await;
    agent.stop().await;
    let frames = rx.of_app("sshd");
    let line = frames
        .iter()
        .find(|f| f.text().starts_with("Invalid user"))
        .unwrap();
    assert!(!line.message.ends_with(b"\r"), "CR removed");
    assert_eq!(line.host, "agent-host");
    let mut p = LogParser::new();
    let kinds = parsed(&mut p, line);
    assert!(!kinds.is_empty(), "server parser reads {:?}", line.text());
    // Nothing from that log is shipped under another name.
    assert!(
        rx.frames()
            .iter()
            .all(|f| f.app == "sshd" || f.app == "mirage-agent")
    );
}

/// A real redis-server watched through MONITOR (with AUTH): commands run by
/// redis-cli arrive as `redis-monitor` records the server's parser reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_monitor_ships_commands_from_a_real_redis() {
    let server = require_tool("redis-server");
    let cli = require_tool("redis-cli");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = KillOnDrop::spawn(
        Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", "s3cret-pw"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null()),
    );
    wait_for_port(format!("127.0.0.1:{port}").parse().unwrap(), WAIT);

    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 1);
    let mut s = SourceConfig::new("redis", SourceKind::RedisMonitor, SourceService::Redis);
    s.address = Some(format!("127.0.0.1:{port}"));
    s.password = Some(mirage_config::agent::Secret("s3cret-pw".into()));
    s.max_line_bytes = 256;
    let mut wrong = s.clone();
    wrong.name = "redis-wrong".into();
    wrong.password = Some(mirage_config::agent::Secret("not-the-pw".into()));
    c.sources = vec![s, wrong];
    let agent = start(c);
    rx.wait("MONITOR established", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "redis"))
            .is_some_and(|s| s["healthy"] == true)
    })
    .await;
    let run = |args: &[&str]| {
        let o = Command::new(&cli)
            .args([
                "-p",
                &port.to_string(),
                "-a",
                "s3cret-pw",
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    run(&["SET", "mirage:key", "value with \"quotes\"\nand a newline"]);
    // (MONITOR never shows admin commands such as CONFIG.)
    run(&["KEYS", "mirage:*"]);
    let big = "x".repeat(1000);
    run(&["SET", "big", &big]);
    rx.wait("three commands", WAIT, |f| {
        f.iter()
            .filter(|f| f.app == "redis-monitor" && !f.text().contains("\"AUTH\""))
            .count()
            >= 3
    })
    .await;
    let hb = last_heartbeat(&rx.frames()).unwrap();
    agent.stop().await;

    let frames: Vec<_> = rx
        .of_app("redis-monitor")
        .into_iter()
        .filter(|f| !f.text().contains("\"AUTH\""))
        .collect();
    let set = &frames[0];
    assert!(
        set.text()
            .contains(r#""SET" "mirage:key" "value with \"quotes\"\nand a newline""#),
        "{}",
        set.text()
    );
    // The record's time is the line's own (Redis's clock, within seconds).
    let line_secs: i64 = set.text().split('.').next().unwrap().parse().unwrap();
    assert_eq!(set.micros.unwrap() / 1_000_000, line_secs);
    assert!(frames[1].text().contains(r#""KEYS" "mirage:*""#));
    // A long line is cut at max_line_bytes.
    assert!(
        frames[2].message.len() <= 256,
        "{}",
        frames[2].message.len()
    );
    assert_unique_ids(&frames);
    let mut p = LogParser::new();
    assert!(parsed(&mut p, set).contains(&("redis".into(), "command".into())));

    // The wrong password is an unhealthy source, and no password is shown.
    let wrong = source_health(&hb, "redis-wrong").unwrap();
    assert_eq!(wrong["healthy"], false);
    let detail = wrong["detail"].as_str().unwrap();
    assert!(detail.contains("AUTH refused"), "{detail}");
    let all = serde_json::to_string(&hb).unwrap();
    assert!(!all.contains("s3cret-pw") && !all.contains("not-the-pw"));
    assert!(rx.frames().iter().all(|f| !f.text().contains("not-the-pw")));
}

/// Writes journal entries (export format) to systemd-journal-remote, which
/// writes journal files under `dir`.
struct JournalWriter {
    child: KillOnDrop,
}

impl JournalWriter {
    fn start(dir: &Path) -> JournalWriter {
        let remote = Path::new("/lib/systemd/systemd-journal-remote");
        assert!(
            remote.is_file(),
            "test needs systemd-journal-remote: run `bash scripts/install-test-deps.sh` (as root) first"
        );
        let child = KillOnDrop::spawn(
            Command::new(remote)
                .arg(format!("--output={}/remote.journal", dir.display()))
                .arg("--split-mode=none")
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        JournalWriter { child }
    }

    fn entry(&mut self, boot: &str, fields: &[(&str, &[u8])]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        let mut e =
            format!("__REALTIME_TIMESTAMP={now}\n__MONOTONIC_TIMESTAMP={now}\n_BOOT_ID={boot}\n")
                .into_bytes();
        for (k, v) in fields {
            if v.iter().all(|b| *b >= 0x20 && *b != 0x7f && *b < 0x80) {
                e.extend_from_slice(format!("{k}=").as_bytes());
                e.extend_from_slice(v);
            } else {
                // Binary field: name, LF, 64-bit length, data.
                e.extend_from_slice(format!("{k}\n").as_bytes());
                e.extend_from_slice(&(v.len() as u64).to_le_bytes());
                e.extend_from_slice(v);
            }
            e.push(b'\n');
        }
        e.push(b'\n');
        let stdin = self.child.0.stdin.as_mut().unwrap();
        stdin.write_all(&e).unwrap();
        stdin.flush().unwrap();
    }
}

const BOOT_1: &str = "0123456789abcdef0123456789abcdef";
const BOOT_2: &str = "fedcba9876543210fedcba9876543210";

fn ssh_entry(w: &mut JournalWriter, boot: &str, unit: &str, ident: &str, msg: &[u8]) {
    w.entry(
        boot,
        &[
            ("MESSAGE", msg),
            ("SYSLOG_IDENTIFIER", ident.as_bytes()),
            ("_SYSTEMD_UNIT", unit.as_bytes()),
            ("_PID", b"4242"),
            ("_HOSTNAME", b"journal-host"),
            ("PRIORITY", b"6"),
            ("SYSLOG_FACILITY", b"10"),
        ],
    );
}

/// The real journalctl follows journal files written by
/// systemd-journal-remote (`--directory`): units and matches select
/// entries, binary messages survive, and a restart resumes after the saved
/// cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_source_follows_the_journal_and_resumes_at_its_cursor() {
    require_tool("journalctl");
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let mut w = JournalWriter::start(&jdir);
    // Written before the agent's first start: read_from = start ships it.
    ssh_entry(
        &mut w,
        BOOT_1,
        "ssh.service",
        "sshd",
        b"Invalid user early from 10.0.0.1 port 1",
    );
    ssh_entry(&mut w, BOOT_1, "cron.service", "CRON", b"not selected");
    let journal_file = jdir.join("remote.journal");
    for _ in 0..200 {
        if journal_file.is_file() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 1);
    let mut s = SourceConfig::new("journal", SourceKind::Journald, SourceService::Ssh);
    s.units = Some(vec!["ssh".into()]);
    s.matches = Some(vec!["SYSLOG_IDENTIFIER=vsftpd".into()]);
    s.journalctl_args = Some(vec!["--directory".into(), jdir.display().to_string()]);
    s.read_from = Some(StartAt::Start);
    c.sources = vec![s];
    let agent = start(c.clone());
    rx.wait("the early entry", WAIT, |f| {
        f.iter().any(|f| f.text().contains("early"))
    })
    .await;
    ssh_entry(
        &mut w,
        BOOT_1,
        "ssh.service",
        "sshd",
        b"Failed password for root from 203.0.113.7 port 22 ssh2 \xff",
    );
    ssh_entry(
        &mut w,
        BOOT_1,
        "vsftpd.service",
        "vsftpd",
        b"matched by expression",
    );
    rx.wait("live entries", WAIT, |f| {
        f.iter().any(|f| f.text().contains("matched by expression"))
    })
    .await;
    rx.wait("a healthy heartbeat", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "journal"))
            .is_some_and(|s| s["healthy"] == true && s["lines"] == 3)
    })
    .await;
    agent.stop().await;

    let frames: Vec<_> = rx
        .frames()
        .into_iter()
        .filter(|f| f.app != "mirage-agent")
        .collect();
    assert_eq!(frames.len(), 3, "{frames:#?}");
    let failed = &frames[1];
    assert_eq!(
        (
            failed.app.as_str(),
            failed.procid.as_str(),
            failed.host.as_str()
        ),
        ("sshd", "4242", "journal-host")
    );
    assert_eq!(
        failed.message,
        b"Failed password for root from 203.0.113.7 port 22 ssh2 \xff"
    );
    assert!(frames.iter().all(|f| !f.text().contains("not selected")));
    let mut p = LogParser::new();
    assert!(parsed(&mut p, failed).contains(&("ssh".into(), "auth.attempt".into())));

    // Stopped: entries written meanwhile, the last of this boot and the
    // first of the next (a reboot), arrive after the restart, and nothing
    // shipped before is shipped again.
    ssh_entry(&mut w, BOOT_1, "ssh.service", "sshd", b"end of the boot");
    ssh_entry(
        &mut w,
        BOOT_2,
        "ssh.service",
        "sshd",
        b"while the agent was down",
    );
    let agent = start(c);
    rx.wait("the entry written while stopped", WAIT, |f| {
        f.iter()
            .any(|f| f.text().contains("while the agent was down"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.stop().await;
    let frames: Vec<_> = rx
        .frames()
        .into_iter()
        .filter(|f| f.app != "mirage-agent")
        .collect();
    assert_eq!(frames.len(), 5, "{frames:#?}");
    assert!(frames.iter().any(|f| f.text() == "end of the boot"));
    assert_unique_ids(&frames);
}

/// With `read_from = "end"`, what the journal held at the first start is
/// skipped, but entries logged while the agent was down are not, even when
/// the first run saw no entry at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_read_from_end_keeps_its_place_across_restarts() {
    require_tool("journalctl");
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let mut w = JournalWriter::start(&jdir);
    ssh_entry(&mut w, BOOT_1, "ssh.service", "sshd", b"old history");
    // The entry must be readable before the agent starts "at the end": the
    // file appears before the writer has put the entry in it, and on a
    // loaded machine the agent could otherwise start first and read it as
    // new.
    for _ in 0..400 {
        let shown = std::process::Command::new("journalctl")
            .args(["--directory"])
            .arg(&jdir)
            .args(["-o", "cat", "--no-pager"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("old history"));
        if shown {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 1);
    let mut s = SourceConfig::new("journal", SourceKind::Journald, SourceService::Ssh);
    s.journalctl_args = Some(vec!["--directory".into(), jdir.display().to_string()]);
    s.read_from = Some(StartAt::End);
    c.sources = vec![s];
    let agent = start(c.clone());
    rx.wait("a healthy heartbeat", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "journal"))
            .is_some_and(|s| s["healthy"] == true)
    })
    .await;
    agent.stop().await;
    ssh_entry(&mut w, BOOT_1, "ssh.service", "sshd", b"written while down");
    let agent = start(c);
    rx.wait("the entry written while down", WAIT, |f| {
        f.iter().any(|f| f.text() == "written while down")
    })
    .await;
    agent.stop().await;
    assert_eq!(rx.of_app("sshd").len(), 1, "{:#?}", rx.of_app("sshd"));
}

/// journalctl missing or exiting is a health state and a retry, not a
/// crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_source_reports_a_journalctl_that_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::tcp().await;
    let mut c = config(&dir.path().join("state"), rx.addr, 1);
    let mut s = SourceConfig::new("journal", SourceKind::Journald, SourceService::Ssh);
    s.journalctl = Some(dir.path().join("no-such-journalctl"));
    s.retry_max_secs = Some(1);
    c.sources = vec![s];
    let agent = start(c);
    rx.wait("an unhealthy heartbeat", WAIT, |f| {
        last_heartbeat(f)
            .and_then(|hb| source_health(&hb, "journal"))
            .is_some_and(|s| {
                s["healthy"] == false && s["detail"].as_str().unwrap_or("").contains("cannot run")
            })
    })
    .await;
    agent.stop().await;
}
