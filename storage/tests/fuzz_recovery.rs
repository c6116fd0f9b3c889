//! Bounded fuzzing of what the engine loads from disk at open: the index loader
//! (`index.rs`, recovery's last-entry search and trusted open) and recovery's segment scan
//! (`recovery.rs`, `inspect/scan.rs`). A real data directory (several segments, plain and
//! zstd batches, closed cleanly) is copied per case, one of its files is mutated (bytes
//! flipped, fields set to extreme values, cut, extended, grown sparse, spliced; a log
//! batch's CRC re-stamped half the time), the clean-shutdown marker is kept or removed, and
//! the catalogue is opened and every partition read to its end.
//!
//! Nothing may panic, hang or allocate without bound (the cases run under
//! `prlimit --as=1GiB`, and a watchdog aborts a case that takes over 60 s). An open may
//! refuse with an error; once open, a read returns records or an error, and never a
//! record that differs from what was written — unless the mutation forged a CRC (then the
//! batch is by definition valid). Damage confined to index files loses nothing at all:
//! indexes are derived data, so every record must read back.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_storage::batch::compute_crc;
use cairn_storage::format::*;
use cairn_storage::*;
use common::fuzz::*;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const TOPIC: &str = "f";

/// The template: its directory and every (offset -> value) written.
struct Template {
    dir: tempfile::TempDir,
    values: BTreeMap<u64, Option<Vec<u8>>>,
}

/// Made per test and removed with it (a `static` would never be dropped, leaking the dir).
fn template() -> Template {
    {
        let dir = tempfile::tempdir().unwrap();
        let mut values = BTreeMap::new();
        let cat = open(dir.path(), None).unwrap();
        let p = cat.create_topic(TOPIC, small(4096)).unwrap().partition(0).unwrap();
        for i in 0..60u32 {
            let mut b = BatchBuilder::with_codec(if i % 3 == 0 { Codec::Zstd(1) } else { Codec::None });
            let vals: Vec<Option<Vec<u8>>> = (0..1 + i % 3)
                .map(|j| (i % 7 != 6).then(|| format!("v{i}-{j}-{}", "x".repeat((i * 53 % 300) as usize)).into_bytes()))
                .collect();
            for v in &vals {
                b.push(Some(b"key"), v.as_deref(), [("h", &b"1"[..])]);
            }
            let a = p.append(b.finish(0, 0).unwrap()).unwrap();
            for (j, v) in vals.into_iter().enumerate() {
                values.insert(a.base_offset + j as u64, v);
            }
        }
        assert!(p.segment_count() >= 4);
        cat.close().unwrap();
        Template { dir, values }
    }
}

/// The partition's files, sorted, and the clean-shutdown marker's path.
fn files(part: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(part).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A scratch dir, on a RAM file system where there is one (the cases write many copies).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| tempfile::Builder::new().prefix("cairn-fuzz-").tempdir_in(shm).ok())
        .flatten()
        .unwrap_or_else(|| tempfile::tempdir().unwrap())
}

/// Aborts the process if a case makes no progress for `limit` (a loop that never ends).
fn watchdog(limit: Duration) -> Arc<AtomicU64> {
    let start = Instant::now();
    let beat = Arc::new(AtomicU64::new(0));
    let b = Arc::clone(&beat);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let last = Duration::from_millis(b.load(Ordering::Relaxed));
        if start.elapsed().saturating_sub(last) > limit {
            eprintln!("fuzz_recovery: a case ran for over {limit:?}: hang");
            std::process::abort();
        }
    });
    beat
}

#[derive(Debug, Clone)]
struct Case {
    /// Which file of the partition (modulo their number).
    file: usize,
    mutations: Vec<Mutation>,
    /// Re-stamp the CRC of the log batch starting at the mutated position's batch.
    restamp: bool,
    /// Remove the clean-shutdown marker (the open scans instead of trusting).
    crashed: bool,
    /// Grow the file to this length (sparse), after the mutations.
    grow: Option<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<usize>(),
        proptest::collection::vec(mutation(), 1..4),
        any::<bool>(),
        any::<bool>(),
        proptest::option::weighted(0.1, prop_oneof![Just(1u64 << 20), Just(64u64 << 20), 0u64..100_000]),
    )
        .prop_map(|(file, mutations, restamp, crashed, grow)| Case { file, mutations, restamp, crashed, grow })
}

/// Re-stamps the CRC of every whole batch of a log file whose header still parses (so a
/// mutation inside a batch reaches the record decoder on reads).
fn restamp_all(bytes: &mut [u8]) {
    let mut pos = 0;
    while pos + BATCH_HEADER_LEN <= bytes.len() {
        let Ok(h) = BatchHeader::parse(&bytes[pos..]) else { return };
        let end = pos + h.total_len();
        if end > bytes.len() {
            return;
        }
        let crc = compute_crc(&bytes[pos..end]);
        bytes[pos + CRC_POS..pos + CRC_POS + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// Reads the partition from its start to its end; returns what was read, or the first
/// error. Every read must make progress.
fn read_everything(p: &PartitionLog) -> Result<BTreeMap<u64, Option<Vec<u8>>>, String> {
    let mut out = BTreeMap::new();
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let r = p.read(next, 64 * 1024).map_err(|e| e.to_string())?;
        if r.batches.is_empty() {
            return Err(format!("empty read at {next} below the end {}", p.end_offset()));
        }
        assert!(r.next_offset > next, "a read at {next} made no progress");
        for b in &r.batches {
            let d = DecodedBatch::new(&b.bytes).map_err(|e| e.to_string())?;
            for rec in d.collect_checked().map_err(|e| e.to_string())? {
                out.insert(rec.offset, rec.value.map(<[u8]>::to_vec));
            }
        }
        next = r.next_offset;
    }
    Ok(out)
}

fn run_case(t: &Template, c: &Case) -> Result<(), TestCaseError> {
    let dir = scratch();
    copy_tree(t.dir.path(), dir.path());
    if c.crashed {
        std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    }
    let part = part_dir(dir.path(), TOPIC, 0);
    let all = files(&part);
    let target = &all[c.file % all.len()];
    let is_log = target.extension().is_some_and(|e| e == LOG_SUFFIX);
    let mut bytes = std::fs::read(target).unwrap();
    for m in &c.mutations {
        apply(&mut bytes, m);
    }
    let forged = is_log && c.restamp;
    if forged {
        restamp_all(&mut bytes);
    }
    std::fs::write(target, &bytes).unwrap();
    if let Some(len) = c.grow {
        std::fs::OpenOptions::new().write(true).open(target).unwrap().set_len(len).unwrap();
    }
    let index_only = !is_log && target.extension().is_some_and(|e| e == INDEX_SUFFIX || e == TIMEINDEX_SUFFIX);
    let cat = match open(dir.path(), None) {
        Ok(cat) => cat,
        Err(e) => {
            // Refusing to open is allowed for a damaged log; not for a damaged index.
            prop_assert!(!index_only, "open refused over a damaged index {}: {e}", target.display());
            return Ok(());
        }
    };
    let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
    match read_everything(&p) {
        Ok(read) => {
            if !forged {
                for (off, v) in &read {
                    prop_assert_eq!(t.values.get(off), Some(v), "offset {} reads back changed", off);
                }
            }
            if index_only {
                prop_assert_eq!(read.len(), t.values.len(), "records lost over a damaged index");
            }
        }
        Err(e) => prop_assert!(!index_only, "read failed over a damaged index {}: {e}", target.display()),
    }
    // The partition still takes appends (unless the open found it unusable).
    let end = p.end_offset();
    if let Ok(a) = p.append(batch(&[b"after"])) {
        prop_assert_eq!(a.base_offset, end);
    }
    drop(cat);
    Ok(())
}

#[test]
fn damaged_files_never_panic_hang_or_lose_derived_data() {
    let name = "damaged_files_never_panic_hang_or_lose_derived_data";
    if !run_capped(name) {
        return;
    }
    let t = template();
    let beat = watchdog(Duration::from_secs(60));
    let start = Instant::now();
    let n = cases(150);
    let mut runner = TestRunner::new(Config { cases: n, failure_persistence: None, ..Config::default() });
    runner
        .run(&case(), |c| {
            beat.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            run_case(&t, &c)
        })
        .unwrap();
    println!("{name}: {n} cases");
}

/// Regression (found by the fuzzing above): after a clean shutdown, an active segment's
/// index whose entries no longer matched its log (here: one entry set to 1 and the file
/// cut mid-entry) was appended to as it was, and the next append's index arithmetic
/// underflowed (a panic in debug builds). The open now rebuilds such an index.
#[test]
fn a_damaged_active_index_is_rebuilt_not_appended_to() {
    let c = Case {
        file: 7505569337985012300,
        mutations: vec![
            Mutation::Wide { at: 7017085640455520126, value: 1, width: 4 },
            Mutation::Cut { len: 42397708184 },
        ],
        restamp: false,
        crashed: false,
        grow: None,
    };
    let t = template();
    run_case(&t, &c).unwrap();
    // And every shape of damage to the active segment's offset index, directly.
    for damage in 0..4 {
        let dir = scratch();
        copy_tree(t.dir.path(), dir.path());
        let part = part_dir(dir.path(), TOPIC, 0);
        let index = files(&part).into_iter().rfind(|p| p.extension().is_some_and(|e| e == INDEX_SUFFIX)).unwrap();
        let mut bytes = std::fs::read(&index).unwrap();
        match damage {
            0 => bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes()), // a position past the log
            1 => bytes.truncate(5),                                    // cut mid-entry
            2 => bytes[80..88].copy_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]), // an entry after zeros
            _ => bytes[0..8].copy_from_slice(&[9, 9, 9, 9, 9, 9, 9, 9]), // not increasing
        }
        std::fs::write(&index, &bytes).unwrap();
        let cat = open(dir.path(), None).unwrap();
        let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
        assert_eq!(read_everything(&p).unwrap().len(), t.values.len(), "damage {damage}");
        for i in 0..40 {
            p.append(batch(&[format!("after-{i}-{}", "y".repeat(200)).as_bytes()])).unwrap();
        }
        drop(cat);
        let cat = open(dir.path(), None).unwrap();
        let p = cat.topic(TOPIC).unwrap().partition(0).unwrap();
        assert_eq!(read_everything(&p).unwrap().len(), t.values.len() + 40, "damage {damage}");
    }
}
