//! The on-the-fly CA against real clients: `openssl s_client` verifies the
//! issued leaf with nothing but `ca.crt`, the leaf certifies the SNI, a
//! second connection gets the cached leaf, a restart keeps the CA, and
//! hostile names never become certificate names.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use mirage_net::CertAuthority;
use mirage_net::tls::TlsAcceptor;
use tokio::io::AsyncWriteExt;

/// Serve TLS with `config` on 127.0.0.1 until the test ends: each
/// connection gets "hello\n" after the handshake.
async fn serve(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

struct SClient {
    stdout: String,
    /// The leaf the server sent, PEM.
    leaf: String,
}

/// `openssl s_client` with `args`, verifying against `ca` and failing on
/// any verification error.
async fn s_client(addr: SocketAddr, ca: &Path, args: &[&str]) -> SClient {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-showcerts"])
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .args(args)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("openssl runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let begin = stdout.find("-----BEGIN CERTIFICATE-----");
    let end = stdout.find("-----END CERTIFICATE-----");
    let leaf = match (begin, end) {
        (Some(b), Some(e)) => stdout[b..e + 25].to_owned() + "\n",
        _ => String::new(),
    };
    assert!(
        out.status.success(),
        "s_client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    SClient { stdout, leaf }
}

/// `openssl x509` on a PEM certificate with `args`.
fn x509(pem: &str, args: &[&str]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .arg("x509")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn openssl_verifies_the_leaf_issued_for_the_sni() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::load_or_create(dir.path()).unwrap();
    let ca_crt = dir.path().join("ca.crt");
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.crt"), 0o644);
    assert_eq!(mode("ca.key"), 0o600);
    assert!(x509(ca.ca_cert_pem(), &["-noout", "-text"]).contains("CA:TRUE"));

    let addr = serve(ca.server_config(vec![b"h2".to_vec(), b"http/1.1".to_vec()])).await;
    let first = s_client(
        addr,
        &ca_crt,
        &["-servername", "example.test", "-alpn", "h2"],
    )
    .await;
    assert!(
        first.stdout.contains("Verify return code: 0 (ok)"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("ALPN protocol: h2"),
        "{}",
        first.stdout
    );
    let san = x509(&first.leaf, &["-noout", "-ext", "subjectAltName"]);
    assert!(san.contains("DNS:example.test"), "{san}");
    assert!(!san.contains(','), "one name only: {san}");
    assert_eq!(
        ca.issued(),
        2,
        "the default leaf at load, then example.test"
    );

    // The second connection is served from the cache: the very same leaf.
    let second = s_client(addr, &ca_crt, &["-servername", "example.test"]).await;
    assert_eq!(second.leaf, first.leaf);
    assert_eq!(ca.issued(), 2);

    // Another name, another leaf from the same CA; no SNI gets the default.
    let other = s_client(addr, &ca_crt, &["-servername", "Other.Example.TEST"]).await;
    assert!(
        x509(&other.leaf, &["-noout", "-ext", "subjectAltName"]).contains("DNS:other.example.test")
    );
    let none = s_client(
        addr,
        &ca_crt,
        &["-noservername", "-verify_hostname", "localhost"],
    )
    .await;
    assert!(x509(&none.leaf, &["-noout", "-ext", "subjectAltName"]).contains("DNS:localhost"));
    assert_eq!(ca.issued(), 3);

    // Hostile names on the wire: rustls or the CA refuses them as names;
    // the handshake gets the default leaf or fails, and the server lives on.
    let long_label = format!("{}.test", "a".repeat(100));
    for bad in [long_label.as_str(), "under_score!.test", "a..b"] {
        let mut cmd = Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-showcerts",
            "-servername",
            bad,
        ])
        .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(b) = text.find("-----BEGIN CERTIFICATE-----") {
            let e = text.find("-----END CERTIFICATE-----").unwrap();
            let san = x509(&text[b..e + 25], &["-noout", "-ext", "subjectAltName"]);
            assert!(
                san.contains("DNS:localhost") && !san.contains(bad),
                "{bad}: {san}"
            );
        }
    }
    assert_eq!(ca.issued(), 3, "no certificate for a hostile name");
    let after = s_client(addr, &ca_crt, &["-servername", "example.test"]).await;
    assert_eq!(after.leaf, first.leaf);
}

#[tokio::test]
async fn a_restart_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca_crt = dir.path().join("ca.crt");
    let first = CertAuthority::load_or_create(dir.path()).unwrap();
    let pem = std::fs::read(&ca_crt).unwrap();
    let key = std::fs::read(dir.path().join("ca.key")).unwrap();
    drop(first);

    // A new process: same files, and leaves still verify against the
    // ca.crt an operator installed before the restart.
    let again = CertAuthority::load_or_create_with(dir.path(), "192.0.2.10").unwrap();
    assert_eq!(std::fs::read(&ca_crt).unwrap(), pem);
    assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), key);
    let installed = dir.path().join("installed-ca.crt");
    std::fs::write(&installed, &pem).unwrap();
    let addr = serve(again.server_config(Vec::new())).await;
    let c = s_client(addr, &installed, &["-servername", "www.example.test"]).await;
    assert!(c.stdout.contains("Verify return code: 0 (ok)"));
    // Without SNI, the configured default: an IP address SAN.
    let c = s_client(
        addr,
        &installed,
        &["-noservername", "-verify_ip", "192.0.2.10"],
    )
    .await;
    assert!(x509(&c.leaf, &["-noout", "-ext", "subjectAltName"]).contains("IP Address:192.0.2.10"));
}

#[test]
fn a_missing_or_broken_ca_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    CertAuthority::load_or_create(dir.path()).unwrap();
    let crt = dir.path().join("ca.crt");
    let key = dir.path().join("ca.key");
    let pem = std::fs::read(&crt).unwrap();

    std::fs::remove_file(&key).unwrap();
    let e = CertAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.key") && e.contains("missing"), "{e}");
    assert_eq!(std::fs::read(&crt).unwrap(), pem, "never replaced");

    std::fs::write(&key, "not a key").unwrap();
    let e = CertAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.key") && e.contains("private key"), "{e}");

    // A key of another CA does not match the certificate.
    let other = tempfile::tempdir().unwrap();
    CertAuthority::load_or_create(other.path()).unwrap();
    std::fs::copy(other.path().join("ca.key"), &key).unwrap();
    let e = CertAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match"), "{e}");

    std::fs::write(&crt, "garbage").unwrap();
    let e = CertAuthority::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.crt"), "{e}");

    // Unreadable (a directory where the file should be).
    let d2 = tempfile::tempdir().unwrap();
    std::fs::create_dir(d2.path().join("ca.crt")).unwrap();
    std::fs::write(d2.path().join("ca.key"), "x").unwrap();
    let e = CertAuthority::load_or_create(d2.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.crt"), "{e}");

    let e = CertAuthority::load_or_create_with(other.path(), "bad name!").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn hostile_names_get_the_default_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::load_or_create(dir.path()).unwrap();
    let default = ca.leaf_for(None).unwrap();
    let long = "a".repeat(4000);
    let deep = format!("{}test", "a.".repeat(200));
    for bad in [
        long.as_str(),
        deep.as_str(),
        "evil.test\0.good.test",
        "*.example.test",
        "a..b",
        "<script>alert(1)</script>",
        "../../etc/passwd",
        "ünïcode.test",
        "",
    ] {
        assert_eq!(ca.name_for(Some(bad)), "localhost", "{bad:?}");
        let leaf = ca.leaf_for(Some(bad)).unwrap();
        assert!(
            Arc::ptr_eq(&leaf, &default),
            "{bad:?} got its own certificate"
        );
    }
    assert_eq!(ca.name_for(Some("WWW.Example.Test.")), "www.example.test");
    assert_eq!(ca.cached(), 1);
}

#[test]
fn the_cache_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertAuthority::load_or_create(dir.path()).unwrap();
    let n = mirage_net::cert_authority::LEAF_CACHE + 50;
    for i in 0..n {
        ca.leaf_for(Some(&format!("host{i}.example.test"))).unwrap();
    }
    assert_eq!(ca.cached(), mirage_net::cert_authority::LEAF_CACHE);
    // The oldest names were dropped, the newest kept.
    let before = ca.issued();
    ca.leaf_for(Some(&format!("host{}.example.test", n - 1)))
        .unwrap();
    assert_eq!(ca.issued(), before);
    ca.leaf_for(Some("host0.example.test")).unwrap();
    assert_eq!(ca.issued(), before + 1);
}
