//! SYN probes: one `probe` event per TCP SYN the firewall logged to the
//! catch-all's NFLOG group (see `mirage_net::nflog` for why).

use mirage_core::{EventKind, Transport};
use mirage_net::nflog::NflogReader;
use mirage_net::{EventTx, envelope};
use tokio_util::sync::CancellationToken;

/// Read probes from `reader` until shutdown, writing their events.
pub async fn run(
    mut reader: NflogReader,
    sensor: String,
    events: EventTx,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::new();
    let mut errors = 0u64;
    loop {
        batch.clear();
        let r = tokio::select! {
            r = reader.next_batch(&mut batch) => r,
            _ = shutdown.cancelled() => return,
        };
        if let Err(e) = r {
            errors += 1;
            if errors.is_power_of_two() {
                tracing::warn!(error = %e, count = errors, "reading SYN probes failed");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        for p in &batch {
            let kind = EventKind::Probe {
                ttl: p.ttl,
                window: p.window,
            };
            let e = envelope(
                &sensor,
                "catchall",
                Transport::Tcp,
                p.src,
                p.dst,
                None,
                kind,
            );
            events.send(e).await;
        }
    }
}
