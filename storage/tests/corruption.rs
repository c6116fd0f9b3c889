//! Bit flips in stored data: a damaged batch is reported as `Error::Corruption` naming the
//! file and byte position, never returned as data; undamaged offsets still read; and a crash
//! reopen refuses damage in the middle of a sealed segment instead of truncating it (in the
//! active segment it cuts, keeping the cut bytes in a quarantine file).

mod common;

use std::fs;

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

const TOPIC: &str = "b";

/// Several sealed segments of mixed plain and zstd batches, closed cleanly.
fn written_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.create_topic(TOPIC, small(8192)).unwrap().partition(0).unwrap();
    for i in 0..120u32 {
        let mut b = BatchBuilder::with_codec(if i % 2 == 0 { Codec::None } else { Codec::Zstd(1) });
        b.push(Some(b"k"), Some(format!("value-{i}-{}", "y".repeat(300)).as_bytes()), [("h", &b"x"[..])]);
        b.push(None, None, []);
        p.append(b.finish(0, 0).unwrap()).unwrap();
    }
    assert!(p.segment_count() >= 4);
    cat.close().unwrap();
    dir
}

#[test]
fn every_bit_flip_in_a_sealed_batch_is_reported_and_other_offsets_still_read() {
    let dir = written_dir();
    let part = part_dir(dir.path(), TOPIC, 0);
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    let all = read_values(&p, 0);
    let log = logs(&part)[1].clone();
    let positions = batch_positions(&log);
    // Damage the batch after an index entry's batch, in the middle of a sealed segment.
    let (pos, h) = positions[positions.len() / 2];
    let (prev_pos, prev) = positions[positions.len() / 2 - 1];
    assert!(prev_pos < pos);
    for i in 0..h.total_len() as u64 {
        let mask = 1u8 << (i % 8);
        flip(&log, pos + i, mask);
        match p.read(h.base_offset, 1) {
            Err(Error::Corruption { file, position, .. }) => {
                assert_eq!((&file, position), (&log, pos), "flip at byte {i}")
            }
            Ok(r) => panic!("flip at byte {i} of the batch went unnoticed: {:?}", r.batches[0].header),
            Err(e) => panic!("flip at byte {i}: unexpected {e}"),
        }
        // The batch before it, and other segments, still read.
        assert_eq!(p.read(prev.base_offset, 1).unwrap().batches[0].header, prev, "flip at byte {i}");
        assert_eq!(read_values(&p, logs_base(&logs(&part)[2])), tail_from(&all, logs_base(&logs(&part)[2])));
        assert_eq!(p.read(0, 1).unwrap().batches[0].header.base_offset, 0);
        flip(&log, pos + i, mask);
    }
    assert_eq!(read_values(&p, 0), all, "undamaged again");
}

fn logs_base(log: &std::path::Path) -> u64 {
    parse_segment_name(log.file_name().unwrap().to_str().unwrap()).unwrap().0
}

fn tail_from(all: &[(u64, Option<Vec<u8>>)], from: u64) -> Vec<(u64, Option<Vec<u8>>)> {
    all.iter().filter(|(o, _)| *o >= from).cloned().collect()
}

/// Damage in the middle of the active segment, found by the scan after a crash, ends the log
/// there (a power loss can tear the unsynced tail with later pages persisted: FORMAT.md §6),
/// but never silently: the bytes from the damaged batch on are kept, unchanged, in a
/// quarantine file named after the file and position.
#[test]
fn crash_reopen_cuts_the_active_segment_at_mid_log_damage_into_a_quarantine_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(1 << 20)).unwrap().partition(0).unwrap();
        for i in 0..30u8 {
            p.append(batch(&[&[i; 200]])).unwrap();
        }
    }
    let log = logs(&part_dir(dir.path(), TOPIC, 0)).remove(0);
    let (pos, _) = batch_positions(&log)[12];
    flip(&log, pos + BATCH_HEADER_LEN as u64 + 20, 0x01);
    let before = fs::read(&log).unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 12);
    assert_eq!(read_values(&p, 0).len(), 12);
    assert_eq!(fs::metadata(&log).unwrap().len(), pos, "cut at the damaged batch");
    let quarantine = inspect::cut_file_path(&log, pos, 1);
    assert_eq!(fs::read(quarantine).unwrap(), &before[pos as usize..], "the cut bytes are kept");
}

/// A sealed segment rolled after the last recovery point is scanned after a crash too:
/// damage there is refused, not truncated along with the later segments.
#[test]
fn crash_reopen_refuses_damage_in_a_segment_past_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(4096)).unwrap().partition(0).unwrap();
        for i in 0..40u8 {
            p.append(batch(&[&[i; 300]])).unwrap();
        }
        assert!(p.segment_count() >= 3);
    }
    let part = part_dir(dir.path(), TOPIC, 0);
    fs::remove_file(part.join(RECOVERY_POINT_FILE)).unwrap();
    let log = logs(&part)[1].clone();
    let (pos, _) = batch_positions(&log)[2];
    flip(&log, pos + 60, 0x20);
    match open(dir.path(), None) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log, pos)),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// The last batch of the log with a complete length but a bad CRC cannot be told apart from
/// a torn write; it was the last thing written, so it is cut like a torn tail.
#[test]
fn damaged_last_batch_after_a_crash_is_cut_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(1 << 20)).unwrap().partition(0).unwrap();
        for i in 0..5u8 {
            p.append(batch(&[&[i; 100]])).unwrap();
        }
    }
    let log = logs(&part_dir(dir.path(), TOPIC, 0)).remove(0);
    let (pos, _) = *batch_positions(&log).last().unwrap();
    flip(&log, pos + 50, 0x04);
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 4);
    assert_eq!(fs::metadata(&log).unwrap().len(), pos);
}
