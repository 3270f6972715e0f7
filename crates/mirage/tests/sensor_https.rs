//! The HTTPS honeypot through the real binary: curl trusting the sensor's
//! CA and curl -k, openssl s_client verifying the on-the-fly leaf, a client
//! refusing the certificate, plain HTTP on the TLS port, and nmap -sV.
//! The JA3/JA4 the events carry for curl are compared with the values
//! tshark and ja4plus computed for the same curl invocation
//! (`crates/mirage-proto/tests/data/tls/curl-h2.json`).

mod common;

use std::process::{Command, Stdio};

use common::{Sensor, of_kind, read_events};
use serde_json::Value;

fn https_sensor() -> Sensor {
    Sensor::start("https", "", tempfile::tempdir().unwrap())
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new(mirage_testkit::require_tool("curl"))
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap()
}

fn hellos(events: &[Value]) -> Vec<&Value> {
    of_kind(events, "command")
        .into_iter()
        .filter(|e| e["command"] == "tls.client_hello")
        .collect()
}

fn recorded(fixture: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mirage-proto/tests/data/tls")
        .join(format!("{fixture}.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn curl_and_openssl_get_a_certificate_for_their_sni_and_are_fingerprinted() {
    let mut s = https_sensor();
    let p = s.port();
    let ca = s.event_dir().join("tls/ca.crt");
    assert!(ca.exists(), "the CA is made at start");
    let resolve = format!("example.test:{p}:127.0.0.1");

    // curl trusting only the sensor's CA: the leaf verifies for the SNI.
    let out = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://example.test:{p}/login"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("<form"), "{body}");

    // curl -k to the IP: no SNI, the nginx 404 page.
    let out = curl(&["-k", "-i", &format!("https://127.0.0.1:{p}/nothing-here")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 404") && text.contains("nginx/1.22.1"),
        "{text}"
    );

    // curl with the system trust store refuses the certificate.
    let out = curl(&["--resolve", &resolve, &format!("https://example.test:{p}/")]);
    assert!(!out.status.success());

    // openssl s_client verifies the chain and sees the SNI in the SAN.
    let out = Command::new(mirage_testkit::require_tool("openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{p}")])
        .args([
            "-servername",
            "example.test",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&ca)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("subject=CN = example.test"), "{text}");

    s.stop();
    let events = read_events(&s.event_dir());
    for e in &events {
        assert_eq!(e["service"], "https");
    }
    let h = hellos(&events);
    assert_eq!(h.len(), 4, "one per connection: {h:#?}");
    // Same curl, same flags as the fixture: the independent tools' values.
    let fixture = recorded("curl-h2");
    let first = &h[0]["details"]["tls"];
    assert_eq!(first["sni"], "example.test");
    assert_eq!(first["ja4"], fixture["ja4"]);
    assert_eq!(first["ja3_string"], fixture["ja3_full"]);
    assert_eq!(first["ja3"], fixture["ja3"]);
    assert_eq!(first["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert_eq!(first["handshake"], "ok");
    let no_sni = &h[1]["details"]["tls"];
    assert!(no_sni.get("sni").is_none());
    assert_eq!(no_sni["ja4"], recorded("curl-ip")["ja4"]);
    let refused = &h[2];
    assert_eq!(refused["details"]["tls"]["handshake"], "failed");
    assert_eq!(refused["error"], true);
    assert!(
        refused["details"]["tls"]["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("alert"),
        "{refused}"
    );
    assert_eq!(
        h[3]["details"]["tls"]["ja4"],
        recorded("openssl-sni")["ja4"]
    );

    // The decrypted requests, each with the short TLS form.
    let requests: Vec<&Value> = of_kind(&events, "command")
        .into_iter()
        .filter(|e| e["command"] != "tls.client_hello")
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0]["raw"], "GET /login HTTP/1.1");
    assert_eq!(requests[0]["details"]["tls"]["sni"], "example.test");
    assert_eq!(requests[0]["details"]["tls"]["ja4"], fixture["ja4"]);
    assert_eq!(requests[1]["raw"], "GET /nothing-here HTTP/1.1");
}

#[test]
fn plain_http_and_garbage_on_the_tls_port_are_recorded() {
    use std::io::{Read, Write};
    let mut s = https_sensor();
    let p = s.port();
    for data in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
    ] {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        c.write_all(data).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        assert!(buf.is_empty(), "closed without an answer");
    }
    // A hostile SNI: the handshake goes on with the default certificate or
    // fails; the raw name is kept escaped, never used as a name.
    let out = Command::new(mirage_testkit::require_tool("openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{p}")])
        .args(["-servername", "evil\x01<b>.test"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("CN = evil"), "{text}");
    // The sensor is still serving.
    let ok = curl(&["-k", &format!("https://127.0.0.1:{p}/")]);
    assert!(ok.status.success());
    s.stop();
    let events = read_events(&s.event_dir());
    let errors = of_kind(&events, "protocol.error");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a TLS ClientHello")
    );
    // The bytes themselves, base64: the plain HTTP request line.
    assert_eq!(
        errors[0]["data_b64"],
        "R0VUIC8gSFRUUC8xLjENCkhvc3Q6IHgNCg0K"
    );
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a ClientHello")
    );
    let evil: Vec<&Value> = hellos(&events)
        .into_iter()
        .filter(|e| e["details"]["tls"].get("sni_raw").is_some())
        .collect();
    assert_eq!(evil.len(), 1, "{events:#?}");
    let raw = evil[0]["details"]["tls"]["sni_raw"].as_str().unwrap();
    // Kept as sent (JSON escapes the control byte on disk), and no
    // certificate was made for it.
    assert_eq!(raw, "evil\x01<b>.test");
    assert!(evil[0]["details"]["tls"].get("sni").is_none());
}

/// nmap -sV sees TLS, then the nginx behind it.
#[test]
fn nmap_names_https_and_nginx() {
    let mut s = https_sensor();
    let report = common::nmap_sv(None, s.port(), &["--version-intensity", "2"]);
    let line = common::nmap_port_line(&report, s.port());
    assert!(
        (line.contains("ssl/http") || line.contains("https")) && line.contains("nginx 1.22.1"),
        "{line}"
    );
    s.stop();
    let events = read_events(&s.event_dir());
    assert!(!hellos(&events).is_empty());
}
