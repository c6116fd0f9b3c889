//! `cairn verify`, `verify --repair`, `dump` and offline `compact` on a partition that a crash
//! left in the middle of a compaction swap (`docs/FORMAT.md` §6), at each step of the swap.
//!
//! The crash states are built by hand from a data directory written by the engine: the
//! "cleaned" output of the group (segments 0 and 1 of `events/0`) keeps every third batch of
//! the group, copied byte for byte with its original offsets (whole batches of superseded
//! keys dropped, as compaction does), with indexes by the engine's rule. What the engine's
//! open makes of each state is the reference: verify must check the partition as the open
//! will leave it (same records), and repair and offline compact must complete a committed
//! swap exactly as the open does.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_storage::inspect::{self as walk, encode_swap_manifest, swap_manifest_path, with_suffix, SegmentFiles};
use cairn_storage::{write_atomic, Catalog, CatalogOptions, DecodedBatch};
use common::*;

/// How far the swap got before the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// `.cleaned` files written and synced (not committed).
    Cleaned,
    /// Renamed to `.swap` (not committed).
    Staged,
    /// Manifest written: committed, nothing moved yet.
    Committed,
    /// The group's other segment unlinked.
    OthersRemoved,
    /// The index renamed into place, the time index and log still `.swap`.
    IndexInPlace,
    /// Everything renamed into place; only the manifest is left.
    AllInPlace,
}

const STEPS: [Step; 6] =
    [Step::Cleaned, Step::Staged, Step::Committed, Step::OthersRemoved, Step::IndexInPlace, Step::AllInPlace];

/// A crashed data directory and the records of `events/0` before and after the swap.
struct Crashed {
    dir: tempfile::TempDir,
    records_before: u64,
    records_after: u64,
    target: SegmentFiles,
}

impl Crashed {
    fn data(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn partition_dir(&self) -> PathBuf {
        self.dir.path().join("topics/events/0")
    }

    /// What the engine's open leaves: records of `events/0` when `step` is committed.
    fn expected(&self, step: Step) -> u64 {
        if step >= Step::Committed {
            self.records_after
        } else {
            self.records_before
        }
    }
}

fn records_in(log: &Path, base: u64) -> u64 {
    let mut f = walk::LogFile::open(log).unwrap();
    walk::scan_segment(&mut f, base, false, |_, _, _| {}).unwrap().records
}

/// Builds a data directory whose `events/0` crashed after `step` of swapping a cleaned
/// segment in for its first two segments.
fn crash_after(step: Step) -> Crashed {
    let dir = make_data_dir(40);
    // A crash: no clean-shutdown marker.
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
    let pdir = dir.path().join("topics/events/0");
    let listing = walk::list_segments(&pdir).unwrap();
    assert!(listing.segments.len() >= 3, "the group and a later segment");
    let (s0, s1) = (listing.segments[0].clone(), listing.segments[1].clone());
    let records_before: u64 = listing.segments.iter().map(|s| records_in(&s.log, s.base)).sum();

    // The cleaned log: every third batch of the group, with its original offsets.
    let mut cleaned = Vec::new();
    let mut n = 0usize;
    for seg in [&s0, &s1] {
        let mut f = walk::LogFile::open(&seg.log).unwrap();
        walk::scan_segment(&mut f, seg.base, false, |_, bytes, _| {
            if n.is_multiple_of(3) {
                cleaned.extend_from_slice(bytes);
            }
            n += 1;
        })
        .unwrap();
    }
    let target = SegmentFiles::new(&pdir, s0.base);
    let cleaned_files = SegmentFiles {
        base: s0.base,
        log: with_suffix(&target.log, "cleaned"),
        index: with_suffix(&target.index, "cleaned"),
        timeindex: with_suffix(&target.timeindex, "cleaned"),
    };
    fs::write(&cleaned_files.log, &cleaned).unwrap();
    walk::rebuild_sealed_indexes(&cleaned_files).unwrap();
    let kept = records_in(&cleaned_files.log, s0.base);
    let records_after = records_before - records_in(&s0.log, s0.base) - records_in(&s1.log, s1.base) + kept;
    assert!(records_after < records_before);

    let crashed = Crashed { dir, records_before, records_after, target: target.clone() };
    if step == Step::Cleaned {
        return crashed;
    }
    for (from, to) in cleaned_files.paths().into_iter().zip(target.paths()) {
        fs::rename(from, with_suffix(to, "swap")).unwrap();
    }
    if step == Step::Staged {
        return crashed;
    }
    write_atomic(&swap_manifest_path(&pdir, s0.base), &encode_swap_manifest(&[s0.base, s1.base])).unwrap();
    if step == Step::Committed {
        return crashed;
    }
    for p in s1.paths() {
        fs::remove_file(p).unwrap();
    }
    if step == Step::OthersRemoved {
        return crashed;
    }
    fs::rename(with_suffix(&target.index, "swap"), &target.index).unwrap();
    if step == Step::IndexInPlace {
        return crashed;
    }
    for p in [&target.timeindex, &target.log] {
        fs::rename(with_suffix(p, "swap"), p).unwrap();
    }
    crashed
}

/// Records of `events/0` as the engine reads them after opening the directory.
fn engine_records(data: &Path) -> u64 {
    let catalog = Catalog::open(data, CatalogOptions::default()).expect("open");
    let p = catalog.topic("events").unwrap().partition(0).unwrap();
    let (mut at, end, mut records) = (p.start_offset(), p.end_offset(), 0u64);
    while at < end {
        let read = p.read(at, 1 << 20).unwrap();
        for b in &read.batches {
            let batch = DecodedBatch::new(&b.bytes).unwrap();
            records += batch.collect_checked().unwrap().iter().filter(|r| r.offset >= at).count() as u64;
        }
        assert!(read.next_offset > at, "reads make progress");
        at = read.next_offset;
    }
    close_catalog(catalog);
    records
}

/// `cairn verify --json`: exit status, the report, and the records it counted in `events/0`.
fn verify_json(data: &str) -> (Option<i32>, serde_json::Value, u64) {
    let out = cairn(&["verify", "--data-dir", data, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    let records = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == "events" && p["partition"] == 0)
        .map(|p| p["records"].as_u64().unwrap())
        .unwrap();
    (out.status.code(), report, records)
}

fn notes(report: &serde_json::Value) -> String {
    serde_json::to_string(&report["notes"]).unwrap()
}

fn manifest_present(c: &Crashed) -> bool {
    swap_manifest_path(&c.partition_dir(), c.target.base).exists()
}

#[test]
fn verify_checks_the_partition_as_the_open_will_leave_it() {
    for step in STEPS {
        let c = crash_after(step);
        let (code, report, records) = verify_json(c.data());
        assert_eq!(code, Some(0), "{step:?}: {report}");
        assert_eq!(records, c.expected(step), "{step:?}: verify counts the records the open will leave");
        if step >= Step::Committed {
            assert!(notes(&report).contains("interrupted compaction swap (committed)"), "{step:?}: {report}");
            assert!(manifest_present(&c), "verify changes nothing");
        } else {
            assert!(!notes(&report).contains("interrupted compaction swap"), "{step:?}: {report}");
            assert!(notes(&report).contains("leftover of interrupted work"), "{step:?}: {report}");
        }
        // dump shows the same segments.
        let out = cairn(&["dump", "--data-dir", c.data(), "--topic", "events", "--partition", "0", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{step:?}: {}", text(&out));
        let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let segments = dump["topics"][0]["partitions"][0]["segments"].as_array().unwrap().len();
        assert_eq!(segments as u64, report["partitions"][0]["segments"].as_u64().unwrap(), "{step:?}");

        // The reference: what the engine's open makes of the directory.
        assert_eq!(engine_records(c.dir.path()), c.expected(step), "{step:?}: the open");
        assert!(!manifest_present(&c), "{step:?}: the open completed or discarded the swap");
        let (code, report, records) = verify_json(c.data());
        assert_eq!((code, records), (Some(0), c.expected(step)), "{step:?} after the open: {report}");
        assert!(!notes(&report).contains("compaction swap"), "{step:?}: {report}");
    }
}

#[test]
fn verify_reports_damage_in_a_pending_swap_by_its_swap_file() {
    let c = crash_after(Step::Committed);
    let staged = with_suffix(&c.target.log, "swap");
    let len = fs::metadata(&staged).unwrap().len() as usize;
    flip(&staged, len / 2);
    let out = cairn(&["verify", "--data-dir", c.data()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("DAMAGED ")).unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(line.contains(&format!("{} at byte", staged.display())), "{line}");
}

#[test]
fn repair_completes_a_committed_swap_first() {
    for step in STEPS {
        let c = crash_after(step);
        let out = cairn(&["verify", "--data-dir", c.data(), "--repair"]);
        assert_eq!(out.status.code(), Some(0), "{step:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.contains("repaired: complete compaction swap"),
            step >= Step::Committed,
            "{step:?}: {stdout}"
        );
        assert!(!manifest_present(&c), "{step:?}");
        let (code, report, records) = verify_json(c.data());
        assert_eq!((code, records), (Some(0), c.expected(step)), "{step:?}: {report}");
        assert!(!notes(&report).contains("compaction swap"), "{step:?}: {report}");
        assert_eq!(engine_records(c.dir.path()), c.expected(step), "{step:?}: the open agrees");
    }
}

#[test]
fn offline_compact_completes_a_committed_swap_first() {
    for step in [Step::Staged, Step::Committed, Step::IndexInPlace] {
        let c = crash_after(step);
        let out = cairn(&["compact", "--data-dir", c.data(), "--topic", "events", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{step:?}: {}", text(&out));
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // `events` is a `delete` topic: compaction merges but drops nothing by key, so both
        // partitions keep what the open left (partition 1: 200 records).
        assert_eq!(stats["messages_before"].as_u64().unwrap(), c.expected(step) + 200, "{step:?}: {stats}");
        assert_eq!(stats["messages_after"], stats["messages_before"], "{step:?}: {stats}");
        assert!(!manifest_present(&c), "{step:?}");
        let (code, report, records) = verify_json(c.data());
        assert_eq!((code, records), (Some(0), c.expected(step)), "{step:?}: {report}");
        assert!(!notes(&report).contains("compaction swap"), "{step:?}: {report}");
    }
}
