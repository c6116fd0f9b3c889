//! Group commit under concurrency: 8 threads appending to one partition while 2 readers
//! tail it. Offsets are contiguous and unique; readers only ever see whole, acknowledged
//! batches in order; the end-advanced listener and `wait_for_end_above` fire.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_storage::*;
use common::*;

const WRITERS: u64 = 8;

type Acked = (u64, u64, u64, u64);
const BATCHES_PER_WRITER: u64 = 40;

fn value(writer: u64, seq: u64, j: u64) -> Vec<u8> {
    format!("w{writer}-s{seq}-r{j}").into_bytes()
}

/// Tails the partition from offset 0 until `total` records were seen; returns them.
fn tail(p: &PartitionLog, total: u64) -> Vec<(u64, Vec<u8>)> {
    let mut seen = Vec::new();
    let mut next = 0u64;
    while next < total {
        // Blocks until offset `next` exists (the deadline only guards against a hang).
        let end = p.wait_for_end_above(next, Duration::from_secs(60));
        assert!(end > next, "no progress past {next} within a minute");
        let r = p.read(next, 3000).unwrap();
        assert!(r.next_offset <= r.end_offset, "a read never goes past the end it reports");
        assert!(!r.batches.is_empty());
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).expect("readers only see whole, valid batches");
            for rec in d.collect_checked().unwrap() {
                if rec.offset >= next {
                    assert_eq!(rec.offset, next, "contiguous");
                    seen.push((rec.offset, rec.value.unwrap().to_vec()));
                    next += 1;
                }
            }
        }
        assert_eq!(r.next_offset, next);
    }
    seen
}

#[test]
fn eight_appenders_two_tailing_readers() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    let p = cat.create_topic("c", small(64 * 1024)).unwrap().partition(0).unwrap();
    let heard = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&heard);
    p.add_listener(Arc::new(move |end| {
        h.fetch_max(end, Ordering::SeqCst);
    }));
    let records_per_batch = |seq: u64| 1 + seq % 3;
    let total: u64 = WRITERS * (0..BATCHES_PER_WRITER).map(records_per_batch).sum::<u64>();
    // (base offset, last offset, writer, sequence number) of every acknowledged append.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2).map(|_| s.spawn(|| tail(&p, total))).collect();
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (p, acked) = (p.clone(), Arc::clone(&acked));
            writers.push(s.spawn(move || {
                for seq in 0..BATCHES_PER_WRITER {
                    let vals: Vec<Vec<u8>> = (0..records_per_batch(seq)).map(|j| value(w, seq, j)).collect();
                    let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
                    let a = p.append(batch(&refs)).unwrap();
                    assert_eq!(a.last_offset - a.base_offset + 1, records_per_batch(seq));
                    // Acknowledged means readable.
                    assert!(p.end_offset() > a.last_offset);
                    acked.lock().unwrap().push((a.base_offset, a.last_offset, w, seq));
                }
            }));
        }
        let log: Vec<(u64, Vec<u8>)> = {
            let mut r = readers.into_iter().map(|r| r.join().unwrap());
            let first = r.next().unwrap();
            assert_eq!(r.next().unwrap(), first, "both readers saw the same log");
            first
        };
        // Readers finish once the last append is visible, which can be before its writer
        // has recorded the acknowledgement: wait for the writers.
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(log.len() as u64, total);
        // Contiguous, unique offsets; each acknowledged batch holds exactly its records.
        let by_base: BTreeMap<u64, (u64, u64, u64)> =
            std::mem::take(&mut *acked.lock().unwrap()).into_iter().map(|(b, l, w, seq)| (b, (l, w, seq))).collect();
        assert_eq!(by_base.len() as u64, WRITERS * BATCHES_PER_WRITER);
        let mut next = 0;
        let mut last_seq: BTreeMap<u64, u64> = BTreeMap::new();
        for (&base, &(last, w, seq)) in &by_base {
            assert_eq!(base, next, "no gap or overlap");
            for (j, o) in (base..=last).enumerate() {
                assert_eq!(log[o as usize].1, value(w, seq, j as u64));
            }
            if let Some(prev) = last_seq.insert(w, seq) {
                assert!(seq > prev, "one writer's appends keep their order");
            }
            next = last + 1;
        }
        assert_eq!(next, total);
    });
    assert_eq!(p.end_offset(), total);
    assert_eq!(heard.load(Ordering::SeqCst), total, "the listener heard the final end");
    assert_eq!(p.wait_for_end_above(total - 1, Duration::ZERO), total);
}

#[test]
fn async_appends_complete_in_offset_order_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
    let p = cat.create_topic("a", small(1 << 20)).unwrap().partition(0).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..200u32 {
        let tx = tx.clone();
        p.append_async(batch(&[&i.to_le_bytes()]), Box::new(move |r| tx.send((i, r.unwrap())).unwrap()));
    }
    drop(tx);
    let mut done: Vec<(u32, Appended)> = rx.iter().collect();
    assert_eq!(done.len(), 200);
    done.sort_by_key(|(i, _)| *i);
    for (i, a) in &done {
        assert_eq!(a.base_offset, u64::from(*i), "queued order is offset order");
    }
    assert!(done.windows(2).all(|w| w[0].1.timestamp <= w[1].1.timestamp), "timestamps never decrease");
}
