//! Read-only walks of a data directory (`docs/FORMAT.md` §1), shared by the engine and the
//! offline tools: topics, partitions, the segments of a partition directory (without
//! removing anything), the recovery and cleaner points, `topic.json`, a damage-tolerant scan
//! of a segment's log ([`scan`]), and the index rule (which batches get offset- and
//! time-index entries) with the encoders that write sealed index files.
//!
//! The engine opens partitions with these walks and then acts on what they found (removing
//! leftovers, completing a compaction swap); `cairn verify`, `dump` and `--repair` report
//! or fix the same findings without the engine running. One rule, one implementation.

mod scan;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use scan::{scan_segment, zeros_to_end, Damage, Gap, LogFile, SegmentScan};

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::format::*;
use crate::fsutil;
use crate::segment::{parse_segment_name, segment_stem};

pub use crate::segment::index_capacity;

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
    pub fn config(&self) -> std::result::Result<TopicConfig, String> {
        read_topic_config(&self.config_path()).map_err(|e| match e {
            Error::Corruption { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

/// Reads a `topic.json`. An unreadable file is [`Error::Corruption`] (the engine refuses to
/// open the topic rather than guess its settings).
pub fn read_topic_config(path: &Path) -> Result<TopicConfig> {
    let raw = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&raw).map_err(|e| Error::Corruption {
        file: path.to_path_buf(),
        position: 0,
        reason: format!("unreadable topic config: {e}"),
    })
}

/// The files of one segment (index paths are set even when the files are missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFiles {
    pub base: u64,
    pub log: PathBuf,
    pub index: PathBuf,
    pub timeindex: PathBuf,
}

impl SegmentFiles {
    /// The files of the segment with base offset `base` in partition directory `dir`.
    pub fn new(dir: &Path, base: u64) -> Self {
        let stem = segment_stem(base);
        SegmentFiles {
            base,
            log: dir.join(format!("{stem}.{LOG_SUFFIX}")),
            index: dir.join(format!("{stem}.{INDEX_SUFFIX}")),
            timeindex: dir.join(format!("{stem}.{TIMEINDEX_SUFFIX}")),
        }
    }

    /// The three paths, log last (the order files are renamed in, so that a log is never
    /// present without its indexes having been handled first).
    pub fn paths(&self) -> [&Path; 3] {
        [&self.index, &self.timeindex, &self.log]
    }
}

/// A compaction swap that was committed (its manifest `<base>.swap` is durable) but may not
/// have finished: the engine completes it at open (`docs/FORMAT.md` §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSwap {
    pub manifest: PathBuf,
    /// Base offset of the segment the cleaned files become.
    pub base: u64,
    /// Base offsets of every segment the cleaned one replaces (including `base`).
    pub replaces: Vec<u64>,
}

impl PendingSwap {
    /// The files the segment `base` will have once the swap is completed: each one's
    /// `.swap` file while that is still present, else the file already renamed into place.
    pub fn files_after(&self) -> SegmentFiles {
        let dir = self.manifest.parent().unwrap_or(Path::new("."));
        let mut files = SegmentFiles::new(dir, self.base);
        for p in [&mut files.index, &mut files.timeindex, &mut files.log] {
            let staged = with_suffix(p, SWAP_SUFFIX);
            if staged.exists() {
                *p = staged;
            }
        }
        files
    }
}

/// A quarantine file (`docs/FORMAT.md` §6): the bytes recovery cut from the end of a
/// segment's log after a power loss, kept for an operator. Not part of the log: the engine
/// never reads, lists as a segment, or removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutFile {
    pub path: PathBuf,
    /// Base offset of the segment the bytes were cut from.
    pub base: u64,
    /// Byte position in that segment's log where the cut bytes started.
    pub position: u64,
}

/// Path of the `n`-th (from 1) quarantine file for the bytes cut from the log `log` at
/// byte `position`: `<log>.cut-<position>`, then `<log>.cut-<position>-<n>` for n > 1.
pub fn cut_file_path(log: &Path, position: u64, n: u32) -> PathBuf {
    let suffix = if n <= 1 { format!("{CUT_SUFFIX}-{position}") } else { format!("{CUT_SUFFIX}-{position}-{n}") };
    with_suffix(log, &suffix)
}

/// The cut position named by the part of a file name after the segment stem's dot
/// (`log.cut-<position>` or `log.cut-<position>-<n>`), if it is a quarantine file's.
pub fn parse_cut_suffix(suffix: &str) -> Option<u64> {
    let rest = suffix.strip_prefix(LOG_SUFFIX)?.strip_prefix('.')?.strip_prefix(CUT_SUFFIX)?.strip_prefix('-')?;
    let (position, n) = match rest.split_once('-') {
        Some((p, n)) => (p, Some(n)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(position) || n.is_some_and(|n| !digits(n)) {
        return None;
    }
    position.parse().ok()
}

/// A partition directory's segments, sorted by base offset, and what the engine does at open
/// with everything else: leftovers it removes (temp and compaction files that were never
/// committed, indexes without a log), committed swaps it completes, and quarantine files it
/// leaves alone.
#[derive(Debug, Default)]
pub struct PartitionListing {
    pub segments: Vec<SegmentFiles>,
    pub leftovers: Vec<PathBuf>,
    pub swaps: Vec<PendingSwap>,
    /// Quarantine files, sorted by path: kept until an operator deletes them.
    pub cut_files: Vec<CutFile>,
}

impl PartitionListing {
    /// The segments as the engine will see them once it has completed the pending swaps
    /// (it does that first at open): the segments a swap replaces are left out and its
    /// cleaned segment is in, with the files of [`PendingSwap::files_after`]. Sorted.
    pub fn segments_after_swaps(&self) -> Vec<SegmentFiles> {
        let mut out: Vec<SegmentFiles> = self
            .segments
            .iter()
            .filter(|s| !self.swaps.iter().any(|w| w.replaces.contains(&s.base)))
            .cloned()
            .collect();
        out.extend(self.swaps.iter().map(PendingSwap::files_after));
        out.sort_by_key(|s| s.base);
        out
    }
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

/// Lists a partition directory without changing it.
pub fn list_segments(dir: &Path) -> io::Result<PartitionListing> {
    let mut listing = PartitionListing::default();
    let mut others = Vec::new();
    let mut swap_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!(".{TMP_SUFFIX}")) || name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            listing.leftovers.push(entry.path());
            continue;
        }
        match parse_segment_name(&name) {
            Some((base, LOG_SUFFIX)) => listing.segments.push(SegmentFiles::new(dir, base)),
            Some((base, suffix)) if parse_cut_suffix(suffix).is_some() => {
                let position = parse_cut_suffix(suffix).unwrap_or_default();
                listing.cut_files.push(CutFile { path: entry.path(), base, position });
            }
            Some((base, SWAP_SUFFIX)) => match read_swap_manifest(&entry.path()) {
                Some(replaces) => listing.swaps.push(PendingSwap { manifest: entry.path(), base, replaces }),
                None => listing.leftovers.push(entry.path()),
            },
            Some((base, suffix)) if suffix.ends_with(&format!(".{SWAP_SUFFIX}")) => {
                swap_files.push((base, entry.path()))
            }
            Some((base, _)) => others.push((base, entry.path())),
            None => {}
        }
    }
    listing.segments.sort_by_key(|s| s.base);
    listing.swaps.sort_by_key(|s| s.base);
    for (base, path) in swap_files {
        if !listing.swaps.iter().any(|s| s.base == base) {
            listing.leftovers.push(path);
        }
    }
    for (base, path) in others {
        if listing.segments.binary_search_by_key(&base, |s| s.base).is_err() {
            listing.leftovers.push(path);
        }
    }
    listing.leftovers.sort();
    listing.cut_files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// `path` with `.<suffix>` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Path of the swap manifest of the segment with base `base` in `dir`.
pub fn swap_manifest_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{}.{SWAP_SUFFIX}", segment_stem(base)))
}

/// Encodes a swap manifest: `count: u32`, `count` base offsets (u64), CRC-32 of the rest.
pub fn encode_swap_manifest(replaces: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + replaces.len() * 8);
    out.extend_from_slice(&(replaces.len() as u32).to_le_bytes());
    for b in replaces {
        out.extend_from_slice(&b.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads a swap manifest; `None` if it is missing, torn or damaged (then it never counted).
pub fn read_swap_manifest(path: &Path) -> Option<Vec<u64>> {
    let bytes = fs::read(path).ok()?;
    let count = usize::try_from(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?)).ok()?;
    let body_len = 4usize.checked_add(count.checked_mul(8)?)?;
    if bytes.len() != body_len + 4 || count == 0 {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[body_len..].try_into().ok()?);
    if crc32fast::hash(&bytes[..body_len]) != crc {
        return None;
    }
    bytes[4..body_len].chunks_exact(8).map(|c| c.try_into().ok().map(u64::from_le_bytes)).collect()
}

/// Reads a checkpoint file holding an offset and its CRC (`recovery-point`,
/// `cleaner-point`): `Ok(None)` if missing, `Err` with a reason if damaged.
pub fn read_offset_checkpoint(path: &Path) -> std::result::Result<Option<u64>, String> {
    let bytes = match fs::read(path) {
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

/// Durably replaces a checkpoint file with `offset` and its CRC.
pub fn write_offset_checkpoint(path: &Path, offset: u64) -> Result<()> {
    let mut bytes = Vec::with_capacity(RECOVERY_POINT_LEN);
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&offset.to_le_bytes()).to_le_bytes());
    fsutil::write_atomic(path, &bytes)
}

/// A partition's recovery point: `Ok(None)` if missing, `Err` with a reason if damaged.
pub fn recovery_point(dir: &Path) -> std::result::Result<Option<u64>, String> {
    read_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE))
}

/// The index rule of `docs/FORMAT.md` §5: fed every batch of a segment in order, it yields
/// the offset-index and time-index entries the segment must have.
#[derive(Debug, Clone, Default)]
pub struct IndexRule {
    last_index_pos: u64,
    pub index: Vec<(u32, u32)>,
    pub time: Vec<(i64, u32)>,
}

impl IndexRule {
    /// Notes the batch at `pos` with offset `base_offset` and first timestamp `first_ts` of
    /// the segment based at `segment_base`.
    pub fn observe(&mut self, pos: u64, base_offset: u64, first_ts: i64, segment_base: u64) {
        if pos == 0 || pos - self.last_index_pos < INDEX_INTERVAL_BYTES {
            return;
        }
        let rel = (base_offset - segment_base) as u32;
        self.index.push((rel, pos as u32));
        self.last_index_pos = pos;
        if self.time.last().is_none_or(|&(t, _)| first_ts > t) {
            self.time.push((first_ts, rel));
        }
    }
}

/// The bytes of a sealed offset index holding `entries`.
pub fn encode_offset_index(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN);
    for &(rel, pos) in entries {
        out.extend_from_slice(&rel.to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
    }
    out
}

/// The bytes of a sealed time index holding `entries`.
pub fn encode_time_index(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIMEINDEX_ENTRY_LEN);
    for &(ts, rel) in entries {
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&rel.to_le_bytes());
    }
    out
}

/// Rebuilds a sealed segment's two index files from a scan of its log (each replaced
/// atomically: temp, fsync, rename, directory fsync). Damaged regions of the log get no
/// entries. Returns the scan.
pub fn rebuild_sealed_indexes(seg: &SegmentFiles) -> Result<SegmentScan> {
    let mut log = LogFile::open(&seg.log).map_err(|e| Error::io("open segment", &seg.log, e))?;
    let scan = scan_segment(&mut log, seg.base, false, |_, _, _| {}).map_err(|e| Error::io("read", &seg.log, e))?;
    fsutil::write_atomic(&seg.index, &encode_offset_index(&scan.index))?;
    fsutil::write_atomic(&seg.timeindex, &encode_time_index(&scan.time))?;
    Ok(scan)
}

/// The non-zero prefix of an index file's entries, plus the position of any non-zero entry
/// after it and the length of a trailing partial entry.
#[derive(Debug, Default)]
pub struct IndexFileEntries {
    pub entries: Vec<Vec<u8>>,
    /// Byte position of the first non-zero entry after the first all-zero one.
    pub stray_at: Option<u64>,
    /// Bytes after the last whole entry.
    pub partial: usize,
    pub file_len: u64,
}

/// Reads an index file of `entry_len`-byte entries. `Ok(None)` if it does not exist.
pub fn read_index_entries(path: &Path, entry_len: usize) -> io::Result<Option<IndexFileEntries>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out =
        IndexFileEntries { partial: bytes.len() % entry_len, file_len: bytes.len() as u64, ..Default::default() };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_manifest_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = swap_manifest_path(dir.path(), 5);
        fs::write(&p, encode_swap_manifest(&[5, 9, 12])).unwrap();
        assert_eq!(read_swap_manifest(&p), Some(vec![5, 9, 12]));
        let mut bytes = fs::read(&p).unwrap();
        bytes[6] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert_eq!(read_swap_manifest(&p), None);
        fs::write(&p, &bytes[..7]).unwrap();
        assert_eq!(read_swap_manifest(&p), None);
    }

    #[test]
    fn cut_file_names_round_trip_and_are_not_segments() {
        let log = Path::new("/d/00000000000000000042.log");
        assert_eq!(cut_file_path(log, 4096, 1), Path::new("/d/00000000000000000042.log.cut-4096"));
        assert_eq!(cut_file_path(log, 4096, 3), Path::new("/d/00000000000000000042.log.cut-4096-3"));
        assert_eq!(parse_cut_suffix("log.cut-4096"), Some(4096));
        assert_eq!(parse_cut_suffix("log.cut-4096-3"), Some(4096));
        for not_cut in
            ["log", "index", "log.cut-", "log.cut-x", "log.cut-1-", "index.cut-1", "log.cut-1.tmp", "log.cut-1-2-3"]
        {
            assert_eq!(parse_cut_suffix(not_cut), None, "{not_cut}");
        }
        assert_eq!(parse_segment_name("00000000000000000042.log.cut-4096").map(|(_, s)| s), Some("log.cut-4096"));
    }

    #[test]
    fn listing_sorts_out_swaps_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "00000000000000000000.log",
            "00000000000000000000.index",
            "00000000000000000007.log",
            "00000000000000000009.index",
            "00000000000000000000.log.cleaned",
            "00000000000000000007.log.swap",
            "00000000000000000000.log.swap",
            // Quarantine files, one of a segment no longer there: never leftovers.
            "00000000000000000009.log.cut-100",
            "00000000000000000000.log.cut-5-2",
            "00000000000000000000.log.cut-5.tmp",
        ] {
            fs::write(d.join(name), b"").unwrap();
        }
        fs::write(swap_manifest_path(d, 0), encode_swap_manifest(&[0, 7])).unwrap();
        let l = list_segments(d).unwrap();
        assert_eq!(l.segments.iter().map(|s| s.base).collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(l.swaps.len(), 1);
        assert_eq!(l.swaps[0].replaces, vec![0, 7]);
        let names: Vec<_> = l.leftovers.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            vec![
                "00000000000000000000.log.cleaned",
                "00000000000000000000.log.cut-5.tmp",
                "00000000000000000007.log.swap",
                "00000000000000000009.index"
            ]
        );
        let cuts: Vec<_> = l.cut_files.iter().map(|c| (c.base, c.position)).collect();
        assert_eq!(cuts, vec![(0, 5), (9, 100)]);
        assert_eq!(l.cut_files[1].path, cut_file_path(&d.join("00000000000000000009.log"), 100, 1));
        assert_eq!(l.cut_files[0].path, cut_file_path(&d.join("00000000000000000000.log"), 5, 2));
        // As the next open will see it: segment 7 is gone, segment 0 reads the staged log
        // and the index already in place.
        let after = l.segments_after_swaps();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].log, d.join("00000000000000000000.log.swap"));
        assert_eq!(after[0].index, d.join("00000000000000000000.index"));
        assert_eq!(after[0].timeindex, d.join("00000000000000000000.timeindex"));
    }
}
