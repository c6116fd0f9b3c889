//! Crash simulation: the last segment cut at every byte of its last batch and at random
//! positions (with its index files intact, deleted, or garbage). Reopening must yield
//! exactly the prefix of whole batches, and appends must continue from there.

mod common;

use std::fs;
use std::path::Path;

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

const TOPIC: &str = "c";

/// A crashed data dir: three segments, the last one holding several batches (plain and
/// zstd). Returns the dir and every (offset, value) written.
fn crashed_template() -> (tempfile::TempDir, Values) {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(4096)).unwrap().partition(0).unwrap();
        let mut i = 0u32;
        let batches_in_last = |p: &PartitionLog| {
            let base = p.segments().last().unwrap().base_offset;
            batch_positions(&logs(&part_dir(dir.path(), TOPIC, 0)).pop().unwrap())
                .iter()
                .filter(|(_, h)| h.base_offset >= base)
                .count()
        };
        while p.segment_count() < 3 || written.len() < 60 || batches_in_last(&p) < 4 {
            let zstd = i.is_multiple_of(3);
            let mut b = BatchBuilder::with_codec(if zstd { Codec::Zstd(1) } else { Codec::None });
            let vals: Vec<Vec<u8>> = (0..1 + i % 4)
                .map(|j| format!("v{i}-{j}-{}", "x".repeat((i * 37 % 200) as usize)).into_bytes())
                .collect();
            for v in &vals {
                b.push(Some(b"key"), Some(v), [("n", &b"1"[..])]);
            }
            let a = p.append(b.finish(0, 0).unwrap()).unwrap();
            for (j, v) in vals.into_iter().enumerate() {
                written.push((a.base_offset + j as u64, Some(v)));
            }
            i += 1;
        }
        // A small zstd batch last, with a tombstone: the one cut at every byte.
        let mut b = BatchBuilder::with_codec(Codec::Zstd(1));
        b.push(Some(b"key"), Some(b"last"), []);
        b.push(Some(b"key"), None, []);
        let a = p.append(b.finish(0, 0).unwrap()).unwrap();
        written.push((a.base_offset, Some(b"last".to_vec())));
        written.push((a.base_offset + 1, None));
    } // dropped without close
    (dir, written)
}

#[derive(Clone, Copy, Debug)]
enum IndexDamage {
    None,
    Deleted,
    Garbage,
}

/// Copies the template, cuts its last segment at `at`, damages its indexes, reopens and
/// checks the prefix, then appends and checks the append survives another crash.
fn cut_and_check(template: &Path, written: &[(u64, Option<Vec<u8>>)], at: u64, damage: IndexDamage) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(template, dir.path());
    let part = part_dir(dir.path(), TOPIC, 0);
    let log = logs(&part).pop().unwrap();
    let kept_end = batch_positions(&log)
        .into_iter()
        .find(|(pos, h)| pos + h.total_len() as u64 > at)
        .map(|(_, h)| h.base_offset)
        .unwrap_or_else(|| written.last().unwrap().0 + 1);
    cut(&log, at);
    for suffix in [INDEX_SUFFIX, TIMEINDEX_SUFFIX] {
        let f = log.with_extension(suffix);
        match damage {
            IndexDamage::None => {}
            IndexDamage::Deleted => fs::remove_file(&f).unwrap(),
            IndexDamage::Garbage => overwrite(&f, 0, &[0xab; 96]),
        }
    }
    let ctx = format!("cut at {at}, index {damage:?}");
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
        assert_eq!(p.end_offset(), kept_end, "{ctx}");
        let expected: Vec<_> = written.iter().filter(|(o, _)| *o < kept_end).cloned().collect();
        assert_eq!(read_values(&p, 0), expected, "{ctx}");
        assert_eq!(fs::metadata(&log).unwrap().len(), at.min(batch_end(&log)), "{ctx}: cut to whole batches");
        let a = p.append(batch(&[b"after"])).unwrap();
        assert_eq!(a.base_offset, kept_end, "{ctx}: appends continue from the prefix");
        if kept_end > 0 {
            assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), 0, "{ctx}");
        }
    }
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), kept_end + 1, "{ctx}");
    assert_eq!(read_values(&p, kept_end), vec![(kept_end, Some(b"after".to_vec()))], "{ctx}");
}

/// Whether every byte of `log` from `from` on is zero.
fn zeros_after(log: &Path, from: u64) -> bool {
    fs::read(log).unwrap()[from as usize..].iter().all(|&b| b == 0)
}

/// End of the last whole batch of a log file.
fn batch_end(log: &Path) -> u64 {
    batch_positions(log).last().map_or(0, |(pos, h)| pos + h.total_len() as u64)
}

#[test]
fn cut_at_every_byte_of_the_last_batch() {
    let (template, written) = crashed_template();
    let log = logs(&part_dir(template.path(), TOPIC, 0)).pop().unwrap();
    let positions = batch_positions(&log);
    assert!(positions.len() >= 3, "the last segment holds several batches");
    let (last_pos, last) = *positions.last().unwrap();
    let end = last_pos + last.total_len() as u64;
    // Past the data the crash may have left zero-filled space (docs/FORMAT.md §2.1): cuts
    // inside it keep every batch.
    let file_len = fs::metadata(&log).unwrap().len();
    assert!(end <= file_len);
    assert!(zeros_after(&log, end), "only zeros past the last batch");
    let damages = [IndexDamage::None, IndexDamage::Deleted, IndexDamage::Garbage];
    for at in last_pos..=file_len.min(end + 64) {
        cut_and_check(template.path(), &written, at, damages[(at % 3) as usize]);
    }
}

#[test]
fn cut_at_random_positions_of_the_last_segment() {
    let (template, written) = crashed_template();
    let log = logs(&part_dir(template.path(), TOPIC, 0)).pop().unwrap();
    let len = fs::metadata(&log).unwrap().len();
    // A fixed-seed LCG: deterministic and dependency-free.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let damages = [IndexDamage::None, IndexDamage::Deleted, IndexDamage::Garbage];
    for i in 0..40 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        cut_and_check(template.path(), &written, (x >> 33) % (len + 1), damages[i % 3]);
    }
    cut_and_check(template.path(), &written, 0, IndexDamage::Garbage);
}

/// Zeros past the end (zero-filled space, or a file extended by the crash without its data)
/// are cut at open.
#[test]
fn zero_filled_tail_is_truncated() {
    let (template, written) = crashed_template();
    let log = logs(&part_dir(template.path(), TOPIC, 0)).pop().unwrap();
    let len = batch_end(&log);
    let file_len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(file_len + 10_000).unwrap();
    let cat = open(template.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), written.last().unwrap().0 + 1);
    assert_eq!(fs::metadata(&log).unwrap().len(), len);
}

/// A crash recovery that scanned sealed segments records a new recovery point, so the next
/// crash does not scan them again (proved by damage it then does not notice at open).
#[test]
fn crash_recovery_advances_the_recovery_point() {
    let (template, _) = crashed_template();
    let part = part_dir(template.path(), TOPIC, 0);
    fs::remove_file(part.join(RECOVERY_POINT_FILE)).unwrap();
    let active_base = {
        let cat = open(template.path(), None).unwrap();
        cat.topic(TOPIC).unwrap().partition(0).unwrap().segments().last().unwrap().base_offset
    }; // dropped: a second crash
    let rp = fs::read(part.join(RECOVERY_POINT_FILE)).unwrap();
    assert_eq!(&rp[..8], &active_base.to_le_bytes());
    // Damage a sealed segment's first batch: below the recovery point, it is not scanned.
    let first = logs(&part).remove(0);
    flip(&first, 60, 0x01); // in the records, past the header open reads
    let cat = open(template.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert!(matches!(p.read(0, 1), Err(Error::Corruption { .. })), "found on read instead");
}
