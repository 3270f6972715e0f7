//! A database written by the version before derived agent keys (schema 2,
//! `tests/data/schema-v2.sql`, dumped from a real run of mirage at
//! 1cc2778) opens with this build: the schema is upgraded in place, the
//! stored events and tokens are kept, the agent enrolled back then keeps
//! working with the key it was given, that key is no longer in the
//! database in clear (sealed with the server secret), the file is private,
//! and the old agent's id cannot be taken by a new enrollment.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

mod common;

use common::http_post;
use mirage_config::ServerConfig;
use mirage_core::policy::{HEADER_AGENT, PolicyReply};
use mirage_core::request_auth::signed_headers;
use mirage_server::policy::token_hash;
use mirage_store::{EventQuery, SqliteStore, Store};

const OLD_KEY: &str = "9191bf102ff72f012889f4ee4317836c632376d92dd924315cd1134634763d5d";

fn load_dump(db: &std::path::Path) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let dump = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/schema-v2.sql"
    ))
    .unwrap();
    let st = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::from(dump))
        .status()
        .expect("sqlite3 (scripts/install-test-deps.sh installs it)");
    assert!(st.success());
    // As the old version left it: world-readable.
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[tokio::test]
async fn a_schema_2_database_upgrades_and_its_agent_keeps_working_with_a_sealed_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("mirage.db");
    load_dump(&db);
    let mut cfg = ServerConfig::default();
    cfg.server.data_dir = data.clone();
    cfg.syslog.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.syslog.fallback_port = 0;
    cfg.api.listen = "127.0.0.1:0".into();
    cfg.api.tls = false;
    let server = mirage_server::start(&cfg).await.unwrap();
    let api = server.api.unwrap();

    // The old agent signs with the key it was given in schema-2 days.
    let key = mirage_core::request_auth::decode_hex(OLD_KEY).unwrap();
    let body = serde_json::json!({ "since": null, "wait_secs": 0 }).to_string();
    let mut h: Vec<(&str, String)> =
        signed_headers(&key, "POST", "/api/v1/policy", body.as_bytes()).into();
    h.push((HEADER_AGENT, "old-agent".to_string()));
    let (status, reply) = http_post(api, "/api/v1/policy", &h, body.as_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    let PolicyReply::Snapshot(snap) = serde_json::from_str(&reply).unwrap() else {
        panic!("{reply}")
    };
    assert_eq!(snap.settings.mode, mirage_core::policy::Mode::Firewall);

    // A new enrollment cannot take the old agent's id.
    let t = mirage_server::identity::new_token(None).unwrap();
    {
        let st = SqliteStore::open_dir(&data).await.unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        st.create_token(&token_hash(&t), now, now + 3_600_000_000, None)
            .await
            .unwrap();
    }
    let enroll = serde_json::json!({
        "token": t, "agent_id": "old-agent", "hostname": "intruder", "settings": {}
    });
    let (status, reply) =
        http_post(api, "/api/v1/enroll", &[], enroll.to_string().as_bytes()).await;
    assert_eq!(status, 409, "{reply}");
    server.shutdown().await;

    let st = SqliteStore::open_dir(&data).await.unwrap();
    let row = st.agent_key("old-agent").await.unwrap().unwrap();
    assert_eq!(row.key_salt, mirage_server::identity::SEALED);
    assert_ne!(row.key_hex, OLD_KEY);
    assert!(st.legacy_agent_keys().await.unwrap().is_empty());
    let text = String::from_utf8_lossy(&std::fs::read(&db).unwrap()).into_owned();
    assert!(!text.contains(OLD_KEY), "the key is still in the file");
    // What schema 2 stored is all there.
    let events = st
        .query_events(&EventQuery {
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    let tokens = st.list_tokens().await.unwrap();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert_eq!(
        tokens
            .iter()
            .filter(|t| t.used_by.as_deref() == Some("old-agent"))
            .count(),
        1
    );
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}
