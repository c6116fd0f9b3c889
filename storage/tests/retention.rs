//! Retention by age (with an injected clock) and by total size: whole sealed segments go,
//! the start offset moves to the first remaining segment, reads below it are out of range,
//! and the active segment is never deleted.

mod common;

use cairn_storage::*;
use common::*;

const TOPIC: &str = "r";

fn fill(p: &PartitionLog, clock: &TestClock, batches: u32, step_ms: i64) {
    for i in 0..batches {
        p.append(batch(&[format!("{i:04}-{}", "z".repeat(500)).as_bytes()])).unwrap();
        clock.advance(step_ms);
    }
}

#[test]
fn retention_by_age_deletes_old_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_000_000);
    let cat = open(dir.path(), Some(&clock)).unwrap();
    let cfg = TopicConfig { retention_ms: Some(10_000), ..small(4096) };
    let p = cat.create_topic(TOPIC, cfg).unwrap().partition(0).unwrap();
    fill(&p, &clock, 60, 1000); // timestamps 1_000_000 .. 1_059_000
    let before = p.segments();
    assert!(before.len() > 5);
    let now = clock.now();
    let stats = p.enforce_retention(now).unwrap();
    let after = p.segments();
    // Exactly the sealed segments whose newest record is more than 10 s old are gone.
    let doomed: Vec<_> =
        before.iter().filter(|s| s.sealed && now - s.max_timestamp.unwrap() > 10_000).cloned().collect();
    assert!(!doomed.is_empty());
    assert_eq!(stats.segments_deleted, doomed.len());
    assert_eq!(stats.bytes_deleted, doomed.iter().map(|s| s.size_bytes).sum::<u64>());
    assert_eq!(after, before[doomed.len()..].to_vec());
    for s in &doomed {
        assert!(!s.path.exists(), "{} deleted", s.path.display());
        assert!(!s.path.with_extension("index").exists());
        assert!(!s.path.with_extension("timeindex").exists());
    }
    let start = after[0].base_offset;
    assert_eq!(p.start_offset(), start);
    assert!(
        matches!(p.read(start - 1, 1), Err(Error::OffsetOutOfRange { requested, start: s, .. }) if requested == start - 1 && s == start)
    );
    assert_eq!(read_values(&p, start).len() as u64, p.end_offset() - start);
    assert_eq!(p.offset_for_timestamp(0).unwrap(), start);

    // Much later, everything sealed expires; the active segment stays.
    let stats = p.enforce_retention(now + 1_000_000).unwrap();
    assert_eq!(stats.segments_deleted, after.len() - 1);
    assert_eq!(p.segment_count(), 1);
    assert_eq!(p.start_offset(), p.segments()[0].base_offset);

    // The start offset survives a reopen (it is the first segment's base offset).
    let (start, end) = (p.start_offset(), p.end_offset());
    drop(p);
    cat.close().unwrap();
    drop(cat);
    let cat = open(dir.path(), Some(&clock)).unwrap();
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    assert_eq!((p.start_offset(), p.end_offset()), (start, end));
}

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_000_000);
    let cat = open(dir.path(), Some(&clock)).unwrap();
    let limit = 10_000;
    let cfg = TopicConfig { retention_bytes: Some(limit), ..small(4096) };
    let p = cat.create_topic(TOPIC, cfg).unwrap().partition(0).unwrap();
    fill(&p, &clock, 80, 0);
    let total = p.size_bytes();
    assert!(total > 4 * limit);
    let stats = p.enforce_retention(clock.now()).unwrap();
    let after = p.segments();
    let kept: u64 = after.iter().map(|s| s.size_bytes).sum();
    assert_eq!(kept + stats.bytes_deleted, total);
    assert!(kept >= limit, "keeps at least retention_bytes");
    assert!(kept - after[0].size_bytes < limit, "deletes every segment it could");
    assert_eq!(p.start_offset(), after[0].base_offset);
    assert!(matches!(p.read(0, 1), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(p.enforce_retention(clock.now()).unwrap(), RetentionStats::default(), "idempotent");
    // Through the catalog too, for every topic.
    fill(&p, &clock, 40, 0);
    assert!(cat.enforce_retention().segments_deleted > 0);
}

#[test]
fn compacted_topics_and_unlimited_topics_are_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_000_000);
    let cat = open(dir.path(), Some(&clock)).unwrap();
    let compact = TopicConfig { retention_bytes: Some(1), cleanup_policy: CleanupPolicy::Compact, ..small(4096) };
    let p = cat.create_topic("compact", compact).unwrap().partition(0).unwrap();
    let q = cat.create_topic("forever", small(4096)).unwrap().partition(0).unwrap();
    fill(&p, &clock, 30, 1000);
    fill(&q, &clock, 30, 1000);
    assert_eq!(cat.enforce_retention(), RetentionStats::default());
    assert_eq!((p.start_offset(), q.start_offset()), (0, 0));
}
