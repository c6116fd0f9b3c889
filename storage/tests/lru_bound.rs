//! Resource bounds with thousands of segments: 5,000 sealed segments read through a catalog
//! with `open_segments_max = 256` keep at most 256 mapped, the process's memory maps stay
//! bounded, and file descriptors do not grow with the number of segments.
//!
//! This file holds a single test on purpose: it counts `/proc/self/maps` and `/proc/self/fd`,
//! which other tests running in parallel in the same process would disturb.

mod common;

use std::fs;

use cairn_storage::format::*;
use cairn_storage::*;
use common::*;

const SEGMENTS: u64 = 5000;
const OPEN_MAX: usize = 256;

fn count_lines(path: &str) -> usize {
    fs::read_to_string(path).unwrap().lines().count()
}

fn count_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Writes a partition of `SEGMENTS` one-batch segments straight to disk (as the engine
/// would after rolling at `segment_bytes` = 4096), with a clean-shutdown marker, so the
/// test spends its time reading rather than fsyncing 5,000 rolls.
fn write_segments(data: &std::path::Path) {
    let topic = data.join(TOPICS_DIR).join("many");
    let part = topic.join("0");
    fs::create_dir_all(&part).unwrap();
    let cfg = TopicConfig { segment_bytes: 4096, retention_ms: None, ..TopicConfig::default() };
    fs::write(topic.join(TOPIC_CONFIG_FILE), serde_json::to_vec(&cfg).unwrap()).unwrap();
    for base in 0..SEGMENTS {
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), Some(format!("segment {base} {}", "v".repeat(3000)).as_bytes()), []);
        let stem = segment_stem(base);
        fs::write(part.join(format!("{stem}.{LOG_SUFFIX}")), b.finish(base, 1_700_000_000_000 + base as i64).unwrap())
            .unwrap();
        fs::write(part.join(format!("{stem}.{INDEX_SUFFIX}")), b"").unwrap();
        fs::write(part.join(format!("{stem}.{TIMEINDEX_SUFFIX}")), b"").unwrap();
    }
    fs::write(data.join(CLEAN_SHUTDOWN_FILE), b"").unwrap();
}

#[test]
fn five_thousand_segments_stay_within_the_map_and_descriptor_budget() {
    let dir = tempfile::tempdir().unwrap();
    write_segments(dir.path());
    let opts = CatalogOptions { writer_threads: 1, open_segments_max: OPEN_MAX, ..CatalogOptions::default() };
    let cat = Catalog::open(dir.path(), opts).unwrap();
    assert!(cat.opened_clean());
    let p = cat.topic("many").unwrap().partition(0).unwrap();
    assert_eq!((p.segment_count() as u64, p.end_offset()), (SEGMENTS, SEGMENTS));
    let (maps0, fds0) = (count_lines("/proc/self/maps"), count_fds());
    let (mut maps_max, mut fds_max) = (maps0, fds0);
    for pass in 0..2 {
        for offset in 0..SEGMENTS {
            let r = p.read(offset, 1).unwrap();
            let d = DecodedBatch::new(&r.batches[0].bytes).unwrap();
            let rec = &d.collect_checked().unwrap()[0];
            assert_eq!(rec.offset, offset);
            assert!(rec.value.unwrap().starts_with(format!("segment {offset} ").as_bytes()));
            assert!(cat.mapped_segments() <= OPEN_MAX, "pass {pass} offset {offset}: {}", cat.mapped_segments());
            if offset % 250 == 0 {
                maps_max = maps_max.max(count_lines("/proc/self/maps"));
                fds_max = fds_max.max(count_fds());
            }
        }
    }
    // Each mapped sealed segment costs one map for its log (its empty indexes map nothing);
    // a little slack for the allocator and the test harness.
    assert!(maps_max <= maps0 + OPEN_MAX + 64, "maps grew from {maps0} to {maps_max}");
    assert!(fds_max <= fds0 + 8, "descriptors grew from {fds0} to {fds_max}");
    assert!(cat.mapped_segments() >= OPEN_MAX / 2, "the cache is used");
    // Appends still work at the end, then a clean close.
    assert_eq!(p.append(batch(&[b"tail"])).unwrap().base_offset, SEGMENTS);
    drop(p);
    cat.close().unwrap();
}
