//! What group operations return: the shapes the API serialises.

use bytes::Bytes;
use serde::Serialize;

use super::config::GroupConfig;

/// A message leased by a fetch.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    /// 1 for the first delivery, +1 for each redelivery.
    pub delivery: u32,
}

/// A group's position in one partition (`GET .../offsets`, `reset`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OffsetView {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub end_offset: u64,
    /// `end_offset - offset`: messages not yet done, leased ones included.
    pub lag: u64,
    /// Of those, leased right now (so `lag - in_flight` are waiting to be delivered).
    pub in_flight: usize,
}

/// A group's state in one partition (`GET /v1/groups/{group}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: u32,
    pub committed: u64,
    pub end_offset: u64,
    pub lag: u64,
    pub in_flight: usize,
    pub dead_lettered: u64,
    pub redeliveries: u64,
}

/// One topic of a group description.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicView {
    pub topic: String,
    pub partitions: Vec<PartitionView>,
}

/// `GET /v1/groups/{group}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    pub config: GroupConfig,
    pub topics: Vec<TopicView>,
    /// The same partitions, flat.
    pub partitions: Vec<PartitionView>,
}

/// One entry of `GET /v1/groups`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub config: GroupConfig,
    pub topics: Vec<String>,
}
