//! The append path: the active segment's writer and the group commit.
//!
//! One runner at a time per partition (the writer pool guarantees it) takes every append
//! waiting, assigns offsets and one non-decreasing timestamp per batch, writes them with one
//! vectored write, issues one `fdatasync` (sync policy `always`), publishes the new
//! acknowledged end, then completes every waiter. A failed write (for example ENOSPC) is
//! undone by truncating the unacknowledged tail, so the partition stays usable; a failed
//! `fdatasync` poisons the partition, because the kernel may have dropped the dirty pages
//! and nothing written since the last good sync can be trusted to be on disk.
//!
//! For `sync: always` partitions with small group commits the writer keeps a zero-filled
//! horizon ahead of its end ([`crate::prezero`]): it claims each run's range before writing
//! it and asks the zeroer for more zeros when few are left. The zeros are never part of the
//! segment: it is truncated to its data when sealed or closed.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::batch;
use crate::config::{SyncPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::faults;
use crate::format::{
    BATCH_BYTES_MAX, BATCH_RECORDS_MAX, INDEX_ENTRY_LEN, INDEX_INTERVAL_BYTES, PREZERO_COMMIT_BYTES_MAX,
    TIMEINDEX_ENTRY_LEN,
};
use crate::fsutil;
use crate::index::{EntryFile, OffsetIndex, TimeIndex};
use crate::partition::{lock, AppendCallback, Appended, Pending, Shared};
use crate::prezero::Horizon;
use crate::recovery::write_recovery_point;
use crate::segment::{index_capacity, Segment, SegmentMaps};

/// The active segment and what only its writer knows.
pub(crate) struct ActiveWriter {
    pub segment: Arc<Segment>,
    pub maps: Arc<SegmentMaps>,
    pub file: Arc<File>,
    /// Bytes in the file that are acknowledged (the file may hold an unacknowledged tail
    /// only inside a group commit).
    pub written_len: u64,
    /// Mapped log capacity: the segment may not grow past it.
    pub capacity: u64,
    pub next_offset: u64,
    /// Last timestamp handed out in this partition.
    pub last_timestamp: i64,
    /// Position of the last offset-index entry (0: none yet).
    pub last_index_pos: u64,
    pub last_time_entry: Option<i64>,
    /// Zero-filled space past `written_len` (the file may be longer than the data).
    pub horizon: Arc<Horizon>,
    /// Recent average of bytes written per group commit (`None` before the first): decides
    /// whether zero-filling pays. Carried over to the next segment on roll.
    pub commit_bytes_avg: Option<u64>,
}

impl ActiveWriter {
    /// Opens (creating if `create`) the files of `seg` as the active segment, ready to
    /// append at `written_len`.
    pub fn open(
        seg: Arc<Segment>,
        segment_bytes: u64,
        written_len: u64,
        next_offset: u64,
        last_timestamp: i64,
        create: bool,
    ) -> Result<Self> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if create {
            opts.create_new(true);
        }
        let mut file = faults::open("segment.create", &opts, &seg.log_path)
            .map_err(|e| Error::io("open segment", &seg.log_path, e))?;
        file.seek(SeekFrom::Start(written_len)).map_err(|e| Error::io("seek", &seg.log_path, e))?;
        let cap = index_capacity(segment_bytes);
        let (index, timeindex) = if create {
            (
                OffsetIndex(EntryFile::create(&seg.index_path, INDEX_ENTRY_LEN, cap)?),
                TimeIndex(EntryFile::create(&seg.timeindex_path, TIMEINDEX_ENTRY_LEN, cap)?),
            )
        } else {
            (
                OffsetIndex(EntryFile::open_writable(&seg.index_path, INDEX_ENTRY_LEN, cap)?),
                TimeIndex(EntryFile::open_writable(&seg.timeindex_path, TIMEINDEX_ENTRY_LEN, cap)?),
            )
        };
        let capacity = segment_bytes.max(written_len) + BATCH_BYTES_MAX as u64;
        let maps = Arc::new(SegmentMaps::open_active(&file, &seg, capacity as usize, index, timeindex)?);
        *lock(&seg.maps) = Some(Arc::clone(&maps));
        Ok(ActiveWriter {
            last_index_pos: maps.index.last_position(),
            last_time_entry: maps.timeindex.last_timestamp(),
            horizon: Arc::new(Horizon::new(&seg.log_path, written_len)),
            commit_bytes_avg: None,
            segment: seg,
            maps,
            file: Arc::new(file),
            written_len,
            capacity,
            next_offset,
            last_timestamp,
        })
    }

    /// Whether a batch of `batch_len` bytes going to position `pos` must open a new segment.
    fn needs_roll(&self, pos: u64, batch_len: u64, cfg: &TopicConfig, now: i64) -> bool {
        if pos == 0 {
            return false;
        }
        let age_ms = self.segment.first_timestamp().map_or(0, |t| now.saturating_sub(t));
        pos + batch_len > cfg.segment_bytes
            || pos + batch_len > self.capacity
            || age_ms >= i64::try_from(cfg.segment_ms).unwrap_or(i64::MAX)
            || !self.maps.index.0.has_room()
            || !self.maps.timeindex.0.has_room()
            || self.next_offset - self.segment.base_offset + u64::from(BATCH_RECORDS_MAX) >= u64::from(u32::MAX)
    }
}

/// A batch placed in the current run, waiting for the run's write and sync.
struct Placed {
    bytes: Vec<u8>,
    appended: Appended,
    done: AppendCallback,
}

type Completions = Vec<(AppendCallback, Result<Appended>)>;

impl Shared {
    /// Runs one group commit for everything queued. Returns true if more appends arrived
    /// meanwhile (the caller queues the partition again), false once the queue is idle.
    pub(crate) fn run_group(self: &Arc<Self>) -> bool {
        let items = std::mem::take(&mut lock(&self.queue).items);
        if !items.is_empty() {
            let before = self.end_offset.load(Ordering::Acquire);
            let completions = {
                let mut w = lock(&self.writer);
                self.commit_group(&mut w, items)
            };
            let after = self.end_offset.load(Ordering::Acquire);
            if after > before {
                self.publish_end(after);
            }
            for (done, result) in completions {
                done(result);
            }
        }
        let mut q = lock(&self.queue);
        if q.items.is_empty() {
            q.scheduled = false;
            self.queue_idle.notify_all();
            false
        } else {
            true
        }
    }

    fn commit_group(self: &Arc<Self>, w: &mut Option<ActiveWriter>, items: Vec<Pending>) -> Completions {
        let Some(w) = w.as_mut() else { return fail_all(items, &Error::Closed) };
        if let Err(e) = self.check_poisoned() {
            return fail_all(items, &e);
        }
        let cfg = self.config();
        let now = self.ctx.now_ms();
        let mut out: Completions = Vec::with_capacity(items.len());
        let mut run: Vec<Placed> = Vec::with_capacity(items.len());
        let mut run_len = 0u64;
        let mut rest = items.into_iter();
        while let Some(p) = rest.next() {
            let len = p.bytes.len() as u64;
            if w.needs_roll(w.written_len + run_len, len, &cfg, now) {
                let mut result = self.commit_run(w, std::mem::take(&mut run), &cfg, &mut out);
                if result.is_ok() {
                    result = self.roll(w, &cfg);
                }
                run_len = 0;
                if let Err(e) = result {
                    out.push((p.done, Err(e.duplicate())));
                    out.extend(fail_all(rest.collect(), &e));
                    return out;
                }
            }
            let position = w.written_len + run_len;
            let base = w.next_offset;
            let timestamp = now.max(w.last_timestamp);
            let mut bytes = p.bytes;
            batch::restamp(&mut bytes, base, timestamp, p.section_crc);
            let appended = Appended {
                base_offset: base,
                last_offset: base + u64::from(p.header.last_offset_delta),
                timestamp,
                record_count: p.header.record_count,
            };
            self.add_index_entries(w, position, base, timestamp);
            w.next_offset = appended.last_offset + 1;
            w.last_timestamp = timestamp;
            run_len += len;
            run.push(Placed { bytes, appended, done: p.done });
        }
        let _ = self.commit_run(w, run, &cfg, &mut out);
        out
    }

    /// Writes a run of placed batches at the end of the active segment, syncs per policy
    /// and publishes them. On failure the run is undone (file truncated, index entries
    /// dropped, offsets handed back) and its waiters get the error.
    fn commit_run(
        self: &Arc<Self>,
        w: &mut ActiveWriter,
        run: Vec<Placed>,
        cfg: &TopicConfig,
        out: &mut Completions,
    ) -> Result<()> {
        let Some(first) = run.first() else { return Ok(()) };
        let first_offset = first.appended.base_offset;
        let result = self.write_and_sync(w, &run, cfg);
        match result {
            Ok(new_len) => {
                let (first_ts, max_ts) = (first.appended.timestamp, run.last().map_or(0, |p| p.appended.timestamp));
                w.written_len = new_len;
                // Length first, then the indexes: a reader that sees an index entry also
                // sees the bytes it points to.
                w.segment.publish(new_len, w.next_offset, first_ts, max_ts);
                w.maps.index.0.publish();
                w.maps.timeindex.0.publish();
                self.end_offset.fetch_max(w.next_offset, Ordering::AcqRel);
                out.extend(run.into_iter().map(|p| (p.done, Ok(p.appended))));
                Ok(())
            }
            Err(e) => {
                w.maps.index.0.rollback();
                w.maps.timeindex.0.rollback();
                w.last_index_pos = w.maps.index.last_position();
                w.last_time_entry = w.maps.timeindex.last_timestamp();
                w.next_offset = first_offset;
                // No zero-fill piece is in flight while the file is cut (the zeros past the
                // end go too; the horizon starts again from the end).
                let undone = w.horizon.truncated(w.written_len, || {
                    faults::set_len("append.undo", &w.file, &w.segment.log_path, w.written_len)
                        .and_then(|()| (&*w.file).seek(SeekFrom::Start(w.written_len)).map(drop))
                });
                if let Err(te) = undone {
                    self.poison(format!("could not undo a failed write: {te}"));
                }
                out.extend(run.into_iter().map(|p| (p.done, Err(e.duplicate()))));
                Err(e)
            }
        }
    }

    fn write_and_sync(self: &Arc<Self>, w: &mut ActiveWriter, run: &[Placed], cfg: &TopicConfig) -> Result<u64> {
        let path = &w.segment.log_path;
        let mut slices: Vec<IoSlice<'_>> = run.iter().map(|p| IoSlice::new(&p.bytes)).collect();
        let total: u64 = run.iter().map(|p| p.bytes.len() as u64).sum();
        let avg = w.commit_bytes_avg.map_or(total, |a| a - a / 8 + total / 8);
        w.commit_bytes_avg = Some(avg);
        // Zero-filling pays for small syncs only (docs/FORMAT.md §2.1); interval-sync
        // partitions sync once per interval, which amortises the metadata write anyway.
        let want_zeros = cfg.sync == SyncPolicy::Always && avg < PREZERO_COMMIT_BYTES_MAX;
        let limit = w.capacity.min(cfg.segment_bytes);
        if w.horizon.claim(w.written_len + total, limit, want_zeros) {
            self.ctx.zeroer.request(Arc::clone(&w.horizon));
        }
        write_all_vectored(&w.file, &mut slices).map_err(|e| Error::io("write", path, e))?;
        match cfg.sync {
            SyncPolicy::Always => {
                if let Err(e) = faults::sync_data("append.fdatasync", &w.file, path) {
                    let err = Error::io("fdatasync", path, e);
                    self.poison(err.to_string());
                    return Err(err);
                }
            }
            SyncPolicy::Interval { interval_ms } => {
                if !self.dirty.swap(true, Ordering::AcqRel) {
                    self.ctx.flusher.register(self, Duration::from_millis(interval_ms));
                }
            }
        }
        Ok(w.written_len + total)
    }

    /// Seals the active segment and starts a new one at the next offset.
    fn roll(self: &Arc<Self>, w: &mut ActiveWriter, cfg: &TopicConfig) -> Result<()> {
        let old = Arc::clone(&w.segment);
        // A sealed segment holds exactly its data: its zero-filled tail is cut, durably,
        // before the next segment exists (recovery trusts sealed segments' lengths).
        let trimmed = self.trim_zeros(w)?;
        if trimmed || cfg.sync != SyncPolicy::Always {
            let synced = if trimmed {
                faults::sync_all("seal.fsync", &w.file, &old.log_path).map_err(|e| Error::io("fsync", &old.log_path, e))
            } else {
                faults::sync_data("roll.fdatasync", &w.file, &old.log_path)
                    .map_err(|e| Error::io("fdatasync", &old.log_path, e))
            };
            if let Err(err) = synced {
                self.poison(err.to_string());
                return Err(err);
            }
        }
        let seg = Arc::new(Segment::new(&self.dir, w.next_offset));
        let next =
            match ActiveWriter::open(Arc::clone(&seg), cfg.segment_bytes, 0, w.next_offset, w.last_timestamp, true)
                .and_then(|n| fsutil::sync_dir(&self.dir).map(|()| n))
            {
                Ok(n) => n,
                Err(e) => {
                    for p in [&seg.log_path, &seg.index_path, &seg.timeindex_path] {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            };
        let commit_bytes_avg = w.commit_bytes_avg;
        let sealed_ok = w.maps.index.0.seal().and_then(|()| w.maps.timeindex.0.seal());
        old.sealed.store(true, Ordering::Release);
        *lock(&old.maps) = None;
        self.segments.write().unwrap_or_else(|p| p.into_inner()).insert(seg.base_offset, Arc::clone(&seg));
        *w = next;
        w.commit_bytes_avg = commit_bytes_avg;
        match sealed_ok {
            Ok(()) => {
                if let Err(e) = write_recovery_point(&self.dir, seg.base_offset) {
                    tracing::warn!(partition = %self.name(), "recovery point not updated: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(partition = %self.name(), "sealing {} failed, it will be rebuilt after a crash: {e}", old.file_name())
            }
        }
        Ok(())
    }

    /// Stops zero-filling the active segment and cuts the zeros past its data, if any.
    /// Returns whether the file was cut: the caller must then fsync it (a size change is
    /// metadata that `fdatasync` need not write).
    fn trim_zeros(&self, w: &ActiveWriter) -> Result<bool> {
        w.horizon.stop();
        let path = &w.segment.log_path;
        let file_len = w.file.metadata().map_err(|e| Error::io("stat segment", path, e))?.len();
        if file_len <= w.written_len {
            return Ok(false);
        }
        faults::set_len("seal.truncate", &w.file, path, w.written_len).map_err(|e| Error::io("truncate", path, e))?;
        Ok(true)
    }

    /// Syncs the active segment of an interval-sync partition (called by the flusher).
    pub(crate) fn flush_interval(&self) {
        self.dirty.store(false, Ordering::Release);
        let file = lock(&self.writer).as_ref().map(|w| (Arc::clone(&w.file), w.segment.log_path.clone()));
        if let Some((file, path)) = file {
            if let Err(e) = faults::sync_data("flush.fdatasync", &file, &path) {
                self.poison(Error::io("fdatasync", &path, e).to_string());
            }
        }
    }

    /// Stops accepting appends, waits for queued ones, then syncs and closes the active
    /// segment and records the recovery point. Returns whether everything was clean.
    pub(crate) fn close(&self) -> Result<()> {
        {
            let mut q = lock(&self.queue);
            q.closed = true;
            while q.scheduled || !q.items.is_empty() {
                q = self.queue_idle.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        }
        let w = lock(&self.writer).take();
        self.check_poisoned()?;
        let Some(w) = w else { return Ok(()) };
        let path = &w.segment.log_path;
        if self.trim_zeros(&w)? {
            faults::sync_all("close.fdatasync", &w.file, path).map_err(|e| Error::io("fsync", path, e))?;
        } else {
            faults::sync_data("close.fdatasync", &w.file, path).map_err(|e| Error::io("fdatasync", path, e))?;
        }
        w.maps.index.0.flush()?;
        w.maps.timeindex.0.flush()?;
        let index_file =
            File::open(&w.segment.index_path).map_err(|e| Error::io("open index", &w.segment.index_path, e))?;
        faults::sync_all("index.fsync", &index_file, &w.segment.index_path)
            .map_err(|e| Error::io("fsync index", &w.segment.index_path, e))?;
        let time_file =
            File::open(&w.segment.timeindex_path).map_err(|e| Error::io("open index", &w.segment.timeindex_path, e))?;
        faults::sync_all("index.fsync", &time_file, &w.segment.timeindex_path)
            .map_err(|e| Error::io("fsync index", &w.segment.timeindex_path, e))?;
        write_recovery_point(&self.dir, w.segment.base_offset)
    }

    fn add_index_entries(&self, w: &mut ActiveWriter, position: u64, base: u64, timestamp: i64) {
        if position == 0 || position - w.last_index_pos < INDEX_INTERVAL_BYTES {
            return;
        }
        let rel = (base - w.segment.base_offset) as u32;
        if w.maps.index.push(rel, position as u32) {
            w.last_index_pos = position;
            if w.last_time_entry.is_none_or(|t| timestamp > t) && w.maps.timeindex.push(timestamp, rel) {
                w.last_time_entry = Some(timestamp);
            }
        }
    }
}

fn fail_all(items: Vec<Pending>, e: &Error) -> Completions {
    items.into_iter().map(|p| (p.done, Err(e.duplicate()))).collect()
}

/// Writes every slice at the file's cursor, retrying short writes.
fn write_all_vectored(file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match faults::write_vectored("append.write", file, slices) {
            Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes")),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
