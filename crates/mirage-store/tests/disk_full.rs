//! The SQLite store on a disk that fills up: the write that hits the limit
//! fails with an error saying so, nothing is half-written, and once space
//! returns the same store (no reopen) writes again and every batch it
//! reported as written is on disk. Before the store managed its own
//! transactions, a failed COMMIT left sqlx's bookkeeping one level deep and
//! every later batch "succeeded" into a transaction that never ended.
//!
//! Needs root (it mounts a small tmpfs), as CI runs.

use std::path::Path;
use std::process::Command;

use mirage_store::{EventRow, SqliteStore, Store, WriteBatch};

struct Tmpfs<'a>(&'a Path);

impl Tmpfs<'_> {
    fn mount<'a>(dir: &'a Path, size: &str) -> Tmpfs<'a> {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs (needs root)");
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn batch(n: usize, start: usize) -> WriteBatch {
    WriteBatch {
        record_ids: (start..start + n).map(|i| format!("r:{i}")).collect(),
        seen_micros: 1,
        events: (start..start + n)
            .map(|i| EventRow {
                id: format!("ev-{i}"),
                ts_micros: i as i64,
                kind: "auth.attempt".into(),
                service: "ssh".into(),
                src_ip: "203.0.113.7".into(),
                host: "h".into(),
                origin: "log".into(),
                // Incompressible-ish filler so the disk fills in a few batches.
                json: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(900)),
            })
            .collect(),
        ..WriteBatch::default()
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_recovers_without_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let fs = Tmpfs::mount(&mnt, "1m");
    let store = SqliteStore::open_dir(&mnt.join("data")).await.unwrap();
    let mut written = 0usize;
    let mut full_err = None;
    for _ in 0..200 {
        match store.write_batch(&batch(50, written)).await {
            Ok(r) => {
                assert_eq!(r.events_inserted, 50);
                written += 50;
            }
            Err(e) => {
                full_err = Some(e);
                break;
            }
        }
    }
    let err = full_err.expect("a 1 MiB disk fills up");
    assert!(err.is_disk_full(), "not recognised as disk full: {err}");
    // Still full: still an error, never a silent success.
    assert!(store.write_batch(&batch(50, written)).await.is_err());
    // Reads keep working.
    assert_eq!(store.counts().await.unwrap().events, written as u64);

    fs.resize("64m");
    let before = written;
    for _ in 0..5 {
        store.write_batch(&batch(50, written)).await.unwrap();
        written += 50;
    }
    // Another connection (an operator's CLI) can write too: no lock is held.
    let other = SqliteStore::open_dir(&mnt.join("data")).await.unwrap();
    other
        .put_decisions(&[mirage_store::DecisionRow {
            ip: "203.0.113.7".into(),
            decision: "block".into(),
            rule: "manual".into(),
            severity: "high".into(),
            reason: "test".into(),
            key: String::new(),
            created_micros: 1,
            expires_micros: i64::MAX,
            evidence: 0,
            origin: "cli".into(),
            renewed_micros: 1,
        }])
        .await
        .unwrap();
    other.close().await;
    store.close().await;
    // What was reported written is in the file: count through a fresh open.
    let again = SqliteStore::open_dir(&mnt.join("data")).await.unwrap();
    let c = again.counts().await.unwrap();
    assert_eq!(
        c.events, written as u64,
        "written before the disk filled: {before}"
    );
    assert_eq!(c.record_ids, written as u64);
    assert_eq!(c.decisions, 1);
    again.close().await;
}

#[tokio::test]
async fn the_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(&tmp.path().join("data"))
        .await
        .unwrap();
    store.write_batch(&batch(1, 0)).await.unwrap();
    for f in ["mirage.db", "mirage.db-wal", "mirage.db-shm"] {
        let mode = std::fs::metadata(tmp.path().join("data").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
    }
    let dir_mode = std::fs::metadata(tmp.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "data dir is {dir_mode:o}");
    store.close().await;
}
