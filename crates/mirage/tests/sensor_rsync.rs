//! The rsync daemon honeypot driven by the real `rsync` client (Debian's
//! package) through the real binary: module listings compared with a real
//! `rsync --daemon` serving the same modules, file listings and downloads
//! of virtual files, the challenge-response login with wrong and right
//! passwords, uploads landing in the quarantine by sha256, nmap -sV, and
//! hostile input.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

const MTIME: i64 = 1_704_164_645; // 2024-01-02 03:04:05 UTC

/// Modules shared by the honeypot config and the real daemon's config.
fn honeypot_config() -> String {
    format!(
        r#"[services.rsync]
motd = "Welcome to the backup server\nAuthorized use only"

[[services.rsync.modules]]
name = "backup"
comment = "Nightly backups"
files = [{{ path = "a.txt", content = "hello\n", mtime = {MTIME} }}, {{ path = "big.bin", size = 3000, mtime = {MTIME} }}, {{ path = "sub/s.txt", content = "s\n", mode = 0o600, mtime = {MTIME} }}]

[[services.rsync.modules]]
name = "www"
comment = "Web root"
read_only = false

[[services.rsync.modules]]
name = "a-very-long-module-name"
comment = ""

[[services.rsync.modules]]
name = "hidden"
comment = "not listed"
list = false

[[services.rsync.modules]]
name = "private"
comment = "Private archive"
auth = true
accept = [{{ user = "admin", password = "s3cret!" }}]
files = [{{ path = "keys.txt", content = "k\n" }}]
"#
    )
}

fn rsync_sensor() -> Sensor {
    Sensor::start("rsync", &honeypot_config(), tempfile::tempdir().unwrap())
}

/// Run the rsync client; returns (exit code, stdout, stderr).
fn rsync(args: &[&str]) -> (i32, String, String) {
    let cli = mirage_testkit::require_tool("rsync");
    let out = Command::new(cli)
        .args(["--contimeout=10", "--timeout=20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("rsync://127.0.0.1:{}/{path}", addr.port())
}

fn touch(path: &Path, mtime: i64) {
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("@{mtime}"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A real `rsync --daemon` with the same modules, MOTD and files (for the
/// side-by-side comparison), on a free loopback port.
fn real_daemon(dir: &Path) -> (mirage_testkit::KillOnDrop, SocketAddr) {
    use std::os::unix::fs::PermissionsExt;
    let backup = dir.join("backup");
    std::fs::create_dir_all(backup.join("sub")).unwrap();
    std::fs::write(backup.join("a.txt"), "hello\n").unwrap();
    std::fs::write(backup.join("big.bin"), vec![b'x'; 3000]).unwrap();
    std::fs::write(backup.join("sub/s.txt"), "s\n").unwrap();
    for (p, m) in [("a.txt", 0o644), ("big.bin", 0o644), ("sub/s.txt", 0o600)] {
        std::fs::set_permissions(backup.join(p), std::fs::Permissions::from_mode(m)).unwrap();
        touch(&backup.join(p), MTIME);
    }
    for d in ["sub", ""] {
        std::fs::set_permissions(backup.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
        touch(&backup.join(d), MTIME);
    }
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        dir.join("motd"),
        "Welcome to the backup server\nAuthorized use only\n",
    )
    .unwrap();
    std::fs::write(dir.join("secrets"), "admin:s3cret!\n").unwrap();
    std::fs::set_permissions(dir.join("secrets"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = dir.display();
    let conf = format!(
        "use chroot = no\nuid = root\ngid = root\npid file = {d}/pid\nlog file = {d}/log\nmotd file = {d}/motd\n\
         [backup]\n\tpath = {d}/backup\n\tcomment = Nightly backups\n\
         [www]\n\tpath = {d}/empty\n\tcomment = Web root\n\tread only = no\n\
         [a-very-long-module-name]\n\tpath = {d}/empty\n\
         [hidden]\n\tpath = {d}/empty\n\tcomment = not listed\n\tlist = no\n\
         [private]\n\tpath = {d}/empty\n\tcomment = Private archive\n\tauth users = admin\n\tsecrets file = {d}/secrets\n"
    );
    std::fs::write(dir.join("rsyncd.conf"), conf).unwrap();
    let port = mirage_testkit::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = mirage_testkit::KillOnDrop::spawn(
        Command::new(mirage_testkit::require_tool("rsync"))
            .args([
                "--daemon",
                "--no-detach",
                "--address",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .arg("--config")
            .arg(dir.join("rsyncd.conf"))
            .stderr(Stdio::null()),
    );
    mirage_testkit::wait_for_port(addr, Duration::from_secs(10));
    (child, addr)
}

/// The first line a server sends.
fn greeting(addr: SocketAddr) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while c.read(&mut b).unwrap_or(0) == 1 {
        got.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `rsync rsync://host/` and `rsync rsync://host/backup/` print exactly
/// what a real daemon with the same modules prints (MOTD, padded names and
/// comments, unlisted modules left out; file modes, sizes and dates), and
/// the greeting is Debian 12's rsync 3.2.7 one.
#[test]
fn listings_match_a_real_rsync_daemon() {
    let s = rsync_sensor();
    let real_dir = tempfile::tempdir().unwrap();
    let (_daemon, real) = real_daemon(real_dir.path());

    assert_eq!(
        greeting(s.addr),
        "@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n"
    );

    let ours = rsync(&[&url(s.addr, "")]);
    let theirs = rsync(&[&url(real, "")]);
    assert_eq!(ours, theirs);
    assert_eq!(ours.0, 0);
    assert_eq!(
        ours.1,
        "Welcome to the backup server\nAuthorized use only\n\n\
         backup         \tNightly backups\n\
         www            \tWeb root\n\
         a-very-long-module-name\t\n\
         private        \tPrivate archive\n"
    );

    for path in ["backup/", "backup/sub/", "backup/a.txt", "backup/sub"] {
        let ours = rsync(&[&url(s.addr, path)]);
        let theirs = rsync(&[&url(real, path)]);
        assert_eq!(ours, theirs, "{path}");
        assert_eq!(ours.0, 0, "{path}: {}", ours.2);
    }
    let ours = rsync(&["-r", &url(s.addr, "backup/")]);
    let theirs = rsync(&["-r", &url(real, "backup/")]);
    assert_eq!(ours, theirs);
    assert!(
        ours.1
            .contains("-rw-------              2 2024/01/02 03:04:05 sub/s.txt"),
        "{}",
        ours.1
    );

    // Unknown modules: the daemon's error and exit code 5.
    let ours = rsync(&[&url(s.addr, "nope/")]);
    let theirs = rsync(&[&url(real, "nope/")]);
    assert_eq!(ours.0, 5);
    assert_eq!(ours.0, theirs.0);
    assert!(
        ours.2.contains("@ERROR: Unknown module 'nope'"),
        "{}",
        ours.2
    );
    assert_eq!(first_line(&ours.2), first_line(&theirs.2));

    let mut s = s;
    s.stop();
    let events = read_events(&s.event_dir());
    let cmds = of_kind(&events, "command");
    assert!(cmds.iter().any(|e| e["command"] == "list"));
    assert!(
        cmds.iter()
            .any(|e| e["command"] == "module" && e["args"][0] == "nope" && e["error"] == true)
    );
    assert!(
        cmds.iter().any(|e| e["command"] == "rsync"
            && e["raw"].as_str().unwrap().starts_with("--server --sender"))
    );
    assert!(of_kind(&events, "protocol.error").is_empty());
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Virtual files come down whole, with their modes and times.
#[test]
fn downloads_of_virtual_files() {
    let s = rsync_sensor();
    let dl = tempfile::tempdir().unwrap();
    let (code, _, err) = rsync(&["-a", &url(s.addr, "backup/"), dl.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dl.path().join("a.txt")).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(dl.path().join("sub/s.txt")).unwrap(), b"s\n");
    assert_eq!(
        std::fs::metadata(dl.path().join("big.bin")).unwrap().len(),
        3000
    );
    // Protocol 30 (rsync 3.0.x) lists and downloads the same.
    let p31 = rsync(&["-r", &url(s.addr, "backup/")]);
    let p30 = rsync(&["--protocol=30", "-r", &url(s.addr, "backup/")]);
    assert_eq!(p30, p31);
    let dl30 = tempfile::tempdir().unwrap();
    let (code, _, err) = rsync(&[
        "--protocol=30",
        "-a",
        &url(s.addr, "backup/a.txt"),
        dl30.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(dl30.path().join("a.txt")).unwrap(),
        b"hello\n"
    );
    let mut s = s;
    s.stop();
    let events = read_events(&s.event_dir());
    let downloads: Vec<&str> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["command"] == "download")
        .map(|e| e["args"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        downloads,
        [
            "backup/a.txt",
            "backup/big.bin",
            "backup/sub/s.txt",
            "backup/a.txt"
        ]
    );
}

fn password_file(dir: &Path, pw: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("pw-{}", pw.len()));
    std::fs::write(&p, format!("{pw}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.to_str().unwrap().to_owned()
}

/// base64 (no padding) of sha512(password + challenge): what the client
/// must have sent, computed independently with Python's hashlib.
fn expected_response(password: &str, challenge: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys,hashlib,base64;print(base64.b64encode(hashlib.sha512((sys.argv[1]+sys.argv[2]).encode()).digest()).decode().rstrip('='))",
            password,
            challenge,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A wrong password gets the daemon's "auth failed" and exit code 5 (the
/// real daemon's result too); the configured one is verified from the
/// response hash and lets the client in. Both attempts are recorded with
/// the user, the challenge and the response.
#[test]
fn challenge_response_login_wrong_then_right() {
    let s = rsync_sensor();
    let real_dir = tempfile::tempdir().unwrap();
    let (_daemon, real) = real_daemon(real_dir.path());
    let pw = tempfile::tempdir().unwrap();
    let wrong = password_file(pw.path(), "guess");
    let right = password_file(pw.path(), "s3cret!");

    let ours = rsync(&[
        "--password-file",
        &wrong,
        &format!("rsync://admin@127.0.0.1:{}/private/", s.port()),
    ]);
    let theirs = rsync(&[
        "--password-file",
        &wrong,
        &format!("rsync://admin@127.0.0.1:{}/private/", real.port()),
    ]);
    assert_eq!(ours.0, 5);
    assert_eq!(ours.0, theirs.0);
    assert!(
        ours.2.contains("@ERROR: auth failed on module private"),
        "{}",
        ours.2
    );
    assert_eq!(first_line(&ours.2), first_line(&theirs.2));

    let (code, out, err) = rsync(&[
        "--password-file",
        &right,
        &format!("rsync://admin@127.0.0.1:{}/private/", s.port()),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" keys.txt\n"), "{out}");

    let mut s = s;
    s.stop();
    let events = read_events(&s.event_dir());
    let attempts = of_kind(&events, "auth.attempt");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    for (a, result, pw) in [
        (attempts[0], "failure", "guess"),
        (attempts[1], "success", "s3cret!"),
    ] {
        assert_eq!(a["method"], "challenge-response");
        assert_eq!(a["username"], "admin");
        assert_eq!(a["result"], result);
        assert_eq!(a["details"]["module"], "private");
        assert_eq!(a["details"]["digest"], "sha512");
        let challenge = a["details"]["challenge"].as_str().unwrap();
        assert_eq!(challenge.len(), 86, "{challenge}");
        assert_eq!(a["details"]["response"], expected_response(pw, challenge));
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}

/// Uploads into a writable module land in quarantine/<sha256> with their
/// bytes rebuilt from the literal tokens, each with a `payload` event that
/// points to it; writes to authorized_keys and cron paths are attacks; a
/// read-only module refuses.
#[test]
fn uploads_land_in_the_quarantine() {
    let s = rsync_sensor();
    let src = tempfile::tempdir().unwrap();
    // 300 KiB of varied bytes: many 32 KiB tokens and frames.
    let big: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.path().join("big.bin"), &big).unwrap();
    std::fs::write(
        src.path().join("shell.php"),
        b"<?php system($_GET['c']); ?>\n",
    )
    .unwrap();
    std::fs::write(
        src.path().join("key.pub"),
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttacker x@y\n",
    )
    .unwrap();
    let p = |n: &str| src.path().join(n).to_str().unwrap().to_owned();

    let (code, _, err) = rsync(&[&p("big.bin"), &p("shell.php"), &url(s.addr, "www/")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = rsync(&[
        "-av",
        &p("key.pub"),
        &url(s.addr, "www/root/.ssh/authorized_keys"),
    ]);
    assert_eq!(code, 0, "{err}");
    // Protocol 30.
    std::fs::write(src.path().join("p30.txt"), b"protocol thirty\n").unwrap();
    let (code, _, err) = rsync(&["--protocol=30", &p("p30.txt"), &url(s.addr, "www/")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = rsync(&[&p("shell.php"), &url(s.addr, "backup/")]);
    assert_ne!(code, 0);
    assert!(err.contains("ERROR: module is read only"), "{err}");

    let mut s = s;
    s.stop();
    let q = s.event_dir().join("quarantine");
    let events = read_events(&s.event_dir());
    let payloads = of_kind(&events, "payload");
    assert_eq!(payloads.len(), 4, "{payloads:#?}");
    for data in [
        &big[..],
        b"<?php system($_GET['c']); ?>\n",
        b"protocol thirty\n",
    ] {
        let sha = sha256_hex(data);
        assert_eq!(std::fs::read(q.join(&sha)).unwrap(), data);
        let p = payloads
            .iter()
            .find(|e| e["sha256"] == sha.as_str())
            .expect("payload event");
        assert_eq!(p["stored"], format!("quarantine/{sha}"));
        assert_eq!(p["len"], data.len() as u64);
        assert_eq!(p["src_ip"], "127.0.0.1");
    }
    let uploads: Vec<&Value> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["command"] == "upload")
        .collect();
    assert!(
        uploads
            .iter()
            .any(|e| e["args"][0] == "www/big.bin" && e["args"][1] == "307200")
    );
    assert!(uploads.iter().any(|e| e["args"][0] == "www/shell.php"));
    assert!(
        uploads.iter().any(|e| e["error"] == true),
        "read-only refusal recorded"
    );
    let attacks = of_kind(&events, "attack");
    assert!(
        attacks
            .iter()
            .any(|a| a["technique"] == "rsync.authorized_keys_write"),
        "{attacks:#?}"
    );
}

/// nmap -sV names the service and the protocol version (its probe matches
/// `^@RSYNCD: (\d+)`), on rsync's port in a private namespace.
#[test]
fn nmap_identifies_rsync_and_protocol() {
    let line = common::nmap_standard_port("rsync", 873, "[services.rsync]\nprotocol = 30\n");
    assert!(line.contains("open") && line.contains("rsync"), "{line}");
    assert!(line.contains("protocol version 30"), "{line}");
}

/// Send `data`, then read until the server closes (or 5 s).
fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(data);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    got
}

/// A client that gets through the handshake into module `www` without
/// checksum negotiation (no `v` capability), then sends `frames`.
fn after_handshake(module: &str) -> Vec<u8> {
    let mut v = format!("@RSYNCD: 31.0 md5\n{module}\n").into_bytes();
    v.extend_from_slice(b"--server\0-e.LsfxCI\0.\0");
    v.extend_from_slice(format!("{module}/\0\0").as_bytes());
    v
}

/// Garbage greetings, oversized lines, bogus multiplexed lengths and
/// tags, an oversized file name and a block-match token without a basis
/// each end their session with a `protocol.error`; thousands of half-open
/// connections later a real client still lists the modules; no panic.
#[test]
fn hostile_input_and_half_open_flood() {
    mirage_net::raise_fd_limit().unwrap();
    let s = Sensor::start(
        "rsync",
        &format!(
            "[limits]\nmax_connections_per_ip = 6000\n{}",
            honeypot_config()
        ),
        tempfile::tempdir().unwrap(),
    );
    let addr = s.addr;

    let r = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(String::from_utf8_lossy(&r).contains("@ERROR: protocol startup error\n"));
    let r = exchange(addr, &vec![b'A'; 10_000]);
    assert!(String::from_utf8_lossy(&r).starts_with("@RSYNCD: 31.0"));
    // A 16 MiB multiplexed frame header.
    let mut v = after_handshake("www");
    v.extend_from_slice(&[0xff, 0xff, 0xff, 0x07]);
    exchange(addr, &v);
    // A frame with a tag below MPLEX_BASE.
    let mut v = after_handshake("www");
    v.extend_from_slice(&[4, 0, 0, 0x02, 1, 2, 3, 4]);
    exchange(addr, &v);
    // A file-list entry whose name is 1 MB long (long-name varint).
    let mut v = after_handshake("www");
    let entry = [0x40u8, 0xe0, 0x40, 0x42, 0x0f];
    v.extend_from_slice(&[entry.len() as u8, 0, 0, 0x07]);
    v.extend_from_slice(&entry);
    exchange(addr, &v);
    // A valid one-file list, then a block-match token (no basis exists).
    let mut v = after_handshake("www");
    let mut data = vec![0x18u8, 5];
    data.extend_from_slice(b"x.txt");
    data.extend_from_slice(&[0, 4, 0]); // size 4
    data.extend_from_slice(b"e%}\x93"); // mtime
    data.extend_from_slice(&0o100644u32.to_le_bytes());
    data.push(0); // end of list (byte flags)
    data.push(1); // ndx 0
    data.extend_from_slice(&0xa000u16.to_le_bytes());
    data.extend_from_slice(&[0; 16]);
    data.extend_from_slice(&(-5i32).to_le_bytes());
    v.extend_from_slice(&[data.len() as u8, 0, 0, 0x07]);
    v.extend_from_slice(&data);
    exchange(addr, &v);

    let idle = common::idle_connections(addr, 3000);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let (code, out, err) = rsync(&[&url(addr, "")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backup         \tNightly backups\n"), "{out}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    s.assert_peak_rss_under(128, "3000 half-open + hostile");
    drop(idle);

    let mut s = s;
    let events = s.stop_after_hostile_input();
    let errors: Vec<String> = of_kind(&events, "protocol.error")
        .iter()
        .map(|e| e["error"].as_str().unwrap().to_owned())
        .collect();
    eprintln!("{errors:#?}");
    assert!(
        errors.iter().any(|e| e.starts_with("greeting")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("line too long")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("multiplex frame too long")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("invalid multiplex tag")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("file name too long")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("block match token")),
        "{errors:?}"
    );
    assert_eq!(
        of_kind(&events, "session.connect").len(),
        of_kind(&events, "session.close").len()
    );
}
