//! The server in-process over real sockets: record-id dedupe across a
//! restart, agent heartbeats, syslog over mutual TLS, the signed ingest
//! endpoint (replay, tampering), and rule reload with a broken file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::http_post;
use mirage_config::ServerConfig;
use mirage_core::request_auth::{
    HEADER_CONTENT_SHA256, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, body_digest, sign,
};
use mirage_server::{RunningServer, ServerStats, start};
use mirage_store::{EventQuery, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::default();
    c.server.data_dir = dir.join("data");
    c.syslog.listen = vec!["127.0.0.1:0".parse().unwrap()];
    c.syslog.fallback_port = 0;
    c.rules.reload_check_secs = 1;
    c
}

async fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open_dir(&dir.join("data")).await.unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn frame(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

fn agent_line(id: &str, ip: &str, user: &str) -> String {
    format!(
        "<38>1 2026-11-21T10:00:00.000001Z web1 sshd 77 - [mirage@32473 id=\"{id}\"] \
         Failed password for {user} from {ip} port 5000 ssh2"
    )
}

async fn send_tcp(server: &RunningServer, bytes: &[u8]) {
    let mut s = TcpStream::connect(server.syslog_tcp[0]).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
}

fn stat(s: &ServerStats, f: impl Fn(&ServerStats) -> &std::sync::atomic::AtomicU64) -> u64 {
    ServerStats::get(f(s))
}

#[tokio::test]
async fn a_record_id_is_stored_and_counted_once_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let server = start(&cfg).await.unwrap();
    let mut bytes = Vec::new();
    for i in 0..4 {
        bytes.extend(frame(&agent_line(&format!("id-{i}"), "192.0.2.10", "root")));
    }
    // The same four again (an agent re-sending after a lost ack).
    bytes.extend(bytes.clone());
    send_tcp(&server, &bytes).await;
    let stats = server.stats.clone();
    wait_until("8 messages", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.syslog_messages) == 8 && stat(&s, |s| &s.events) == 4 }
    })
    .await;
    assert_eq!(stat(&stats, |s| &s.duplicates), 4);
    server.shutdown().await;

    // After a restart the ids are still known: re-sent lines are dropped,
    // and the 4 old failures plus 1 new one do not make 5 for the rule.
    let server = start(&cfg).await.unwrap();
    let mut bytes = Vec::new();
    for i in 0..4 {
        bytes.extend(frame(&agent_line(&format!("id-{i}"), "192.0.2.10", "root")));
    }
    send_tcp(&server, &bytes).await;
    let stats = server.stats.clone();
    wait_until("4 duplicates", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.duplicates) == 4 }
    })
    .await;
    assert_eq!(stat(&stats, |s| &s.events), 0);
    send_tcp(&server, &frame(&agent_line("id-4", "192.0.2.10", "root"))).await;
    wait_until("1 event", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.events) == 1 }
    })
    .await;
    server.shutdown().await;
    let st = store(dir.path()).await;
    let events = st
        .query_events(&EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    // The engine state is not persisted, only decisions: 4 + 1 across a
    // restart is a new window, so no decision yet. (Documented.)
    assert!(st.list_decisions(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn agent_heartbeats_are_stored_newest_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&config(dir.path())).await.unwrap();
    let hb = |ts: &str, host: &str, id: &str| {
        frame(&format!(
            "<110>1 {ts} {host} mirage-agent 9 heartbeat [mirage@32473 id=\"{id}\"] \
             {{\"agent_id\":\"agent-1\",\"hostname\":\"{host}\",\"version\":\"0.1.0\",\
             \"sources\":[{{\"name\":\"auth\",\"kind\":\"file\",\"service\":\"ssh\",\"healthy\":true,\"detail\":\"\",\"lines\":3}}],\
             \"queue\":{{\"depth\":0,\"dropped\":0}}}}"
        ))
    };
    let mut bytes = hb("2026-11-21T10:00:10Z", "web1-new", "hb2");
    bytes.extend(hb("2026-11-21T10:00:00Z", "web1-old", "hb1"));
    send_tcp(&server, &bytes).await;
    let stats = server.stats.clone();
    wait_until("2 heartbeats", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.heartbeats) == 2 }
    })
    .await;
    server.shutdown().await;
    let agents = store(dir.path()).await.list_agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].hostname, "web1-new");
    assert!(agents[0].status_json.contains("\"lines\":3"));
}

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: rustls::pki_types::CertificateDer<'static>,
    client_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["agent-1".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.der().clone(),
        client_key: rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
    }
}

#[tokio::test]
async fn syslog_over_mutual_tls_is_received_and_clients_without_a_cert_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(d.join("server.pem"), &pki.server_cert).unwrap();
    std::fs::write(d.join("server.key"), &pki.server_key).unwrap();
    let mut cfg = config(d);
    cfg.syslog.tls.listen = "127.0.0.1:0".into();
    cfg.syslog.tls.cert_file = d.join("server.pem");
    cfg.syslog.tls.key_file = d.join("server.key");
    cfg.syslog.tls.client_ca_file = d.join("ca.pem");
    let server = start(&cfg).await.unwrap();
    let addr = server.syslog_tls.unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
    };
    let with_cert = builder()
        .with_client_auth_cert(vec![pki.client_cert.clone()], pki.client_key.clone_key())
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(with_cert));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
    let mut bytes = Vec::new();
    for i in 0..5 {
        bytes.extend(frame(&agent_line(
            &format!("tls-{i}"),
            "192.0.2.20",
            "admin",
        )));
    }
    tls.write_all(&bytes).await.unwrap();
    tls.shutdown().await.unwrap();

    // Without a client certificate the handshake (or the first read) fails
    // and nothing is received.
    let no_cert = tokio_rustls::TlsConnector::from(Arc::new(builder().with_no_client_auth()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    if let Ok(mut s) = no_cert.connect(name, tcp).await {
        let _ = s
            .write_all(&frame(&agent_line("x", "192.0.2.21", "admin")))
            .await;
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf).await;
        assert!(
            !matches!(r, Ok(n) if n > 0),
            "server answered a client without a cert"
        );
    }

    let stats = server.stats.clone();
    wait_until("5 tls messages", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.events) == 5 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.shutdown().await;
    let st = store(dir.path()).await;
    let d = st.list_decisions(None).await.unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].ip, "192.0.2.20");
    assert_eq!(d[0].rule, "ssh-bruteforce-account");
    let none = st
        .query_events(&EventQuery {
            src_ip: Some("192.0.2.21".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

fn signed(key: &[u8], nonce: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = chrono::Utc::now().timestamp();
    vec![
        (HEADER_TIMESTAMP, ts.to_string()),
        (HEADER_NONCE, nonce.to_string()),
        (
            HEADER_SIGNATURE,
            sign(key, "POST", "/api/v1/events", ts, nonce, body),
        ),
        (HEADER_CONTENT_SHA256, body_digest(body)),
    ]
}

#[tokio::test]
async fn sensor_events_are_ingested_signed_once_and_replays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = b"a-shared-key-of-at-least-32-bytes!!".to_vec();
    std::fs::write(dir.path().join("ingest.key"), &key).unwrap();
    let mut cfg = config(dir.path());
    cfg.ingest.listen = "127.0.0.1:0".into();
    cfg.ingest.key_file = dir.path().join("ingest.key");
    // Plain HTTP: this test writes raw requests (the sensor tests ship
    // over the default, pinned TLS).
    cfg.ingest.tls = false;
    let server = start(&cfg).await.unwrap();
    let addr = server.ingest.unwrap();

    let events = [
        r#"{"schema":1,"id":"0192f000-0000-7000-8000-000000000001","ts":"2026-11-21T10:00:00.000000Z","sensor":"hp1","service":"redis","transport":"tcp","src_ip":"198.51.100.50","src_port":40000,"dst_ip":"10.0.0.2","dst_port":6379,"session":"0192f000-0000-7000-8000-0000000000aa","kind":"session.connect"}"#,
        r#"{"schema":1,"id":"0192f000-0000-7000-8000-000000000002","ts":"2026-11-21T10:00:00.100000Z","sensor":"hp1","service":"redis","transport":"tcp","src_ip":"198.51.100.50","src_port":40000,"dst_ip":"10.0.0.2","dst_port":6379,"session":"0192f000-0000-7000-8000-0000000000aa","kind":"command","command":"config","args":["set","dir","/root/.ssh"],"raw":"CONFIG set dir /root/.ssh"}"#,
    ];
    let body = format!("{}\n{}\n", events[0], events[1]).into_bytes();

    let h = signed(&key, "nonce-aaaaaaaaaaaa-1", &body);
    let (status, reply) = http_post(addr, "/api/v1/events", &h, &body).await;
    assert_eq!(
        (status, reply.as_str()),
        (200, r#"{"accepted":2,"duplicates":0}"#)
    );
    // The very same request again: a replay.
    let (status, reply) = http_post(addr, "/api/v1/events", &h, &body).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply.contains("nonce"), "{reply}");
    // Signed again by the sensor (a retry): accepted, but nothing new.
    let (status, reply) = http_post(
        addr,
        "/api/v1/events",
        &signed(&key, "nonce-aaaaaaaaaaaa-2", &body),
        &body,
    )
    .await;
    assert_eq!(
        (status, reply.as_str()),
        (200, r#"{"accepted":0,"duplicates":2}"#)
    );
    // Tampered body, wrong key, no headers, garbage line.
    let mut tampered = body.clone();
    tampered[20] ^= 1;
    let (status, _) = http_post(
        addr,
        "/api/v1/events",
        &signed(&key, "nonce-aaaaaaaaaaaa-3", &body),
        &tampered,
    )
    .await;
    assert_eq!(status, 401);
    let wrong = b"another-key-that-is-32-bytes-long!!!";
    let (status, _) = http_post(
        addr,
        "/api/v1/events",
        &signed(wrong, "nonce-aaaaaaaaaaaa-4", &body),
        &body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http_post(addr, "/api/v1/events", &[], &body).await;
    assert_eq!(status, 401);
    let garbage = b"{\"schema\":1}\nnot json\n".to_vec();
    let (status, reply) = http_post(
        addr,
        "/api/v1/events",
        &signed(&key, "nonce-aaaaaaaaaaaa-5", &garbage),
        &garbage,
    )
    .await;
    assert_eq!(status, 400);
    assert!(reply.contains("line 1"), "{reply}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown().await;
    let st = store(dir.path()).await;
    let stored = st
        .query_events(&EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|e| e.origin == "sensor" && e.host == "hp1")
    );
    // Any contact with a honeypot decides; the CONFIG SET dir is critical.
    let d = st.list_decisions(None).await.unwrap();
    assert!(d.iter().any(|d| d.ip == "198.51.100.50"), "{d:?}");
    drop(st);

    // After a restart the nonces in memory are gone; the persisted floor
    // still refuses the captured request.
    let server = start(&cfg).await.unwrap();
    let addr = server.ingest.unwrap();
    let (status, reply) = http_post(addr, "/api/v1/events", &h, &body).await;
    assert_eq!(status, 401, "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_broken_rule_file_is_refused_and_the_running_rules_stay() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let rule = |name: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\nservice = [\"ssh\"]\nkind = [\"auth.attempt\"]\n\
             fields = {{ result = \"^failure$\" }}\nthreshold = {{ count = 1, window = \"1m\" }}\n\
             action = {{ decision = \"block\", ttl = \"10m\" }}\n"
        )
    };
    std::fs::write(&rules, rule("first")).unwrap();
    let mut cfg = config(dir.path());
    cfg.rules.file = rules.clone();
    let server = start(&cfg).await.unwrap();
    assert_eq!(server.rules, ["first"]);
    let st = store(dir.path()).await;
    let decided_by = |ip: &'static str| {
        let st = st.clone();
        async move {
            st.list_decisions(None)
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.ip == ip)
                .map(|d| d.rule)
        }
    };
    send_tcp(&server, &frame(&agent_line("r1", "192.0.2.31", "a"))).await;
    wait_until("first decides", || async {
        decided_by("192.0.2.31").await.as_deref() == Some("first")
    })
    .await;

    // A broken file (bad regex) is refused with its position; "first" stays.
    std::fs::write(&rules, rule("second").replace("^failure$", "(")).unwrap();
    let stats = server.stats.clone();
    wait_until("reload refused", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.rule_reload_errors) >= 1 }
    })
    .await;
    send_tcp(&server, &frame(&agent_line("r2", "192.0.2.32", "a"))).await;
    wait_until("first still decides", || async {
        decided_by("192.0.2.32").await.as_deref() == Some("first")
    })
    .await;

    // A good file replaces the rules.
    std::fs::write(&rules, rule("second")).unwrap();
    wait_until("reloaded", || {
        let s = stats.clone();
        async move { stat(&s, |s| &s.rule_reloads) >= 1 }
    })
    .await;
    send_tcp(&server, &frame(&agent_line("r3", "192.0.2.33", "a"))).await;
    wait_until("second decides", || async {
        decided_by("192.0.2.33").await.as_deref() == Some("second")
    })
    .await;
    server.shutdown().await;
}
