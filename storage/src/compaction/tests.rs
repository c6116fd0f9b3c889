//! Compaction against a model: random keyed writes, tombstones, unkeyed records, clock
//! moves, compactions and reopenings; a simulated crash after every step of the swap; and
//! reads and appends running while compactions run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::{crash_at, CompactionOptions, SwapStep};
use crate::{
    BatchBuilder, Catalog, CatalogOptions, CleanupPolicy, Compression, DecodedBatch, PartitionLog, TopicConfig,
};

const DELETE_RETENTION_MS: u64 = 10_000;

/// One record as the model knows it.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
}

type Model = BTreeMap<u64, Rec>;

fn open(dir: &Path, clock: &Arc<AtomicI64>) -> Catalog {
    let c = Arc::clone(clock);
    let opts =
        CatalogOptions { writer_threads: 1, clock: Arc::new(move || c.load(Ordering::SeqCst)), ..Default::default() };
    Catalog::open(dir, opts).unwrap()
}

fn config(zstd: bool) -> TopicConfig {
    TopicConfig {
        segment_bytes: 4096,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        compression: if zstd { Compression::Zstd } else { Compression::None },
        retention_ms: None,
        ..TopicConfig::default()
    }
}

fn append(p: &PartitionLog, model: &mut Model, key: Option<&[u8]>, value: Option<&[u8]>) {
    let mut b = BatchBuilder::new();
    b.push(key, value, []);
    let a = p.append(b.finish(0, 0).unwrap()).unwrap();
    model
        .insert(a.base_offset, Rec { key: key.map(<[u8]>::to_vec), value: value.map(<[u8]>::to_vec), ts: a.timestamp });
}

/// Every record readable from the partition, by offset.
fn read_all(p: &PartitionLog) -> Model {
    let mut out = Model::new();
    let mut at = p.start_offset();
    while at < p.end_offset() {
        let r = p.read(at, 1 << 20).unwrap();
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).unwrap();
            for rec in d.collect_checked().unwrap() {
                if rec.offset >= at {
                    let prev = out.insert(
                        rec.offset,
                        Rec {
                            key: rec.key.map(<[u8]>::to_vec),
                            value: rec.value.map(<[u8]>::to_vec),
                            ts: rec.timestamp,
                        },
                    );
                    assert!(prev.is_none(), "offset {} read twice", rec.offset);
                }
            }
        }
        if r.next_offset == at {
            break;
        }
        at = r.next_offset;
    }
    out
}

/// The latest offset of each key in the model.
fn latest(model: &Model) -> BTreeMap<Vec<u8>, u64> {
    let mut l = BTreeMap::new();
    for (&o, r) in model {
        if let Some(k) = &r.key {
            l.insert(k.clone(), o);
        }
    }
    l
}

/// What must hold at any time: everything read is what was written at that offset; every
/// latest value of a key and every unkeyed record is readable.
fn check_complete(p: &PartitionLog, model: &Model) -> Model {
    let got = read_all(p);
    for (o, r) in &got {
        assert_eq!(model.get(o), Some(r), "offset {o} holds what was written there");
    }
    for (k, &o) in &latest(model) {
        if model[&o].value.is_some() {
            assert!(got.contains_key(&o), "latest value of key {k:?} at offset {o} is readable");
        }
    }
    for (o, r) in model.iter().filter(|(_, r)| r.key.is_none()) {
        assert_eq!(got.get(o), Some(r), "unkeyed record at {o} is kept");
    }
    got
}

/// What must hold right after a complete compaction at `now` that saw the sealed segments
/// below `sealed_end`: no superseded keyed record below it, and no expired latest tombstone.
fn check_compacted(got: &Model, model: &Model, sealed_end: u64, now: i64) {
    let latest = latest(model);
    for (o, r) in got.range(..sealed_end) {
        let Some(k) = &r.key else { continue };
        assert_eq!(latest[k], *o, "superseded record of key {k:?} at {o} was removed");
        if r.value.is_none() {
            assert!(now - r.ts <= DELETE_RETENTION_MS as i64, "expired tombstone at {o} was removed");
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, usize),
    Tombstone(u8),
    Unkeyed(usize),
    Advance(i64),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, 50usize..700).prop_map(|(k, n)| Op::Put(k, n)),
        2 => (0u8..12).prop_map(Op::Tombstone),
        1 => (50usize..700).prop_map(Op::Unkeyed),
        2 => (0i64..8_000).prop_map(Op::Advance),
        2 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn run_model(ops: Vec<Op>, keys_max: usize, zstd: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let mut cat = open(dir.path(), &clock);
    let mut p = cat.create_topic("c", config(zstd)).unwrap().partition(0).unwrap();
    let mut model = Model::new();
    let opts = CompactionOptions { keys_max, io_bytes_per_sec: None };
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put(k, n) => {
                append(&p, &mut model, Some(&[b'k', k]), Some(format!("{i}:{}", "v".repeat(n)).as_bytes()))
            }
            Op::Tombstone(k) => append(&p, &mut model, Some(&[b'k', k]), None),
            Op::Unkeyed(n) => append(&p, &mut model, None, Some("u".repeat(n).as_bytes())),
            Op::Advance(ms) => {
                clock.fetch_add(ms, Ordering::SeqCst);
            }
            Op::Compact => {
                let sealed_end = p.segments().last().unwrap().base_offset;
                p.compact(&opts).unwrap();
                let got = check_complete(&p, &model);
                check_compacted(&got, &model, sealed_end, clock.load(Ordering::SeqCst));
            }
            Op::Reopen => {
                cat.close().unwrap();
                drop(p);
                drop(cat);
                cat = open(dir.path(), &clock);
                p = cat.topic("c").unwrap().partition(0).unwrap();
            }
        }
        check_complete(&p, &model);
    }
    let stats = cat.compact_topic("c").unwrap();
    assert!(stats.messages_after <= stats.messages_before);
    check_complete(&p, &model);
    cat.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_the_latest_value_per_key(ops in proptest::collection::vec(op(), 1..120), zstd in any::<bool>()) {
        run_model(ops, 1_000, zstd);
    }

    /// A key map of 3 keys over 12 keys: every compaction takes several passes.
    #[test]
    fn compaction_with_a_tiny_key_map_takes_several_passes(ops in proptest::collection::vec(op(), 1..120)) {
        run_model(ops, 3, false);
    }
}

/// Writes keyed data over several segments: 6 keys, each overwritten, one tombstoned.
fn fill(p: &PartitionLog, model: &mut Model) {
    for round in 0..6 {
        for k in 0u8..6 {
            append(p, model, Some(&[b'k', k]), Some(format!("{round}-{}", "x".repeat(600)).as_bytes()));
        }
        append(p, model, None, Some(b"unkeyed"));
    }
    append(p, model, Some(b"k\x02"), None);
    append(p, model, Some(b"tail"), Some(b"in the active segment"));
}

#[test]
fn a_crash_after_any_swap_step_reopens_to_a_complete_log() {
    for step in [
        SwapStep::CleanedWritten,
        SwapStep::SwapRenamed,
        SwapStep::ManifestWritten,
        SwapStep::OldFilesRemoved,
        SwapStep::FirstRenamedIntoPlace,
        SwapStep::AllRenamedIntoPlace,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(1_000_000));
        let cat = open(dir.path(), &clock);
        let p = cat.create_topic("c", config(false)).unwrap().partition(0).unwrap();
        let mut model = Model::new();
        fill(&p, &mut model);
        assert!(p.segment_count() > 3, "several segments");
        crash_at(Some(step));
        let crashed = p.compact(&CompactionOptions::default());
        crash_at(None);
        assert!(crashed.is_err(), "{step:?}: the simulated crash stops the compaction");
        drop(p);
        drop(cat); // not closed: as after a crash
        let cat = open(dir.path(), &clock);
        let p = cat.topic("c").unwrap().partition(0).unwrap();
        check_complete(&p, &model);
        let leftovers: Vec<String> = std::fs::read_dir(p.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".swap") || n.ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: leftovers {leftovers:?}");
        let sealed_end = p.segments().last().unwrap().base_offset;
        p.compact(&CompactionOptions::default()).unwrap();
        let got = check_complete(&p, &model);
        check_compacted(&got, &model, sealed_end, clock.load(Ordering::SeqCst));
        cat.close().unwrap();
        drop(cat);
        let cat = open(dir.path(), &clock);
        check_complete(&cat.topic("c").unwrap().partition(0).unwrap(), &model);
    }
}

#[test]
fn reads_and_appends_go_on_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let cat = open(dir.path(), &clock);
    let p = cat.create_topic("c", config(false)).unwrap().partition(0).unwrap();
    let model = Arc::new(Mutex::new(Model::new()));
    fill(&p, &mut model.lock().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (p, model, done) = (p.clone(), Arc::clone(&model), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) || i < 200 {
                let mut m = Model::new();
                append(&p, &mut m, Some(&[b'k', (i % 9) as u8]), Some(format!("{i}-{}", "w".repeat(300)).as_bytes()));
                model.lock().unwrap().extend(m);
                i += 1;
            }
        })
    };
    let reader = {
        let (p, model, done) = (p.clone(), Arc::clone(&model), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::SeqCst) || passes < 5 {
                let snapshot = model.lock().unwrap().clone();
                let got = read_all(&p);
                for (o, r) in &got {
                    if let Some(expected) = snapshot.get(o) {
                        assert_eq!(expected, r, "offset {o}");
                    }
                }
                // The snapshot's latest value of a key stays readable, unless a newer record of
                // that key (appended after the snapshot was taken) superseded it and a compaction
                // dropped it meanwhile: then the newer one must be readable.
                for (k, &o) in &latest(&snapshot) {
                    if snapshot[&o].value.is_some() {
                        let superseded = got.range(o + 1..).any(|(_, r)| r.key.as_deref() == Some(k.as_slice()));
                        assert!(
                            got.contains_key(&o) || superseded,
                            "latest of {k:?} at {o} readable during compaction"
                        );
                    }
                }
                passes += 1;
            }
        })
    };
    for _ in 0..6 {
        p.compact(&CompactionOptions::default()).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    reader.join().unwrap();
    let model = model.lock().unwrap().clone();
    let sealed_end = p.segments().last().unwrap().base_offset;
    p.compact(&CompactionOptions::default()).unwrap();
    let got = check_complete(&p, &model);
    check_compacted(&got, &model, sealed_end, clock.load(Ordering::SeqCst));
    cat.close().unwrap();
}

#[test]
fn tombstones_go_after_delete_retention_and_delete_topics_only_merge() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let cat = open(dir.path(), &clock);
    let p = cat.create_topic("c", config(false)).unwrap().partition(0).unwrap();
    let mut model = Model::new();
    fill(&p, &mut model);
    let tombstone = *model.iter().rev().find(|(_, r)| r.value.is_none()).unwrap().0;
    for _ in 0..20 {
        append(&p, &mut model, Some(b"filler"), Some(&[b'f'; 500])); // seal the tombstone
    }
    p.compact(&CompactionOptions::default()).unwrap();
    assert!(read_all(&p).contains_key(&tombstone), "a young tombstone stays");
    clock.fetch_add(DELETE_RETENTION_MS as i64 + 1, Ordering::SeqCst);
    let stats = cat.compact_topic("c").unwrap();
    let got = read_all(&p);
    assert!(!got.contains_key(&tombstone), "an expired tombstone goes");
    assert!(got.values().all(|r| r.key.as_deref() != Some(b"k\x02")), "with every older value of its key");
    assert!(stats.messages_after < stats.messages_before && stats.segments_after <= stats.segments_before);

    // A delete topic: nothing dropped by key; small segments merged.
    let d = cat
        .create_topic("d", TopicConfig { cleanup_policy: CleanupPolicy::Delete, retention_ms: None, ..config(false) })
        .unwrap()
        .partition(0)
        .unwrap();
    let mut dm = Model::new();
    for i in 0..40 {
        append(&d, &mut dm, Some(b"same"), Some(format!("{i}-{}", "y".repeat(300)).as_bytes()));
    }
    let stats = cat.compact_topic("d").unwrap();
    assert_eq!(stats.messages_after, stats.messages_before);
    assert_eq!(read_all(&d), dm);
    cat.close().unwrap();
}
