//! On-disk format constants: the single place in the code that mirrors `docs/FORMAT.md`.
//!
//! Every width, offset, suffix and version number the engine writes is named here, with its
//! unit. A golden-file test (`tests/format_fixture.rs`) reads a checked-in segment so that a
//! change to any of these values cannot go unnoticed.

/// Width of the zero-padded decimal base offset in segment file names.
pub const SEGMENT_NAME_WIDTH: usize = 20;
/// Suffix of a segment's record-batch file.
pub const LOG_SUFFIX: &str = "log";
/// Suffix of a segment's sparse offset index.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of a segment's time index.
pub const TIMEINDEX_SUFFIX: &str = "timeindex";
/// Suffix of files written aside during compaction, swapped in by rename.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of files being swapped in by compaction.
pub const SWAP_SUFFIX: &str = "swap";
/// Suffix of temporary files that are renamed over their target once synced.
pub const TMP_SUFFIX: &str = "tmp";
/// Quarantine files: `<segment>.log.cut-<position>` (or `…cut-<position>-<n>` when that name
/// is taken) holds the bytes recovery cut from that segment's log at byte `<position>` after
/// a power loss (damage followed by data in the active segment, §6). Not part of the log.
pub const CUT_SUFFIX: &str = "cut";

/// Name of the per-partition recovery-point checkpoint file.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Size of the recovery-point file: offset (u64 LE) + CRC-32 of those 8 bytes (u32 LE).
pub const RECOVERY_POINT_LEN: usize = 12;
/// Name of the per-partition cleaner-point checkpoint file (same layout as the recovery
/// point): sealed segments below this offset were written by compaction.
pub const CLEANER_POINT_FILE: &str = "cleaner-point";
/// Name of the clean-shutdown marker in the data directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Name of the lock file in the data directory (held with an exclusive `flock`).
pub const LOCK_FILE: &str = ".lock";
/// Directory under the data directory that holds one directory per topic.
pub const TOPICS_DIR: &str = "topics";
/// Name of a topic's configuration file inside its directory.
pub const TOPIC_CONFIG_FILE: &str = "topic.json";
/// Prefix of a topic directory being deleted (renamed first, then removed).
pub const DELETED_PREFIX: &str = ".deleted-";
/// Bytes of a topic's name kept in its `.deleted-` directory name (with the prefix, a pid and
/// a sequence number it stays under the 255-byte file name limit).
pub const DELETED_NAME_KEEP: usize = 200;

// ---- record batch header (all integers little-endian) -------------------------------------

/// Batch format version ("magic") written by this code.
pub const BATCH_MAGIC: u8 = 1;
/// Byte position of `base_offset: u64`.
pub const BASE_OFFSET_POS: usize = 0;
/// Byte position of `batch_length: u32` (bytes that follow this field).
pub const LENGTH_POS: usize = 8;
/// Byte position of `magic: u8`.
pub const MAGIC_POS: usize = 12;
/// Byte position of `crc: u32`.
pub const CRC_POS: usize = 13;
/// First byte after the CRC field. The CRC covers `[0, CRC_POS)` and `[CRC_START, end)`:
/// every byte of the batch except the CRC itself.
pub const CRC_START: usize = 17;
/// Byte position of `attributes: u16`.
pub const ATTRIBUTES_POS: usize = 17;
/// Byte position of `last_offset_delta: u32`.
pub const LAST_OFFSET_DELTA_POS: usize = 19;
/// Byte position of `first_timestamp: i64` (ms since the Unix epoch).
pub const FIRST_TIMESTAMP_POS: usize = 23;
/// Byte position of `max_timestamp: i64` (ms since the Unix epoch).
pub const MAX_TIMESTAMP_POS: usize = 31;
/// Byte position of `record_count: u32`.
pub const RECORD_COUNT_POS: usize = 39;
/// Size of the batch header; records start here.
pub const BATCH_HEADER_LEN: usize = 43;
/// Bytes before the `batch_length` value starts counting (base offset + length field).
pub const LENGTH_PREFIX_LEN: usize = 12;

/// Mask of the compression codec in `attributes`.
pub const ATTR_COMPRESSION_MASK: u16 = 0b111;
/// Codec value: records stored as is.
pub const CODEC_NONE: u16 = 0;
/// Codec value: the records section is one zstd frame.
pub const CODEC_ZSTD: u16 = 1;

/// Largest batch (header included) the engine accepts or reads, in bytes.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest number of records in a batch.
pub const BATCH_RECORDS_MAX: u32 = 1_000_000;
/// Largest decompressed records section of a zstd batch, in bytes.
pub const DECOMPRESSED_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Largest number of headers on one record.
pub const RECORD_HEADERS_MAX: u64 = 1024;

// ---- indexes --------------------------------------------------------------------------------

/// Size of an offset-index entry: relative offset (u32 LE) + file position (u32 LE).
pub const INDEX_ENTRY_LEN: usize = 8;
/// Size of a time-index entry: timestamp (i64 LE) + relative offset (u32 LE).
pub const TIMEINDEX_ENTRY_LEN: usize = 12;
/// An index entry is added once at least this many log bytes follow the previous one.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

// ---- topic limits ----------------------------------------------------------------------------

/// Smallest allowed `segment_bytes`.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest allowed `segment_bytes` (positions in the index are u32).
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Longest topic or group name, in characters.
pub const NAME_LEN_MAX: usize = 249;
/// Most partitions a topic may have.
pub const PARTITIONS_MAX: u32 = 4096;

// ---- zero-filled tail of the active segment ----------------------------------------------------

/// Most zero-filled space kept past the writer's end. The goal is the segment's data size
/// clamped to [`PREZERO_AHEAD_MIN_BYTES`, `PREZERO_AHEAD_BYTES`]; a fill (one `fdatasync`) is
/// asked for once less than half the goal is left, and tops the zeros up to the goal.
pub const PREZERO_AHEAD_BYTES: u64 = 2 * 1024 * 1024;
/// Least zero-filled space a fill aims for (so a quiet partition's zeros stay small).
pub const PREZERO_AHEAD_MIN_BYTES: u64 = 64 * 1024;
/// Zero-filling is done only for `sync: always` partitions whose recent average group commit
/// (bytes written per `fdatasync`) is below this; larger syncs are bandwidth-bound and would
/// only pay for writing twice.
pub const PREZERO_COMMIT_BYTES_MAX: u64 = 64 * 1024;
