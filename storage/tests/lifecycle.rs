//! Catalogue life cycle: interval-sync topics, topic create / update / delete, the data
//! directory lock, and the promise that a clean open reads no data (proved by damage it
//! does not notice, which a crash open of the same segment would).

mod common;

use std::fs;

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

#[test]
fn interval_sync_topic_acknowledges_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let cfg = TopicConfig { sync: SyncPolicy::Interval { interval_ms: 5 }, ..small(4096) };
        let p = cat.create_topic("i", cfg).unwrap().partition(0).unwrap();
        for i in 0..50u32 {
            assert_eq!(
                p.append(batch(&[format!("{i}-{}", "q".repeat(400)).as_bytes()])).unwrap().base_offset,
                u64::from(i)
            );
        }
        assert!(p.segment_count() > 3, "rolled several times");
        p.sync().unwrap();
    } // crash: the page cache keeps what interval topics acknowledged
    let cat = open(dir.path(), None).unwrap();
    let p = cat.topic("i").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 50);
    assert_eq!(read_values(&p, 0).len(), 50);
    assert_eq!(cat.topic("i").unwrap().config().sync, SyncPolicy::Interval { interval_ms: 5 });
}

#[test]
fn topics_are_created_grown_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    let cfg = TopicConfig { partitions: 2, ..small(4096) };
    let t = cat.create_topic("orders", cfg.clone()).unwrap();
    assert!(matches!(cat.create_topic("orders", cfg.clone()), Err(Error::TopicExists(_))));
    assert!(matches!(cat.create_topic("bad/name", cfg.clone()), Err(Error::InvalidName(_))));
    assert!(matches!(cat.create_topic("..", cfg.clone()), Err(Error::InvalidName(_))));
    for p in t.partitions() {
        p.append(batch(&[b"x"])).unwrap();
    }
    let grown = TopicConfig { partitions: 4, ..cfg.clone() };
    let t = cat.update_topic("orders", grown.clone()).unwrap();
    assert_eq!(t.partition_count(), 4);
    assert!(part_dir(dir.path(), "orders", 3).join("00000000000000000000.log").exists());
    assert_eq!(t.partition(3).unwrap().append(batch(&[b"new"])).unwrap().base_offset, 0);
    assert_eq!(t.partition(0).unwrap().end_offset(), 1);
    assert!(matches!(cat.update_topic("orders", cfg.clone()), Err(Error::InvalidConfig(_))), "no shrinking");
    assert!(matches!(cat.update_topic("nope", cfg.clone()), Err(Error::TopicNotFound(_))));
    cat.close().unwrap();
    drop(cat);

    let cat = open(dir.path(), None).unwrap();
    let t = cat.topic("orders").unwrap();
    assert_eq!((t.partition_count(), t.config()), (4, grown));
    let stale = t.partition(1).unwrap();
    cat.delete_topic("orders").unwrap();
    assert!(cat.topic("orders").is_none());
    assert!(!dir.path().join(TOPICS_DIR).join("orders").exists(), "files gone");
    assert_eq!(fs::read_dir(dir.path().join(TOPICS_DIR)).unwrap().count(), 0, "no .deleted-* leftover");
    assert!(matches!(stale.append(batch(&[b"late"])), Err(Error::Closed)));
    assert!(matches!(cat.delete_topic("orders"), Err(Error::TopicNotFound(_))));
    let t = cat.create_topic("orders", cfg).unwrap();
    assert_eq!(t.partition(0).unwrap().end_offset(), 0, "a new topic of the same name starts empty");
}

#[test]
fn leftovers_of_interrupted_operations_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        cat.create_topic("keep", small(4096)).unwrap().partition(0).unwrap().append(batch(&[b"a"])).unwrap();
        cat.close().unwrap();
    }
    let topics = dir.path().join(TOPICS_DIR);
    fs::create_dir_all(topics.join("half-created").join("0")).unwrap();
    fs::create_dir_all(topics.join(".deleted-old-1-0").join("0")).unwrap();
    let part = part_dir(dir.path(), "keep", 0);
    fs::write(part.join("recovery-point.tmp"), b"junk").unwrap();
    fs::write(part.join("00000000000000000099.index"), b"orphan").unwrap();
    let cat = open(dir.path(), None).unwrap();
    assert_eq!(cat.topics().len(), 1);
    assert!(!topics.join("half-created").exists() && !topics.join(".deleted-old-1-0").exists());
    assert!(!part.join("recovery-point.tmp").exists() && !part.join("00000000000000000099.index").exists());
    assert_eq!(read_values(&cat.topic("keep").unwrap().partition(0).unwrap(), 0).len(), 1);
}

#[test]
fn the_data_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path(), None).unwrap();
    assert!(matches!(open(dir.path(), None), Err(Error::Locked { .. })));
    drop(cat);
    open(dir.path(), None).unwrap();
}

/// 2048-byte batches in 16 KiB segments: index entries at 4096, 8192 and 12288, so a clean
/// open reads only the headers from 12288 on. The batch at 2048 of the first segment is
/// overwritten with garbage.
fn damaged_below_the_last_index_entry() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic("s", small(16384)).unwrap().partition(0).unwrap();
        for i in 0..20u8 {
            p.append(batch_of_len(2048, i)).unwrap();
        }
        cat.close().unwrap();
    }
    let log = logs(&part_dir(dir.path(), "s", 0)).remove(0);
    overwrite(&log, 2048, &[0x5a; 2048]);
    (dir, log)
}

#[test]
fn clean_open_reads_no_data_but_reads_find_the_damage() {
    let (dir, log) = damaged_below_the_last_index_entry();
    let cat = open(dir.path(), None).unwrap();
    assert!(cat.opened_clean(), "opened without noticing: nothing below the last index entry was read");
    let p = cat.topic("s").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 20);
    match p.read(1, 1) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log, 2048)),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(read_values(&p, 8).len(), 12, "other segments read");
}

#[test]
fn crash_open_scans_segments_past_the_recovery_point_and_finds_the_damage() {
    let (dir, log) = damaged_below_the_last_index_entry();
    // Below the recovery point a crash open trusts the segment as a clean open does...
    fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    drop(open(dir.path(), None).unwrap());
    // ...without one, the segment is scanned and the damage is refused.
    fs::remove_file(part_dir(dir.path(), "s", 0).join(RECOVERY_POINT_FILE)).unwrap();
    match open(dir.path(), None) {
        Err(Error::Corruption { file, position, .. }) => assert_eq!((file, position), (log, 2048)),
        other => panic!("expected corruption, got {other:?}"),
    }
}
