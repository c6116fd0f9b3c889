//! Consumer groups: durable named positions in topics, for Kafka-style cursors and
//! SQS/Celery-style leased work on the same log.
//!
//! - [`config`]: a group's settings and their bounds.
//! - [`cursor`]: one group's state in one partition and the rules that move it (pure).
//! - [`journal`]: the records in the internal `__groups` topic and the snapshot that
//!   bounds it.
//! - [`engine`]: all groups, durability, cursor-style operations.
//! - [`queue`]: fetch / ack / nack / extend / reject and dead letters.
//! - [`reaper`]: the thread that ends leases when they expire (and dead-letters).
//! - [`view`]: the shapes returned to the API.

pub mod config;
pub mod cursor;
mod engine;
mod error;
pub mod journal;
mod queue;
mod reaper;
pub mod view;

pub use config::GroupConfig;
pub use engine::{GroupEngine, ResetTo};
pub use error::GroupError;
pub use queue::{FetchParams, MessageRef};
pub use view::{Delivered, GroupSummary, GroupView, OffsetView, PartitionView};

#[cfg(test)]
mod tests;
