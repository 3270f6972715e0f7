//! Property test of the disk queue against a model: random appends, reads,
//! acks, rewinds and reopens (real files) keep order, return the exact bytes,
//! and never lose a record that was not acknowledged, unless the queue says
//! it dropped it for space.

use std::collections::BTreeSet;

use mirage_agent::output::{DiskQueue, QueueConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read(usize),
    /// Acknowledge the first `k` (mod the count) records handed out.
    Ack(usize),
    Rewind,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..300).prop_map(Op::Append),
        3 => (1usize..20).prop_map(Op::Read),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Rewind),
        1 => Just(Op::Reopen),
    ]
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    seq.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn run(ops: Vec<Op>, cfg: QueueConfig) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg).unwrap();
    let mut lens: Vec<usize> = Vec::new();
    // Sequence numbers acknowledged (and so never to be seen again).
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    // Handed out since the last rewind/reopen, not acknowledged.
    let mut inflight: Vec<u64> = Vec::new();
    let mut last_read: Option<u64> = None;
    // Drops from earlier queue instances (the counter is per open).
    let mut dropped_before = 0;
    for op in ops {
        match op {
            Op::Append(len) => {
                let seq = q.append(&payload(lens.len() as u64, len)).unwrap();
                prop_assert_eq!(seq, lens.len() as u64);
                lens.push(len);
            }
            Op::Read(n) => {
                for _ in 0..n {
                    let Some(r) = q.read_next().unwrap() else {
                        break;
                    };
                    prop_assert_eq!(&r.payload, &payload(r.seq, lens[r.seq as usize]));
                    prop_assert!(!acked.contains(&r.seq), "acked {} handed out again", r.seq);
                    if let Some(prev) = last_read {
                        prop_assert!(r.seq > prev, "order: {} after {}", r.seq, prev);
                    }
                    last_read = Some(r.seq);
                    inflight.push(r.seq);
                }
            }
            Op::Ack(k) => {
                if !inflight.is_empty() {
                    let k = k % inflight.len();
                    let upto = inflight[k];
                    q.ack(upto).unwrap();
                    acked.extend(inflight.drain(..=k));
                }
            }
            Op::Rewind => {
                q.rewind();
                inflight.clear();
                last_read = None;
            }
            Op::Reopen => {
                dropped_before += q.stats().dropped;
                drop(q);
                q = DiskQueue::open(dir.path(), cfg).unwrap();
                inflight.clear();
                last_read = None;
            }
        }
        let s = q.stats();
        prop_assert!(s.bytes <= cfg.max_bytes);
        prop_assert_eq!(s.next_seq, lens.len() as u64);
    }
    // Final drain from the acknowledged position: everything not acked is
    // here, except what the queue counted as dropped.
    q.rewind();
    let mut rest = BTreeSet::new();
    let mut prev = None;
    while let Some(r) = q.read_next().unwrap() {
        prop_assert_eq!(&r.payload, &payload(r.seq, lens[r.seq as usize]));
        if let Some(p) = prev {
            prop_assert!(r.seq > p);
        }
        prev = Some(r.seq);
        rest.insert(r.seq);
    }
    let missing = (0..lens.len() as u64)
        .filter(|s| !acked.contains(s) && !rest.contains(s))
        .count() as u64;
    let dropped = dropped_before + q.stats().dropped;
    prop_assert!(
        missing <= dropped,
        "{missing} lost, only {dropped} counted as dropped"
    );
    if dropped == 0 {
        prop_assert_eq!(missing, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_loses_unacked_records_with_room(ops in prop::collection::vec(op(), 1..200)) {
        run(ops, QueueConfig { max_bytes: 1 << 20, segment_bytes: 2048, max_record_bytes: 1024 })?;
    }

    #[test]
    fn drops_only_what_it_counts_when_full(ops in prop::collection::vec(op(), 1..300)) {
        run(ops, QueueConfig { max_bytes: 8 * 1024, segment_bytes: 1024, max_record_bytes: 512 })?;
    }
}
