//! A read-only walk of a data directory (`docs/FORMAT.md` §1): topics, partitions,
//! segments, and the batches of a segment's log, without the storage engine.
//!
//! The engine's own segment reader is private and memory-maps files (which needs `unsafe`
//! here), so this module reads with positioned reads through a read-ahead window and uses
//! only storage's public format items (`format::*`, `BatchHeader`, `batch::verify`,
//! `parse_segment_name`). A segment scan does what recovery does at open — every batch
//! parsed, CRC-checked and offset-checked — but instead of stopping at the first bad batch
//! it looks for the next valid one (trying every byte position, as recovery does to tell a
//! torn tail from corruption), so one scan finds every damaged region of a file.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cairn_storage::batch;
use cairn_storage::format::*;
use cairn_storage::{parse_segment_name, BatchHeader, TopicConfig};

/// Bytes read at once from a log file.
const READ_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// A topic directory under `<data>/topics/`.
#[derive(Debug, Clone)]
pub struct TopicDir {
    pub name: String,
    pub path: PathBuf,
}

impl TopicDir {
    /// Path of its `topic.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path.join(TOPIC_CONFIG_FILE)
    }

    /// Its configuration; `Err` with a reason if missing or unreadable.
    pub fn config(&self) -> Result<TopicConfig, String> {
        let bytes = fs::read(self.config_path()).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

/// The files of one segment (index paths are set even when the files are missing).
#[derive(Debug, Clone)]
pub struct SegmentFiles {
    pub base: u64,
    pub log: PathBuf,
    pub index: PathBuf,
    pub timeindex: PathBuf,
}

/// A partition directory's segments, sorted by base offset, and the files the engine would
/// remove at open (temp and compaction leftovers, indexes without a log).
#[derive(Debug, Default)]
pub struct PartitionListing {
    pub segments: Vec<SegmentFiles>,
    pub leftovers: Vec<PathBuf>,
}

/// Topic directories of a data directory, sorted by name; also directories the engine
/// removes at open (`.deleted-*`, or without `topic.json`) as leftovers.
pub fn topics(data_dir: &Path) -> io::Result<(Vec<TopicDir>, Vec<PathBuf>)> {
    let root = data_dir.join(TOPICS_DIR);
    let (mut topics, mut leftovers) = (Vec::new(), Vec::new());
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((topics, leftovers)),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(DELETED_PREFIX) || !path.join(TOPIC_CONFIG_FILE).exists() {
            leftovers.push(path);
        } else {
            topics.push(TopicDir { name, path });
        }
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    leftovers.sort();
    Ok((topics, leftovers))
}

/// Partition directories of a topic (named by their number), sorted.
pub fn partitions(topic: &TopicDir) -> io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(&topic.path)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() {
            out.push((p, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The segments of a partition directory.
pub fn segments(dir: &Path) -> io::Result<PartitionListing> {
    let mut listing = PartitionListing::default();
    let mut others = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!(".{TMP_SUFFIX}")) || name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            listing.leftovers.push(entry.path());
            continue;
        }
        match parse_segment_name(&name) {
            Some((base, LOG_SUFFIX)) => listing.segments.push(SegmentFiles {
                base,
                log: entry.path(),
                index: dir.join(format!("{}.{INDEX_SUFFIX}", cairn_storage::segment_stem(base))),
                timeindex: dir.join(format!("{}.{TIMEINDEX_SUFFIX}", cairn_storage::segment_stem(base))),
            }),
            Some((base, _)) => others.push((base, entry.path())),
            None => {}
        }
    }
    listing.segments.sort_by_key(|s| s.base);
    for (base, path) in others {
        if listing.segments.binary_search_by_key(&base, |s| s.base).is_err() {
            listing.leftovers.push(path);
        }
    }
    listing.leftovers.sort();
    Ok(listing)
}

/// A log file read through a read-ahead window with positioned reads.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl LogFile {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(LogFile { file, len, buf: Vec::new(), buf_start: 0 })
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The bytes `[pos, pos + n)`, which must lie within the file.
    pub fn slice(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let end = pos.checked_add(n as u64).filter(|&e| e <= self.len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, format!("read of {n} bytes at {pos} past the end"))
        })?;
        let buffered = pos >= self.buf_start && end <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let want = n.max(READ_WINDOW_BYTES).min(usize::try_from(self.len - pos).unwrap_or(usize::MAX));
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let off = (pos - self.buf_start) as usize;
        Ok(&self.buf[off..off + n])
    }

    /// Checks the batch at `pos`: header, whole batch present, CRC, and offset at least
    /// `min_offset`. `Ok(Err(reason))` if it is not a good batch.
    pub fn batch_at(&mut self, pos: u64, min_offset: u64) -> io::Result<Result<BatchHeader, String>> {
        let remaining = self.len - pos;
        if remaining < BATCH_HEADER_LEN as u64 {
            return Ok(Err(format!("{remaining} trailing bytes, shorter than a batch header")));
        }
        let header = match BatchHeader::parse(self.slice(pos, BATCH_HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let total = header.total_len();
        if total as u64 > remaining {
            return Ok(Err(format!("batch of {total} bytes runs past the end of the file ({remaining} left)")));
        }
        let header = match batch::verify(self.slice(pos, total)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if header.base_offset < min_offset {
            return Ok(Err(format!("batch offset {} is below the expected {min_offset}", header.base_offset)));
        }
        Ok(Ok(header))
    }

    /// The first position after `pos` where a good batch with offset at least `min_offset`
    /// starts, trying every byte (a damaged length field cannot be trusted to skip by).
    pub fn resync(&mut self, pos: u64, min_offset: u64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut at = pos + 1;
        while at + BATCH_HEADER_LEN as u64 <= self.len {
            if self.slice(at + MAGIC_POS as u64, 1)?[0] == BATCH_MAGIC {
                if let Ok(h) = self.batch_at(at, min_offset)? {
                    return Ok(Some((at, h)));
                }
            }
            at += 1;
        }
        Ok(None)
    }
}

/// A damaged byte range of a log: no good batch starts in `[start, end)`.
#[derive(Debug, Clone)]
pub struct Damage {
    pub start: u64,
    /// Where the next good batch starts, or the file's length.
    pub end: u64,
    pub reason: String,
    /// The offset expected at `start`: the first offset lost.
    pub lost_from: u64,
    /// Base offset of the good batch at `end`, if one follows in this file.
    pub resumes_at: Option<u64>,
}

/// Offsets skipped between batches (expected `expected`, found `found` at `position`).
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    pub position: u64,
    pub expected: u64,
    pub found: u64,
}

/// What a scan of one segment's log found.
#[derive(Debug, Clone, Default)]
pub struct SegmentScan {
    pub len: u64,
    pub batches: u64,
    pub records: u64,
    pub first_offset: Option<u64>,
    /// The offset after the last good batch (the segment's base if none).
    pub next_offset: u64,
    pub first_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub damage: Vec<Damage>,
    pub gaps: Vec<Gap>,
    /// The offset-index entries the engine would write for this file: (relative, position).
    pub index: Vec<(u32, u32)>,
    /// The time-index entries the engine would write: (timestamp, relative).
    pub time: Vec<(i64, u32)>,
}

/// Reads every batch of a segment's log, calling `visit(position, batch bytes, header)` for
/// each good one, and records damaged regions, offset gaps and the indexes it should have.
pub fn scan_segment(
    log: &mut LogFile,
    base: u64,
    mut visit: impl FnMut(u64, &[u8], &BatchHeader),
) -> io::Result<SegmentScan> {
    let len = log.len();
    let mut scan = SegmentScan { len, next_offset: base, ..SegmentScan::default() };
    let (mut pos, mut expected, mut last_index_pos) = (0u64, base, 0u64);
    while pos < len {
        match log.batch_at(pos, expected)? {
            Ok(h) => {
                if h.base_offset > expected {
                    scan.gaps.push(Gap { position: pos, expected, found: h.base_offset });
                }
                if pos > 0 && pos - last_index_pos >= INDEX_INTERVAL_BYTES {
                    let rel = (h.base_offset - base) as u32;
                    scan.index.push((rel, pos as u32));
                    last_index_pos = pos;
                    if scan.time.last().is_none_or(|&(t, _)| h.first_timestamp > t) {
                        scan.time.push((h.first_timestamp, rel));
                    }
                }
                visit(pos, log.slice(pos, h.total_len())?, &h);
                scan.batches += 1;
                scan.records += u64::from(h.record_count);
                scan.first_offset.get_or_insert(h.base_offset);
                scan.first_timestamp.get_or_insert(h.first_timestamp);
                scan.max_timestamp = Some(scan.max_timestamp.map_or(h.max_timestamp, |m| m.max(h.max_timestamp)));
                expected = h.next_offset();
                scan.next_offset = expected;
                pos += h.total_len() as u64;
            }
            Err(reason) => {
                let next = log.resync(pos, expected)?;
                let damage = Damage {
                    start: pos,
                    end: next.map_or(len, |(at, _)| at),
                    reason,
                    lost_from: expected,
                    resumes_at: next.map(|(_, h)| h.base_offset),
                };
                if let Some((_, h)) = next {
                    expected = h.base_offset;
                }
                pos = damage.end;
                scan.damage.push(damage);
            }
        }
    }
    Ok(scan)
}

/// The non-zero prefix of an index file's entries, plus the position of any non-zero entry
/// after it and the length of a trailing partial entry. `None` if the file is missing.
#[derive(Debug, Default)]
pub struct EntryFile {
    pub entries: Vec<Vec<u8>>,
    /// Byte position of the first non-zero entry after the first all-zero one.
    pub stray_at: Option<u64>,
    /// Bytes after the last whole entry.
    pub partial: usize,
    pub file_len: u64,
}

/// Reads an index file of `entry_len`-byte entries. `Ok(None)` if it does not exist.
pub fn read_entries(path: &Path, entry_len: usize) -> io::Result<Option<EntryFile>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = EntryFile { partial: bytes.len() % entry_len, file_len: bytes.len() as u64, ..EntryFile::default() };
    let mut ended = false;
    for (i, chunk) in bytes.chunks_exact(entry_len).enumerate() {
        let zero = chunk.iter().all(|&b| b == 0);
        if ended {
            if !zero {
                out.stray_at = Some((i * entry_len) as u64);
                break;
            }
        } else if zero {
            ended = true;
        } else {
            out.entries.push(chunk.to_vec());
        }
    }
    Ok(Some(out))
}

/// Decodes an offset-index entry: (relative offset, position).
pub fn index_entry(e: &[u8]) -> (u32, u32) {
    (u32::from_le_bytes([e[0], e[1], e[2], e[3]]), u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
}

/// Decodes a time-index entry: (timestamp, relative offset).
pub fn time_entry(e: &[u8]) -> (i64, u32) {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&e[..8]);
    (i64::from_le_bytes(ts), u32::from_le_bytes([e[8], e[9], e[10], e[11]]))
}

/// Reads a partition's recovery point: `Ok(None)` if missing, `Err` with a reason if damaged.
pub fn recovery_point(dir: &Path) -> Result<Option<u64>, String> {
    let bytes = match fs::read(dir.join(RECOVERY_POINT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() != RECOVERY_POINT_LEN {
        return Err(format!("{} bytes, expected {RECOVERY_POINT_LEN}", bytes.len()));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&bytes[..8]);
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32fast::hash(&off) != crc {
        return Err("CRC mismatch".into());
    }
    Ok(Some(u64::from_le_bytes(off)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::BatchBuilder;

    fn batch(base: u64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(Some(b"k"), Some(format!("value {i}").as_bytes()), []);
        }
        b.finish(base, 1_764_000_000_000).unwrap()
    }

    #[test]
    fn scan_finds_damage_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for i in 0..5 {
            starts.push(bytes.len());
            bytes.extend(batch(i * 3, 3));
        }
        bytes[starts[2] + 50] ^= 0x10;
        bytes.extend_from_slice(&[0xAB; 10]);
        fs::write(&path, &bytes).unwrap();
        let mut log = LogFile::open(&path).unwrap();
        let scan = scan_segment(&mut log, 0, |_, _, _| {}).unwrap();
        assert_eq!(scan.batches, 4);
        assert_eq!(scan.damage.len(), 2);
        let d = &scan.damage[0];
        assert_eq!((d.start, d.end, d.lost_from, d.resumes_at), (starts[2] as u64, starts[3] as u64, 6, Some(9)));
        assert!(d.reason.contains("CRC"), "{}", d.reason);
        let tail = &scan.damage[1];
        assert_eq!((tail.end, tail.resumes_at), (bytes.len() as u64, None));
        assert_eq!(scan.next_offset, 15);
        assert!(scan.gaps.is_empty());
    }
}
