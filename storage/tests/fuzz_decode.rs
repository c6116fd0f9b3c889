//! Bounded fuzzing of the batch decoder (`storage/src/batch/`): valid batches (plain and
//! zstd, with keys, values, headers and tombstones) mutated — bytes flipped and overwritten,
//! header fields and record varints set to extreme values (a length claiming 4 GiB, counts
//! of 2^32-1), cut, extended, spliced — with the CRC re-stamped half the time so the
//! mutation reaches the record parser. Every input must be refused with an error or decode
//! to records that keep the header's promises; nothing panics, and nothing allocates
//! without bound: the cases run in a child process whose address space is capped at
//! 1 GiB (`prlimit --as`), so an allocation sized from a hostile length field aborts it.
//!
//! A fixed case budget keeps this to a few seconds in `cargo test`; `FUZZ_CASES=N` runs more.

mod common;

use cairn_storage::batch::{check_client_batch, compute_crc, verify};
use cairn_storage::format::*;
use cairn_storage::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use common::fuzz::*;

/// A valid batch from generated records.
fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
    let record = (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::collection::vec(("[a-z]{0,4}", proptest::collection::vec(any::<u8>(), 0..6)), 0..3),
        0u32..3,
        0u64..1000,
    );
    (proptest::collection::vec(record, 1..8), any::<bool>(), any::<u64>(), any::<i64>()).prop_map(
        |(recs, zstd, base, ts)| {
            let mut b = BatchBuilder::with_codec(if zstd { Codec::Zstd(1) } else { Codec::None });
            let (mut delta, mut tdelta) = (0u32, 0u64);
            for (k, v, h, gap, dt) in &recs {
                let headers: Vec<(&str, &[u8])> = h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
                b.push_at(delta, tdelta, k.as_deref(), v.as_deref(), headers);
                delta += 1 + gap;
                tdelta += dt;
            }
            b.finish(base % (1 << 40), ts / 4).unwrap()
        },
    )
}

/// Fixes the length field to the buffer and re-stamps the CRC, so that the record parser
/// (not the CRC check) meets the mutation.
fn restamp(b: &mut [u8], fix_length: bool) {
    if b.len() < BATCH_HEADER_LEN {
        return;
    }
    if fix_length {
        let len = (b.len() - LENGTH_PREFIX_LEN) as u32;
        b[LENGTH_POS..LENGTH_POS + 4].copy_from_slice(&len.to_le_bytes());
    }
    let crc = compute_crc(b);
    b[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes `bytes` every way the engine and the server do, checking what is accepted.
fn decode_all_ways(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = BatchHeader::parse(bytes);
    if let Ok(h) = &parsed {
        prop_assert!(h.total_len() <= BATCH_BYTES_MAX && h.total_len() >= BATCH_HEADER_LEN);
        prop_assert!(h.record_count >= 1 && h.record_count <= BATCH_RECORDS_MAX);
    }
    let _ = verify(bytes);
    if let Ok(d) = DecodedBatch::new(bytes) {
        let h = d.header;
        let mut n = 0u32;
        let mut last = None;
        for r in d.records() {
            let Ok(r) = r else { break };
            prop_assert!(r.offset >= h.base_offset && r.offset <= h.last_offset());
            prop_assert!(last.is_none_or(|l| r.offset > l), "offsets increase");
            prop_assert!(r.timestamp <= h.max_timestamp);
            last = Some(r.offset);
            n += 1;
            prop_assert!(n <= h.record_count, "no more records than the header says");
        }
        if let Ok(all) = d.collect_checked() {
            prop_assert_eq!(all.len(), h.record_count as usize);
            prop_assert_eq!(all.last().map(|r| r.offset), Some(h.last_offset()));
        }
    }
    if let Ok(info) = check_client_batch(bytes, 1 << 20) {
        prop_assert_eq!(info.header.last_offset_delta, info.header.record_count - 1);
    }
    Ok(())
}

fn run(name: &str, default_cases: u32, mut test: impl FnMut(&mut TestRunner)) {
    if !run_capped(name) {
        return;
    }
    let mut runner =
        TestRunner::new(Config { cases: cases(default_cases), failure_persistence: None, ..Config::default() });
    test(&mut runner);
    println!("{name}: {} cases", cases(default_cases));
}

#[test]
fn mutated_batches_never_panic_or_overallocate() {
    run("mutated_batches_never_panic_or_overallocate", 4000, |runner| {
        let strategy = (valid_batch(), proptest::collection::vec(mutation(), 1..4), 0u8..3);
        runner
            .run(&strategy, |(batch, mutations, restamp_mode)| {
                prop_assert!(DecodedBatch::new(&batch).and_then(|d| d.collect_checked().map(drop)).is_ok());
                let mut b = batch;
                for m in &mutations {
                    apply(&mut b, m);
                }
                match restamp_mode {
                    0 => {}
                    1 => restamp(&mut b, false),
                    _ => restamp(&mut b, true),
                }
                decode_all_ways(&b)
            })
            .unwrap();
    });
}

#[test]
fn arbitrary_bytes_never_panic() {
    run("arbitrary_bytes_never_panic", 2000, |runner| {
        let strategy = (proptest::collection::vec(any::<u8>(), 0..2048), any::<bool>(), any::<bool>());
        runner
            .run(&strategy, |(mut b, with_header, fix)| {
                if with_header && b.len() >= BATCH_HEADER_LEN {
                    // A plausible header: right magic, a codec, counts in range.
                    b[MAGIC_POS] = BATCH_MAGIC;
                    b[ATTRIBUTES_POS] &= 1;
                    b[ATTRIBUTES_POS + 1] = 0;
                    restamp(&mut b, fix);
                }
                decode_all_ways(&b)
            })
            .unwrap();
    });
}

/// Regressions: the length fields that could make a decoder allocate what they claim.
#[test]
fn hostile_length_fields_are_refused_before_any_allocation() {
    let mut b = BatchBuilder::new();
    b.push(Some(b"k"), Some(b"v"), [("h", &b"x"[..])]);
    let good = b.finish(0, 0).unwrap();
    // A batch length claiming 4 GiB.
    let mut huge = good.clone();
    huge[LENGTH_POS..LENGTH_POS + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(BatchHeader::parse(&huge), Err(BatchError::BadLength(_))));
    // A record count of 2^32-1.
    let mut many = good.clone();
    many[RECORD_COUNT_POS..RECORD_COUNT_POS + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    restamp(&mut many, false);
    assert!(DecodedBatch::new(&many).is_err());
    // A record length varint of 2^63 and a header count of 2^40, CRC valid.
    for (field, value) in [(BATCH_HEADER_LEN, 1u64 << 63), (good.len() - 6, 1u64 << 40)] {
        let mut bad = good.clone();
        apply(&mut bad, &Mutation::Varint { at: field - BATCH_HEADER_LEN, value });
        restamp(&mut bad, true);
        let r = DecodedBatch::new(&bad).and_then(|d| d.collect_checked().map(drop));
        assert!(r.is_err(), "varint {value} at {field} accepted");
    }
}

/// Regression (found by `mutated_batches_never_panic_or_overallocate`): a base offset of
/// 2^64-1 made `last_offset()` overflow (a panic in debug builds) for any client batch.
#[test]
fn a_base_offset_near_the_top_is_refused() {
    let mut b = BatchBuilder::new();
    b.push(None, Some(b"v"), []);
    b.push(None, Some(b"w"), []);
    let mut bytes = b.finish(0, 0).unwrap();
    for base in [u64::MAX, u64::MAX - 1] {
        bytes[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base.to_le_bytes());
        restamp(&mut bytes, false);
        assert!(BatchHeader::parse(&bytes).is_err(), "base {base}");
        assert!(check_client_batch(&bytes, 1024).is_err());
    }
    bytes[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
    restamp(&mut bytes, false);
    assert!(check_client_batch(&bytes, 1024).is_ok(), "the highest base offset that fits is fine");
}
