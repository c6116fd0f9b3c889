//! One segment of a partition log: its three files, the state readers may see, and the
//! mapped views used to read it.
//!
//! A segment is named by the offset of its first batch. Its `.log` file is a plain sequence
//! of batches; readers see the prefix `[0, acked_len)`, which only grows while the segment is
//! active and never changes once sealed (compaction replaces whole files by rename, never
//! in place). The active segment's log is mapped once with room to grow (the map may extend
//! past the end of the file; only the acknowledged prefix is ever touched). Sealed segments
//! are mapped on demand and unmapped by the [`crate::cache::SegmentCache`] when cold.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use crate::batch::{self, BatchHeader};
use crate::error::{Error, Result};
use crate::format::*;
use crate::index::{EntryFile, OffsetIndex, TimeIndex};

/// File name stem of a segment with base offset `base`.
pub fn segment_stem(base: u64) -> String {
    format!("{base:0width$}", width = SEGMENT_NAME_WIDTH)
}

/// Parses a segment file name (`<20 digits>.<suffix>`) into its base offset and suffix.
pub fn parse_segment_name(name: &str) -> Option<(u64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != SEGMENT_NAME_WIDTH || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// Index capacity (entries) for a segment that may grow to `segment_bytes` plus one batch.
pub fn index_capacity(segment_bytes: u64) -> usize {
    ((segment_bytes + BATCH_BYTES_MAX as u64) / INDEX_INTERVAL_BYTES + 2) as usize
}

/// The mapped files of a segment. Held in an `Arc` by readers for as long as they use any
/// bytes of it (including `Bytes` handed to the network), so unmapping waits for them.
#[derive(Debug)]
pub struct SegmentMaps {
    log: Option<MmapRaw>,
    log_capacity: usize,
    pub(crate) index: OffsetIndex,
    pub(crate) timeindex: TimeIndex,
}

impl SegmentMaps {
    /// Maps a sealed segment's files read-only.
    pub(crate) fn open_sealed(seg: &Segment) -> Result<Self> {
        let len = seg.acked_len() as usize;
        let log = if len == 0 {
            None
        } else {
            let file = std::fs::File::open(&seg.log_path).map_err(|e| Error::io("open segment", &seg.log_path, e))?;
            // Compaction marks a segment retired before renaming its replacement over its
            // path, so a file opened after that rename is always seen as retired here.
            if seg.retired.load(Ordering::Acquire) {
                return Err(replaced(seg));
            }
            let file_len = file.metadata().map_err(|e| Error::io("stat segment", &seg.log_path, e))?.len();
            if file_len < len as u64 {
                // Mapping past the end of the file would fault on access: refuse instead.
                return Err(seg.corruption(file_len, format!("file is shorter than its {len} acknowledged bytes")));
            }
            Some(
                MmapOptions::new()
                    .len(len)
                    .map_raw_read_only(&file)
                    .map_err(|e| Error::io("map segment", &seg.log_path, e))?,
            )
        };
        Ok(SegmentMaps {
            log,
            log_capacity: len,
            index: OffsetIndex(EntryFile::open_sealed(&seg.index_path, INDEX_ENTRY_LEN)?),
            timeindex: TimeIndex(EntryFile::open_sealed(&seg.timeindex_path, TIMEINDEX_ENTRY_LEN)?),
        })
    }

    /// Maps the active segment: the log read-only with room for `capacity` bytes, the
    /// indexes writable.
    pub(crate) fn open_active(
        log_file: &std::fs::File,
        seg: &Segment,
        capacity: usize,
        index: OffsetIndex,
        timeindex: TimeIndex,
    ) -> Result<Self> {
        let log = MmapOptions::new()
            .len(capacity)
            .map_raw_read_only(log_file)
            .map_err(|e| Error::io("map segment", &seg.log_path, e))?;
        Ok(SegmentMaps { log: Some(log), log_capacity: capacity, index, timeindex })
    }

    /// The bytes `[0, len)` of the log. `len` must not exceed the segment's acknowledged
    /// length as loaded by the caller.
    pub(crate) fn log_prefix(&self, len: u64) -> &[u8] {
        let len = len as usize;
        assert!(len <= self.log_capacity, "read past the mapped log");
        match &self.log {
            None => &[],
            // SAFETY: `len` is at most the acknowledged length of the segment, which the
            // writer publishes (release store) only after those bytes are written to the
            // file, so they lie within the file and within the mapping (`len <=
            // log_capacity`). Bytes below the acknowledged length are never written again
            // and the file is never truncated below it while mapped (truncation only
            // removes an unacknowledged tail; compaction and retention replace or unlink
            // whole files, leaving existing mappings intact).
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr(), len) },
        }
    }
}

fn replaced(seg: &Segment) -> Error {
    Error::io(
        "open segment",
        &seg.log_path,
        std::io::Error::new(std::io::ErrorKind::NotFound, "segment was replaced by compaction"),
    )
}

/// Zero-copy owner of a byte range of a mapped segment, for `Bytes::from_owner`.
struct LogSlice {
    maps: Arc<SegmentMaps>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for LogSlice {
    fn as_ref(&self) -> &[u8] {
        &self.maps.log_prefix(self.end as u64)[self.start..]
    }
}

/// Wraps `[start, end)` of a segment's acknowledged bytes as `Bytes` without copying.
pub(crate) fn log_bytes(maps: &Arc<SegmentMaps>, start: usize, end: usize) -> Bytes {
    Bytes::from_owner(LogSlice { maps: Arc::clone(maps), start, end })
}

/// A segment and the state that readers may see.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub timeindex_path: PathBuf,
    /// Bytes of the log visible to readers.
    acked_len: AtomicU64,
    /// Offset after the last visible batch (`base_offset` when empty).
    next_offset: AtomicU64,
    /// Largest timestamp of a visible batch (`i64::MIN` when empty).
    max_timestamp: AtomicI64,
    /// Timestamp of the first batch (`i64::MIN` when empty): drives age-based rolling.
    first_timestamp: AtomicI64,
    pub(crate) sealed: AtomicBool,
    /// Replaced by compaction: its files may now hold the replacement's data, so it must
    /// not be mapped again (readers retry with the partition's new segment list).
    pub(crate) retired: AtomicBool,
    /// Maps, if open: always for the active segment, on demand for sealed ones.
    pub(crate) maps: Mutex<Option<Arc<SegmentMaps>>>,
    /// LRU position in the segment cache (0: not in it).
    pub(crate) lru_tick: AtomicU64,
}

impl Segment {
    pub(crate) fn new(dir: &Path, base_offset: u64) -> Self {
        let stem = segment_stem(base_offset);
        Segment {
            base_offset,
            log_path: dir.join(format!("{stem}.{LOG_SUFFIX}")),
            index_path: dir.join(format!("{stem}.{INDEX_SUFFIX}")),
            timeindex_path: dir.join(format!("{stem}.{TIMEINDEX_SUFFIX}")),
            acked_len: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            first_timestamp: AtomicI64::new(i64::MIN),
            sealed: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            maps: Mutex::new(None),
            lru_tick: AtomicU64::new(0),
        }
    }

    pub fn acked_len(&self) -> u64 {
        self.acked_len.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        match self.max_timestamp.load(Ordering::Acquire) {
            i64::MIN => None,
            ts => Some(ts),
        }
    }

    pub fn first_timestamp(&self) -> Option<i64> {
        match self.first_timestamp.load(Ordering::Acquire) {
            i64::MIN => None,
            ts => Some(ts),
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Publishes a new visible end. Called by the writer after the bytes are written (and
    /// synced, per the sync policy), and by recovery.
    pub(crate) fn publish(&self, len: u64, next_offset: u64, first_ts: i64, max_ts: i64) {
        debug_assert!(len >= self.acked_len.load(Ordering::Relaxed), "acknowledged length only grows");
        if self.first_timestamp.load(Ordering::Relaxed) == i64::MIN {
            self.first_timestamp.store(first_ts, Ordering::Release);
        }
        self.max_timestamp.fetch_max(max_ts, Ordering::AcqRel);
        self.next_offset.store(next_offset, Ordering::Release);
        self.acked_len.store(len, Ordering::Release);
    }

    /// Sets the visible state of a segment found on disk (recovery only).
    pub(crate) fn set_recovered(&self, len: u64, next_offset: u64, first_ts: Option<i64>, max_ts: Option<i64>) {
        self.first_timestamp.store(first_ts.unwrap_or(i64::MIN), Ordering::Release);
        self.max_timestamp.store(max_ts.unwrap_or(i64::MIN), Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.acked_len.store(len, Ordering::Release);
    }

    /// The file name of the log, for error messages.
    pub fn file_name(&self) -> String {
        self.log_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// A corruption error at `position` of this segment's log.
    pub(crate) fn corruption(&self, position: u64, reason: impl ToString) -> Error {
        Error::Corruption { file: self.log_path.clone(), position, reason: reason.to_string() }
    }
}

/// A batch read from a segment: its header, its bytes (zero-copy) and where it lives.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub header: BatchHeader,
    pub bytes: Bytes,
    /// Segment log file and byte position, for error messages.
    pub file: Arc<Path>,
    pub position: u64,
}

/// Walks the batch headers of `log[from..]`, one at a time. Does not check CRCs.
pub(crate) struct BatchCursor<'a> {
    pub log: &'a [u8],
    pub pos: usize,
}

impl BatchCursor<'_> {
    /// The header at the cursor, or `None` at the end. An error means the bytes at `pos`
    /// are not a whole batch.
    pub fn peek(&self) -> Option<std::result::Result<BatchHeader, batch::BatchError>> {
        if self.pos >= self.log.len() {
            return None;
        }
        let rest = &self.log[self.pos..];
        Some(BatchHeader::parse(rest).and_then(|h| {
            if h.total_len() > rest.len() {
                Err(batch::BatchError::Truncated { needed: h.total_len(), available: rest.len() })
            } else {
                Ok(h)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_stem(42), "00000000000000000042");
        assert_eq!(parse_segment_name("00000000000000000042.log"), Some((42, "log")));
        assert_eq!(parse_segment_name("00000000000000000042.index.swap"), Some((42, "index.swap")));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("recovery-point"), None);
    }
}
