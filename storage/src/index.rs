//! Memory-mapped index files: the sparse offset index (`.index`) and the time index
//! (`.timeindex`) of a segment.
//!
//! Both are arrays of fixed-size little-endian entries, strictly increasing in every field.
//! The active segment's files are preallocated and filled front to back; the unused tail is
//! zeros, and an all-zero entry is never valid (offset entries never point at position 0 and
//! timestamps are never 0), so the number of entries is found by binary search. When a
//! segment is sealed its files are trimmed to the entries they hold.
//!
//! Concurrency: one writer (the partition's group-commit runner) writes entries at and past
//! `published`; readers read only entries below `published`, which the writer raises with a
//! release store after the entries are written. Reader and writer never touch the same bytes.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::faults;
use crate::format::{INDEX_ENTRY_LEN, TIMEINDEX_ENTRY_LEN};

/// A file of fixed-size entries, mapped into memory.
#[derive(Debug)]
pub(crate) struct EntryFile {
    path: PathBuf,
    map: Option<MmapRaw>,
    entry_len: usize,
    capacity: usize,
    /// Entries readers may see.
    published: AtomicUsize,
    /// Entries the writer has written (>= published). Only the writer touches it.
    written: AtomicUsize,
}

impl EntryFile {
    /// Creates (or truncates) `path`, preallocated for `capacity` entries, writable.
    pub fn create(path: &Path, entry_len: usize, capacity: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .and_then(|f| faults::check("index.create", path).map(|()| f))
            .map_err(|e| Error::io("create index", path, e))?;
        Self::map_writable(path, file, entry_len, capacity, 0)
    }

    /// Opens an existing file writable (the active segment's), keeping its first `valid`
    /// entries and zeroing the rest, grown to `capacity` entries if smaller.
    pub fn open_writable(path: &Path, entry_len: usize, capacity: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open index", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("stat index", path, e))?.len() as usize;
        let capacity = capacity.max(len / entry_len);
        let me = Self::map_writable(path, file, entry_len, capacity, 0)?;
        let count = me.count_nonzero_prefix();
        me.published.store(count, Ordering::Release);
        me.written.store(count, Ordering::Relaxed);
        Ok(me)
    }

    fn map_writable(path: &Path, file: File, entry_len: usize, capacity: usize, valid: usize) -> Result<Self> {
        let bytes = (capacity * entry_len) as u64;
        if file.metadata().map_err(|e| Error::io("stat index", path, e))?.len() < bytes {
            faults::check("index.preallocate", path)
                .and_then(|()| crate::fsutil::preallocate(&file, bytes))
                .map_err(|e| Error::io("preallocate index", path, e))?;
        }
        let map = if capacity == 0 {
            None
        } else {
            Some(
                MmapOptions::new()
                    .len(capacity * entry_len)
                    .map_raw(&file)
                    .map_err(|e| Error::io("map index", path, e))?,
            )
        };
        Ok(EntryFile {
            path: path.to_path_buf(),
            map,
            entry_len,
            capacity,
            published: AtomicUsize::new(valid),
            written: AtomicUsize::new(valid),
        })
    }

    /// Opens a sealed segment's file read-only. Its entries are the non-zero prefix.
    pub fn open_sealed(path: &Path, entry_len: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open index", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("stat index", path, e))?.len() as usize;
        let capacity = len / entry_len;
        let map = if capacity == 0 {
            None
        } else {
            Some(
                MmapOptions::new()
                    .len(capacity * entry_len)
                    .map_raw_read_only(&file)
                    .map_err(|e| Error::io("map index", path, e))?,
            )
        };
        let me = EntryFile {
            path: path.to_path_buf(),
            map,
            entry_len,
            capacity,
            published: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
        };
        let count = me.count_nonzero_prefix();
        me.published.store(count, Ordering::Release);
        me.written.store(count, Ordering::Relaxed);
        Ok(me)
    }

    /// Entries visible to readers.
    pub fn len(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// Whether the writer can add another entry.
    pub fn has_room(&self) -> bool {
        self.written.load(Ordering::Relaxed) < self.capacity
    }

    fn raw_entry(&self, i: usize, out: &mut [u8]) {
        debug_assert!(i < self.capacity && out.len() == self.entry_len);
        let Some(map) = &self.map else { return };
        // SAFETY: `i < capacity`, so the range lies inside the mapping, which is backed by
        // the file for its whole length (the file is at least `capacity * entry_len` long
        // until it is sealed, and sealing trims only entries at or past `written`, which
        // readers never ask for). Callers only read entries below `published` (written and
        // released by the writer before the release store) or, at open, entries no writer
        // is touching; the writer never rewrites a published entry.
        unsafe {
            std::ptr::copy_nonoverlapping(map.as_ptr().add(i * self.entry_len), out.as_mut_ptr(), self.entry_len);
        }
    }

    fn is_zero(&self, i: usize) -> bool {
        let mut buf = [0u8; 16];
        self.raw_entry(i, &mut buf[..self.entry_len]);
        buf.iter().all(|&b| b == 0)
    }

    /// Number of leading non-zero entries (entries are a non-zero prefix then zeros).
    fn count_nonzero_prefix(&self) -> usize {
        let (mut lo, mut hi) = (0usize, self.capacity);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.is_zero(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// Writer: appends an entry after the written ones. Returns false if the file is full.
    pub fn push(&self, entry: &[u8]) -> bool {
        debug_assert_eq!(entry.len(), self.entry_len);
        debug_assert!(entry.iter().any(|&b| b != 0), "an all-zero entry is never valid");
        let i = self.written.load(Ordering::Relaxed);
        let Some(map) = &self.map else { return false };
        if i >= self.capacity || map.as_ptr().is_null() {
            return false;
        }
        // SAFETY: `i < capacity`, inside the writable mapping (this file was mapped with
        // `map_raw` on a read-write handle). Entry `i` is at or past `published`, so no
        // reader reads it until the writer publishes it; only one writer exists per file
        // (the partition's writer mutex is held by the caller).
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), map.as_mut_ptr().add(i * self.entry_len), self.entry_len);
        }
        self.written.store(i + 1, Ordering::Relaxed);
        true
    }

    /// Writer: makes every written entry visible to readers.
    pub fn publish(&self) {
        self.published.store(self.written.load(Ordering::Relaxed), Ordering::Release);
    }

    /// Writer: forgets (and zeroes) entries written but not published.
    pub fn rollback(&self) {
        let published = self.published.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Relaxed);
        if let Some(map) = &self.map {
            for i in published..written {
                // SAFETY: as in `push`: unpublished entries inside the writable mapping,
                // touched by no reader, written only by the caller holding the writer lock.
                unsafe { std::ptr::write_bytes(map.as_mut_ptr().add(i * self.entry_len), 0, self.entry_len) };
            }
        }
        self.written.store(published, Ordering::Relaxed);
    }

    /// Writes dirty pages back to the file (msync).
    pub fn flush(&self) -> Result<()> {
        match &self.map {
            Some(map) => faults::check("index.msync", &self.path)
                .and_then(|()| map.flush())
                .map_err(|e| Error::io("msync index", &self.path, e)),
            None => Ok(()),
        }
    }

    /// Flushes, then trims the file to its published entries and fsyncs it. The mapping
    /// stays valid for the published entries.
    pub fn seal(&self) -> Result<()> {
        self.flush()?;
        let bytes = (self.len() * self.entry_len) as u64;
        let file =
            OpenOptions::new().write(true).open(&self.path).map_err(|e| Error::io("open index", &self.path, e))?;
        faults::set_len("index.trim", &file, &self.path, bytes).map_err(|e| Error::io("trim index", &self.path, e))?;
        faults::check("index.fsync", &self.path)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("fsync index", &self.path, e))
    }
}

/// A segment's sparse offset index: (offset - segment base, file position) pairs.
#[derive(Debug)]
pub(crate) struct OffsetIndex(pub EntryFile);

impl OffsetIndex {
    pub fn entry(&self, i: usize) -> (u32, u32) {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        self.0.raw_entry(i, &mut b);
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]), u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
    }

    /// The last entry (relative offset, position) whose relative offset is <= `relative`;
    /// `None` if there is none (start at the segment's first batch).
    pub fn lookup(&self, relative: u64) -> Option<(u32, u64)> {
        match self.partition_point(|rel, _| u64::from(rel) <= relative) {
            0 => None,
            n => {
                let (rel, pos) = self.entry(n - 1);
                Some((rel, u64::from(pos)))
            }
        }
    }

    /// The index of the first entry at or after `from` for which `pred(relative offset,
    /// position)` is false, by binary search (`pred` must hold on a prefix of the entries).
    pub fn partition_point_from(&self, from: usize, mut pred: impl FnMut(u32, u32) -> bool) -> usize {
        let (mut lo, mut hi) = (from.min(self.0.len()), self.0.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (rel, pos) = self.entry(mid);
            if pred(rel, pos) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn partition_point(&self, pred: impl FnMut(u32, u32) -> bool) -> usize {
        self.partition_point_from(0, pred)
    }

    /// Position of the last entry (the start of a batch), or 0.
    pub fn last_position(&self) -> u64 {
        match self.0.len() {
            0 => 0,
            n => u64::from(self.entry(n - 1).1),
        }
    }

    pub fn push(&self, relative: u32, position: u32) -> bool {
        debug_assert!(position > 0);
        let mut b = [0u8; INDEX_ENTRY_LEN];
        b[..4].copy_from_slice(&relative.to_le_bytes());
        b[4..].copy_from_slice(&position.to_le_bytes());
        self.0.push(&b)
    }
}

/// A segment's time index: (timestamp, offset - segment base) pairs.
#[derive(Debug)]
pub(crate) struct TimeIndex(pub EntryFile);

impl TimeIndex {
    pub fn entry(&self, i: usize) -> (i64, u32) {
        let mut b = [0u8; TIMEINDEX_ENTRY_LEN];
        self.0.raw_entry(i, &mut b);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        (i64::from_le_bytes(ts), u32::from_le_bytes([b[8], b[9], b[10], b[11]]))
    }

    /// Relative offset of the last entry with timestamp < `ts` (every message before it is
    /// older than `ts`), or 0.
    pub fn lookup(&self, ts: i64) -> u64 {
        let n = self.0.len();
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 < ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            0
        } else {
            u64::from(self.entry(lo - 1).1)
        }
    }

    /// Timestamp of the last entry, if any.
    pub fn last_timestamp(&self) -> Option<i64> {
        match self.0.len() {
            0 => None,
            n => Some(self.entry(n - 1).0),
        }
    }

    pub fn push(&self, ts: i64, relative: u32) -> bool {
        let mut b = [0u8; TIMEINDEX_ENTRY_LEN];
        b[..8].copy_from_slice(&ts.to_le_bytes());
        b[8..].copy_from_slice(&relative.to_le_bytes());
        self.0.push(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_publish_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let idx = OffsetIndex(EntryFile::create(&p, INDEX_ENTRY_LEN, 100).unwrap());
        assert!(idx.push(10, 4096));
        assert!(idx.push(20, 8200));
        assert_eq!(idx.lookup(15), None, "unpublished entries are invisible");
        idx.0.publish();
        assert_eq!(idx.lookup(5), None);
        assert_eq!(idx.lookup(10), Some((10, 4096)));
        assert_eq!(idx.lookup(19), Some((10, 4096)));
        assert_eq!(idx.lookup(1000), Some((20, 8200)));
        assert!(idx.push(30, 12000));
        idx.0.rollback();
        idx.0.flush().unwrap();
        let again = OffsetIndex(EntryFile::open_writable(&p, INDEX_ENTRY_LEN, 100).unwrap());
        assert_eq!(again.0.len(), 2, "rolled-back entry was zeroed");
        again.0.seal().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 16);
        let sealed = OffsetIndex(EntryFile::open_sealed(&p, INDEX_ENTRY_LEN).unwrap());
        assert_eq!(sealed.last_position(), 8200);
    }

    #[test]
    fn time_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let t = TimeIndex(EntryFile::create(&dir.path().join("0.timeindex"), TIMEINDEX_ENTRY_LEN, 10).unwrap());
        t.push(1000, 5);
        t.push(2000, 9);
        t.0.publish();
        assert_eq!(t.lookup(500), 0);
        assert_eq!(t.lookup(1000), 0);
        assert_eq!(t.lookup(1001), 5);
        assert_eq!(t.lookup(5000), 9);
        assert_eq!(t.last_timestamp(), Some(2000));
    }

    #[test]
    fn full_file_refuses_entries() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex(EntryFile::create(&dir.path().join("0.index"), INDEX_ENTRY_LEN, 1).unwrap());
        assert!(idx.push(1, 1));
        assert!(!idx.0.has_room());
        assert!(!idx.push(2, 2));
    }
}
