//! A partition log: the ordered, durable sequence of batches of one topic partition.
//!
//! [`PartitionLog`] is the public handle (cheap to clone). It owns the segment list, the
//! acknowledged end offset and its notification, and the queue of appends waiting for the
//! next group commit ([`crate::writer`] runs it). Reads never see past the acknowledged end:
//! each segment exposes only its acknowledged prefix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader, DecodedBatch};
use crate::config::TopicConfig;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::segment::{log_bytes, BatchCursor, Segment, SegmentMaps, StoredBatch};
use crate::writer::ActiveWriter;

/// How many times a read retries after compaction replaced the segment it was reading.
const REPLACED_RETRIES_MAX: u32 = 8;

/// Completion of an append: called once, on a writer thread, with the outcome.
pub type AppendCallback = Box<dyn FnOnce(Result<Appended>) + Send>;

/// A listener told the new acknowledged end offset each time it advances.
pub type EndListener = Arc<dyn Fn(u64) + Send + Sync>;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The append timestamp given to every record of the batch.
    pub timestamp: i64,
    pub record_count: u32,
}

pub(crate) struct Pending {
    pub bytes: Vec<u8>,
    pub header: BatchHeader,
    /// CRC-32 of the records section when kept (large batches), so the writer re-stamps
    /// only the header (see [`crate::batch::VerifiedBatch`]).
    pub section_crc: Option<u32>,
    pub done: AppendCallback,
}

#[derive(Default)]
pub(crate) struct Queue {
    pub items: Vec<Pending>,
    /// Queued on (or running in) the writer pool.
    pub scheduled: bool,
    /// No more appends are accepted.
    pub closed: bool,
}

/// Batches read from a partition.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    /// Whole batches in offset order. The first may start before the requested offset.
    pub batches: Vec<StoredBatch>,
    /// Offset after the last batch returned (the requested offset if none).
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// Summary of one segment, for describe and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: u64,
    pub next_offset: u64,
    pub size_bytes: u64,
    pub sealed: bool,
    pub max_timestamp: Option<i64>,
    pub path: PathBuf,
}

pub(crate) struct Shared {
    pub topic: String,
    pub partition: u32,
    pub dir: PathBuf,
    pub config: RwLock<TopicConfig>,
    pub segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    pub start_offset: AtomicU64,
    pub end_offset: AtomicU64,
    pub queue: Mutex<Queue>,
    /// Signalled when the queue becomes idle (for close).
    pub queue_idle: Condvar,
    pub writer: Mutex<Option<ActiveWriter>>,
    pub listeners: Mutex<Vec<EndListener>>,
    pub end_lock: Mutex<()>,
    pub end_changed: Condvar,
    pub poisoned: Mutex<Option<String>>,
    /// Written since the last interval sync.
    pub dirty: AtomicBool,
    /// Held by compaction and retention while they change the sealed segments.
    pub maintenance: Mutex<()>,
    /// Sealed segments below this offset were written by compaction (persisted in
    /// `cleaner-point`); the rest are dirty.
    pub cleaner_point: AtomicU64,
    /// Bumped each time compaction replaces segments (lookups that failed meanwhile retry).
    pub swaps: AtomicU64,
    pub ctx: Arc<Context>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn name(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    pub fn config(&self) -> TopicConfig {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.range(..=offset).next_back().or_else(|| segs.iter().next()).map(|(_, s)| Arc::clone(s))
    }

    /// Whether `seg` is still one of this partition's segments (not deleted or replaced).
    pub fn holds(&self, seg: &Arc<Segment>) -> bool {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.get(&seg.base_offset).is_some_and(|s| Arc::ptr_eq(s, seg))
    }

    pub fn segment_after(&self, base: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.range(base + 1..).next().map(|(_, s)| Arc::clone(s))
    }

    /// Raises the acknowledged end and wakes everyone waiting for it.
    pub fn publish_end(&self, end: u64) {
        self.end_offset.fetch_max(end, Ordering::AcqRel);
        {
            let _g = lock(&self.end_lock);
            self.end_changed.notify_all();
        }
        let listeners = lock(&self.listeners).clone();
        for l in listeners {
            l(end);
        }
    }

    pub fn poison(&self, why: String) {
        tracing::error!(partition = %self.name(), "{why}; refusing writes until reopened");
        *lock(&self.poisoned) = Some(why);
    }

    pub fn check_poisoned(&self) -> Result<()> {
        match lock(&self.poisoned).as_ref() {
            Some(why) => Err(Error::Poisoned(format!("{}: {why}", self.name()))),
            None => Ok(()),
        }
    }
}

/// Handle to one partition log. Clones share the same log.
#[derive(Clone)]
pub struct PartitionLog {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("topic", &self.shared.topic)
            .field("partition", &self.shared.partition)
            .field("end_offset", &self.end_offset())
            .finish()
    }
}

impl PartitionLog {
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    pub fn partition(&self) -> u32 {
        self.shared.partition
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// First offset still stored (retention moves it forward).
    pub fn start_offset(&self) -> u64 {
        self.shared.start_offset.load(Ordering::Acquire)
    }

    /// The acknowledged end: the next offset to be written. Readers see everything below it.
    pub fn end_offset(&self) -> u64 {
        self.shared.end_offset.load(Ordering::Acquire)
    }

    /// Bytes of record batches visible to readers, over all segments.
    pub fn size_bytes(&self) -> u64 {
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.values().map(|s| s.acked_len()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// One summary per segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        segs.values()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset,
                next_offset: s.next_offset(),
                size_bytes: s.acked_len(),
                sealed: s.is_sealed(),
                max_timestamp: s.max_timestamp(),
                path: s.log_path.clone(),
            })
            .collect()
    }

    /// Waits until no zero-fill of the active segment is queued or running (`docs/FORMAT.md`
    /// §2.1), then returns the file position up to which the active segment's log holds data
    /// or synced zeros. For tests and diagnostics: appends never wait for zero-filling.
    pub fn wait_zero_fill(&self) -> u64 {
        let horizon = lock(&self.shared.writer).as_ref().map(|w| Arc::clone(&w.horizon));
        horizon.map_or(0, |h| h.settle())
    }

    /// Calls `listener` with the new end offset every time the acknowledged end advances.
    /// It runs on the thread that ran the group commit (a writer thread, or a thread in
    /// [`PartitionLog::append`]): it must be quick and must not block.
    pub fn add_listener(&self, listener: EndListener) {
        lock(&self.shared.listeners).push(listener);
    }

    /// Blocks until the end offset is above `offset` or `timeout` passes; returns the end.
    pub fn wait_for_end_above(&self, offset: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.shared.end_lock);
        loop {
            let end = self.end_offset();
            let now = Instant::now();
            if end > offset || now >= deadline {
                return end;
            }
            g = self.shared.end_changed.wait_timeout(g, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Queues one encoded batch (from [`crate::BatchBuilder::finish`] or checked with
    /// [`crate::batch::check_client_batch`]) for the next group commit. The writer assigns
    /// its offsets and timestamp; `done` is called once it is acknowledged per the topic's
    /// sync policy, or failed.
    ///
    /// The batch must be exactly one batch with a valid CRC and contiguous offset deltas
    /// (the writer re-stamps the CRC, so damage not caught here would be sealed in as
    /// valid data); otherwise `done` gets [`Error::InvalidBatch`].
    pub fn append_async(&self, bytes: Vec<u8>, done: AppendCallback) {
        match batch::VerifiedBatch::new(bytes) {
            Ok(b) => self.append_verified_async(b, done),
            Err(e) => done(Err(e.into())),
        }
    }

    /// As [`PartitionLog::append_async`] for a batch already checked (no second pass over
    /// its bytes): from [`crate::BatchBuilder::finish_verified`] or
    /// [`crate::batch::check_client_batch_owned`].
    pub fn append_verified_async(&self, batch: batch::VerifiedBatch, done: AppendCallback) {
        if self.enqueue(batch, done) {
            self.shared.ctx.pool.schedule(Arc::clone(&self.shared));
        }
    }

    /// Checks and queues a batch; returns true if the partition was idle and the caller
    /// must get a group commit run (it is now marked scheduled).
    fn enqueue(&self, batch: batch::VerifiedBatch, done: AppendCallback) -> bool {
        let (bytes, header, section_crc) = batch.into_parts();
        if header.last_offset_delta != header.record_count - 1 {
            done(Err(Error::InvalidBatch(batch::BatchError::BadRecords(
                "appended batches must have contiguous offset deltas",
            ))));
            return false;
        }
        let mut q = lock(&self.shared.queue);
        if q.closed {
            drop(q);
            done(Err(Error::Closed));
            return false;
        }
        q.items.push(Pending { bytes, header, section_crc, done });
        !std::mem::replace(&mut q.scheduled, true)
    }

    /// Appends one batch and waits until it is acknowledged.
    ///
    /// If the partition is idle, the group commit runs on the calling thread (which would
    /// only wait otherwise), saving two thread hand-offs per append; appends that arrive
    /// meanwhile are left to the writer pool. So listeners may run on this thread too.
    pub fn append(&self, bytes: Vec<u8>) -> Result<Appended> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done: AppendCallback = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let batch = batch::VerifiedBatch::new(bytes)?;
        if self.enqueue(batch, done) && self.shared.run_group() {
            self.shared.ctx.pool.schedule(Arc::clone(&self.shared));
        }
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Reads whole batches from the first one holding an offset >= `offset`, until
    /// `max_bytes` is reached (at least one batch is returned if any is available).
    /// `offset` may equal the end offset (nothing yet); outside `[start, end]` is an error.
    /// A batch that fails its CRC is an [`Error::Corruption`] if it is the first one to
    /// return; otherwise the read stops before it.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadBatches> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { requested: offset, start, end });
        }
        self.read_from(self.shared.segment_for(offset), offset, max_bytes, start, end)
    }

    /// [`PartitionLog::read`] once the range is checked, starting at segment `seg`.
    fn read_from(
        &self,
        mut seg: Option<Arc<Segment>>,
        offset: u64,
        max_bytes: usize,
        start: u64,
        end: u64,
    ) -> Result<ReadBatches> {
        let mut out = ReadBatches { batches: Vec::new(), next_offset: offset, start_offset: start, end_offset: end };
        let mut bytes = 0usize;
        let mut retries = 0;
        while let Some(s) = seg {
            // A compaction swap between reading `s` and looking up the segment after it
            // could merge that next segment into `s`'s replacement: the lookup would then
            // skip its records. So a read stops at a segment boundary that a swap crossed
            // (the caller continues from `next_offset`, in the new list).
            let swaps = self.shared.swaps.load(Ordering::Acquire);
            match self.read_segment(&s, offset, max_bytes, &mut bytes, &mut out) {
                Ok(true) => break,
                Ok(false) => {}
                // The segment left the list after it was looked up: retention deleted it
                // (the offset is gone) or compaction replaced it (read the replacement).
                Err(_) if !self.shared.holds(&s) => {
                    if !out.batches.is_empty() {
                        break;
                    }
                    let (start, end) = (self.start_offset(), self.end_offset());
                    if offset < start || retries >= REPLACED_RETRIES_MAX {
                        return Err(Error::OffsetOutOfRange { requested: offset, start, end });
                    }
                    retries += 1;
                    seg = self.shared.segment_for(offset);
                    continue;
                }
                Err(e) => return Err(e),
            }
            let next = self.shared.segment_after(s.base_offset);
            if self.shared.swaps.load(Ordering::Acquire) != swaps && !out.batches.is_empty() {
                break;
            }
            seg = next;
        }
        Ok(out)
    }

    /// Reads from one segment into `out`; returns true when the read is complete.
    ///
    /// Every batch the cursor walks over is CRC-checked, including those skipped because
    /// they end before `offset` (at most about one index interval of bytes): the cursor
    /// moves by each batch's length field, and a damaged length must not move it onto
    /// another batch and silently skip records. Batches at or past `out.end_offset` (the
    /// end loaded when the read began) are not returned, so a read never reports more than
    /// the end it carries.
    fn read_segment(
        &self,
        seg: &Arc<Segment>,
        offset: u64,
        max_bytes: usize,
        bytes: &mut usize,
        out: &mut ReadBatches,
    ) -> Result<bool> {
        let maps = self.shared.ctx.cache.maps(seg)?;
        // Index first, then the acknowledged length: every index entry visible here points
        // inside the acknowledged prefix (the writer publishes the length first).
        let entry = if offset > seg.base_offset { maps.index.lookup(offset - seg.base_offset) } else { None };
        let acked = seg.acked_len();
        let log = maps.log_prefix(acked);
        let pos = entry.map_or(0, |(rel, pos)| checked_index_position(seg, log, rel, pos));
        let mut cursor = BatchCursor { log, pos };
        let mut found: Vec<(BatchHeader, usize)> = Vec::new();
        let mut complete = false;
        while let Some(h) = cursor.peek() {
            let at = cursor.pos;
            let h = match h.and_then(|h| batch::verify(&log[at..at + h.total_len()])) {
                Ok(h) => h,
                Err(e) => {
                    if let Some(next) = skippable_damaged_batch(log, at, offset) {
                        tracing::warn!(file = %seg.log_path.display(), position = at, "stepping over a damaged batch below the requested offset: {e}");
                        cursor.pos = next;
                        continue;
                    }
                    if out.batches.is_empty() && found.is_empty() {
                        return Err(seg.corruption(at as u64, e));
                    }
                    complete = true;
                    break;
                }
            };
            if h.base_offset >= out.end_offset {
                complete = true;
                break;
            }
            cursor.pos += h.total_len();
            if h.last_offset() < offset {
                continue;
            }
            found.push((h, at));
            *bytes += h.total_len();
            if *bytes >= max_bytes {
                complete = true;
                break;
            }
        }
        if let (Some(first), Some(last)) = (found.first(), found.last()) {
            let span_start = first.1;
            let span = log_bytes(&maps, span_start, last.1 + last.0.total_len());
            let file: Arc<Path> = Arc::from(seg.log_path.as_path());
            for (h, at) in found {
                let rel = at - span_start;
                out.batches.push(StoredBatch {
                    header: h,
                    bytes: span.slice(rel..rel + h.total_len()),
                    file: Arc::clone(&file),
                    position: at as u64,
                });
                out.next_offset = h.next_offset();
            }
        }
        Ok(complete || out.next_offset >= out.end_offset)
    }

    /// The first offset whose timestamp is >= `ts` (the end offset if there is none).
    /// Every batch walked is CRC-checked, so a damaged length or timestamp cannot make the
    /// walk skip records: damage is an [`Error::Corruption`].
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<u64> {
        let mut retries = 0;
        loop {
            let swaps = self.shared.swaps.load(Ordering::Acquire);
            match self.offset_for_timestamp_once(ts) {
                // Compaction replaced a segment under the lookup: look again.
                Err(_) if self.shared.swaps.load(Ordering::Acquire) != swaps && retries < REPLACED_RETRIES_MAX => {
                    retries += 1
                }
                other => return other,
            }
        }
    }

    fn offset_for_timestamp_once(&self, ts: i64) -> Result<u64> {
        let end = self.end_offset();
        let first = {
            let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
            segs.values().find(|s| s.max_timestamp().is_some_and(|m| m >= ts)).map(Arc::clone)
        };
        let mut seg = first;
        while let Some(s) = seg {
            let maps = self.shared.ctx.cache.maps(&s)?;
            let log = maps.log_prefix(s.acked_len());
            let mut cursor = BatchCursor { log, pos: time_walk_start(&s, &maps, log, ts) };
            while let Some(h) = cursor.peek() {
                let at = cursor.pos;
                let h = h
                    .and_then(|h| batch::verify(&log[at..at + h.total_len()]))
                    .map_err(|e| s.corruption(at as u64, e))?;
                if h.base_offset >= end {
                    return Ok(end);
                }
                if h.max_timestamp >= ts {
                    let d = DecodedBatch::trusting_crc(&log[at..at + h.total_len()], h)
                        .map_err(|e| s.corruption(at as u64, e))?;
                    for r in d.records() {
                        let r = r.map_err(|e| s.corruption(at as u64, e))?;
                        if r.timestamp >= ts {
                            return Ok(r.offset);
                        }
                    }
                }
                cursor.pos += h.total_len();
            }
            seg = self.shared.segment_after(s.base_offset);
        }
        Ok(end)
    }

    /// Syncs everything written so far to disk (for `interval` topics; a no-op cost for
    /// `always` topics, whose appends are already synced).
    ///
    /// A failed sync poisons the partition, as in the writer: the kernel may have dropped
    /// the dirty pages and marked them clean, so a retried sync could report success for
    /// data that never reached the disk. Later calls (and appends) fail until it is reopened.
    pub fn sync(&self) -> Result<()> {
        let w = lock(&self.shared.writer);
        self.shared.check_poisoned()?;
        let Some(w) = w.as_ref() else { return Ok(()) };
        crate::faults::sync_data("flush.fdatasync", &w.file, &w.segment.log_path).map_err(|e| {
            let err = Error::io("fdatasync", &w.segment.log_path, e);
            self.shared.poison(err.to_string());
            err
        })
    }

    /// Replaces the partition's copy of its topic's config.
    pub(crate) fn set_config(&self, config: TopicConfig) {
        *self.shared.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}

/// The position an offset-index entry `(rel, pos)` of `seg` gives, if the batch header there
/// agrees with it (a batch of offset `base + rel` starts at `pos`); otherwise the index is
/// doubtful (damaged on disk) and the segment is walked from its start, which is slower but
/// correct.
/// Where the walk may resume after the damaged batch at `at`, when that batch lies wholly
/// below `offset` (a read of later positions must keep working) and its claimed extent is
/// proven by the batch right after it: CRC-valid and starting exactly at the damaged one's
/// claimed next offset. Anything less (an unreadable header, a batch that may hold `offset`,
/// no proof of where it ends) is `None`: the damage is reported, never stepped over blindly.
fn skippable_damaged_batch(log: &[u8], at: usize, offset: u64) -> Option<usize> {
    let claimed = BatchHeader::parse(&log[at..]).ok().filter(|h| h.last_offset() < offset)?;
    let next = at.checked_add(claimed.total_len()).filter(|&n| n < log.len())?;
    let following = BatchHeader::parse(&log[next..]).ok()?;
    let end = next.checked_add(following.total_len()).filter(|&e| e <= log.len())?;
    let following = batch::verify(&log[next..end]).ok()?;
    (following.base_offset == claimed.next_offset()).then_some(next)
}

fn checked_index_position(seg: &Segment, log: &[u8], rel: u32, pos: u64) -> usize {
    let agrees = usize::try_from(pos).ok().filter(|&p| p < log.len()).and_then(|p| {
        BatchHeader::parse(&log[p..]).ok().filter(|h| h.base_offset == seg.base_offset + u64::from(rel)).map(|_| p)
    });
    match agrees {
        Some(p) => p,
        None => {
            tracing::warn!(file = %seg.log_path.display(), "index entry ({rel}, {pos}) does not match the log; scanning");
            0
        }
    }
}

/// Where to start walking a segment for the first record with timestamp >= `ts`: the last
/// indexed batch older than `ts`. The time index gives a first candidate; a binary search over
/// the offset-index entries after it (reading their batch headers) narrows it down to within
/// one index interval, however many batches share a millisecond. The headers read by the
/// search are not trusted: the chosen batch is CRC-checked and must be older than `ts`, and
/// since timestamps never decrease within a partition, no record before it can be as new as
/// `ts`. If that check fails the segment is walked from its start.
fn time_walk_start(seg: &Segment, maps: &SegmentMaps, log: &[u8], ts: i64) -> usize {
    let base = seg.base_offset;
    let header = |rel: u32, pos: u32| {
        let pos = pos as usize;
        (pos < log.len())
            .then(|| BatchHeader::parse(&log[pos..]).ok())
            .flatten()
            .filter(|h| h.base_offset == base + u64::from(rel))
    };
    let hint = maps.timeindex.lookup(ts);
    let from = maps.index.partition_point_from(0, |rel, _| u64::from(rel) <= hint).saturating_sub(1);
    let n = maps.index.partition_point_from(from, |rel, pos| header(rel, pos).is_some_and(|h| h.max_timestamp < ts));
    if n == 0 {
        return 0;
    }
    let (rel, pos) = maps.index.entry(n - 1);
    let start = pos as usize;
    let older = header(rel, pos)
        .and_then(|h| (start + h.total_len() <= log.len()).then_some(h))
        .and_then(|h| batch::verify(&log[start..start + h.total_len()]).ok())
        .is_some_and(|h| h.max_timestamp < ts);
    if older {
        start
    } else {
        tracing::warn!(file = %seg.log_path.display(), "index entry ({rel}, {pos}) does not match the log; scanning");
        0
    }
}

#[cfg(test)]
mod tests {
    use crate::{BatchBuilder, Catalog, CatalogOptions, Error, TopicConfig};

    /// A reader that found its segment before retention deleted it used to fail with an
    /// I/O error (the file is gone) instead of "offset out of range".
    #[test]
    fn read_of_a_segment_deleted_by_retention_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
        let cfg =
            TopicConfig { segment_bytes: 4096, retention_ms: None, retention_bytes: Some(1), ..TopicConfig::default() };
        let p = cat.create_topic("t", cfg).unwrap().partition(0).unwrap();
        for _ in 0..10 {
            let mut b = BatchBuilder::new();
            b.push(None, Some(&[7u8; 1000][..]), []);
            p.append(b.finish(0, 0).unwrap()).unwrap();
        }
        let stale = p.shared.segment_for(0);
        assert!(p.enforce_retention(0).unwrap().segments_deleted > 0);
        match p.read_from(stale, 0, 1, 0, p.end_offset()) {
            Err(Error::OffsetOutOfRange { requested: 0, start, .. }) => assert_eq!(start, p.start_offset()),
            other => panic!("expected out of range, got {other:?}"),
        }
    }
}
