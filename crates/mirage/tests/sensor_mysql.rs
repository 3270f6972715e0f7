//! The MySQL honeypot driven by real clients through the real binary: the
//! `mariadb` CLI (Debian's mariadb-client), PyMySQL, hydra and nmap -sV,
//! plus hostile input. Every login attempt and query must land in the JSONL
//! with the client's address, and wrong credentials must get the server's
//! exact error text.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

/// Start `mirage sensor` serving only mysql on a free loopback port.
fn mysql_sensor(config: &str) -> Sensor {
    Sensor::start("mysql", config, tempfile::tempdir().unwrap())
}

/// Run the mariadb CLI; returns (success, stdout, stderr).
fn mariadb(port: u16, args: &[&str]) -> (bool, String, String) {
    let cli = mirage_testkit::require_tool("mariadb");
    let out = Command::new(cli)
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--connect-timeout=10",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn attempts<'a>(events: &'a [Value], user: &str) -> Vec<&'a Value> {
    of_kind(events, "auth.attempt")
        .into_iter()
        .filter(|e| e["username"] == user)
        .collect()
}

const ACCEPT: &str = "[services.mysql]\naccept = [{ user = \"admin\", password = \"s3cret!\" }, { user = \"guest\", password = \"\" }]\n";

/// The CLI against both flavours: MySQL 8.0 (caching_sha2_password, where
/// libmariadb answers the full-authentication request with the password
/// itself) and MariaDB (mysql_native_password).
#[test]
fn mariadb_cli_denied_then_logged_in() {
    for (version, comment, plugin) in [
        (
            "8.0.36",
            "MySQL Community Server - GPL",
            "caching_sha2_password",
        ),
        (
            "5.5.5-10.11.6-MariaDB-0+deb12u1",
            "Debian 12",
            "mysql_native_password",
        ),
    ] {
        let mut s = mysql_sensor(&format!("{ACCEPT}version = \"{version}\"\n"));
        let p = s.port();
        let (ok, _, err) = mariadb(p, &["-u", "root", "-pwrong", "-e", "select 1"]);
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)"
        );
        let (ok, _, err) = mariadb(p, &["-u", "nobody", "-e", "select 1"]);
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "ERROR 1045 (28000): Access denied for user 'nobody'@'127.0.0.1' (using password: NO)"
        );
        let (ok, _, err) = mariadb(p, &["-u", "admin", "-ps3cret", "shop", "-e", "select 1"]);
        assert!(!ok && err.contains("1045"), "{err}");

        let (ok, out, err) = mariadb(
            p,
            &[
                "-u",
                "admin",
                "-ps3cret!",
                "shop",
                "-e",
                "select @@version_comment limit 1; SHOW DATABASES; select username, email from users where id = 1; SELECT VERSION(), DATABASE()",
            ],
        );
        assert!(ok, "{err}");
        assert!(out.contains(comment), "{out}");
        assert!(
            out.contains("information_schema\nmysql\nperformance_schema\nshop\nsys\n"),
            "{out}"
        );
        assert!(out.contains("admin\tadmin@shop.example"), "{out}");
        let version_fn = version.strip_prefix("5.5.5-").unwrap_or(version);
        assert!(out.contains(&format!("{version_fn}\tshop")), "{out}");
        // A query the server rejects: the client prints the server's error.
        let (ok, _, err) = mariadb(p, &["-u", "guest", "-e", "select * from nothere"]);
        assert!(!ok);
        assert!(
            err.trim()
                .ends_with("\nERROR 1046 (3D000) at line 1: No database selected"),
            "{err}"
        );

        s.stop();
        let events = read_events(&s.event_dir());
        let root = attempts(&events, "root");
        assert_eq!(root.len(), 1, "{root:#?}");
        assert_eq!(root[0]["result"], "failure");
        assert_eq!(root[0]["details"]["auth_plugin"], plugin);
        assert_eq!(
            root[0]["details"]["connect_attrs"]["_client_name"],
            "libmariadb"
        );
        assert_eq!(root[0]["details"]["connect_attrs"]["program_name"], "mysql");
        assert!(root[0]["details"]["auth_response"].as_str().unwrap().len() >= 40);
        if plugin == "caching_sha2_password" {
            // Full authentication: libmariadb sends the password itself.
            assert_eq!(root[0]["password"], "wrong");
        }
        let nobody = attempts(&events, "nobody");
        assert_eq!(nobody[0]["details"]["auth_response"], "");
        let admin = attempts(&events, "admin");
        assert_eq!(admin.len(), 2);
        assert_eq!(admin[0]["result"], "failure");
        assert_eq!(admin[1]["result"], "success");
        assert_eq!(admin[1]["details"]["database"], "shop");
        // The logged-in session's queries, each with the client's address.
        let session = &admin[1]["session"];
        let connect = of_kind(&events, "session.connect")
            .into_iter()
            .find(|e| &e["session"] == session)
            .unwrap();
        let queries: Vec<&Value> = of_kind(&events, "command")
            .into_iter()
            .filter(|e| &e["session"] == session)
            .collect();
        let raws: Vec<&str> = queries.iter().map(|e| e["raw"].as_str().unwrap()).collect();
        assert!(
            raws.contains(&"select @@version_comment limit 1"),
            "{raws:?}"
        );
        assert!(raws.contains(&"SHOW DATABASES"), "{raws:?}");
        assert!(
            raws.contains(&"select username, email from users where id = 1"),
            "{raws:?}"
        );
        for q in &queries {
            assert_eq!(q["src_ip"], "127.0.0.1");
            assert_eq!(q["src_port"], connect["src_port"]);
            assert_eq!(q["dst_port"], p);
            assert_eq!(q["service"], "mysql");
        }
        let rejected = of_kind(&events, "command")
            .into_iter()
            .find(|e| e["raw"] == "select * from nothere")
            .unwrap();
        assert_eq!(rejected["error"], true);
        assert_eq!(
            of_kind(&events, "session.connect").len(),
            of_kind(&events, "session.close").len()
        );
    }
}

/// PyMySQL: caching_sha2_password over plain TCP asks for the server's RSA
/// key and sends the password encrypted to it, so the honeypot records the
/// password of a failed login in clear.
#[test]
fn pymysql_denied_then_logged_in() {
    let mut s = mysql_sensor(ACCEPT);
    let script = format!(
        r#"
import pymysql
try:
    pymysql.connect(host="127.0.0.1", port={port}, user="root", password="toor", connect_timeout=10)
    raise SystemExit("wrong password accepted")
except pymysql.err.OperationalError as e:
    assert e.args == (1045, "Access denied for user 'root'@'127.0.0.1' (using password: YES)"), e.args
c = pymysql.connect(host="127.0.0.1", port={port}, user="admin", password="s3cret!", database="shop", connect_timeout=10)
cur = c.cursor()
cur.execute("SELECT VERSION()")
assert cur.fetchall() == (("8.0.36",),)
cur.execute("show tables")
assert ("users",) in cur.fetchall()
cur.execute("select id, username from users where username = 'jwilson'")
assert cur.fetchall() == ((2, "jwilson"),)
c.ping()
try:
    cur.execute("selec 1")
except pymysql.err.ProgrammingError as e:
    assert e.args[0] == 1064 and "near 'selec 1' at line 1" in e.args[1], e.args
cur.execute("select 0x3c3f706870206576616c28245f504f53545b615d293b3f3e into outfile '/var/www/html/x.php'")
print(c.host_info, c._sock.getsockname()[1])
c.close()
"#,
        port = s.port()
    );
    let out = Command::new(mirage_testkit::venv_python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let client_port: u64 = stdout.split_whitespace().last().unwrap().parse().unwrap();
    s.stop();
    let events = read_events(&s.event_dir());
    let root = attempts(&events, "root");
    assert_eq!(root[0]["password"], "toor");
    assert_eq!(root[0]["details"]["stage"], "rsa_password");
    assert_eq!(
        root[0]["details"]["connect_attrs"]["_client_name"],
        "pymysql"
    );
    let admin = attempts(&events, "admin");
    assert_eq!(admin[0]["result"], "success");
    assert_eq!(admin[0]["details"]["stage"], "fast_auth");
    assert_eq!(admin[0]["src_port"], client_port);
    let mine: Vec<&Value> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["src_port"] == client_port)
        .collect();
    assert!(mine.iter().any(|e| e["raw"] == "SELECT VERSION()"));
    assert!(mine.iter().any(|e| e["command"] == "ping"));
    let attack = of_kind(&events, "attack")
        .into_iter()
        .find(|e| e["technique"] == "mysql.file_write")
        .expect("file write recorded");
    assert_eq!(attack["evidence"]["path"], "/var/www/html/x.php");
    assert_eq!(attack["evidence"]["class"], "webshell");
    assert_eq!(attack["tags"], serde_json::json!(["webshell"]));
    let payload = of_kind(&events, "payload")
        .into_iter()
        .find(|e| e["session"] == attack["session"])
        .expect("payload kept");
    assert_eq!(payload["data_b64"], "PD9waHAgZXZhbCgkX1BPU1RbYV0pOz8+");
}

/// hydra: every password tried is an auth.attempt (with the password, which
/// libmariadb reveals during caching_sha2 full authentication).
#[test]
fn hydra_every_attempt_is_recorded() {
    let hydra = mirage_testkit::require_tool("hydra");
    let mut s = mysql_sensor("");
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "123456", "password", "root", "toor", "qwerty", "mysql", "admin123", "letmein",
    ];
    std::fs::write(dir.path().join("list"), words.join("\n") + "\n").unwrap();
    let out = Command::new(hydra)
        .current_dir(dir.path())
        .args(["-I", "-l", "root", "-P", "list"])
        .arg(format!("mysql://127.0.0.1:{}", s.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 valid password"), "{text}");
    s.stop();
    let events = read_events(&s.event_dir());
    let root = attempts(&events, "root");
    let mut tried: Vec<&str> = root
        .iter()
        .map(|e| e["password"].as_str().unwrap())
        .collect();
    tried.sort();
    let mut want = words.to_vec();
    want.sort();
    assert_eq!(tried, want);
    assert!(
        root.iter()
            .all(|e| e["result"] == "failure" && e["src_ip"] == "127.0.0.1")
    );
}

/// nmap's version detection names MySQL and the configured version (its
/// probes match the handshake on any port; the scan runs in a private
/// namespace on 3306 all the same, as a real scan would find it).
#[test]
fn nmap_identifies_mysql_with_configured_version() {
    for (version, want) in [
        ("8.0.36", "MySQL 8.0.36"),
        ("5.7.44", "MySQL 5.7.44"),
        (
            "5.5.5-10.11.6-MariaDB-0+deb12u1",
            "MySQL 5.5.5-10.11.6-MariaDB-0+deb12u1",
        ),
    ] {
        let config = format!("[services.mysql]\nversion = \"{version}\"\n");
        let line = common::nmap_standard_port("mysql", 3306, &config);
        assert!(line.contains("open") && line.contains("mysql"), "{line}");
        assert!(line.contains(want), "{line}");
    }
}

/// Read packets until the server closes; returns everything it sent after
/// the greeting.
fn exchange(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let greeting = read_packet(&mut c);
    assert_eq!(greeting.first(), Some(&10), "protocol 10 greeting");
    let _ = c.write_all(send);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

fn read_packet(c: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 4];
    c.read_exact(&mut h).unwrap();
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; len];
    c.read_exact(&mut p).unwrap();
    p
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

/// A 4.1 handshake response for `user` with no password.
fn login_packet(user: &str) -> Vec<u8> {
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_FLAG | TRANSACTIONS
    let caps: u32 = 0x0200 | 0x8000 | 0x8_0000 | 0x4 | 0x2000;
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1, 45]);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(b"caching_sha2_password\0");
    packet(1, &p)
}

/// Log in as the password-less `guest`, returning the open connection.
fn login(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    read_packet(&mut c);
    c.write_all(&login_packet("guest")).unwrap();
    let ok = read_packet(&mut c);
    assert_eq!(ok.first(), Some(&0), "OK after login: {ok:?}");
    c
}

fn ping_within(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    let mut c = login(addr);
    c.write_all(&packet(0, &[0x0e])).unwrap();
    assert_eq!(read_packet(&mut c).first(), Some(&0));
    assert!(
        start.elapsed() < limit,
        "login+ping took {:?}",
        start.elapsed()
    );
}

fn err_text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// Bad input: oversized lengths, bogus sequence ids, garbage handshakes
/// and a half-open flood. The sensor answers like a server, stays within
/// its memory cap, and logs nothing above INFO.
#[test]
fn hostile_input_and_half_open_flood() {
    const RSS_CAP_MIB: u64 = 128;
    mirage_net::raise_fd_limit().unwrap();
    let s = mysql_sensor(&format!(
        "[limits]\nmax_connections_per_ip = 6000\n{ACCEPT}"
    ));
    let addr = s.addr;

    // A declared 16 MiB handshake response: refused from its header.
    let r = exchange(addr, b"\xff\xff\xff\x01AAAA");
    assert!(
        err_text(&r).contains("Got a packet bigger than 'max_allowed_packet' bytes"),
        "{}",
        err_text(&r)
    );
    // A wrong sequence id (HTTP read as a MySQL header).
    let r = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        err_text(&r).contains("#08S01Got packets out of order"),
        "{}",
        err_text(&r)
    );
    // Truncated and garbage handshake responses.
    let r = exchange(addr, &packet(1, b"\x05\xa2"));
    assert!(
        err_text(&r).contains("#08S01Bad handshake"),
        "{}",
        err_text(&r)
    );
    let r = exchange(addr, &packet(1, &[0xff; 40]));
    assert!(err_text(&r).contains("Bad handshake"), "{}", err_text(&r));
    // After login: a command with a bogus sequence id, an unknown command.
    let mut c = login(addr);
    c.write_all(&packet(0, &[0x99])).unwrap();
    assert!(err_text(&read_packet(&mut c)).contains("Unknown command"));
    c.write_all(&packet(7, &[0x0e])).unwrap();
    assert!(err_text(&read_packet(&mut c)).contains("Got packets out of order"));
    // Declared lengths within the limit but never sent: 300 sessions each
    // promising 4 MiB must not reserve 1.2 GB.
    let mut promisers = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"\xff\xff\x3f\x01abc").unwrap();
        promisers.push(c);
    }
    // 4,000 half-open sessions: greeting sent, no response ever.
    let idle = common::idle_connections(addr, 4000);
    std::thread::sleep(Duration::from_millis(500));
    ping_within(addr, Duration::from_secs(2));
    s.assert_peak_rss_under(RSS_CAP_MIB, "4000 half-open + hostile");
    drop(idle);
    drop(promisers);
    let mut s = s;
    let events = s.stop_after_hostile_input();
    let errors = of_kind(&events, "protocol.error");
    assert!(errors.len() >= 6, "{errors:#?}");
    assert!(errors.iter().all(|e| e["src_ip"] == "127.0.0.1"));
}

/// The MariaDB flavour against a real mariadb-server, byte for byte: the
/// same raw client (`tests/data/mysql_transcript.py`: greeting, denied
/// logins, broken handshakes, then a logged-in session with the queries
/// clients send at connect, errors and state changes, as the mariadb CLI
/// and as PyMySQL) runs against both, in one private namespace, and the
/// transcripts of every server packet must be identical (connection id and
/// scramble masked).
#[test]
fn mariadb_flavour_matches_a_real_mariadb_server() {
    let mariadbd = mirage_testkit::require_tool("mariadbd");
    let install = mirage_testkit::require_tool("mariadb-install-db");
    let ns = common::Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ok = Command::new(install)
        .arg(format!("--datadir={}", data.display()))
        .args(["--user=root", "--auth-root-authentication-method=normal"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "mariadb-install-db failed");
    let sock = dir.path().join("mysqld.sock");
    // Debian's server defaults (50-server.cnf): utf8mb4_general_ci; no DNS.
    let _real = mirage_testkit::KillOnDrop::spawn(
        ns.cmd(mariadbd.to_str().unwrap())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .args([
                "--port=3306",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let cli = mirage_testkit::require_tool("mariadb");
    let start = Instant::now();
    loop {
        let created = Command::new(&cli)
            .arg(format!("--socket={}", sock.display()))
            .args([
                "-uroot",
                "-e",
                "CREATE USER 'admin'@'%' IDENTIFIED BY 's3cret!'; GRANT ALL ON *.* TO 'admin'@'%'",
            ])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if created {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "mariadbd did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The honeypot imitates exactly this server.
    let out = Command::new(&mariadbd).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "Ver")
        .nth(1)
        .unwrap()
        .to_owned();
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[services.mysql]\nversion = \"5.5.5-{version}\"\naccept = [{{ user = \"admin\", password = \"s3cret!\" }}]\n"
        ),
    )
    .unwrap();
    let _hp = mirage_testkit::KillOnDrop::spawn(
        ns.cmd(env!("CARGO_BIN_EXE_mirage"))
            .args(["sensor", "--service", "mysql=127.0.0.1:3307", "--config"])
            .arg(&cfg)
            .arg("--log-dir")
            .arg(dir.path().join("events"))
            .stderr(Stdio::null()),
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mysql_transcript.py");
    let transcript = |port: &str| {
        let start = Instant::now();
        loop {
            let out = ns
                .cmd("python3")
                .arg(&script)
                .args([port, "admin", "s3cret!"])
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let real = transcript("3306");
    let honeypot = transcript("3307");
    assert!(real.lines().count() > 80, "{real}");
    for (i, (r, h)) in real.lines().zip(honeypot.lines()).enumerate() {
        assert_eq!(
            r,
            h,
            "line {} differs\nreal:\n{real}\nhoneypot:\n{honeypot}",
            i + 1
        );
    }
    assert_eq!(
        real.lines().count(),
        honeypot.lines().count(),
        "{real}\n---\n{honeypot}"
    );
}
