//! Offset and timestamp lookups against brute force, on segments with many index entries
//! and many batches sharing a millisecond (the case the time index alone cannot narrow).

mod common;

use common::*;

#[test]
fn timestamp_and_offset_lookups_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(5_000);
    let cat = open(dir.path(), Some(&clock)).unwrap();
    let p = cat.create_topic("l", small(256 * 1024)).unwrap().partition(0).unwrap();
    let mut stamps = Vec::new(); // (offset, timestamp)
    for i in 0..600u32 {
        if i % 25 == 0 {
            clock.advance(1 + i64::from(i % 3));
        }
        let a = p.append(batch(&[&[i as u8; 700], &[1; 300]])).unwrap();
        stamps.extend((a.base_offset..=a.last_offset).map(|o| (o, a.timestamp)));
    }
    assert!(p.segment_count() >= 2);
    let (first, last) = (stamps[0].1, stamps.last().unwrap().1);
    for ts in first - 2..=last + 2 {
        let expected = stamps.iter().find(|(_, t)| *t >= ts).map_or(p.end_offset(), |(o, _)| *o);
        assert_eq!(p.offset_for_timestamp(ts).unwrap(), expected, "ts {ts}");
    }
    for &(o, _) in stamps.iter().step_by(7) {
        let r = p.read(o, 1).unwrap();
        let h = r.batches[0].header;
        assert!(h.base_offset <= o && o <= h.last_offset(), "offset {o}");
    }
    // The same after a clean reopen (sealed, trimmed indexes) and after a crash (rebuilt).
    drop(p);
    cat.close().unwrap();
    drop(cat);
    for _ in 0..2 {
        let cat = open(dir.path(), Some(&clock)).unwrap();
        let p = cat.topic("l").unwrap().partition(0).unwrap();
        for ts in (first - 2..=last + 2).step_by(3) {
            let expected = stamps.iter().find(|(_, t)| *t >= ts).map_or(p.end_offset(), |(o, _)| *o);
            assert_eq!(p.offset_for_timestamp(ts).unwrap(), expected, "ts {ts} after reopen");
        }
    } // the second round opens after the first was dropped without close: a crash
}
