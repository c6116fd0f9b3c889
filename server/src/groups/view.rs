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

/// `GET /v1/groups/{group}`. Serialised with the config twice: under `config`, as topic
/// descriptions carry theirs, and its fields at the top level, as `PUT /v1/groups/{group}`
/// replies with them (so a client reads `ack_timeout_ms` the same way from both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    pub config: GroupConfig,
    pub topics: Vec<TopicView>,
    /// The same partitions, flat.
    pub partitions: Vec<PartitionView>,
}

/// One entry of `GET /v1/groups`, with the config twice as in [`GroupView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub config: GroupConfig,
    pub topics: Vec<String>,
}

/// The wire form of both: the name, the config's fields, the config, then the rest.
#[derive(Serialize)]
struct WithConfig<'a, T: Serialize> {
    name: &'a str,
    #[serde(flatten)]
    fields: &'a GroupConfig,
    config: &'a GroupConfig,
    #[serde(flatten)]
    rest: T,
}

impl Serialize for GroupView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Rest<'a> {
            topics: &'a [TopicView],
            partitions: &'a [PartitionView],
        }
        let rest = Rest { topics: &self.topics, partitions: &self.partitions };
        WithConfig { name: &self.name, fields: &self.config, config: &self.config, rest }.serialize(s)
    }
}

impl Serialize for GroupSummary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Rest<'a> {
            topics: &'a [String],
        }
        WithConfig { name: &self.name, fields: &self.config, config: &self.config, rest: Rest { topics: &self.topics } }
            .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_carry_the_config_nested_and_flat() {
        let view = GroupView { name: "g".into(), config: GroupConfig::default(), topics: vec![], partitions: vec![] };
        let v = serde_json::to_value(&view).unwrap();
        let config = serde_json::to_value(GroupConfig::default()).unwrap();
        assert_eq!(v["config"], config);
        for (k, value) in config.as_object().unwrap() {
            assert_eq!(&v[k], value, "{k}");
        }
        assert_eq!((v["name"].as_str(), v["topics"].as_array().map(Vec::len)), (Some("g"), Some(0)));
        assert_eq!(v["partitions"], serde_json::json!([]));
        let summary = GroupSummary { name: "g".into(), config: GroupConfig::default(), topics: vec!["t".into()] };
        let v = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            (v["config"].clone(), v["ack_timeout_ms"].clone()),
            (config.clone(), config["ack_timeout_ms"].clone())
        );
        assert_eq!(v["topics"], serde_json::json!(["t"]));
    }
}
