//! Errors of the consumer-group engine. The server maps them to HTTP codes in its single
//! error-mapping place, next to the storage errors.

/// Everything a group operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("group {0} not found")]
    GroupNotFound(String),
    #[error("topic {0} not found")]
    TopicNotFound(String),
    #[error("partition {partition} of topic {topic} not found")]
    PartitionNotFound { topic: String, partition: u32 },
    #[error("offset {requested} is out of range [{start}, {end}]")]
    OffsetOutOfRange { requested: u64, start: u64, end: u64 },
    #[error("{0}")]
    BadRequest(String),
    /// A name in a request body that breaks the name rules (`400 invalid_name`).
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Storage(#[from] cairn_storage::Error),
}
