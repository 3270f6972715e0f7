//! `mirage x-connflood ssh-kex`: SSH clients (russh) that complete the key
//! exchange and then wait without authenticating, to measure what a
//! connection costs an SSH server once its crypto state exists.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use tokio::sync::Mutex;

/// Accepts any host key: the targets are our own test servers.
struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Open `count` connections, `concurrency` key exchanges at a time; print
/// `ready N failed M`; hold them until standard input closes.
pub(super) async fn hold(addr: SocketAddr, count: u64, concurrency: u64) -> ExitCode {
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: None,
        ..Default::default()
    });
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let held = Arc::new(Mutex::new(Vec::with_capacity(count as usize)));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (config, next, failed, held) =
            (config.clone(), next.clone(), failed.clone(), held.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match client::connect(config.clone(), addr, AnyHostKey).await {
                    Ok(handle) => held.lock().await.push(handle),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let held = std::mem::take(&mut *held.lock().await);
    println!(
        "ready {} failed {}",
        held.len(),
        failed.load(Ordering::Relaxed)
    );
    super::until_stdin_closes().await;
    drop(held);
    ExitCode::SUCCESS
}
