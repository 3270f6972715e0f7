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
    // Raw HTTP on purpose: these tests write every header themselves. TLS
    // with the pinned certificate is covered with the real agent.
    c.api.tls = false;
    c
}

async fn token(dir: &Path) -> String {
    token_for(dir, None).await
}

async fn token_for(dir: &Path, replace: Option<&str>) -> String {
    let t = mirage_server::identity::new_token(None).unwrap();
    let st = SqliteStore::open_dir(&dir.join("data")).await.unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    st.create_token(&token_hash(&t), now, now + 3_600_000_000, replace)
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
        (
            "x-mirage-content-sha256",
            mirage_core::request_auth::body_digest(body),
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

#[tokio::test]
async fn an_enrolled_id_is_not_taken_over_and_a_revoked_agent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = token(dir.path()).await;
    let second = token(dir.path()).await;
    let server = start(&config(dir.path())).await.unwrap();
    let api = server.api.unwrap();
    let (status, reply) = enroll(api, &first, "agent-a").await;
    assert_eq!(status, 200, "{reply}");
    let key = hex_key(&serde_json::from_str::<EnrollReply>(&reply).unwrap().key);
    // Another token for the same id: refused, and the real agent keeps
    // working with its key.
    let (status, reply) = enroll(api, &second, "agent-a").await;
    assert_eq!(status, 409, "{reply}");
    assert!(reply.contains("--replace"), "{reply}");
    assert_eq!(poll(api, "agent-a", &key, None, 0).await.0, 200);
    // The refused token was not used up: it still enrolls a new id.
    assert_eq!(enroll(api, &second, "agent-b").await.0, 200);

    // Revoked: the key stops working at once.
    let st = SqliteStore::open_dir(&dir.path().join("data"))
        .await
        .unwrap();
    assert!(
        st.revoke_agent("agent-a", chrono::Utc::now().timestamp_micros())
            .await
            .unwrap()
    );
    assert_eq!(poll(api, "agent-a", &key, None, 0).await.0, 401);
    // A token made to replace it enrolls it again, with a new key.
    let replace = token_for(dir.path(), Some("agent-a")).await;
    let (status, reply) = enroll(api, &replace, "agent-a").await;
    assert_eq!(status, 200, "{reply}");
    let new_key = hex_key(&serde_json::from_str::<EnrollReply>(&reply).unwrap().key);
    assert_ne!(new_key, key);
    assert_eq!(poll(api, "agent-a", &new_key, None, 0).await.0, 200);
    assert_eq!(
        poll(api, "agent-a", &key, None, 0).await.0,
        401,
        "the old key"
    );
    // Keys are derived from the server's secret: the database holds none.
    let row = st.agent_key("agent-a").await.unwrap().unwrap();
    assert!(row.key_hex.is_empty() && !row.key_salt.is_empty());
    server.shutdown().await;
}

/// A snapshot larger than one page (the engine allows a million decisions,
/// ~85 MB of JSON, more than an agent reads in one answer) comes in pages
/// that follow each other by cursor and together hold every decision once.
#[tokio::test]
async fn a_snapshot_over_a_page_comes_in_pages_that_hold_every_decision_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let t = token(dir.path()).await;
    let total = mirage_server::policy::SNAPSHOT_PAGE as usize * 2 + 7;
    {
        let st = SqliteStore::open_dir(&dir.path().join("data"))
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        let rows: Vec<mirage_store::DecisionRow> = (0..total)
            .map(|i| mirage_store::DecisionRow {
                ip: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                decision: "block".into(),
                rule: "manual".into(),
                severity: "high".into(),
                reason: "bulk".into(),
                key: String::new(),
                created_micros: now,
                expires_micros: now + 3_600_000_000,
                evidence: 1,
                origin: "cli".into(),
                renewed_micros: now,
            })
            .collect();
        for chunk in rows.chunks(20_000) {
            st.put_decisions(chunk).await.unwrap();
        }
    }
    let server = start(&cfg).await.unwrap();
    let api = server.api.unwrap();
    let (status, body) = enroll(api, &t, "agent-1").await;
    assert_eq!(status, 200, "{body}");
    let key = hex_key(&serde_json::from_str::<EnrollReply>(&body).unwrap().key);
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = serde_json::json!({ "since": null, "wait_secs": 0 });
        if let Some(a) = &after {
            req["snapshot_after"] = a.clone().into();
        }
        let req = req.to_string();
        let mut h: Vec<(&str, String)> =
            signed_headers(&key, "POST", "/api/v1/policy", req.as_bytes()).into();
        h.push((HEADER_AGENT, "agent-1".to_string()));
        let (status, body) = http_post(api, "/api/v1/policy", &h, req.as_bytes()).await;
        assert_eq!(status, 200, "{body}");
        let PolicyReply::Snapshot(snap) = serde_json::from_str(&body).unwrap() else {
            panic!("{body}")
        };
        pages += 1;
        for d in &snap.decisions {
            assert!(seen.insert(d.ip), "{} twice", d.ip);
        }
        match snap.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), total);
    server.shutdown().await;
}
