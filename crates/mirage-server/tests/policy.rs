//! The policy API over real sockets: one-time enrollment, snapshot, a
//! long poll woken by a new decision (with its latency), deltas for
//! operator deletes, and refusal of replayed, stale, unsigned, unknown and
//! cross-agent requests.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::http_post;
use mirage_config::ServerConfig;
use mirage_core::policy::{
    AgentSettings, EnrollReply, HEADER_AGENT, Mode, PolicyReply, ServiceMap,
};
use mirage_core::request_auth::{HEADER_TIMESTAMP, sign, signed_headers};
use mirage_server::policy::token_hash;
use mirage_server::start;
use mirage_store::{SqliteStore, Store};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::default();
    c.server.data_dir = dir.join("data");
    c.syslog.listen = vec!["127.0.0.1:0".parse().unwrap()];
    c.syslog.fallback_port = 0;
    c.api.listen = "127.0.0.1:0".into();
    c
}

async fn token(dir: &Path) -> String {
    let t = mirage_server::policy::random_hex32().unwrap();
    let st = SqliteStore::open_dir(&dir.join("data")).await.unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    st.create_token(&token_hash(&t), now, now + 3_600_000_000)
        .await
        .unwrap();
    t
}

fn settings() -> AgentSettings {
    AgentSettings {
        mode: Mode::Deception,
        services: vec![ServiceMap {
            proto: "tcp".into(),
            port: 22,
            service: "ssh".into(),
            honeypot: "10.98.0.2:2222".into(),
        }],
        ..AgentSettings::default()
    }
}

async fn enroll(api: std::net::SocketAddr, token: &str, id: &str) -> (u16, String) {
    let body = serde_json::json!({
        "token": token, "agent_id": id, "hostname": "web1", "settings": settings()
    });
    http_post(api, "/api/v1/enroll", &[], body.to_string().as_bytes()).await
}

fn hex_key(k: &str) -> Vec<u8> {
    (0..k.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&k[i..i + 2], 16).unwrap())
        .collect()
}

async fn poll(
    api: std::net::SocketAddr,
    id: &str,
    key: &[u8],
    since: Option<i64>,
    wait: u64,
) -> (u16, String) {
    let body = serde_json::json!({ "since": since, "wait_secs": wait }).to_string();
    let mut h: Vec<(&str, String)> =
        signed_headers(key, "POST", "/api/v1/policy", body.as_bytes()).into();
    h.push((HEADER_AGENT, id.to_string()));
    http_post(api, "/api/v1/policy", &h, body.as_bytes()).await
}

#[tokio::test]
async fn agents_enroll_once_and_a_new_decision_wakes_their_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // Create the database (and a token) before the server runs, as
    // `mirage server tokens create` does.
    let t = token(dir.path()).await;
    let server = start(&cfg).await.unwrap();
    let api = server.api.unwrap();

    let (status, body) = enroll(api, &t, "agent-1").await;
    assert_eq!(status, 200, "{body}");
    let reply: EnrollReply = serde_json::from_str(&body).unwrap();
    assert_eq!(reply.agent_id, "agent-1");
    let key = hex_key(&reply.key);
    assert_eq!(key.len(), 32);
    // The token works once.
    assert_eq!(enroll(api, &t, "agent-x").await.0, 401);

    let (status, body) = poll(api, "agent-1", &key, None, 0).await;
    assert_eq!(status, 200, "{body}");
    let PolicyReply::Snapshot(snap) = serde_json::from_str(&body).unwrap() else {
        panic!("{body}")
    };
    assert_eq!(snap.settings, settings());
    assert!(snap.decisions.is_empty());
    let v0 = snap.version;

    // A long poll waits; five failed logins for one account wake it.
    let waiting = tokio::spawn({
        let key = key.clone();
        async move {
            let r = poll(api, "agent-1", &key, Some(v0), 20).await;
            (r, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if waiting.is_finished() {
        let ((status, body), _) = waiting.await.unwrap();
        panic!("answered without a change: {status} {body}");
    }
    let mut s = TcpStream::connect(server.syslog_tcp[0]).await.unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut lines = String::new();
    for i in 0..5 {
        lines.push_str(&format!(
            "<38>1 {now} web1 sshd 1 - - Failed password for root from 198.51.100.9 port {} ssh2\n",
            5000 + i
        ));
    }
    s.write_all(lines.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let ((status, body), answered) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    let latency = answered.duration_since(sent);
    assert_eq!(status, 200, "{body}");
    let PolicyReply::Delta(delta) = serde_json::from_str(&body).unwrap() else {
        panic!("{body}")
    };
    assert!(delta.version > v0);
    assert_eq!(delta.new.len(), 1, "{delta:?}");
    assert_eq!(delta.new[0].ip.to_string(), "198.51.100.9");
    assert_eq!(delta.new[0].decision, "deceive");
    let ttl = delta.new[0].expires_unix - chrono::Utc::now().timestamp();
    assert!((14_000..=14_400).contains(&ttl), "{ttl}");
    assert!(
        latency < Duration::from_millis(500),
        "log line to policy delta took {latency:?}"
    );
    eprintln!("syslog line -> policy delta: {latency:?}");

    // An operator deletes it: the next delta says so.
    let st = SqliteStore::open_dir(&dir.path().join("data"))
        .await
        .unwrap();
    st.delete_decisions(
        "198.51.100.9",
        None,
        "cli",
        chrono::Utc::now().timestamp_micros(),
    )
    .await
    .unwrap();
    let (_, body) = poll(api, "agent-1", &key, Some(delta.version), 5).await;
    let PolicyReply::Delta(d2) = serde_json::from_str(&body).unwrap() else {
        panic!("{body}")
    };
    assert!(d2.new.is_empty());
    assert_eq!(d2.deleted.len(), 1, "{d2:?}");
    assert_eq!(d2.deleted[0].ip.to_string(), "198.51.100.9");
    // Nothing more: an empty delta at the same version after the wait.
    let started = Instant::now();
    let (_, body) = poll(api, "agent-1", &key, Some(d2.version), 1).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let PolicyReply::Delta(d3) = serde_json::from_str(&body).unwrap() else {
        panic!("{body}")
    };
    assert_eq!(
        (d3.version, d3.new.len(), d3.deleted.len()),
        (d2.version, 0, 0)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn replayed_stale_unsigned_unknown_and_cross_agent_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (ta, tb) = (token(dir.path()).await, token(dir.path()).await);
    let server = start(&cfg).await.unwrap();
    let api = server.api.unwrap();
    let ka: EnrollReply = serde_json::from_str(&enroll(api, &ta, "agent-a").await.1).unwrap();
    let kb: EnrollReply = serde_json::from_str(&enroll(api, &tb, "agent-b").await.1).unwrap();
    let (ka, kb) = (hex_key(&ka.key), hex_key(&kb.key));
    assert_ne!(ka, kb);

    let body = br#"{"wait_secs":0}"#;
    let mut h: Vec<(&str, String)> = signed_headers(&ka, "POST", "/api/v1/policy", body).into();
    h.push((HEADER_AGENT, "agent-a".into()));
    assert_eq!(http_post(api, "/api/v1/policy", &h, body).await.0, 200);
    // The same request again: replayed nonce.
    let (status, reply) = http_post(api, "/api/v1/policy", &h, body).await;
    assert_eq!(status, 401);
    assert!(reply.contains("nonce"), "{reply}");
    // Stale: signed correctly, ten minutes ago.
    let old = chrono::Utc::now().timestamp() - 600;
    let nonce = "stale-nonce-000001";
    let stale = vec![
        (HEADER_TIMESTAMP, old.to_string()),
        ("x-mirage-nonce", nonce.to_string()),
        (
            "x-mirage-signature",
            sign(&ka, "POST", "/api/v1/policy", old, nonce, body),
        ),
        (HEADER_AGENT, "agent-a".to_string()),
    ];
    let (status, reply) = http_post(api, "/api/v1/policy", &stale, body).await;
    assert_eq!(status, 401);
    assert!(reply.contains("window"), "{reply}");
    // Unsigned.
    assert_eq!(
        http_post(
            api,
            "/api/v1/policy",
            &[(HEADER_AGENT, "agent-a".into())],
            body
        )
        .await
        .0,
        401
    );
    // Agent a's key used to ask for agent b's policy.
    let mut cross: Vec<(&str, String)> = signed_headers(&ka, "POST", "/api/v1/policy", body).into();
    cross.push((HEADER_AGENT, "agent-b".into()));
    let (status, reply) = http_post(api, "/api/v1/policy", &cross, body).await;
    assert_eq!(status, 401, "{reply}");
    // Unknown agent.
    let mut unknown: Vec<(&str, String)> =
        signed_headers(&ka, "POST", "/api/v1/policy", body).into();
    unknown.push((HEADER_AGENT, "agent-z".into()));
    assert_eq!(
        http_post(api, "/api/v1/policy", &unknown, body).await.0,
        401
    );
    // Agent b with its own key is fine.
    assert_eq!(poll(api, "agent-b", &kb, None, 0).await.0, 200);
    server.shutdown().await;
}
