//! Deleting rows older than `[server] retention_days`, beside the pipeline
//! rather than in it. One big `DELETE` held the write lock (and so every
//! insert of the pipeline) for about half a second on a busy store; this
//! task deletes in small chunks, each its own short transaction, and
//! yields between them, so ingest waits at most one chunk.

use std::sync::Arc;
use std::time::Duration;

use mirage_store::Store;
use tokio_util::sync::CancellationToken;

/// Rows per table and transaction.
const CHUNK: u32 = 2_000;
/// Pause between chunks, leaving the write lock to the pipeline.
const BREATHE: Duration = Duration::from_millis(20);
/// How often old rows are looked for.
const EVERY: Duration = Duration::from_secs(3600);

/// Prune rows older than `keep` every hour (first a minute after start)
/// until `cancel`.
pub async fn run(store: Arc<dyn Store>, keep: Duration, cancel: CancellationToken) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        let before = chrono::Utc::now().timestamp_micros()
            - i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        let mut total = 0u64;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match store.prune(before, CHUNK).await {
                Ok(0) => break,
                Ok(n) => total += n,
                // A full disk or a busy store: the next round tries again.
                Err(e) => {
                    tracing::warn!("prune failed: {e}");
                    break;
                }
            }
            tokio::time::sleep(BREATHE).await;
        }
        if total > 0 {
            tracing::info!("pruned {total} rows older than retention");
        }
    }
}
