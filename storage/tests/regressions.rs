//! One test per bug found in review of the engine; each failed before its fix.

mod common;

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

/// A crash with damage to a batch *header* in the middle of the active segment used to be
/// taken for a torn tail (the damaged length hid the good batches after it) and silently
/// truncated. The good batches after it must be found: the log is still cut there (the
/// active segment after a crash: FORMAT.md §6), but the bytes from the damaged batch on are
/// kept in a quarantine file named after the file and position, not dropped.
#[test]
fn recovery_never_silently_drops_good_batches_after_a_damaged_batch_header() {
    for (field, mask) in [(MAGIC_POS, 0x40u8), (LENGTH_POS + 1, 0x10), (LENGTH_POS + 3, 0x80), (ATTRIBUTES_POS, 0x04)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let cat = open(dir.path(), None).unwrap();
            let p = cat.create_topic("t", small(1 << 20)).unwrap().partition(0).unwrap();
            for i in 0..20u8 {
                p.append(batch(&[&[i; 100], &[i; 50]])).unwrap();
            }
        } // dropped without close: a crash
        let log = logs(&part_dir(dir.path(), "t", 0)).remove(0);
        let (pos, damaged) = batch_positions(&log)[10];
        flip(&log, pos + field as u64, mask);
        // (Past the data the crash may have left zero-filled space: docs/FORMAT.md §2.1.)
        let before = std::fs::read(&log).unwrap();
        assert!(before.len() >= 20 * batch(&[&[0; 100], &[0; 50]]).len());
        let cat = open(dir.path(), None).unwrap();
        assert_eq!(cat.topic("t").unwrap().partition(0).unwrap().end_offset(), damaged.base_offset, "field {field}");
        let kept = std::fs::read(inspect::cut_file_path(&log, pos, 1));
        assert_eq!(kept.ok().as_deref(), Some(&before[pos as usize..]), "field {field}: the cut bytes are kept");
    }
}

/// Builds a partition of 2048-byte one-record batches (8 per 16 KiB segment; index entries
/// at 4096 and 8192) with timestamps 1000, 1001, ..., closes it cleanly and doubles the
/// length of the batch at 4096 (offset 2) so that it spans offset 3's batch exactly.
fn uniform_log_with_damaged_length() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1000);
    {
        let cat = open(dir.path(), Some(&clock)).unwrap();
        let p = cat.create_topic("t", small(16384)).unwrap().partition(0).unwrap();
        for i in 0..20u8 {
            let a = p.append(batch_of_len(2048, i)).unwrap();
            assert_eq!(a.timestamp, 1000 + i64::from(i));
            clock.advance(1);
        }
        assert!(p.segment_count() >= 3);
        cat.close().unwrap();
    }
    let log = logs(&part_dir(dir.path(), "t", 0)).remove(0);
    let positions = batch_positions(&log);
    assert_eq!((positions[2].0, positions[2].1.base_offset), (4096, 2));
    // batch_length 2036 = 0x07f4; setting bit 11 makes it 4084: the batch "ends" at 8192.
    flip(&log, 4096 + LENGTH_POS as u64 + 1, 0x08);
    (dir, log)
}

/// A reader walking from an index entry to its offset used to move over skipped batches
/// by their unchecked length field; a damaged length landing on a later batch made the
/// read silently skip records.
#[test]
fn read_does_not_skip_records_past_a_damaged_length() {
    let (dir, log) = uniform_log_with_damaged_length();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    match p.read(3, 1) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log.clone(), 4096)),
        Ok(r) => panic!("read of offset 3 returned batches from {}", r.batches[0].header.base_offset),
        Err(e) => panic!("unexpected {e}"),
    }
    // Offsets reached without walking over the damaged batch still read.
    assert_eq!(p.read(1, 1).unwrap().batches[0].header.base_offset, 1);
    assert_eq!(p.read(4, 1).unwrap().batches[0].header.base_offset, 4);
    assert_eq!(read_values(&p, 8).len(), 12);
}

/// The same damage must not make a timestamp lookup skip to a later batch.
#[test]
fn offset_for_timestamp_does_not_skip_past_a_damaged_length() {
    let (dir, log) = uniform_log_with_damaged_length();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    match p.offset_for_timestamp(1003) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log, 4096)),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(p.offset_for_timestamp(1001).unwrap(), 1);
    assert_eq!(p.offset_for_timestamp(1012).unwrap(), 12);
}

/// A wrong offset-index entry in a sealed segment (trusted after a clean shutdown) used to
/// send readers to a position inside a batch, failing reads of healthy data.
#[test]
fn reads_survive_an_index_entry_that_does_not_match_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic("t", small(16384)).unwrap().partition(0).unwrap();
        for i in 0..20u8 {
            p.append(batch_of_len(2048, i)).unwrap();
        }
        cat.close().unwrap();
    }
    let part = part_dir(dir.path(), "t", 0);
    let index = logs(&part)[0].with_extension(INDEX_SUFFIX);
    // Entry 0 is (rel 2, pos 4096); point it 100 bytes into the batch instead.
    overwrite(&index, 4, &4196u32.to_le_bytes());
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    let got = read_values(&p, 0);
    assert_eq!(got.len(), 20);
    assert_eq!(p.read(3, 1).unwrap().batches[0].header.base_offset, 3);
}

/// A partition handle that outlives its catalog (dropped without close) used to keep
/// appending, running group commits inline, into a directory whose lock was released.
#[test]
fn appends_through_a_handle_outliving_its_dropped_catalog_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.create_topic("t", small(1 << 20)).unwrap().partition(0).unwrap();
    p.append(batch(&[b"a"])).unwrap();
    drop(cat);
    assert!(matches!(p.append(batch(&[b"late"])), Err(Error::Closed)));
    drop(p);
    let cat = open(dir.path(), None).unwrap();
    assert_eq!(cat.topic("t").unwrap().partition(0).unwrap().end_offset(), 1);
}

/// The writer re-stamps each batch's CRC, so a batch damaged before the append (or with
/// offset gaps, which appends must not create) used to be stored as valid data.
#[test]
fn append_refuses_batches_with_a_bad_crc_or_offset_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let p = cat.create_topic("t", small(1 << 20)).unwrap().partition(0).unwrap();
    let mut damaged = batch(&[b"hello"]);
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(matches!(p.append(damaged), Err(Error::InvalidBatch(BatchError::CrcMismatch { .. }))));
    let mut gappy = BatchBuilder::new();
    gappy.push_at(0, 0, None, Some(b"a"), []);
    gappy.push_at(5, 0, None, Some(b"b"), []);
    assert!(matches!(p.append(gappy.finish(0, 0).unwrap()), Err(Error::InvalidBatch(_))));
    assert_eq!(p.end_offset(), 0);
    assert_eq!(p.append(batch(&[b"ok"])).unwrap().base_offset, 0);
}

/// After close, topic updates used to open new partitions (and deletes to remove data).
#[test]
fn topic_admin_after_close_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    cat.create_topic("t", small(1 << 20)).unwrap();
    cat.close().unwrap();
    let grown = TopicConfig { partitions: 3, ..small(1 << 20) };
    assert!(matches!(cat.update_topic("t", grown), Err(Error::Closed)));
    assert!(matches!(cat.delete_topic("t"), Err(Error::Closed)));
    assert!(!part_dir(dir.path(), "t", 1).exists());
    assert!(part_dir(dir.path(), "t", 0).exists());
}

/// "Reads of other positions go on working" (API.md): a batch with damaged contents but an
/// intact extent (proven by the CRC-valid batch right after it, at its claimed next offset)
/// is stepped over by reads of later offsets that walk through it; reading it still fails.
#[test]
fn reads_step_over_a_damaged_batch_below_the_requested_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic("t", small(16384)).unwrap().partition(0).unwrap();
        for i in 0..20u8 {
            p.append(batch_of_len(2048, i)).unwrap();
        }
        cat.close().unwrap();
    }
    let log = logs(&part_dir(dir.path(), "t", 0)).remove(0);
    let positions = batch_positions(&log);
    assert_eq!((positions[2].0, positions[2].1.base_offset), (4096, 2));
    flip(&log, 4096 + 1000, 0x01); // inside the records of offset 2's batch
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("t").unwrap().partition(0).unwrap();
    match p.read(2, 1) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log.clone(), 4096)),
        other => panic!("expected corruption, got {other:?}"),
    }
    // The walk to offset 3 starts at the index entry of offset 2's batch and steps over it.
    assert_eq!(p.read(3, 1).unwrap().batches[0].header.base_offset, 3);
    // A read from before the damage stops before it, returning what precedes it.
    let r = p.read(0, 1 << 20).unwrap();
    assert_eq!(r.batches.iter().map(|b| b.header.base_offset).collect::<Vec<_>>(), vec![0, 1]);
}

/// Found by schemathesis: deleting a topic whose name has the maximum length renamed its
/// directory to `.deleted-<name>-<pid>-<n>`, longer than a file name may be, and answered 500.
#[test]
fn deleting_a_topic_with_the_longest_name_works() {
    let dir = tempfile::tempdir().unwrap();
    let name = "0".repeat(NAME_LEN_MAX);
    let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
    catalog.create_topic(&name, TopicConfig::default()).unwrap();
    catalog.delete_topic(&name).unwrap();
    assert!(catalog.topic(&name).is_none());
    let left: Vec<_> = std::fs::read_dir(dir.path().join(TOPICS_DIR)).unwrap().collect();
    assert!(left.is_empty(), "nothing left in topics/: {left:?}");
    catalog.close().unwrap();
}
