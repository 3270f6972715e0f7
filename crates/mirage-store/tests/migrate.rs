//! A database made by an older mirage opens with this one: the schema is
//! upgraded in place, what was stored is kept, and the new columns have
//! the values the old rows meant. The old database is built from the
//! version-3 schema text as that version shipped it (`data/schema-v3.sql`).

use mirage_store::{DecisionRow, SqliteStore, Store};
use sqlx::ConnectOptions;

const S: i64 = 1_000_000;

#[tokio::test]
async fn a_version_3_database_is_upgraded_keeping_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirage.db");
    {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("data/schema-v3.sql"))
            .execute(&mut conn)
            .await
            .unwrap();
        // A decision and its change, as version 3 wrote them.
        sqlx::raw_sql(
            "INSERT INTO decisions VALUES ('192.0.2.7', 'deceive', 'ssh-bruteforce-account', \
             'medium', 'five failures', '192.0.2.7|root|web1', 1000000, 14401000000, 5, 'engine'); \
             INSERT INTO decision_changes (op, at_micros, ip, decision, rule, severity, reason, key, \
             created_micros, expires_micros, evidence, origin) VALUES ('add', 1000000, '192.0.2.7', \
             'deceive', 'ssh-bruteforce-account', 'medium', 'five failures', '192.0.2.7|root|web1', \
             1000000, 14401000000, 5, 'engine');",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let s = SqliteStore::open(&path).await.unwrap();
    let version: i64 = {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(version, 4);
    let old = s.list_decisions(None).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].rule, "ssh-bruteforce-account");
    assert_eq!(old[0].renewed_micros, S, "made, never renewed");

    // Renewed by another rule after the upgrade: the row names it, the
    // history keeps both.
    let renewal = DecisionRow {
        rule: "honeypot-contact".into(),
        severity: "high".into(),
        reason: "contact".into(),
        renewed_micros: 60 * S,
        expires_micros: 60 * S + 86_400 * S,
        ..old[0].clone()
    };
    s.put_decisions(std::slice::from_ref(&renewal))
        .await
        .unwrap();
    assert_eq!(
        s.list_decisions(None).await.unwrap(),
        std::slice::from_ref(&renewal)
    );
    let history = s.decision_history("192.0.2.7", "deceive").await.unwrap();
    let seen: Vec<(i64, &str, i64)> = history
        .iter()
        .map(|c| {
            (
                c.at_micros,
                c.decision.rule.as_str(),
                c.decision.expires_micros - c.at_micros,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (S, "ssh-bruteforce-account", 14_400 * S),
            (60 * S, "honeypot-contact", 86_400 * S)
        ]
    );
    assert!(
        s.decision_history("192.0.2.8", "deceive")
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await;
    // Reopened: up to date, nothing to do, nothing lost.
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(s.list_decisions(None).await.unwrap(), [renewal]);
}
