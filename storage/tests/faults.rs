//! Fault injection (the `failpoints` feature, on for this crate's tests): every failpoint of
//! [`cairn_storage::faults::FAILPOINTS`] made to fail once, and for good, with EIO and with
//! ENOSPC, under a load of appends that roll segments (sync `always` and `interval`),
//! explicit syncs, a compaction, a config update and a close. Every scenario asserts:
//!
//! - an append whose write, segment creation or sync failed is never acknowledged, and a
//!   failed data sync poisons the partition (every later append and sync fails, even after
//!   the fault is gone: no retry-and-pretend);
//! - a partition that is not poisoned keeps working once the fault is gone, and reads
//!   return exactly what was acknowledged while the catalogue is still open;
//! - after a reopen (no faults) nothing acknowledged is lost or changed, offsets have no
//!   holes, the only extra records are unacknowledged ones past the last acknowledged
//!   offset of a poisoned partition, and appends work again.
//!
//! Failpoints are global to the process, so the tests here take turns (`FailScenario`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_storage::faults::{fired, passed, FAILPOINTS};
use cairn_storage::*;
use common::*;
use fail::FailScenario;

const TOPICS: [&str; 3] = ["log", "kv", "ivl"];
const KEYS: u32 = 5;

/// Points whose firing during an append means the append's data is not durable: the
/// append must fail. (Seal and recovery-point failures after a roll do not lose data: the
/// next open rescans the segment, so those appends may succeed.)
const APPEND_MUST_FAIL: [&str; 6] =
    ["append.write", "append.fdatasync", "roll.fdatasync", "segment.create", "index.create", "index.preallocate"];

/// Points whose firing in a data sync must poison the partition.
const POISONS: [&str; 4] = ["append.fdatasync", "roll.fdatasync", "flush.fdatasync", "seal.fsync"];

/// Points that may poison the compacted topic's partition: a compaction swap that fails
/// after its commit (or cannot take its manifest back) refuses to go on.
const SWAP_POISONS: [&str; 7] =
    ["swap.rename", "swap.remove", "dir.fsync", "atomic.create", "atomic.write", "atomic.fsync", "atomic.rename"];

/// Whether `point` failing may leave `topic`'s partition poisoned.
fn may_poison(topic: &str, point: Option<&str>) -> bool {
    point.is_some_and(|p| POISONS.contains(&p) || (topic == "kv" && SWAP_POISONS.contains(&p)))
}

/// What a topic's partition 0 has acknowledged: offset -> (key, value).
#[derive(Default, Debug)]
struct Acked {
    records: BTreeMap<u64, (Vec<u8>, Vec<u8>)>,
    poisoned: bool,
}

#[derive(Default)]
struct Model {
    topics: BTreeMap<&'static str, Acked>,
    seq: u32,
    /// The fault is (or includes) short writes.
    short: bool,
}

fn config(topic: &str) -> TopicConfig {
    let mut c = small(4096);
    match topic {
        "kv" => c.cleanup_policy = CleanupPolicy::Compact,
        // The flusher never runs by itself within a test: syncs are explicit.
        "ivl" => c.sync = SyncPolicy::Interval { interval_ms: 600_000 },
        _ => {}
    }
    c
}

fn create_all(cat: &Catalog) {
    for t in TOPICS {
        cat.create_topic(t, config(t)).unwrap();
    }
}

fn part(cat: &Catalog, topic: &str) -> PartitionLog {
    cat.topic(topic).unwrap().partition(0).unwrap()
}

/// Appends `n` one-record batches to every topic, checking each result against the rules
/// of the module docs. `point` is the failpoint configured meanwhile, if any; `last_point`
/// the one configured last (a partition it poisoned stays poisoned).
fn load(cat: &Catalog, model: &mut Model, n: u32, point: Option<&str>, last_point: Option<&str>) {
    // A short write alone is no failure: the writer goes on writing.
    let strict = !model.short;
    for _ in 0..n {
        for t in TOPICS {
            model.seq += 1;
            // Half the keys repeat (compaction drops their older values), half are unique
            // (compaction must keep them all, so a lost segment shows).
            let key = match model.seq % 2 {
                0 => format!("k{}", model.seq % KEYS),
                _ => format!("u{}", model.seq),
            }
            .into_bytes();
            let value = format!("{t}-{}-{}", model.seq, "v".repeat(700)).into_bytes();
            let mut b = BatchBuilder::new();
            b.push(Some(&key), Some(&value), []);
            let before = point.map(fired);
            let r = part(cat, t).append(b.finish(0, 0).unwrap());
            let hit = point.zip(before).is_some_and(|(p, b)| fired(p) > b);
            let acked = model.topics.entry(t).or_default();
            match r {
                Ok(a) => {
                    assert!(!acked.poisoned, "{t}: a poisoned partition acknowledged an append");
                    if let Some(p) = point.filter(|p| hit && strict && APPEND_MUST_FAIL.contains(p)) {
                        panic!("{t}: append acknowledged although {p} failed under it");
                    }
                    assert_eq!(a.record_count, 1);
                    if let Some((&last, _)) = acked.records.last_key_value() {
                        assert_eq!(a.base_offset, last + 1, "{t}: offsets of acknowledged appends have no holes");
                    }
                    acked.records.insert(a.base_offset, (key, value));
                }
                Err(e) => {
                    let poisoned = matches!(e, Error::Poisoned(_));
                    if acked.poisoned {
                        assert!(poisoned, "{t}: poisoned partition failed otherwise: {e}");
                    } else if poisoned {
                        assert!(may_poison(t, last_point), "{t}: poisoned with no sync fault: {e}");
                    } else {
                        assert!(hit, "{t}: append failed with no fault under it: {e}");
                    }
                    if poisoned || point.is_some_and(|p| hit && POISONS.contains(&p)) {
                        acked.poisoned = true;
                    }
                }
            }
        }
    }
}

/// Syncs the interval topic, as a caller of `PartitionLog::sync` would.
fn sync_ivl(cat: &Catalog, model: &mut Model, point: Option<&str>) {
    let before = point.map(fired);
    let r = part(cat, "ivl").sync();
    let hit = point.zip(before).is_some_and(|(p, b)| fired(p) > b);
    let acked = model.topics.entry("ivl").or_default();
    match r {
        Ok(()) => {
            assert!(!hit || !POISONS.contains(&point.unwrap_or("")), "sync reported success although it failed");
            assert!(!acked.poisoned, "a poisoned partition reported a successful sync");
        }
        Err(e) => {
            assert!(hit || acked.poisoned, "sync failed with no fault under it: {e}");
            acked.poisoned = true;
        }
    }
}

/// Everything in partition 0 of `topic`: offset -> (key, value).
fn contents(p: &PartitionLog) -> BTreeMap<u64, (Vec<u8>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut next = p.start_offset();
    loop {
        let r = p.read(next, 1 << 20).unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for b in &r.batches {
            for rec in DecodedBatch::new(&b.bytes).unwrap().collect_checked().unwrap() {
                if rec.offset >= next {
                    let (k, v) = (rec.key.unwrap_or_default(), rec.value.unwrap_or_default());
                    out.insert(rec.offset, (k.to_vec(), v.to_vec()));
                }
            }
        }
        next = r.next_offset;
    }
}

/// Checks every topic against what was acknowledged (see the module docs).
fn verify(cat: &Catalog, model: &Model, after_reopen: bool, what: &str) {
    for t in TOPICS {
        let acked = &model.topics[t];
        let p = part(cat, t);
        let found = contents(&p);
        let last_acked = acked.records.keys().next_back().copied();
        for (off, rec) in &found {
            match acked.records.get(off) {
                Some(a) => assert_eq!(a, rec, "{what}: {t}@{off} changed"),
                None => {
                    // Only a poisoned partition can keep an unacknowledged tail (its undo
                    // or its sync failed), and only past everything acknowledged.
                    assert!(
                        after_reopen && acked.poisoned && last_acked.is_none_or(|l| *off > l),
                        "{what}: {t}@{off} was never acknowledged"
                    );
                }
            }
        }
        for (off, (key, _)) in &acked.records {
            if found.contains_key(off) {
                continue;
            }
            // Compaction may drop a record only for a newer acknowledged one with its key.
            let superseded =
                t == "kv" && acked.records.range(off + 1..).any(|(o, (k, _))| k == key && found.contains_key(o));
            assert!(superseded, "{what}: acknowledged {t}@{off} lost");
        }
        if let Some(first) = found.keys().next() {
            let end = p.end_offset();
            assert_eq!(found.keys().next_back().map(|l| l + 1), Some(end), "{what}: {t} ends at its end offset");
            if t != "kv" {
                assert_eq!(found.len() as u64, end - first, "{what}: {t} has holes");
            }
        }
    }
}

/// A temp dir, on a RAM file system where there is one: these tests check what the engine
/// does with failures, not the disk (nothing here crashes), and fsyncs on tmpfs are free.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| tempfile::Builder::new().prefix("cairn-faults-").tempdir_in(shm).ok())
        .flatten()
        .unwrap_or_else(|| tempfile::tempdir().unwrap())
}

fn set(point: &str, actions: &str) {
    fail::cfg(point, actions).unwrap();
}

/// One scenario: a healthy start, then `actions` on `point` during appends, syncs, a
/// compaction and a config update; the fault removed, more appends and a check; the fault
/// back for the close (if `at_close`); a reopen with no faults, the full check, and appends again.
fn scenario(point: &str, actions: &str, at_close: bool) {
    let what = format!("{point}={actions}");
    let dir = tempdir();
    let mut model = Model { short: actions.contains("short"), ..Model::default() };
    let (updated, created, doomed_kept);
    {
        let cat = open(dir.path(), None).unwrap();
        create_all(&cat);
        cat.create_topic("doomed", config("log")).unwrap().partition(0).unwrap().append(batch(&[b"d"])).unwrap();
        load(&cat, &mut model, 12, None, None);
        sync_ivl(&cat, &mut model, None);

        set(point, actions);
        load(&cat, &mut model, 12, Some(point), Some(point));
        sync_ivl(&cat, &mut model, Some(point));
        let compacted = cat.compact_topic("kv");
        // Topic metadata: a config update, a create and a delete under the fault.
        let fired_before = fired(point);
        updated = cat.update_topic("log", TopicConfig { segment_bytes: 8192, ..config("log") });
        created = cat.create_topic("extra", config("log"));
        let deleted = cat.delete_topic("doomed");
        fail::remove(point);
        for (op, r) in
            [("update", updated.as_ref().err()), ("create", created.as_ref().err()), ("delete", deleted.as_ref().err())]
        {
            if let Some(e) = r {
                assert!(fired(point) > fired_before, "{what}: topic {op} failed with no fault: {e}");
            }
        }
        // A failed delete leaves the topic either gone or usable, and says which.
        doomed_kept = cat.topic("doomed").is_some();
        assert_eq!(doomed_kept, deleted.is_err() && doomed_kept, "{what}: a deleted topic is gone");
        if let Some(t) = cat.topic("doomed") {
            t.partition(0)
                .unwrap()
                .append(batch(&[b"still here"]))
                .unwrap_or_else(|e| panic!("{what}: a topic kept by a failed delete does not take appends: {e}"));
        }
        // The fault is gone: healthy partitions work, poisoned ones keep refusing.
        load(&cat, &mut model, 6, None, Some(point));
        sync_ivl(&cat, &mut model, None);
        verify(&cat, &model, false, &format!("{what}, before close"));
        if compacted.is_ok() {
            cat.compact_topic("kv").unwrap_or_else(|e| {
                assert!(model.topics["kv"].poisoned, "{what}: compaction failed with no fault: {e}");
                CompactionStats::default()
            });
        }

        if at_close {
            set(point, actions);
        }
        let _ = cat.close();
        fail::remove(point);
    }
    let cat = open(dir.path(), None).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    verify(&cat, &model, true, &format!("{what}, after reopen"));
    if updated.is_ok() {
        assert_eq!(cat.topic("log").unwrap().config().segment_bytes, 8192, "{what}: the updated config persists");
    }
    if created.is_ok() {
        assert!(cat.topic("extra").is_some(), "{what}: a created topic persists");
    }
    assert_eq!(cat.topic("doomed").is_some(), doomed_kept, "{what}: the delete's outcome persists");
    for acked in model.topics.values_mut() {
        acked.poisoned = false;
        // Unacknowledged records recovered past the end are now part of the log.
    }
    let ends: Vec<u64> = TOPICS.iter().map(|t| part(&cat, t).end_offset()).collect();
    for (t, end) in TOPICS.iter().zip(ends) {
        let p = part(&cat, t);
        let mut b = BatchBuilder::new();
        b.push(Some(b"k0"), Some(b"after"), []);
        let a = p.append(b.finish(0, 0).unwrap()).unwrap_or_else(|e| panic!("{what}: {t} append after reopen: {e}"));
        assert_eq!(a.base_offset, end, "{what}: {t} appends continue at the end");
    }
    cat.close().unwrap();
}

/// The actions each point is tried with: once and for good, EIO and ENOSPC.
const ACTIONS: [&str; 3] = ["1*return(eio)", "return(eio)", "return(enospc)"];

/// Points the generic scenario cannot reach (they need an earlier failure) or cannot reach a
/// fixed number of times (the zeroer thread's steps, and cutting the zeros it left: how much
/// it wrote before a roll depends on timing), with their own tests below.
const OWN_TESTS: [&str; 8] = [
    "append.undo",
    "prezero.write",
    "prezero.fdatasync",
    "seal.truncate",
    "seal.fsync",
    "quarantine.write",
    "quarantine.fsync",
    "quarantine.rename",
];

#[test]
fn every_failpoint_fails_cleanly_and_loses_nothing() {
    let _scenario = FailScenario::setup();
    for (point, _) in FAILPOINTS.iter().filter(|(p, _)| !OWN_TESTS.contains(p)) {
        let before = fired(point);
        for actions in ACTIONS {
            scenario(point, actions, true);
        }
        assert!(fired(point) > before, "failpoint {point} never fired: the scenario does not reach it");
    }
}

/// Each point's hits in the faulty phase are counted (`return(pass)`), then each hit in turn
/// is the one that fails: every step of every append, roll, seal, compaction swap and
/// metadata write fails once somewhere in this sweep.
#[test]
fn every_hit_of_every_failpoint_fails_once() {
    let _scenario = FailScenario::setup();
    let mut total = 0;
    for (point, _) in FAILPOINTS.iter().filter(|(p, _)| !OWN_TESTS.contains(p)) {
        let before = passed(point);
        scenario(point, "return(pass)", false);
        let hits = passed(point) - before;
        for i in 0..hits {
            let actions = if i == 0 { "1*return(eio)".to_string() } else { format!("{i}*return(pass)->1*return(eio)") };
            let fired_before = fired(point);
            scenario(point, &actions, false);
            assert!(fired(point) > fired_before, "{point}: hit {i} of {hits} never came");
        }
        total += hits;
    }
    eprintln!("faults: {total} injected failures, one per scenario");
}

#[test]
fn short_writes_are_completed_or_undone() {
    let _scenario = FailScenario::setup();
    // A short write alone: the writer writes the rest, nothing fails.
    scenario("append.write", "return(short)", true);
    // A short write then a failure: the partial tail is cut, the partition goes on.
    scenario("append.write", "1*return(short)->1*return(enospc)", true);
    scenario("append.write", "2*return(short)->return(eio)", true);
}

#[test]
fn a_failed_undo_poisons_and_the_tail_is_recovered_or_cut() {
    let _scenario = FailScenario::setup();
    let dir = tempdir();
    let mut model = Model::default();
    {
        let cat = open(dir.path(), None).unwrap();
        create_all(&cat);
        load(&cat, &mut model, 5, None, None);
        // A short write leaves a partial batch, the next write fails, the truncation too.
        set("append.write", "1*return(short)->1*return(enospc)");
        set("append.undo", "1*return(eio)");
        let before = fired("append.undo");
        let p = part(&cat, "log");
        let err = p.append(common::batch(&[b"lost"])).unwrap_err();
        assert!(err.is_storage_full(), "{err}");
        assert_eq!(fired("append.undo"), before + 1);
        fail::remove("append.write");
        fail::remove("append.undo");
        let err = p.append(common::batch(&[b"refused"])).unwrap_err();
        assert!(matches!(err, Error::Poisoned(_)), "{err}");
        model.topics.get_mut("log").unwrap().poisoned = true;
        verify(&cat, &model, false, "undo failed, before close");
        assert!(cat.close().is_err(), "a poisoned partition does not close cleanly");
    }
    let cat = open(dir.path(), None).unwrap();
    assert!(!cat.opened_clean());
    // The half-written batch is a torn tail: cut at the reopen.
    verify(&cat, &model, true, "undo failed, after reopen");
    let end = part(&cat, "log").end_offset();
    assert_eq!(Some(end), model.topics["log"].records.keys().next_back().map(|l| l + 1));
    part(&cat, "log").append(common::batch(&[b"again"])).unwrap();
}

#[test]
fn a_failed_fsync_is_never_retried_into_success() {
    let _scenario = FailScenario::setup();
    let dir = tempdir();
    let cat = open(dir.path(), None).unwrap();
    create_all(&cat);
    let (log, ivl) = (part(&cat, "log"), part(&cat, "ivl"));
    log.append(common::batch(&[b"a"])).unwrap();
    ivl.append(common::batch(&[b"a"])).unwrap();
    set("append.fdatasync", "1*return(eio)");
    set("flush.fdatasync", "1*return(eio)");
    assert!(log.append(common::batch(&[b"b"])).is_err());
    assert!(ivl.sync().is_err());
    // The faults were one-shot: a retried sync would now succeed, and must not be tried.
    for _ in 0..3 {
        assert!(matches!(log.append(common::batch(&[b"c"])), Err(Error::Poisoned(_))));
        assert!(matches!(ivl.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(ivl.append(common::batch(&[b"c"])), Err(Error::Poisoned(_))));
    }
    assert_eq!(log.end_offset(), 1, "the failed append is not visible");
    assert!(cat.close().is_err());
    drop(cat);
    let cat = open(dir.path(), None).unwrap();
    assert_eq!(read_values(&part(&cat, "log"), 0), vec![(0, Some(b"a".to_vec()))]);
    assert_eq!(part(&cat, "log").append(common::batch(&[b"d"])).unwrap().base_offset, 1);
}

/// The generic scenario's compaction must really swap groups of several segments, or the
/// swap steps after the commit go untested: check it does without faults.
#[test]
fn the_scenario_compaction_merges_segments() {
    let _scenario = FailScenario::setup();
    let dir = tempdir();
    let mut model = Model::default();
    let cat = open(dir.path(), None).unwrap();
    create_all(&cat);
    load(&cat, &mut model, 24, None, None);
    let before = part(&cat, "kv").segment_count();
    let stats = cat.compact_topic("kv").unwrap();
    assert!(part(&cat, "kv").segment_count() < before, "{stats:?}");
    verify(&cat, &model, false, "plain compaction");
}

/// A swap that fails before its commit (staging `.cleaned` to `.swap`) is undone: the
/// partition goes on and a later compaction succeeds. One that fails after it (installing
/// `.swap` into place) poisons the partition; the reopen completes the swap.
#[test]
fn a_swap_fails_cleanly_before_its_commit_and_poisons_after_it() {
    let _scenario = FailScenario::setup();
    for (filter, poisons) in [("@.cleaned", false), ("@.swap", true)] {
        let dir = tempdir();
        let mut model = Model::default();
        let segments_before;
        {
            let cat = open(dir.path(), None).unwrap();
            create_all(&cat);
            load(&cat, &mut model, 24, None, None);
            segments_before = part(&cat, "kv").segment_count();
            set("swap.rename", &format!("return(eio{filter})"));
            assert!(cat.compact_topic("kv").is_err(), "{filter}");
            fail::remove("swap.rename");
            let r = part(&cat, "kv").append(common::batch(&[b"next"]));
            assert_eq!(matches!(r, Err(Error::Poisoned(_))), poisons, "{filter}: {r:?}");
            if let Ok(a) = r {
                model.topics.get_mut("kv").unwrap().records.insert(a.base_offset, (b"k".to_vec(), b"next".to_vec()));
                cat.compact_topic("kv").unwrap();
                verify(&cat, &model, false, filter);
            }
            assert_eq!(cat.close().is_err(), poisons, "{filter}");
        }
        let cat = open(dir.path(), None).unwrap();
        verify(&cat, &model, true, filter);
        let after = part(&cat, "kv").segment_count();
        assert!(after < segments_before, "{filter}: the swap is in place ({segments_before} -> {after} segments)");
        part(&cat, "kv").append(common::batch(&[b"again"])).unwrap();
    }
}

/// A zero-fill (docs/FORMAT.md §2.1) that fails, in its write (a full disk, an I/O error) or
/// its sync, only stops zero-filling that segment: no append fails, nothing is poisoned, the
/// appends grow the file as without it, and everything survives a close and a reopen.
#[test]
fn a_failed_zero_fill_stops_it_and_nothing_else() {
    let _scenario = FailScenario::setup();
    for (point, actions) in
        [("prezero.write", "return(enospc)"), ("prezero.write", "1*return(eio)"), ("prezero.fdatasync", "return(eio)")]
    {
        let what = format!("{point}={actions}");
        let dir = tempdir();
        let mut written = Vec::new();
        {
            let cat = open(dir.path(), None).unwrap();
            let p = cat.create_topic("t", small(1 << 20)).unwrap().partition(0).unwrap();
            set(point, actions);
            let before = fired(point);
            for i in 0..40u32 {
                let v = format!("{what}-{i}").into_bytes();
                assert_eq!(p.append(batch(&[&v])).unwrap().base_offset, u64::from(i), "{what}");
                written.push((u64::from(i), Some(v)));
                p.wait_zero_fill();
            }
            assert!(fired(point) > before, "{what}: never fired");
            fail::remove(point);
            assert_eq!(read_values(&p, 0), written, "{what}");
            cat.close().unwrap_or_else(|e| panic!("{what}: close: {e}"));
        }
        let cat = open(dir.path(), None).unwrap();
        assert!(cat.opened_clean(), "{what}");
        let p = cat.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(read_values(&p, 0), written, "{what}");
        p.append(batch(&[b"after"])).unwrap();
    }
}

/// Appends one small batch to a fresh `sync: always` topic of 16 KiB segments and waits for
/// the zeros ahead of it: the active segment's file is then longer than its data.
fn zero_filled_partition(cat: &Catalog) -> (PartitionLog, Values) {
    let p = cat.create_topic("t", small(16384)).unwrap().partition(0).unwrap();
    p.append(batch(&[b"first"])).unwrap();
    let zeroed_to = p.wait_zero_fill();
    let log = logs(p.dir()).pop().unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().len(), zeroed_to);
    assert!(zeroed_to > p.size_bytes(), "zeros past the data");
    (p, vec![(0, Some(b"first".to_vec()))])
}

/// Cutting the zeros of a segment being sealed fails: the append that needed the roll fails
/// (the segment stays active, nothing is poisoned) and the next one rolls. A failed fsync of
/// the cut poisons the partition, as any failed sync does; a reopen keeps every acknowledged
/// record. Sealed segments always hold exactly their data.
#[test]
fn a_failed_cut_of_the_zeros_fails_the_roll() {
    let _scenario = FailScenario::setup();
    for (point, poisons) in [("seal.truncate", false), ("seal.fsync", true)] {
        let dir = tempdir();
        let (mut written, log);
        {
            let cat = open(dir.path(), None).unwrap();
            let p;
            (p, written) = zero_filled_partition(&cat);
            log = logs(p.dir()).pop().unwrap();
            set(point, "1*return(eio)");
            let big = batch_of_len(16370, 7);
            let err = p.append(big.clone()).unwrap_err();
            fail::remove(point);
            assert!(!matches!(err, Error::Poisoned(_)), "{point}: {err}");
            assert_eq!(p.segment_count(), 1, "{point}: no roll");
            let next = p.append(big.clone());
            if poisons {
                assert!(matches!(next, Err(Error::Poisoned(_))), "{point}: {next:?}");
                assert!(cat.close().is_err());
            } else {
                let a = next.unwrap();
                written.extend(read_values(&p, a.base_offset));
                assert_eq!(p.segment_count(), 2, "{point}: rolled");
                let sealed = &p.segments()[0];
                assert_eq!(std::fs::metadata(&sealed.path).unwrap().len(), sealed.size_bytes, "{point}: cut");
                cat.close().unwrap();
            }
        }
        let cat = open(dir.path(), None).unwrap();
        let p = cat.topic("t").unwrap().partition(0).unwrap();
        assert_eq!(read_values(&p, 0), written, "{point}: after reopen");
        assert_eq!(std::fs::metadata(&log).unwrap().len(), p.segments()[0].size_bytes, "{point}: only data");
        p.append(batch(&[b"after"])).unwrap();
    }
}

/// Recovery cuts a power-loss tail (damage followed by data in the active segment after a
/// crash, docs/FORMAT.md §6) only once its bytes are durably in a quarantine file: if that
/// copy fails, the open fails, the segment is untouched and no partial copy is left; the
/// next open (the fault gone) cuts and keeps the bytes.
#[test]
fn a_failed_quarantine_copy_fails_the_open_and_cuts_nothing() {
    let _scenario = FailScenario::setup();
    for (point, action) in [
        ("quarantine.write", "return(enospc)"),
        ("quarantine.fsync", "return(eio)"),
        ("quarantine.rename", "return(eio)"),
    ] {
        let dir = tempdir();
        {
            let cat = open(dir.path(), None).unwrap();
            let p = cat.create_topic("t", small(1 << 20)).unwrap().partition(0).unwrap();
            for i in 0..20u8 {
                p.append(batch(&[&[i; 200]])).unwrap();
            }
        } // a crash
        let part = part_dir(dir.path(), "t", 0);
        let log = logs(&part).remove(0);
        let (pos, _) = batch_positions(&log)[8];
        overwrite(&log, pos, &[0u8; 300]);
        let before = std::fs::read(&log).unwrap();
        set(point, action);
        let Err(err) = open(dir.path(), None) else { panic!("{point}: the open fails") };
        fail::remove(point);
        assert_eq!(err.is_storage_full(), action.contains("enospc"), "{point}: {err}");
        assert_eq!(std::fs::read(&log).unwrap(), before, "{point}: the segment is untouched");
        let names: Vec<String> =
            std::fs::read_dir(&part).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.contains(".cut-")), "{point}: no copy left: {names:?}");
        let cat = open(dir.path(), None).unwrap();
        assert_eq!(cat.topic("t").unwrap().partition(0).unwrap().end_offset(), 8, "{point}");
        let kept = std::fs::read(inspect::cut_file_path(&log, pos, 1)).unwrap();
        assert_eq!(kept, &before[pos as usize..], "{point}");
    }
}
