//! The zero-filled tail of the active segment (`docs/FORMAT.md` §2.1): appends into it
//! change no file size; it is never visible; sealed and closed segments hold exactly their
//! data; a crash that leaves it opens with no damage; a torn batch before it is still cut;
//! and the zeroer never zeroes acknowledged data, however appends and fills interleave.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use cairn_storage::format::*;
use cairn_storage::inspect::{self, LogFile};
use cairn_storage::*;
use common::*;

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn active_log(p: &PartitionLog) -> std::path::PathBuf {
    p.segments().last().unwrap().path.clone()
}

/// Appends `n` small one-record batches, recording what was written.
fn append_small(p: &PartitionLog, n: usize, written: &mut Values) {
    for _ in 0..n {
        let v = format!("value {}", written.len()).into_bytes();
        let a = p.append(batch(&[&v])).unwrap();
        assert_eq!(a.base_offset, written.len() as u64);
        written.push((a.base_offset, Some(v)));
    }
}

#[test]
fn appends_into_the_zeros_change_no_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.create_topic("t", small(64 << 20)).unwrap().partition(0).unwrap();
    let mut written = Vec::new();
    append_small(&p, 1, &mut written);
    let zeroed_to = p.wait_zero_fill();
    let log = active_log(&p);
    // A small segment: the least zero-filled space is aimed for.
    assert_eq!(zeroed_to, p.size_bytes() + PREZERO_AHEAD_MIN_BYTES);
    assert_eq!(file_len(&log), zeroed_to);
    // Well under half of that appended: no new fill is asked for, the file keeps its size.
    let mut size = p.size_bytes();
    for _ in 0..200 {
        append_small(&p, 1, &mut written);
        assert!(p.size_bytes() > size, "the acknowledged length grows");
        size = p.size_bytes();
        assert_eq!(file_len(&log), zeroed_to, "the file does not grow");
    }
    assert!(size < PREZERO_AHEAD_MIN_BYTES / 2);
    // Past half of it, a fill tops the zeros up to as much as the segment holds.
    while p.size_bytes() < 300_000 {
        append_small(&p, 1, &mut written);
    }
    let zeroed_to = p.wait_zero_fill();
    assert!(zeroed_to >= p.size_bytes() * 3 / 2, "{zeroed_to}");
    assert!(zeroed_to <= p.size_bytes() * 2 + PREZERO_AHEAD_MIN_BYTES, "{zeroed_to}");
    assert_eq!(file_len(&log), zeroed_to);
    size = p.size_bytes();
    // The zeros are never visible: not in the size, not in reads, not in the segment list.
    assert_eq!(read_values(&p, 0), written);
    assert_eq!(p.end_offset(), written.len() as u64);
    assert_eq!(p.segments()[0].size_bytes, size);
    assert_eq!(p.read(p.end_offset(), 1 << 20).unwrap().batches.len(), 0);
    cat.close().unwrap();
    assert_eq!(file_len(&log), size, "a clean close cuts the zeros");
}

/// Large group commits (above `PREZERO_COMMIT_BYTES_MAX` on average) and interval-sync
/// topics are not zero-filled: their files hold exactly their data.
#[test]
fn large_commits_and_interval_sync_are_not_zero_filled() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let big = cat.create_topic("big", small(64 << 20)).unwrap().partition(0).unwrap();
    let ivl_cfg = TopicConfig { sync: SyncPolicy::Interval { interval_ms: 600_000 }, ..small(64 << 20) };
    let ivl = cat.create_topic("ivl", ivl_cfg).unwrap().partition(0).unwrap();
    for i in 0..20u8 {
        big.append(batch_of_len(PREZERO_COMMIT_BYTES_MAX as usize + 100, i)).unwrap();
        assert_eq!(big.wait_zero_fill(), big.size_bytes());
        assert_eq!(file_len(&active_log(&big)), big.size_bytes());
        ivl.append(batch(&[b"small"])).unwrap();
        assert_eq!(ivl.wait_zero_fill(), ivl.size_bytes());
        assert_eq!(file_len(&active_log(&ivl)), ivl.size_bytes());
    }
}

#[test]
fn sealed_and_closed_segments_hold_exactly_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.create_topic("t", small(64 * 1024)).unwrap().partition(0).unwrap();
    let mut written = Vec::new();
    let mut rolled_with_zeros = 0;
    for i in 0..300 {
        let before = p.segment_count();
        let active = active_log(&p);
        let zeros = p.wait_zero_fill() > p.segments().last().unwrap().size_bytes;
        let v = vec![i as u8; 900];
        let a = p.append(batch(&[&v])).unwrap();
        written.push((a.base_offset, Some(v)));
        if p.segment_count() > before && zeros {
            rolled_with_zeros += 1;
            assert!(!p.segments().last().unwrap().path.eq(&active));
        }
        for s in p.segments().iter().filter(|s| s.sealed) {
            assert_eq!(file_len(&s.path), s.size_bytes, "sealed {}", s.path.display());
            assert!(s.size_bytes <= 64 * 1024);
        }
        let zeroed = p.wait_zero_fill();
        let last = p.segments().last().unwrap().clone();
        assert!(zeroed <= 64 * 1024, "never past segment_bytes");
        assert_eq!(file_len(&last.path), zeroed.max(last.size_bytes));
    }
    assert!(p.segment_count() >= 4);
    assert!(rolled_with_zeros >= 3, "rolls happened with zeros past the data ({rolled_with_zeros})");
    let segments = p.segments();
    cat.close().unwrap();
    for s in &segments {
        assert_eq!(file_len(&s.path), s.size_bytes, "after close: {}", s.path.display());
    }
    drop(cat);
    let cat = open(dir.path(), None).unwrap();
    assert_eq!(read_values(&cat.topic("t").unwrap().partition(0).unwrap(), 0), written);
}

/// A crash (the catalog dropped without close) with zeros past the data: the open finds the
/// right end, reports no damage, cuts the zeros, and appends go on.
#[test]
fn a_crash_with_zeros_past_the_data_opens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    let log;
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic("t", small(64 << 20)).unwrap().partition(0).unwrap();
        append_small(&p, 50, &mut written);
        p.wait_zero_fill();
        log = active_log(&p);
        assert!(file_len(&log) > p.size_bytes());
    } // dropped without close: a crash
    let data_len = batch_positions(&log).last().map(|(pos, h)| pos + h.total_len() as u64).unwrap();
    assert!(file_len(&log) > data_len);
    // The offline scan sees no damage, only the zero tail.
    let mut f = LogFile::open(&log).unwrap();
    let scan = inspect::scan_segment(&mut f, 0, false, |_, _, _| {}).unwrap();
    assert!(scan.damage.is_empty(), "{:?}", scan.damage);
    assert_eq!((scan.good_len, scan.zero_tail), (data_len, file_len(&log) - data_len));
    assert_eq!(scan.next_offset, 50);

    let cat = open(dir.path(), None).unwrap();
    assert!(!cat.opened_clean());
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 50);
    assert_eq!(p.size_bytes(), data_len);
    assert_eq!(file_len(&log), data_len, "the zeros are cut at open");
    assert_eq!(read_values(&p, 0), written);
    append_small(&p, 50, &mut written);
    assert_eq!(read_values(&p, 0), written);
    drop(cat);
    let cat = open(dir.path(), None).unwrap();
    assert_eq!(read_values(&cat.topic("t").unwrap().partition(0).unwrap(), 0), written);
}

/// Zeros written after the data by hand (a segment that is only zeros included) open as a
/// zero-filled tail too, after a crash and after a clean shutdown alike.
#[test]
fn zeros_written_after_the_data_are_a_zero_tail() {
    for clean in [false, true] {
        for data in [0usize, 7] {
            let dir = tempfile::tempdir().unwrap();
            let mut written = Vec::new();
            let log;
            {
                let cat = open(dir.path(), None).unwrap();
                let ivl = TopicConfig { sync: SyncPolicy::Interval { interval_ms: 600_000 }, ..small(1 << 20) };
                let p = cat.create_topic("t", ivl).unwrap().partition(0).unwrap();
                append_small(&p, data, &mut written);
                log = active_log(&p);
                if clean {
                    cat.close().unwrap();
                } else {
                    p.sync().unwrap();
                }
            }
            let len = file_len(&log);
            fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len + 100_000).unwrap();
            let cat = open(dir.path(), None).unwrap();
            assert_eq!(cat.opened_clean(), clean);
            let p = cat.topic("t").unwrap().partition(0).unwrap();
            assert_eq!(p.end_offset(), data as u64, "clean {clean}, {data} batches");
            assert_eq!(file_len(&log), len, "clean {clean}, {data} batches: zeros cut");
            assert_eq!(read_values(&p, 0), written);
            append_small(&p, 3, &mut written);
            assert_eq!(read_values(&p, 0), written);
        }
    }
}

/// A torn batch followed by zeros (a crash in the middle of an append into zero-filled
/// space) is a torn tail: cut to the last whole batch. Damage followed by good data (and
/// zeros) is cut too, but kept in a quarantine file.
#[test]
fn a_torn_batch_before_the_zeros_is_cut_and_mid_log_damage_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    let log;
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic("t", small(64 << 20)).unwrap().partition(0).unwrap();
        append_small(&p, 20, &mut written);
        p.wait_zero_fill();
        log = active_log(&p);
    }
    let data_len = batch_positions(&log).last().map(|(pos, h)| pos + h.total_len() as u64).unwrap();
    let zeroed = file_len(&log);
    assert!(zeroed > data_len + 10_000);
    let template = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), template.path());

    // Half of a next batch (offset 20) written into the zeros.
    let mut torn = batch(&[&[5u8; 3000]]);
    torn[..8].copy_from_slice(&20u64.to_le_bytes());
    overwrite(&log, data_len, &torn[..torn.len() / 2]);
    // A batch whose last bytes never made it: the zeros in its place fail its CRC.
    let whole = batch(&[&[6u8; 3000]]);
    for (name, bytes) in
        [("half a batch", &torn[..torn.len() / 2]), ("a batch ending in zeros", &whole[..whole.len() - 200])]
    {
        let d = tempfile::tempdir().unwrap();
        copy_tree(template.path(), d.path());
        let log = part_dir(d.path(), "t", 0).join(log.file_name().unwrap());
        overwrite(&log, data_len, bytes);
        assert_eq!(file_len(&log), zeroed);
        let cat = open(d.path(), None).unwrap();
        let p = cat.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(p.end_offset(), 20, "{name}");
        assert_eq!(file_len(&log), data_len, "{name}: cut at the last whole batch");
        assert_eq!(read_values(&p, 0), written, "{name}");
        assert_eq!(p.append(batch(&[b"next"])).unwrap().base_offset, 20, "{name}");
    }

    // A damaged batch in the middle, with good batches and then zeros after it: in the
    // active segment after a crash the log ends there (FORMAT.md §6), and the bytes from it
    // to the end of the file, zeros included, are kept in a quarantine file.
    let (pos, _) = batch_positions(&log)[10];
    flip(&log, pos + 30, 0x01);
    let before = fs::read(&log).unwrap();
    assert_eq!(before.len() as u64, zeroed);
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 10);
    assert_eq!(read_values(&p, 0), written[..10]);
    assert_eq!(file_len(&log), pos, "cut at the damaged batch");
    assert_eq!(fs::read(inspect::cut_file_path(&log, pos, 1)).unwrap(), &before[pos as usize..]);
}

/// Many appenders while the zeroer fills and segments roll: every acknowledged record reads
/// back unchanged, before and after a crash; no zero ever lands on acknowledged data.
#[test]
fn appends_racing_the_zeroer_lose_nothing() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<(u64, Vec<u8>)>;
    {
        let cat = open(dir.path(), None).unwrap();
        // Segments of a few fills each: rolls stop fills in flight.
        let p = cat.create_topic("t", small(512 * 1024)).unwrap().partition(0).unwrap();
        let p = Arc::new(p);
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..PER_WRITER {
                        // Sizes vary so that runs end at every alignment; a few are large.
                        let len = if i % 97 == 0 { 20_000 } else { 1 + (i * 131 + w * 17) % 1500 };
                        let v: Vec<u8> = (0..len).map(|j| (w * 31 + i + j) as u8 | 1).collect();
                        let a = p.append(batch(&[&v])).unwrap();
                        mine.push((a.base_offset, v));
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<(u64, Vec<u8>)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort();
        assert_eq!(all.len(), WRITERS * PER_WRITER);
        assert!(p.segment_count() > 2);
        let read: Vec<(u64, Vec<u8>)> = read_values(&p, 0).into_iter().map(|(o, v)| (o, v.unwrap())).collect();
        assert_eq!(read, all, "read back while open");
        expected = all;
        p.wait_zero_fill();
    } // dropped without close: a crash
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    let read: Vec<(u64, Vec<u8>)> = read_values(&p, 0).into_iter().map(|(o, v)| (o, v.unwrap())).collect();
    assert_eq!(read, expected, "read back after a crash");
    for s in p.segments().iter().filter(|s| s.sealed) {
        assert_eq!(file_len(&s.path), s.size_bytes);
    }
}
