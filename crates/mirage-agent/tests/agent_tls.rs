//! Syslog over TLS (RFC 5425) against a rustls listener with an rcgen-made
//! CA: server verification, mutual TLS, refusal of a server signed by
//! another CA, and unusable TLS files as a configuration error.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Pki, Receiver, config, file_source, start};
use mirage_agent::output::{
    DiskQueue, QueueConfig, QueueHandle, Record, Sender, SenderConfig, TlsSettings, Transport,
};
use mirage_config::agent::{LineFormat, OutputTransport, SourceService};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn tls_config(
    dir: &std::path::Path,
    rx: &Receiver,
    pki: &Pki,
    client: bool,
) -> mirage_config::AgentConfig {
    let log = dir.join("auth.log");
    std::fs::write(
        &log,
        "Nov 21 11:09:34 vm1 sshd[1]: Invalid user tls from 10.0.0.1 port 1\n",
    )
    .unwrap();
    let mut c = config(&dir.join("state"), rx.addr, 1);
    c.output.transport = OutputTransport::Tls;
    c.output.tls.ca_file = pki.ca_pem.clone();
    c.output.tls.server_name = "localhost".into();
    if client {
        c.output.tls.cert_file = pki.client_cert_pem.clone();
        c.output.tls.key_file = pki.client_key_pem.clone();
    }
    c.sources = vec![file_source(
        "auth",
        SourceService::Ssh,
        &[&log],
        LineFormat::Syslog,
    )];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_output_verifies_the_server_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "mirage-test");
    let rx = Receiver::tls(pki.server_config(false)).await;
    let c = tls_config(dir.path(), &rx, &pki, false);
    let agent = start(c.clone());
    rx.wait("the line over TLS", WAIT, |f| {
        f.iter()
            .any(|f| f.app == "sshd" && f.text().contains("Invalid user tls"))
    })
    .await;
    agent.stop().await;
    // A graceful stop over TLS (close_notify, then the server's close)
    // leaves nothing to send twice.
    let before = rx.frames().len();
    let agent = start(c);
    rx.wait("the restart's first heartbeat", WAIT, |f| f.len() > before)
        .await;
    agent.stop().await;
    let frames = rx.frames();
    assert_eq!(frames.iter().filter(|f| f.app == "sshd").count(), 1);
    assert_eq!(rx.got.lock().unwrap().bad, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "mirage-test");
    let rx = Receiver::tls(pki.server_config(true)).await;
    let agent = start(tls_config(dir.path(), &rx, &pki, true));
    rx.wait("the line over mutual TLS", WAIT, |f| {
        f.iter().any(|f| f.app == "sshd")
    })
    .await;
    agent.stop().await;

    // Without a client certificate the server refuses every handshake.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::tls(pki.server_config(true)).await;
    let agent = start(tls_config(dir.path(), &rx, &pki, false));
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.stop().await;
    assert_eq!(rx.got.lock().unwrap().connections, 0);
    assert!(rx.frames().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_another_ca_is_refused_and_records_stay_queued() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Pki::new(dir.path(), "ours");
    let theirs = Pki::new(dir.path(), "theirs");
    let rx = Receiver::tls(theirs.server_config(false)).await;

    let queue = QueueHandle::new(
        DiskQueue::open(dir.path().join("q"), QueueConfig::default()).unwrap(),
        65536,
    );
    queue
        .push(&Record {
            timestamp: chrono::Utc::now(),
            facility: 10,
            severity: 6,
            hostname: "vm".into(),
            app_name: "sshd".into(),
            procid: None,
            msgid: None,
            id: "r1".into(),
            message: b"secret log line".to_vec(),
        })
        .unwrap();
    let mut cfg = SenderConfig::new(Transport::Tls, rx.addr.to_string());
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(100);
    cfg.tls = Some(Arc::new(
        TlsSettings::from_files(&ours.ca_pem, None, "localhost").unwrap(),
    ));
    let sender = Sender::new(queue.clone(), cfg);
    let stats = sender.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sender.run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert!(stats.failures.load(Ordering::Relaxed) >= 2);
    assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
    assert!(rx.frames().is_empty());
    assert_eq!(queue.stats().pending, 1, "kept for a server we trust");

    // The TLS transport without settings is refused up front.
    let s = Sender::new(
        queue,
        SenderConfig::new(Transport::Tls, rx.addr.to_string()),
    );
    assert!(s.run(CancellationToken::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "mirage-test");
    let rx = Receiver::tls(pki.server_config(false)).await;
    let mut c = tls_config(dir.path(), &rx, &pki, false);
    c.output.tls.ca_file = dir.path().join("missing-ca.pem");
    let err = mirage_agent::run(c.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("missing-ca.pem"), "{err}");
    // A key that does not match the certificate.
    let other = Pki::new(dir.path(), "other");
    c.output.tls.ca_file = pki.ca_pem.clone();
    c.output.tls.cert_file = pki.client_cert_pem.clone();
    c.output.tls.key_file = other.client_key_pem.clone();
    let err = mirage_agent::run(c, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}
