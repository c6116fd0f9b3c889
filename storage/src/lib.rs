//! `cairn-storage`: Cairn's log engine.
//!
//! A [`Catalog`] opens a data directory of topics; each topic has partitions; each
//! partition is a [`PartitionLog`]: a directory of segments holding record batches
//! ([`batch`]), with a sparse offset index and a time index per segment. Appends are
//! group-committed (one write and one `fdatasync` for everything waiting) on a small pool
//! of writer threads; readers get zero-copy `Bytes` views of whole batches from memory
//! maps, never past the acknowledged end. After a crash only the data past the recovery
//! point is re-checked. The format is specified in `docs/FORMAT.md` and mirrored by
//! [`format`].
//!
//! This crate is synchronous: no async runtime, no HTTP. Async callers use
//! [`PartitionLog::append_async`] (a completion callback) and [`PartitionLog::add_listener`]
//! (a notification when the acknowledged end advances).

pub mod batch;
mod cache;
mod catalog;
pub mod compaction;
pub mod config;
mod context;
mod error;
pub mod faults;
pub mod format;
pub mod fsutil;
mod index;
pub mod inspect;
mod partition;
mod pool;
mod prezero;
mod quarantine;
mod recovery;
mod retention;
mod segment;
pub mod varint;
mod writer;

pub use batch::{BatchBuilder, BatchError, BatchHeader, Codec, DecodedBatch, Record, VerifiedBatch};
pub use cache::OPEN_SEGMENTS_MAX_DEFAULT;
pub use catalog::{validate_name, Catalog, CatalogOptions, Topic};
pub use compaction::{CompactionOptions, CompactionStats};
pub use config::{CleanupPolicy, Compression, SyncPolicy, TopicConfig};
pub use context::{system_clock, Clock};
pub use error::{Error, Result};
pub use fsutil::{write_atomic, DirLock};
pub use partition::{AppendCallback, Appended, EndListener, PartitionLog, ReadBatches, SegmentInfo};
pub use pool::WRITER_THREADS_DEFAULT;
pub use quarantine::quarantine_tail;
pub use retention::RetentionStats;
pub use segment::{parse_segment_name, segment_stem, StoredBatch};
