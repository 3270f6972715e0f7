//! The agent's default transport, RELP: a line leaves the agent's queue only
//! when the server answered that it stored it. With the server's store held
//! busy by another writer, lines pile up unacknowledged; after a `kill -9`
//! of server and agent, every line the agent's queue no longer holds (what
//! it counts as delivered) is stored exactly once, and once both run again
//! every line arrives, none twice. Also: rsyslog's own RELP output
//! (`omrelp`, librelp) delivers to `mirage server`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::MirageServer;
use mirage_testkit::KillOnDrop;

fn agent(server: &MirageServer, dir: &Path, log: &Path) -> KillOnDrop {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"relp-agent\"\nhostname = \"prod1\"\nstate_dir = \"{}\"\nheartbeat_secs = 3600\n\n\
             [output]\naddress = \"{}\"\n\n\
             [[sources]]\nname = \"auth\"\nkind = \"file\"\nservice = \"ssh\"\npaths = [\"{}\"]\nformat = \"raw\"\nread_from = \"start\"\n",
            dir.join("agent-state").display(),
            server.syslog,
            log.display()
        ),
    )
    .unwrap();
    let out = common::append_log(&dir.join("agent.log"));
    KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_mirage"))
            .args(["agent", "--config"])
            .arg(&cfg)
            .env("MIRAGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out),
    )
}

fn append_lines(log: &Path, range: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut text = String::new();
    for i in range {
        text.push_str(&format!(
            "Failed password for user{i} from 192.0.2.{} port {} ssh2\n",
            1 + i % 200,
            1024 + i
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// How many stored auth events each `userN` has.
fn stored_users(server: &MirageServer) -> HashMap<usize, usize> {
    let mut m = HashMap::new();
    for e in server.events(1_000_000) {
        if let Some(n) = e["username"]
            .as_str()
            .and_then(|u| u.strip_prefix("user"))
            .and_then(|n| n.parse().ok())
        {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

fn user_of(payload: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(payload);
    let rest = &text[text.find("for user")? + 8..];
    rest.split(' ').next()?.parse().ok()
}

/// Whether some queue segment holds `needle` (the agent read the line).
fn queued(queue: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(queue)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read(e.path()).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        })
}

/// Hold SQLite's write lock on `db` until the returned child's stdin
/// closes (a second writer, as an operator's long transaction would).
fn hold_write_lock(db: &Path) -> std::process::Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\n\
             c.execute('BEGIN IMMEDIATE')\nprint('locked',flush=True)\nsys.stdin.read()\n",
        ])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn what_the_agent_counts_as_delivered_survives_a_kill_9_with_the_store_busy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = MirageServer::start("", &d.join("server"));
    let log = d.join("auth.log");
    append_lines(&log, 0..500);
    let mut agent_proc = agent(&server, d, &log);
    server.wait_for("the first 500 lines", Duration::from_secs(30), || {
        (stored_users(&server).len() == 500).then_some(())
    });

    // Another writer holds the store; 3,000 more lines arrive meanwhile.
    let mut locker = hold_write_lock(&server.data_dir().join("mirage.db"));
    append_lines(&log, 500..3500);
    let queue = d.join("agent-state").join("queue");
    let start = Instant::now();
    while !queued(&queue, b"user3499 ") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "agent never read the lines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    // Let the store go, and kill both while the held batches commit and
    // their answers travel.
    drop(locker.stdin.take());
    locker.wait().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let mut child = server.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(agent_proc);

    // What the agent still holds was not acknowledged; the rest it counts
    // as delivered.
    let mut q = mirage_agent::output::DiskQueue::open(&queue, Default::default()).unwrap();
    let mut held = HashSet::new();
    while let Some(r) = q.read_next().unwrap() {
        held.extend(user_of(&r.payload));
    }
    drop(q);
    let delivered: Vec<usize> = (0..3500).filter(|i| !held.contains(i)).collect();
    assert!(delivered.len() >= 500, "{} delivered", delivered.len());

    server.restart();
    let stored = stored_users(&server);
    let lost: Vec<&usize> = delivered
        .iter()
        .filter(|i| !stored.contains_key(i))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} lines the agent counted as delivered are not stored (e.g. user{})",
        lost.len(),
        delivered.len(),
        lost[0]
    );
    assert!(stored.values().all(|&n| n == 1), "a line stored twice");
    eprintln!(
        "at the kill: {} lines acknowledged and stored, {} still queued",
        delivered.len(),
        held.len()
    );

    // Both back: every line arrives, once.
    agent_proc = agent(&server, d, &log);
    server.wait_for("all 3,500 lines", Duration::from_secs(60), || {
        (stored_users(&server).len() == 3500).then_some(())
    });
    let stored = stored_users(&server);
    assert!(stored.values().all(|&n| n == 1), "a line stored twice");
    drop(agent_proc);
}

#[test]
fn rsyslog_omrelp_delivers_and_decides() {
    let rsyslogd = mirage_testkit::require_tool("rsyslogd");
    assert!(
        Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so").exists()
            || Path::new("/usr/lib/rsyslog/omrelp.so").exists(),
        "rsyslog-relp is not installed"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = MirageServer::start("", &d.join("server"));
    let sock = d.join("log.sock");
    std::fs::write(
        d.join("rsyslog.conf"),
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{sock}\" CreatePath=\"on\")\n\
             module(load=\"omrelp\")\n\
             *.* action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{port}\" \
             template=\"RSYSLOG_SyslogProtocol23Format\" queue.type=\"LinkedList\" \
             action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n",
            dir = d.display(),
            sock = sock.display(),
            port = server.port()
        ),
    )
    .unwrap();
    let _rsyslog = KillOnDrop::spawn(
        Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rsyslog did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..5 {
        let ok = Command::new("logger")
            .arg("--socket")
            .arg(&sock)
            .args(["-t", "sshd"])
            .arg(common::server::failed_password(
                "admin",
                "198.51.100.23",
                4000 + i,
            ))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let decision = server.wait_decision("198.51.100.23", Duration::from_secs(30));
    assert_eq!(decision["rule"], "ssh-bruteforce-account", "{decision}");
    let log = server.log();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
}
