//! Opening a partition directory: finding its segments, trusting what a clean shutdown or
//! the recovery point vouches for, and re-checking the rest.
//!
//! After a clean shutdown nothing is scanned: each segment's end is found from its last
//! index entry and the few batch headers after it, so open time does not grow with data
//! size. After a crash, every segment that may hold data past the recovery point (always the
//! last one, plus any rolled after the last checkpoint) is read batch by batch with CRC
//! checks and its indexes are rebuilt. A bad batch at the tail is a torn write and is cut
//! off. In the active (last) segment after an unclean shutdown the log ends at the first bad
//! batch even when good data follows it (a power loss can persist a later page of the last,
//! unsynced write and not an earlier one): the bytes from there are copied to a quarantine
//! file ([`crate::quarantine`]) and then cut. Anywhere else — a sealed segment, or after a
//! clean shutdown — a bad batch followed by good data is corruption in the middle, and
//! opening fails with the file and position rather than dropping acknowledged data. Zeros
//! from the end of the last batch to the end of the file are the zero-filled space a crash
//! left ahead of the active segment's data (`docs/FORMAT.md` §2.1): no damage, cut at open.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::batch::BatchHeader;
use crate::error::{Error, Result};
use crate::format::*;
use crate::fsutil;
use crate::index::{EntryFile, OffsetIndex, TimeIndex};
use crate::inspect;
use crate::quarantine;
use crate::segment::{index_capacity, Segment};
use crate::writer::ActiveWriter;

/// Reads the partition's recovery point; `None` if missing or damaged (scan everything).
pub(crate) fn read_recovery_point(dir: &Path) -> Option<u64> {
    inspect::recovery_point(dir).ok().flatten()
}

/// Durably records that every segment below `offset` is complete, synced and indexed.
pub(crate) fn write_recovery_point(dir: &Path, offset: u64) -> Result<()> {
    inspect::write_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE), offset)
}

/// What is known about a segment once opened.
#[derive(Debug, Default)]
struct SegState {
    len: u64,
    next_offset: u64,
    first_ts: Option<i64>,
    max_ts: Option<i64>,
    /// Zero bytes past the last batch, to the end of the file.
    zero_tail: u64,
}

/// Result of reading a segment batch by batch.
struct Scan {
    state: SegState,
    index: Vec<(u32, u32)>,
    time: Vec<(i64, u32)>,
    /// The first bad batch, if any.
    bad: Option<Bad>,
}

/// The first bad batch of a segment.
struct Bad {
    pos: u64,
    reason: String,
    /// The offset expected at `pos`: where the log ends if it is cut there.
    lost_from: u64,
    /// Position and base offset of the first good batch after it in the file (with an offset
    /// at least `lost_from`), if there is one: then it is not a torn tail.
    resumes: Option<(u64, u64)>,
}

/// An opened partition: its segments (the last one active) and the active writer.
pub(crate) struct Opened {
    pub segments: BTreeMap<u64, Arc<Segment>>,
    pub writer: ActiveWriter,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// Opens (creating if empty) the partition in `dir`. `clean` says the data directory was
/// shut down cleanly, so everything on disk can be trusted.
pub(crate) fn open_partition(dir: &Path, segment_bytes: u64, clean: bool) -> Result<Opened> {
    fsutil::create_dir_durable(dir)?;
    let mut bases = list_segments(dir)?;
    if bases.is_empty() {
        let seg = Arc::new(Segment::new(dir, 0));
        let writer = ActiveWriter::open(Arc::clone(&seg), segment_bytes, 0, 0, i64::MIN, true)?;
        fsutil::sync_dir(dir)?;
        return Ok(Opened { segments: BTreeMap::from([(0, seg)]), writer, start_offset: 0, end_offset: 0 });
    }
    let recovery_point = if clean { u64::MAX } else { read_recovery_point(dir).unwrap_or(0) };
    let mut segments: BTreeMap<u64, Arc<Segment>> = BTreeMap::new();
    let mut prev_next: Option<u64> = None;
    let mut last_ts = i64::MIN;
    let mut i = 0;
    while i < bases.len() {
        let seg = Arc::new(Segment::new(dir, bases[i]));
        let trusted = clean || bases.get(i + 1).is_some_and(|&next| next <= recovery_point);
        let is_active = i + 1 == bases.len();
        // The active segment's indexes are appended to: they must be exactly what the index
        // rule gives, or the writer would extend a damaged index (rebuilt from a scan then).
        let state = match trusted
            .then(|| open_trusted(&seg))
            .flatten()
            .filter(|s| !is_active || active_indexes_ok(&seg, s.len))
        {
            Some(state) => state,
            None => {
                let scan = scan_segment(&seg)?;
                if let Some(bad) = &scan.bad {
                    let later_empty = bases[i + 1..].iter().all(|&b| holds_no_data(&Segment::new(dir, b)));
                    // After an unclean shutdown the active segment's log ends at its first bad
                    // batch, whatever follows (a power loss can persist a later page of the
                    // unsynced tail but not an earlier one). Sealed segments were synced before
                    // the next one was created, and a clean close synced everything: damage
                    // followed by data there is corruption.
                    let power_loss_tail = is_active && !clean;
                    if (bad.resumes.is_some() && !power_loss_tail) || !later_empty {
                        return Err(seg.corruption(bad.pos, format!("{} (not a torn tail: data follows)", bad.reason)));
                    }
                    if let Some(resumes) = bad.resumes {
                        quarantine_power_loss_tail(dir, &seg, bad, resumes)?;
                    } else {
                        tracing::warn!(
                            file = %seg.log_path.display(),
                            "torn write at byte {} ({}): truncating {} unacknowledged bytes",
                            bad.pos,
                            bad.reason,
                            segment_len(&seg) - bad.pos
                        );
                    }
                    truncate(&seg.log_path, bad.pos)?;
                    for &b in &bases[i + 1..] {
                        remove_segment_files(&Segment::new(dir, b))?;
                    }
                    bases.truncate(i + 1);
                }
                let is_last = i + 1 == bases.len();
                write_indexes(&seg, &scan, is_last.then_some(segment_bytes))?;
                scan.state
            }
        };
        if state.zero_tail > 0 {
            // Zero-filled space a crash left past the data (never acknowledged data):
            // cut, so that the file holds exactly its batches again.
            tracing::debug!(file = %seg.log_path.display(), "cutting {} zero-filled bytes past the data", state.zero_tail);
            truncate(&seg.log_path, state.len)?;
        }
        if let Some(prev) = prev_next {
            if seg.base_offset < prev {
                return Err(seg.corruption(
                    0,
                    format!("segment starts at offset {} before the previous one ends ({prev})", seg.base_offset),
                ));
            }
        }
        prev_next = Some(state.next_offset);
        last_ts = last_ts.max(state.max_ts.unwrap_or(i64::MIN));
        seg.set_recovered(state.len, state.next_offset, state.first_ts, state.max_ts);
        segments.insert(seg.base_offset, seg);
        i += 1;
    }
    let active = match segments.last_key_value() {
        Some((_, s)) => Arc::clone(s),
        None => return Err(Error::Closed),
    };
    for seg in segments.values().filter(|s| s.base_offset != active.base_offset) {
        seg.sealed.store(true, std::sync::atomic::Ordering::Release);
    }
    let (len, end_offset, active_base) = (active.acked_len(), active.next_offset(), active.base_offset);
    let writer = ActiveWriter::open(active, segment_bytes, len, end_offset, last_ts, false)?;
    if !clean {
        fsutil::sync_dir(dir)?;
        // Everything below the active segment is now checked and its indexes sealed: the
        // next crash need not scan it again.
        if recovery_point < active_base {
            write_recovery_point(dir, active_base)?;
        }
    }
    let start_offset = segments.keys().next().copied().unwrap_or(0);
    Ok(Opened { segments, writer, start_offset, end_offset })
}

/// Base offsets of the segments in `dir`, sorted. First completes a compaction swap that
/// was committed (its manifest is durable) but interrupted, then removes leftovers of
/// interrupted work: temp files, compaction output never committed, index files without a
/// log.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let listed = inspect::list_segments(dir).map_err(|e| Error::io("list", dir, e))?;
    if !listed.swaps.is_empty() {
        for swap in &listed.swaps {
            crate::compaction::complete_swap(dir, swap)?;
        }
        return list_segments(dir);
    }
    for path in &listed.leftovers {
        fsutil::remove_file_durable(path)?;
    }
    Ok(listed.segments.iter().map(|s| s.base).collect())
}

fn segment_len(seg: &Segment) -> u64 {
    fs::metadata(&seg.log_path).map(|m| m.len()).unwrap_or(0)
}

/// Whether a segment's log is missing, empty or only zeros (zero-filled, never written).
fn holds_no_data(seg: &Segment) -> bool {
    let Ok(f) = File::open(&seg.log_path) else { return true };
    let len = f.metadata().map_or(0, |m| m.len());
    inspect::zeros_to_end(&f, 0, len).unwrap_or(false)
}

/// Copies the bytes from a power-loss tail's first bad batch to the end of the segment to a
/// quarantine file (durably: [`quarantine::quarantine_tail`]) and says so at `error` level,
/// before the caller cuts them. `resumes` is the position and offset of the first good
/// batch after the damage.
///
/// Why cutting is right: with `sync: always` a batch is acknowledged (and readable) only
/// after the `fdatasync` that made it and everything before it durable, so after a power
/// loss every byte past the first damage belongs to the last, unacknowledged write (its
/// pages can reach the disk out of order: a later one persisted, an earlier one not). With
/// `sync: interval` they may be acknowledged but unsynced: the policy's window of loss. The
/// one case that loses acknowledged records is bit rot in synced data of the active segment;
/// the quarantine file keeps those bytes for an operator (Kafka truncates its unflushed
/// segments at the first invalid batch, PostgreSQL and SQLite end their WAL at the first bad
/// record: the same trade-off).
fn quarantine_power_loss_tail(dir: &Path, seg: &Segment, bad: &Bad, resumes: (u64, u64)) -> Result<()> {
    let (resume_pos, resume_offset) = resumes;
    let last_beyond = last_offset_of_run(&seg.log_path, resume_pos, resume_offset);
    let (cut_file, bytes) = quarantine::quarantine_tail(&seg.log_path, bad.pos)?;
    tracing::error!(
        partition = %partition_name(dir),
        file = %seg.log_path.display(),
        position = bad.pos,
        bytes_cut = bytes,
        quarantine = %cut_file.display(),
        "power-loss tail: {} at byte {}, then valid batches from byte {resume_pos} (offsets {resume_offset}{}): the \
         log now ends at offset {}; the {bytes} bytes from byte {} to the end of the file (the unsynced tail the \
         power loss tore) are cut and kept in {} (docs/OPERATIONS.md, \"Quarantine files\")",
        bad.reason,
        bad.pos,
        last_beyond.map_or_else(String::new, |l| format!(" to {l}")),
        bad.lost_from,
        bad.pos,
        cut_file.display(),
    );
    Ok(())
}

/// Last offset of the run of good, consecutive batches starting at `pos` (whose first batch
/// has offset `offset`); `None` if it cannot be read.
fn last_offset_of_run(path: &Path, mut pos: u64, offset: u64) -> Option<u64> {
    let mut log = inspect::LogFile::open(path).ok()?;
    let (mut expected, mut last) = (offset, None);
    while pos < log.len() {
        let Ok(Ok(h)) = log.batch_at(pos, expected) else { break };
        last = Some(h.last_offset());
        expected = h.next_offset();
        pos += h.total_len() as u64;
    }
    last
}

/// `<topic>/<partition>` of a partition directory, for logs.
fn partition_name(dir: &Path) -> String {
    let name = |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    format!("{}/{}", name(dir.parent()).unwrap_or_default(), name(Some(dir)).unwrap_or_default())
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io("open", path, e))?;
    f.set_len(len).map_err(|e| Error::io("truncate", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))
}

fn remove_segment_files(seg: &Segment) -> Result<()> {
    for p in [&seg.log_path, &seg.index_path, &seg.timeindex_path] {
        fsutil::remove_file_durable(p)?;
    }
    Ok(())
}

fn read_header_at(file: &File, pos: u64, len: u64) -> Option<BatchHeader> {
    let mut buf = [0u8; BATCH_HEADER_LEN];
    if len.saturating_sub(pos) < BATCH_HEADER_LEN as u64 {
        return None;
    }
    file.read_exact_at(&mut buf, pos).ok()?;
    let h = BatchHeader::parse(&buf).ok()?;
    (pos + h.total_len() as u64 <= len).then_some(h)
}

/// Position of the last entry of an index file, by binary search over its non-zero prefix
/// with positioned reads (nothing is mapped). `None` if the file is missing.
fn last_index_position(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let n = file.metadata().ok()?.len() / INDEX_ENTRY_LEN as u64;
    let entry = |i: u64| -> Option<[u8; INDEX_ENTRY_LEN]> {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        file.read_exact_at(&mut b, i * INDEX_ENTRY_LEN as u64).ok()?;
        Some(b)
    };
    // A sealed segment's index is trimmed to its entries: its last entry is the file's last.
    // Only a preallocated (active) index needs the search, so a cold open costs one read
    // per sealed index rather than a binary search's worth.
    if n > 0 {
        let b = entry(n - 1)?;
        if b.iter().any(|&x| x != 0) {
            return Some(u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])));
        }
    }
    let (mut lo, mut hi) = (0u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry(mid)?.iter().all(|&b| b == 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo == 0 {
        return Some(0);
    }
    let b = entry(lo - 1)?;
    Some(u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])))
}

/// Opens a segment vouched for by a clean shutdown or the recovery point, reading only the
/// headers after its last index entry. `None` if anything looks doubtful (then it is
/// scanned in full).
///
/// Zeros from a batch boundary to the end of the file (a zero-filled tail, `docs/FORMAT.md`
/// §2.1) end the data: the state's `len` is where they start.
fn open_trusted(seg: &Segment) -> Option<SegState> {
    let file = File::open(&seg.log_path).ok()?;
    let file_len = file.metadata().ok()?.len();
    if !seg.timeindex_path.exists() {
        return None;
    }
    let mut pos = last_index_position(&seg.index_path)?;
    let zeros_from = |at: u64| inspect::zeros_to_end(&file, at, file_len).unwrap_or(false);
    let Some(first) = read_header_at(&file, 0, file_len) else {
        let empty = SegState { next_offset: seg.base_offset, zero_tail: file_len, ..SegState::default() };
        return (pos == 0 && zeros_from(0)).then_some(empty);
    };
    if first.base_offset < seg.base_offset || pos >= file_len {
        return None;
    }
    let mut last = first;
    while pos < file_len {
        match read_header_at(&file, pos, file_len) {
            Some(h) => {
                last = h;
                pos += h.total_len() as u64;
            }
            None if zeros_from(pos) => break,
            None => return None,
        }
    }
    Some(SegState {
        len: pos,
        next_offset: last.next_offset(),
        first_ts: Some(first.first_timestamp),
        max_ts: Some(last.max_timestamp),
        zero_tail: file_len - pos,
    })
}

/// Whether the active segment's index files can be appended to as they are: each the
/// preallocated size of the largest segment at most, a non-zero prefix of entries strictly increasing in both
/// fields (positions inside the log's `len` bytes) followed only by zeros. Damaged files
/// fail this and are rebuilt; reading them whole is cheap (a few hundred KB at most).
fn active_indexes_ok(seg: &Segment, len: u64) -> bool {
    // Any segment size the config allows (it may have changed since the file was made).
    let cap = index_capacity(SEGMENT_BYTES_MAX);
    let read = |path: &Path, entry_len: usize| -> Option<Vec<u8>> {
        let bytes = fs::metadata(path).ok()?.len();
        if bytes % entry_len as u64 != 0 || bytes > (cap * entry_len) as u64 {
            return None;
        }
        fs::read(path).ok()
    };
    let prefix_ok = |bytes: &[u8], entry_len: usize, key: &dyn Fn(&[u8]) -> (i128, u64)| -> bool {
        let mut prev: Option<(i128, u64)> = None;
        let mut zeros = false;
        for e in bytes.chunks_exact(entry_len) {
            if e.iter().all(|&b| b == 0) {
                zeros = true;
                continue;
            }
            let k = key(e);
            if zeros || prev.is_some_and(|p| k.0 <= p.0 || k.1 <= p.1) {
                return false;
            }
            prev = Some(k);
        }
        true
    };
    let u32_at = |e: &[u8], at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
    let Some(index) = read(&seg.index_path, INDEX_ENTRY_LEN) else { return false };
    let Some(time) = read(&seg.timeindex_path, TIMEINDEX_ENTRY_LEN) else { return false };
    // Offset index: (relative offset, position); positions inside the log, after 0.
    let index_ok = prefix_ok(&index, INDEX_ENTRY_LEN, &|e| (i128::from(u32_at(e, 0)), u64::from(u32_at(e, 4))))
        && index.chunks_exact(INDEX_ENTRY_LEN).all(|e| {
            let pos = u64::from(u32_at(e, 4));
            e.iter().all(|&b| b == 0) || (pos > 0 && pos < len)
        });
    // Time index: (timestamp, relative offset), both strictly increasing.
    let time_ok = prefix_ok(&time, TIMEINDEX_ENTRY_LEN, &|e| {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        (i128::from(i64::from_le_bytes(ts)), u64::from(u32_at(e, 8)))
    });
    index_ok && time_ok
}

/// Reads every batch of a segment, checking CRCs and offsets, and computes the index
/// entries it should have. Stops at the first bad batch, noting whether a good batch with a
/// later offset follows it anywhere in the file (then it is not a torn tail).
fn scan_segment(seg: &Segment) -> Result<Scan> {
    let path = &seg.log_path;
    let mut log = inspect::LogFile::open(path).map_err(|e| Error::io("open segment", path, e))?;
    let scan = inspect::scan_segment(&mut log, seg.base_offset, true, |_, _, _| {})
        .map_err(|e| Error::io("read segment", path, e))?;
    let bad = scan.damage.first().map(|d| Bad {
        pos: d.start,
        reason: d.reason.clone(),
        lost_from: d.lost_from,
        resumes: d.resumes_at.map(|offset| (d.end, offset)),
    });
    Ok(Scan {
        state: SegState {
            len: scan.good_len,
            next_offset: scan.next_offset,
            first_ts: scan.first_timestamp,
            max_ts: scan.max_timestamp,
            zero_tail: scan.zero_tail,
        },
        index: scan.index,
        time: scan.time,
        bad,
    })
}

/// Rewrites a segment's index files from a scan. `active_segment_bytes` is set for the last
/// segment, whose indexes stay preallocated for appends.
fn write_indexes(seg: &Segment, scan: &Scan, active_segment_bytes: Option<u64>) -> Result<()> {
    let (icap, tcap) = match active_segment_bytes {
        Some(sb) => (index_capacity(sb).max(scan.index.len()), index_capacity(sb).max(scan.time.len())),
        None => (scan.index.len(), scan.time.len()),
    };
    let index = OffsetIndex(EntryFile::create(&seg.index_path, INDEX_ENTRY_LEN, icap)?);
    for &(rel, pos) in &scan.index {
        index.push(rel, pos);
    }
    let time = TimeIndex(EntryFile::create(&seg.timeindex_path, TIMEINDEX_ENTRY_LEN, tcap)?);
    for &(ts, rel) in &scan.time {
        time.push(ts, rel);
    }
    index.0.publish();
    time.0.publish();
    if active_segment_bytes.is_some() {
        index.0.flush()?;
        time.0.flush()
    } else {
        index.0.seal()?;
        time.0.seal()
    }
}
