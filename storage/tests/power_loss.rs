//! A power loss in the active segment (docs/FORMAT.md §6): the last, unsynced write run
//! reaches the disk with pages out of order — a page of zeros (never written, or the
//! zero-filled tail), garbage, or a torn batch, then a later page that did persist and holds
//! valid batches. The open must not refuse it: the log ends at the first bad batch, the
//! bytes from there are kept in a quarantine file, appends go on. Sealed segments, and any
//! segment after a clean shutdown, keep refusing damage followed by data.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_storage::inspect::{self, cut_file_path};
use cairn_storage::*;
use common::*;

const TOPIC: &str = "p";
const PAGE: u64 = 4096;

/// A crashed (dropped, not closed) `sync: always` partition: `acked` batches appended and
/// acknowledged, then an unacknowledged run of `run` batches of about 700 bytes written by
/// hand right after them, into the zero-filled space, as the writer's last `write` would
/// have put them (valid batches with the next offsets). Returns the dir, the log, what was
/// acknowledged, and the run's batches (position, offset, value).
struct Crashed {
    dir: tempfile::TempDir,
    log: PathBuf,
    acked: Values,
    run: Vec<(u64, u64, Vec<u8>)>,
}

fn crashed(acked_batches: usize, run_batches: usize) -> Crashed {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    let log;
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(1 << 20)).unwrap().partition(0).unwrap();
        for i in 0..acked_batches {
            let v = format!("acked {i} {}", "a".repeat(300)).into_bytes();
            let a = p.append(batch(&[&v])).unwrap();
            acked.push((a.base_offset, Some(v)));
        }
        p.wait_zero_fill();
        log = p.segments().last().unwrap().path.clone();
    } // dropped without close: a crash
    let positions = batch_positions(&log);
    let (last_pos, last) = *positions.last().unwrap();
    let mut pos = last_pos + last.total_len() as u64;
    let mut run = Vec::new();
    for (i, offset) in (last.next_offset()..).take(run_batches).enumerate() {
        let v = format!("in flight {i} {}", "r".repeat(650)).into_bytes();
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), Some(&v), []);
        let bytes = b.finish(offset, last.max_timestamp).unwrap();
        overwrite(&log, pos, &bytes);
        run.push((pos, offset, v));
        pos += bytes.len() as u64;
    }
    Crashed { dir, log, acked, run }
}

impl Crashed {
    /// End of the run's last batch.
    fn run_end(&self) -> u64 {
        let (pos, _, _) = self.run.last().unwrap();
        let h = batch_positions(&self.log).into_iter().find(|(p, _)| p == pos).unwrap().1;
        pos + h.total_len() as u64
    }

    /// The run batch holding byte `at`: its position and offset.
    fn batch_at(&self, at: u64) -> (u64, u64) {
        let (pos, offset, _) = self.run.iter().rev().find(|(p, _, _)| *p <= at).unwrap();
        (*pos, *offset)
    }

    /// Every value the log holds below `offset`.
    fn values_below(&self, offset: u64) -> Values {
        let run = self.run.iter().map(|(_, o, v)| (*o, Some(v.clone())));
        self.acked.iter().cloned().chain(run).filter(|(o, _)| *o < offset).collect()
    }
}

/// Files of the partition directory that are quarantine files.
fn cut_files(part: &Path) -> Vec<inspect::CutFile> {
    inspect::list_segments(part).unwrap().cut_files
}

/// Damages `[at, at + bytes.len())` of the crashed run, reopens and checks everything the
/// power-loss rule promises.
fn damage_reopen_and_check(c: &Crashed, at: u64, bytes: &[u8], what: &str) {
    let run_end = c.run_end();
    assert!(at >= c.run[0].0 && at + bytes.len() as u64 <= c.run[c.run.len() - 2].0, "{what}: a valid batch follows");
    overwrite(&c.log, at, bytes);
    let before = fs::read(&c.log).unwrap();
    assert!(before.len() as u64 > run_end, "{what}: the zero-filled space is still past the run");
    let (cut_at, cut_offset) = c.batch_at(at);
    let part = part_dir(c.dir.path(), TOPIC, 0);
    {
        let cat = open(c.dir.path(), None).unwrap();
        assert!(!cat.opened_clean());
        let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
        assert_eq!(p.end_offset(), cut_offset, "{what}: the log ends at the damaged batch");
        assert_eq!(read_values(&p, 0), c.values_below(cut_offset), "{what}: everything before the damage reads back");
        let after = fs::read(&c.log).unwrap();
        assert_eq!(after.len() as u64, cut_at, "{what}: cut at the damaged batch");
        assert_eq!(after[..], before[..cut_at as usize], "{what}: the bytes before the cut are untouched");
        let quarantine = cut_file_path(&c.log, cut_at, 1);
        assert_eq!(fs::read(&quarantine).unwrap(), &before[cut_at as usize..], "{what}: quarantine holds the cut");
        let cuts = cut_files(&part);
        assert_eq!(cuts.len(), 1, "{what}");
        assert_eq!((cuts[0].base, cuts[0].position), (0, cut_at), "{what}");
        let a = p.append(batch(&[b"after the power loss"])).unwrap();
        assert_eq!(a.base_offset, cut_offset, "{what}: appends continue from the cut");
        assert_eq!(read_values(&p, cut_offset), vec![(cut_offset, Some(b"after the power loss".to_vec()))]);
    } // a second crash
    let quarantined = fs::read(cut_file_path(&c.log, cut_at, 1)).unwrap();
    for close in [false, true] {
        let cat = open(c.dir.path(), None).unwrap();
        let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
        assert_eq!(p.end_offset(), cut_offset + 1, "{what}: reopen (after close: {close})");
        let mut expected = c.values_below(cut_offset);
        expected.push((cut_offset, Some(b"after the power loss".to_vec())));
        assert_eq!(read_values(&p, 0), expected, "{what}");
        assert_eq!(cut_files(&part).len(), 1, "{what}: no new quarantine file");
        assert_eq!(fs::read(cut_file_path(&c.log, cut_at, 1)).unwrap(), quarantined, "{what}: left alone");
        if close {
            cat.close().unwrap();
        }
    }
}

/// A page of the unacknowledged run never reached the disk (zeros where it was), a later
/// page did.
#[test]
fn a_zero_page_in_the_unsynced_run_ends_the_log_there_and_quarantines_the_rest() {
    let c = crashed(30, 20);
    // The first page boundary a little into the run: a whole 4 KiB page of zeros.
    let at = (c.run[2].0 / PAGE + 1) * PAGE;
    damage_reopen_and_check(&c, at, &[0u8; PAGE as usize], "zero page");
}

/// The same with a page of garbage (a page holding something else, e.g. a stale block).
#[test]
fn a_garbage_page_in_the_unsynced_run_ends_the_log_there_and_quarantines_the_rest() {
    let c = crashed(30, 20);
    let at = (c.run[3].0 / PAGE + 1) * PAGE;
    damage_reopen_and_check(&c, at, &[0x5au8; PAGE as usize], "garbage page");
}

/// A torn batch (its second half zeros: a partial region, not a page) with whole batches
/// after it; also a zeroed region starting exactly at a batch boundary (its header gone).
#[test]
fn a_torn_batch_in_the_unsynced_run_ends_the_log_there_and_quarantines_the_rest() {
    let c = crashed(10, 12);
    let (pos, _, _) = c.run[5];
    let len = c.run[6].0 - pos;
    damage_reopen_and_check(&c, pos + len / 2, &vec![0u8; (len - len / 2) as usize], "torn batch");

    let c = crashed(10, 12);
    let (pos, _, _) = c.run[4];
    damage_reopen_and_check(&c, pos, &[0u8; 1000], "zeroed header");
}

/// The rule applies to the active segment only: the same zero page followed by good data in
/// a sealed segment (synced before the next segment was created) is refused, naming the file
/// and position, and nothing is cut or quarantined — also when the segments after it hold no
/// data (a crash just after a roll).
#[test]
fn a_zero_page_followed_by_data_in_a_sealed_segment_is_still_refused() {
    for later_empty in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let cat = open(dir.path(), None).unwrap();
            let p = cat.create_topic(TOPIC, small(16384)).unwrap().partition(0).unwrap();
            for i in 0..40u8 {
                p.append(batch_of_len(1024, i)).unwrap();
            }
            assert!(p.segment_count() >= 3);
        } // a crash
        let part = part_dir(dir.path(), TOPIC, 0);
        // Without a recovery point every segment is scanned, the sealed ones included.
        fs::remove_file(part.join(format::RECOVERY_POINT_FILE)).unwrap();
        let all = logs(&part);
        let log = all[all.len() - 2].clone();
        if later_empty {
            cut(all.last().unwrap(), 0);
        }
        overwrite(&log, PAGE, &[0u8; PAGE as usize]);
        let len = fs::metadata(&log).unwrap().len();
        match open(dir.path(), None) {
            Err(Error::Corruption { file, position, reason }) => {
                assert_eq!((file, position), (log.clone(), PAGE), "later empty: {later_empty}");
                assert!(reason.contains("data follows"), "{reason}");
            }
            other => panic!("later empty: {later_empty}: expected corruption, got {other:?}"),
        }
        assert_eq!(fs::metadata(&log).unwrap().len(), len, "nothing cut");
        assert!(cut_files(&part).is_empty());
    }
}

/// After a clean shutdown everything was synced, so a power loss cannot have torn the active
/// segment: damage followed by data there (bit rot, a stray write) is refused as before. (The
/// clean open reads only the headers after the last index entry: damage there is seen.)
#[test]
fn damage_followed_by_data_in_the_active_segment_after_a_clean_shutdown_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(1 << 20)).unwrap().partition(0).unwrap();
        for i in 0..20u8 {
            p.append(batch_of_len(300, i)).unwrap();
        }
        cat.close().unwrap();
    }
    let part = part_dir(dir.path(), TOPIC, 0);
    let log = logs(&part).remove(0);
    let (pos, _) = batch_positions(&log)[15];
    overwrite(&log, pos, &[0u8; 400]);
    let len = fs::metadata(&log).unwrap().len();
    match open(dir.path(), None) {
        Err(Error::Corruption { file, position, reason }) => {
            assert_eq!((file, position), (log.clone(), pos));
            assert!(reason.contains("data follows"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(fs::metadata(&log).unwrap().len(), len, "nothing cut");
    assert!(cut_files(&part).is_empty());
}

/// A plain torn tail (nothing valid after the damage) keeps its old handling: cut, with no
/// quarantine file (those bytes are only ever the last, unacknowledged write).
#[test]
fn a_torn_tail_with_nothing_after_it_is_cut_without_a_quarantine_file() {
    let c = crashed(10, 6);
    let (pos, _, _) = c.run[5];
    overwrite(&c.log, pos + 100, &[0x5au8; 50]);
    let cat = open(c.dir.path(), None).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), c.run[5].1);
    assert_eq!(fs::metadata(&c.log).unwrap().len(), pos);
    assert!(cut_files(&part_dir(c.dir.path(), TOPIC, 0)).is_empty());
}

/// Deleting the topic removes its quarantine files with it.
#[test]
fn deleting_the_topic_removes_its_quarantine_files() {
    let c = crashed(5, 8);
    overwrite(&c.log, c.run[2].0, &[0u8; 200]);
    let cat = open(c.dir.path(), None).unwrap();
    let part = part_dir(c.dir.path(), TOPIC, 0);
    assert_eq!(cut_files(&part).len(), 1);
    cat.delete_topic(TOPIC).unwrap();
    assert!(!part.exists());
    let leftover: Vec<_> = fs::read_dir(c.dir.path().join(format::TOPICS_DIR)).unwrap().collect();
    assert!(leftover.is_empty(), "{leftover:?}");
}
