//! The storage crate's error type: every failure the engine reports, typed.
//!
//! Corruption carries the file and byte position so tools and the server can name them.
//! I/O errors carry what was being done and to which path. `StorageFull` is split out of
//! I/O because callers treat it differently (HTTP 507, and the engine stays usable).

use std::io;
use std::path::PathBuf;

use crate::batch::BatchError;

/// Result alias for the storage crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the storage engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no space left on device while trying to {op} {}", path.display())]
    StorageFull { op: &'static str, path: PathBuf },
    #[error("corrupt data in {} at byte {position}: {reason}", file.display())]
    Corruption { file: PathBuf, position: u64, reason: String },
    #[error("offset {requested} is out of range [{start}, {end}]")]
    OffsetOutOfRange { requested: u64, start: u64, end: u64 },
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic {0} not found")]
    TopicNotFound(String),
    #[error("partition {partition} of topic {topic} not found")]
    PartitionNotFound { topic: String, partition: u32 },
    #[error("invalid name {0:?}: use 1-249 characters of [A-Za-z0-9._-], not . or ..")]
    InvalidName(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("data directory {} is in use by another process", path.display())]
    Locked { path: PathBuf },
    #[error("partition {0} failed a sync and refuses writes until it is reopened")]
    Poisoned(String),
    #[error("the log is closed")]
    Closed,
}

impl Error {
    /// Wraps an I/O error, turning ENOSPC (and EDQUOT) into [`Error::StorageFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => Error::StorageFull { op, path },
            _ => Error::Io { op, path, source },
        }
    }

    /// Whether this error means the disk is full (the caller may retry once space returns).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::StorageFull { .. })
    }

    /// A copy for handing the same failure to several waiters of one group commit.
    pub fn duplicate(&self) -> Self {
        match self {
            Error::Io { op, path, source } => {
                Error::Io { op, path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            Error::StorageFull { op, path } => Error::StorageFull { op, path: path.clone() },
            Error::Corruption { file, position, reason } => {
                Error::Corruption { file: file.clone(), position: *position, reason: reason.clone() }
            }
            Error::OffsetOutOfRange { requested, start, end } => {
                Error::OffsetOutOfRange { requested: *requested, start: *start, end: *end }
            }
            Error::TopicExists(t) => Error::TopicExists(t.clone()),
            Error::TopicNotFound(t) => Error::TopicNotFound(t.clone()),
            Error::PartitionNotFound { topic, partition } => {
                Error::PartitionNotFound { topic: topic.clone(), partition: *partition }
            }
            Error::InvalidName(n) => Error::InvalidName(n.clone()),
            Error::InvalidConfig(m) => Error::InvalidConfig(m.clone()),
            Error::InvalidBatch(b) => Error::InvalidBatch(b.clone()),
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::Poisoned(p) => Error::Poisoned(p.clone()),
            Error::Closed => Error::Closed,
        }
    }
}
