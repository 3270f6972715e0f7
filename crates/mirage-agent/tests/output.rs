//! The syslog output against real files and real sockets on 127.0.0.1: a
//! small receiver frames what arrives with `mirage_proto::syslog`, exactly as
//! the server does, and checks ids and bytes.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mirage_agent::output::{
    DiskQueue, QueueConfig, QueueHandle, Record, SD_ID, Sender, SenderConfig, Transport, encode,
};
use mirage_proto::syslog::{FrameDecoder, FrameEvent, parse};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn record(i: u64) -> Record {
    Record {
        timestamp: Utc.with_ymd_and_hms(2026, 11, 21, 11, 9, 34).unwrap()
            + chrono::Duration::milliseconds(i as i64),
        facility: 10,
        severity: 6,
        hostname: "vm".into(),
        app_name: "sshd".into(),
        procid: Some("4242".into()),
        msgid: None,
        id: format!("agent-1:fp\"x]:{i}"),
        message: format!(
            "Failed password for root from 10.0.{}.{} port 22 ssh2 #{i}",
            i / 256 % 256,
            i % 256
        )
        .into_bytes(),
    }
}

/// What the receiver got: (id, whole message bytes) per frame, in order.
#[derive(Default)]
struct Received {
    frames: Vec<(String, Vec<u8>)>,
    /// Frames that did not parse (e.g. cut by a killed sender).
    bad: usize,
}

type Shared = Arc<Mutex<Received>>;

fn take_frames(dec: &mut FrameDecoder, buf: &mut Vec<u8>, got: &Shared) {
    let mut at = 0;
    loop {
        let (n, ev) = dec.decode(&buf[at..]).expect("framing");
        if n == 0 {
            break;
        }
        if let Some(FrameEvent::Frame { data, .. }) = ev {
            let mut g = got.lock().unwrap();
            match parse(data) {
                Ok(m) => {
                    let sd = m
                        .structured_data
                        .iter()
                        .find(|e| e.id == SD_ID)
                        .expect("mirage SD element");
                    let id = sd.params[0].1.to_string();
                    g.frames.push((id, data.to_vec()));
                }
                Err(_) => g.bad += 1,
            }
        }
        at += n;
    }
    buf.drain(..at);
}

/// A TCP syslog receiver on `listener`; aborting the task closes the
/// listener and every connection (a server that went away).
fn tcp_receiver(listener: TcpListener, got: Shared) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let got = got.clone();
            conns.spawn(async move {
                let mut dec = FrameDecoder::new(64 * 1024);
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            if dec.finish(&buf).is_some() {
                                got.lock().unwrap().bad += 1;
                            }
                            return;
                        }
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            take_frames(&mut dec, &mut buf, &got);
                        }
                    }
                }
            });
        }
    })
}

fn sender_config(addr: SocketAddr, transport: Transport) -> SenderConfig {
    let mut c = SenderConfig::new(transport, addr.to_string());
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.idle_poll = Duration::from_millis(50);
    c.batch_records = 256;
    c.ack_delay = Duration::from_millis(100);
    c
}

fn open(dir: &Path) -> QueueHandle {
    QueueHandle::new(
        DiskQueue::open(dir, QueueConfig::default()).expect("open queue"),
        64 * 1024,
    )
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn distinct(got: &Shared) -> usize {
    let g = got.lock().unwrap();
    g.frames
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Every expected record arrived with its exact bytes; returns the number of
/// duplicate frames.
fn check_all(got: &Shared, n: u64) -> usize {
    let g = got.lock().unwrap();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let expected: HashMap<String, Vec<u8>> = (0..n)
        .map(|i| {
            let r = record(i);
            let bytes = encode(&r, 64 * 1024);
            (r.id, bytes)
        })
        .collect();
    for (id, bytes) in &g.frames {
        let want = expected
            .get(id)
            .unwrap_or_else(|| panic!("unexpected id {id}"));
        assert_eq!(bytes, want, "bytes of {id}");
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    g.frames.len() - seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_tcp_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Shared::default();
    let rx = tcp_receiver(listener, got.clone());

    let q = open(dir.path());
    let cancel = CancellationToken::new();
    let sender = Sender::new(q.clone(), sender_config(addr, Transport::Tcp));
    let task = tokio::spawn(sender.run(cancel.clone()));
    for i in 0..500 {
        q.push(&record(i)).unwrap();
    }
    wait_until("500 records", Duration::from_secs(20), || {
        got.lock().unwrap().frames.len() >= 500
    })
    .await;
    assert_eq!(check_all(&got, 500), 0, "no duplicates without failures");
    // One connection, in queue order.
    let ids: Vec<String> = got
        .lock()
        .unwrap()
        .frames
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let want: Vec<String> = (0..500).map(|i| record(i).id).collect();
    assert_eq!(ids, want);
    assert_eq!(got.lock().unwrap().bad, 0);
    // Everything is acknowledged and consumed segments are gone.
    wait_until("acks", Duration::from_secs(5), || q.stats().pending == 0).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    rx.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_forward_10000_while_the_receiver_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, then close it: the receiver is down.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let q = open(dir.path());
    let cancel = CancellationToken::new();
    let sender = Sender::new(q.clone(), sender_config(addr, Transport::Tcp));
    let stats = sender.stats();
    let task = tokio::spawn(sender.run(cancel.clone()));

    for i in 0..10_000 {
        q.push(&record(i)).unwrap();
    }
    // The sender is retrying against a closed port.
    wait_until("failed connects", Duration::from_secs(10), || {
        stats.failures.load(std::sync::atomic::Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(q.stats().pending, 10_000);
    assert_eq!(stats.connects.load(std::sync::atomic::Ordering::Relaxed), 0);

    let got = Shared::default();
    let listener = TcpListener::bind(addr)
        .await
        .expect("rebind the reserved port");
    let rx = tcp_receiver(listener, got.clone());
    wait_until("10,000 distinct ids", Duration::from_secs(30), || {
        distinct(&got) >= 10_000
    })
    .await;
    let dups = check_all(&got, 10_000);
    println!(
        "store-and-forward: {} frames, {dups} duplicates",
        got.lock().unwrap().frames.len()
    );
    // Duplicates can only come from a batch re-sent after a lost
    // connection; here the connection never broke.
    assert!(dups <= 256, "{dups} duplicates");
    wait_until("acks", Duration::from_secs(5), || q.stats().pending == 0).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    rx.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_crash_and_queue_reopen_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Shared::default();
    let rx = tcp_receiver(listener, got.clone());

    let q = open(dir.path());
    for i in 0..10_000 {
        q.push(&record(i)).unwrap();
    }
    let mut cfg = sender_config(addr, Transport::Tcp);
    cfg.batch_records = 16;
    // Acknowledge as soon as a batch is written, so the crash lands between
    // acknowledged and unacknowledged records.
    cfg.ack_delay = Duration::ZERO;
    let task = tokio::spawn(Sender::new(q.clone(), cfg.clone()).run(CancellationToken::new()));
    wait_until("a third", Duration::from_secs(20), || {
        distinct(&got) >= 3_000
    })
    .await;
    // Crash: the task dies wherever it is, the queue is closed without any
    // goodbye, and the agent's state comes back from disk only.
    task.abort();
    let _ = task.await;
    let before = q.stats();
    drop(q);
    assert!(
        before.pending > 0 && before.pending < 10_000,
        "mid-stream: {before:?}"
    );

    let q = open(dir.path());
    assert_eq!(q.stats().acked_seq, before.acked_seq, "position persisted");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(Sender::new(q.clone(), cfg).run(cancel.clone()));
    wait_until("all ids", Duration::from_secs(30), || {
        distinct(&got) >= 10_000
    })
    .await;
    let dups = check_all(&got, 10_000);
    let (frames, cut) = {
        let g = got.lock().unwrap();
        (g.frames.len(), g.bad)
    };
    println!("crash/reopen: {frames} frames, {dups} duplicates, {cut} cut frames");
    // At most the batches written but not yet acknowledged when the sender
    // died (the one in flight and the one before it) are sent twice.
    assert!(dups <= 32, "{dups} duplicates");
    cancel.cancel();
    task.await.unwrap().unwrap();
    rx.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_restart_mid_stream_resumes_from_the_acknowledged_position() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Shared::default();
    let rx = tcp_receiver(listener, got.clone());
    let q = open(dir.path());
    let cancel = CancellationToken::new();
    let sender = Sender::new(q.clone(), sender_config(addr, Transport::Tcp));
    let stats = sender.stats();
    let task = tokio::spawn(sender.run(cancel.clone()));
    for i in 0..2_000 {
        q.push(&record(i)).unwrap();
    }
    wait_until("first 2,000", Duration::from_secs(20), || {
        distinct(&got) >= 2_000
    })
    .await;
    wait_until("acks", Duration::from_secs(5), || q.stats().pending == 0).await;
    // The server goes away (listener and its connections), records keep
    // coming, the server comes back on the same port.
    rx.abort();
    let _ = rx.await;
    for i in 2_000..4_000 {
        q.push(&record(i)).unwrap();
    }
    let listener = TcpListener::bind(addr).await.expect("rebind");
    let rx = tcp_receiver(listener, got.clone());
    wait_until("all 4,000", Duration::from_secs(30), || {
        distinct(&got) >= 4_000
    })
    .await;
    let dups = check_all(&got, 4_000);
    assert!(stats.connects.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    println!("receiver restart: {dups} duplicates");
    // Only records written around the outage can repeat.
    assert!(dups <= 2_000, "{dups} duplicates");
    cancel.cancel();
    task.await.unwrap().unwrap();
    rx.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_parse() {
    let dir = tempfile::tempdir().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let q = open(dir.path());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        Sender::new(q.clone(), sender_config(addr, Transport::Udp)).run(cancel.clone()),
    );
    for i in 0..50 {
        q.push(&record(i)).unwrap();
    }
    let mut buf = vec![0u8; 65_536];
    for i in 0..50 {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("datagram")
            .unwrap();
        // One message per datagram, no framing.
        assert_eq!(&buf[..n], encode(&record(i), 64 * 1024).as_slice());
        parse(&buf[..n]).expect("parses");
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn queue_full_drops_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueueConfig {
        max_bytes: 64 * 1024,
        segment_bytes: 8 * 1024,
        max_record_bytes: 4 * 1024,
    };
    let mut q = DiskQueue::open(dir.path(), cfg).unwrap();
    let payload = |i: u64| format!("record {i:06} {}", "x".repeat(80)).into_bytes();
    for i in 0..10_000 {
        assert_eq!(q.append(&payload(i)).unwrap(), i);
    }
    let s = q.stats();
    assert!(s.dropped > 0);
    assert_eq!(s.dropped + s.pending, 10_000, "{s:?}");
    assert_eq!(s.drop_bursts, 1, "one warning for the whole burst");
    let on_disk: u64 = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= cfg.max_bytes, "{on_disk} bytes on disk");
    // What is left is the newest records, contiguous, intact.
    let mut seqs = Vec::new();
    while let Some(r) = q.read_next().unwrap() {
        assert_eq!(r.payload, payload(r.seq));
        seqs.push(r.seq);
    }
    assert_eq!(seqs.len() as u64, s.pending);
    assert_eq!(*seqs.last().unwrap(), 9_999);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(seqs[0], s.dropped);
    // Draining ends the burst; filling again is a second burst.
    q.ack(9_999).unwrap();
    for i in 10_000..20_000 {
        q.append(&payload(i)).unwrap();
    }
    let s2 = q.stats();
    assert_eq!(s2.drop_bursts, 2);
    assert_eq!(s2.dropped + s2.pending, 20_000 - 10_000 + s.dropped);
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), QueueConfig::default()).unwrap();
    for i in 0..100u64 {
        q.append(format!("rec {i}").as_bytes()).unwrap();
    }
    drop(q);
    let seg = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    // A crash mid-append: a header announcing 50 bytes, 10 of them written.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&50u32.to_le_bytes()).unwrap();
    f.write_all(&[0xab; 4]).unwrap();
    f.write_all(&[b'z'; 10]).unwrap();
    drop(f);

    let mut q = DiskQueue::open(dir.path(), QueueConfig::default()).unwrap();
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        good_len,
        "torn bytes cut"
    );
    assert_eq!(q.stats().pending, 100);
    assert_eq!(q.append(b"after").unwrap(), 100);
    let all: Vec<_> = std::iter::from_fn(|| q.read_next().unwrap()).collect();
    assert_eq!(all.len(), 101);
    assert_eq!(all[99].payload, b"rec 99");
    assert_eq!(all[100].payload, b"after");
    drop(q);

    // A bit flipped in the last record's payload: its CRC fails, it goes.
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let mut q = DiskQueue::open(dir.path(), QueueConfig::default()).unwrap();
    let all: Vec<_> = std::iter::from_fn(|| q.read_next().unwrap()).collect();
    assert_eq!(all.len(), 100);
    assert_eq!(all[99].payload, b"rec 99");
    assert_eq!(q.append(b"again").unwrap(), 100);
}

#[test]
fn acked_records_are_not_resent_after_reopen_unacked_are() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueueConfig {
        max_bytes: 1024 * 1024,
        segment_bytes: 4 * 1024,
        max_record_bytes: 1024,
    };
    let mut q = DiskQueue::open(dir.path(), cfg).unwrap();
    for i in 0..1_000u64 {
        q.append(&i.to_le_bytes()).unwrap();
    }
    let segs = || {
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    let segs_before = segs();
    let batch = q.read_batch(600, usize::MAX).unwrap();
    assert_eq!(batch.len(), 600);
    q.ack(399).unwrap();
    // Read but not acknowledged: 400..600 must come back.
    drop(q);
    let segs_after = segs();
    assert!(segs_after < segs_before, "consumed segments deleted");
    let mut q = DiskQueue::open(dir.path(), cfg).unwrap();
    let first = q.read_next().unwrap().unwrap();
    assert_eq!(first.seq, 400);
    assert_eq!(first.payload, 400u64.to_le_bytes());
    assert_eq!(q.stats().pending, 600);
    // A rewind replays from the acknowledged position too.
    q.read_batch(10, usize::MAX).unwrap();
    q.rewind();
    assert_eq!(q.read_next().unwrap().unwrap().seq, 400);
}
