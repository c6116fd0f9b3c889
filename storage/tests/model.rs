//! Property test: random appends, reads, timestamp lookups, clean reopens, crashes (with the
//! last segment cut at a random byte) and retention, checked against an in-memory model.
//! Every acknowledged record must read back identical at its offset, with no holes.

mod common;

use std::collections::BTreeMap;

use cairn_storage::*;
use common::*;
use proptest::prelude::*;
use proptest::sample::Index;

type Headers = Vec<(String, Vec<u8>)>;
/// Key, value, headers of a record to append.
type NewRecord = (Option<Vec<u8>>, Option<Vec<u8>>, Headers);

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Headers,
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: Vec<NewRecord>, zstd: bool, advance_ms: i64 },
    Read { at: Index, max_bytes: usize },
    ByTime { pick: Index, delta: i64 },
    Reopen,
    Crash { cut: Option<Index> },
    Retention { jump_ms: i64 },
}

fn record() -> impl Strategy<Value = NewRecord> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    let header = (prop::sample::select(vec!["a", "trace", "ü"]), bytes(8)).prop_map(|(n, v)| (n.to_string(), v));
    (
        proptest::option::weighted(0.8, bytes(12)),
        proptest::option::weighted(0.9, prop_oneof![bytes(40), bytes(900)]),
        proptest::collection::vec(header, 0..3),
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec(record(), 1..8), any::<bool>(), 0i64..3)
            .prop_map(|(records, zstd, advance_ms)| Op::Append { records, zstd, advance_ms }),
        4 => (any::<Index>(), prop_oneof![Just(1usize), 1usize..20_000])
            .prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (any::<Index>(), -1i64..2).prop_map(|(pick, delta)| Op::ByTime { pick, delta }),
        1 => Just(Op::Reopen),
        1 => proptest::option::of(any::<Index>()).prop_map(|cut| Op::Crash { cut }),
        1 => prop_oneof![Just(0i64), Just(120_000i64)].prop_map(|jump_ms| Op::Retention { jump_ms }),
    ]
}

struct World {
    dir: tempfile::TempDir,
    clock: TestClock,
    cat: Option<Catalog>,
    model: BTreeMap<u64, Rec>,
    start: u64,
    end: u64,
}

const TOPIC: &str = "m";

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock::new(1_000_000);
        let cat = open(dir.path(), Some(&clock)).unwrap();
        let cfg = TopicConfig {
            segment_bytes: 4096,
            retention_ms: Some(60_000),
            retention_bytes: Some(12_000),
            ..TopicConfig::default()
        };
        cat.create_topic(TOPIC, cfg).unwrap();
        World { dir, clock, cat: Some(cat), model: BTreeMap::new(), start: 0, end: 0 }
    }

    fn part(&self) -> PartitionLog {
        self.cat.as_ref().unwrap().topic(TOPIC).unwrap().partition(0).unwrap()
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { records, zstd, advance_ms } => {
                self.clock.advance(*advance_ms);
                let mut b = BatchBuilder::with_codec(if *zstd { Codec::Zstd(1) } else { Codec::None });
                for (k, v, h) in records {
                    b.push(k.as_deref(), v.as_deref(), h.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
                }
                let a = self.part().append(b.finish(0, 0).unwrap()).unwrap();
                assert_eq!(a.base_offset, self.end, "offsets are contiguous");
                assert_eq!(a.last_offset, self.end + records.len() as u64 - 1);
                for (i, (k, v, h)) in records.iter().enumerate() {
                    let rec = Rec { ts: a.timestamp, key: k.clone(), value: v.clone(), headers: h.clone() };
                    self.model.insert(a.base_offset + i as u64, rec);
                }
                self.end = a.last_offset + 1;
            }
            Op::Read { at, max_bytes } => {
                let at = self.start + at.index((self.end - self.start + 1) as usize) as u64;
                self.check_read(at, *max_bytes);
            }
            Op::ByTime { pick, delta } => {
                let p = self.part();
                let ts = match self.model.len() {
                    0 => self.clock.now(),
                    n => self.model.values().nth(pick.index(n)).unwrap().ts + delta,
                };
                let expected = self.model.iter().find(|(_, r)| r.ts >= ts).map_or(self.end, |(o, _)| *o);
                assert_eq!(p.offset_for_timestamp(ts).unwrap(), expected, "offset_for_timestamp({ts})");
            }
            Op::Reopen => {
                self.cat.take().unwrap().close().unwrap();
                self.cat = Some(open(self.dir.path(), Some(&self.clock)).unwrap());
                assert!(self.cat.as_ref().unwrap().opened_clean());
                self.check_all();
            }
            Op::Crash { cut } => {
                drop(self.cat.take());
                if let Some(cut) = cut {
                    self.cut_last_segment(cut);
                }
                self.cat = Some(open(self.dir.path(), Some(&self.clock)).unwrap());
                assert!(!self.cat.as_ref().unwrap().opened_clean());
                self.check_all();
            }
            Op::Retention { jump_ms } => {
                let now = self.clock.advance(*jump_ms);
                let p = self.part();
                let before = p.segments();
                p.enforce_retention(now).unwrap();
                let start = p.start_offset();
                assert!(start >= self.start && start <= self.end);
                assert_eq!(Some(start), p.segments().first().map(|s| s.base_offset));
                assert!(before.iter().any(|s| s.base_offset == start), "start moves to a segment boundary");
                let active = before.last().unwrap();
                assert!(start <= active.base_offset, "the active segment is never deleted");
                self.model.retain(|&o, _| o >= start);
                self.start = start;
                if start > 0 {
                    assert!(matches!(p.read(start - 1, 1), Err(Error::OffsetOutOfRange { .. })));
                }
            }
        }
        let p = self.part();
        assert_eq!((p.start_offset(), p.end_offset()), (self.start, self.end));
    }

    /// Cuts the last segment at a random byte; the model keeps only whole batches.
    fn cut_last_segment(&mut self, cut: &Index) {
        let log = logs(&part_dir(self.dir.path(), TOPIC, 0)).pop().unwrap();
        let len = std::fs::metadata(&log).unwrap().len();
        let at = cut.index(len as usize + 1) as u64;
        if let Some((_, h)) = batch_positions(&log).into_iter().find(|(pos, h)| pos + h.total_len() as u64 > at) {
            self.end = h.base_offset;
            self.model.retain(|&o, _| o < h.base_offset);
        }
        cut_file(&log, at);
    }

    fn check_read(&self, at: u64, max_bytes: usize) {
        let r = self.part().read(at, max_bytes).unwrap();
        assert_eq!((r.start_offset, r.end_offset), (self.start, self.end));
        if at == self.end {
            assert!(r.batches.is_empty());
            return;
        }
        assert!(!r.batches.is_empty(), "read({at}) returned nothing below the end");
        let first = &r.batches[0].header;
        assert!(first.base_offset <= at && at <= first.last_offset(), "first batch holds the offset");
        let all_but_last: usize = r.batches[..r.batches.len() - 1].iter().map(|b| b.bytes.len()).sum();
        assert!(all_but_last < max_bytes, "max_bytes is respected (one batch at least)");
        let mut expect = at;
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).unwrap();
            for rec in d.collect_checked().unwrap().into_iter().filter(|r| r.offset >= at) {
                assert_eq!(rec.offset, expect, "no holes");
                let got = Rec {
                    ts: rec.timestamp,
                    key: rec.key.map(<[u8]>::to_vec),
                    value: rec.value.map(<[u8]>::to_vec),
                    headers: rec.headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
                };
                assert_eq!(Some(&got), self.model.get(&rec.offset), "record at {}", rec.offset);
                expect += 1;
            }
        }
        assert_eq!(r.next_offset, expect);
    }

    fn check_all(&self) {
        let got = read_values(&self.part(), self.start);
        let expected: Vec<(u64, Option<Vec<u8>>)> = self.model.iter().map(|(o, r)| (*o, r.value.clone())).collect();
        assert_eq!(got, expected);
        let mut at = self.start;
        while at < self.end {
            self.check_read(at, 1);
            at = self.part().read(at, 1).unwrap().next_offset;
        }
    }
}

fn cut_file(path: &std::path::Path, len: u64) {
    cut(path, len);
}

proptest! {
    // 24 cases keep the suite fast; PROPTEST_CASES=1000 for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..50)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        w.check_all();
        if std::env::var_os("MODEL_STATS").is_some() {
            let p = w.part();
            eprintln!("ops {} records {} start {} end {} segments {}", ops.len(), w.model.len(), w.start, w.end, p.segment_count());
        }
        w.cat.take().unwrap().close().unwrap();
    }
}
