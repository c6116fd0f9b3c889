//! Admin calls on [`Client`]: topics (create, describe, list, delete) and groups (config,
//! describe, list, delete, offsets, commit, reset).
//!
//! Descriptions are typed where the contract fixes the shape and keep the rest as JSON
//! (`config`), so a server that adds fields does not break older clients.
//!
//! ```no_run
//! use cairn_consumer::{Client, NewTopic, ResetTo};
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let client = Client::new("http://127.0.0.1:7420")?;
//! client.create_topic(&NewTopic::new("orders")).await?;
//! println!("{} partitions", client.describe_topic("orders").await?.partitions.len());
//! client.reset_group("billing", "orders", ResetTo::Earliest, None).await?;
//! # Ok(()) }
//! ```

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::Result;

/// A topic to create (`POST /v1/topics`). Unset fields take the server's defaults.
///
/// ```
/// let t = cairn_consumer::NewTopic::new("orders").partitions(3).segment_bytes(4096);
/// assert_eq!(t.partitions, Some(3));
/// ```
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NewTopic {
    /// Topic name: 1–249 of `[A-Za-z0-9._-]`.
    pub name: String,
    /// Partition count (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Segment size in bytes (at least 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_bytes: Option<u64>,
    /// Retention by age, ms (`Some(None)`: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<Option<u64>>,
    /// Retention by size, bytes (`Some(None)`: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<Option<u64>>,
    /// `delete` or `compact`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup_policy: Option<String>,
    /// `none` or `zstd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// `"always"` or `{"interval_ms": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<Value>,
    /// Largest message (key + value + headers), bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
}

impl NewTopic {
    /// A topic called `name` with the server's defaults.
    ///
    /// ```
    /// assert_eq!(cairn_consumer::NewTopic::new("t").name, "t");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        NewTopic { name: name.into(), ..Self::default() }
    }

    /// Sets the partition count.
    ///
    /// ```
    /// let t = cairn_consumer::NewTopic::new("t").partitions(4);
    /// ```
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = Some(n);
        self
    }

    /// Sets the segment size in bytes.
    ///
    /// ```
    /// let t = cairn_consumer::NewTopic::new("t").segment_bytes(1 << 20);
    /// ```
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = Some(n);
        self
    }

    /// Sets the compression of stored batches (`none` or `zstd`).
    ///
    /// ```
    /// let t = cairn_consumer::NewTopic::new("t").compression("zstd");
    /// ```
    pub fn compression(mut self, c: impl Into<String>) -> Self {
        self.compression = Some(c.into());
        self
    }
}

/// One partition of a topic description.
///
/// ```
/// let p: cairn_consumer::PartitionInfo = serde_json::from_str(
///     r#"{"partition":0,"start_offset":0,"end_offset":5,"size_bytes":100,"segments":1}"#).unwrap();
/// assert_eq!(p.end_offset, 5);
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First stored offset.
    pub start_offset: u64,
    /// Next offset to be written (the high watermark).
    pub end_offset: u64,
    /// Bytes of record batches.
    #[serde(default)]
    pub size_bytes: u64,
    /// Number of segments.
    #[serde(default)]
    pub segments: u64,
}

/// `GET /v1/topics/{topic}`.
///
/// ```
/// let t: cairn_consumer::TopicDescription = serde_json::from_str(
///     r#"{"name":"t","config":{"partitions":1},"partitions":[]}"#).unwrap();
/// assert_eq!(t.name, "t");
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// The topic's configuration, as the server shows it.
    #[serde(default)]
    pub config: Value,
    /// Per-partition positions and sizes.
    pub partitions: Vec<PartitionInfo>,
}

/// A group's configuration (`PUT /v1/groups/{group}`); `Default` is the server's default.
///
/// ```
/// let c = cairn_consumer::GroupConfig { ack_timeout_ms: 5_000, ..Default::default() };
/// assert_eq!(c.start, "earliest");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupConfig {
    /// Where a new group starts in a topic: `earliest` or `latest`.
    pub start: String,
    /// Lease length, ms.
    pub ack_timeout_ms: u64,
    /// Deliveries before dead-lettering (0: unlimited).
    pub max_deliveries: u32,
    /// Dead-letter topic (`None`: `<topic>.dlq`).
    pub dead_letter_topic: Option<String>,
    /// One consumer per partition at a time, in offset order.
    pub ordered: bool,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            start: "earliest".into(),
            ack_timeout_ms: 30_000,
            max_deliveries: 5,
            dead_letter_topic: None,
            ordered: false,
        }
    }
}

/// A group's state in one partition (`GET /v1/groups/{group}`).
///
/// ```
/// let p: cairn_consumer::GroupPartition = serde_json::from_str(
///     r#"{"topic":"t","partition":0,"committed":3,"end_offset":5,"lag":2,"in_flight":1,"dead_lettered":0}"#).unwrap();
/// assert_eq!(p.lag, 2);
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupPartition {
    /// Topic.
    #[serde(default)]
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Every offset below this one is done.
    pub committed: u64,
    /// The partition's high watermark.
    pub end_offset: u64,
    /// `end_offset - committed`.
    pub lag: u64,
    /// Messages leased right now.
    #[serde(default)]
    pub in_flight: u64,
    /// Messages dead-lettered so far.
    #[serde(default)]
    pub dead_lettered: u64,
}

/// `GET /v1/groups/{group}`.
///
/// ```
/// let g: cairn_consumer::GroupDescription = serde_json::from_str(
///     r#"{"name":"g","config":{},"partitions":[]}"#).unwrap();
/// assert_eq!(g.name, "g");
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group name.
    pub name: String,
    /// Its configuration.
    #[serde(default)]
    pub config: GroupConfig,
    /// Its state per topic and partition.
    #[serde(default)]
    pub partitions: Vec<GroupPartition>,
}

/// One entry of `GET /v1/groups`.
///
/// ```
/// let g: cairn_consumer::GroupSummary = serde_json::from_str(r#"{"name":"g"}"#).unwrap();
/// assert_eq!(g.name, "g");
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupSummary {
    /// Group name.
    pub name: String,
    /// Its configuration.
    #[serde(default)]
    pub config: GroupConfig,
    /// Topics it has a position in.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// A group's committed position in one partition (`GET .../offsets`, `reset`).
///
/// ```
/// let o: cairn_consumer::GroupOffset = serde_json::from_str(
///     r#"{"topic":"t","partition":0,"offset":42,"end_offset":50,"lag":8}"#).unwrap();
/// assert_eq!(o.offset, 42);
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to process.
    pub offset: u64,
    /// The partition's high watermark.
    pub end_offset: u64,
    /// `end_offset - offset`.
    pub lag: u64,
}

/// Where `reset` moves a group.
///
/// ```
/// use cairn_consumer::ResetTo;
/// assert_eq!(ResetTo::Offset(5).to_json(), serde_json::json!({"offset": 5}));
/// assert_eq!(ResetTo::Earliest.to_json(), serde_json::json!("earliest"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The partition's start.
    Earliest,
    /// The partition's end (skip everything stored).
    Latest,
    /// This offset.
    Offset(u64),
    /// The first message at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl ResetTo {
    /// The contract's JSON for `to`.
    ///
    /// ```
    /// assert_eq!(cairn_consumer::ResetTo::Latest.to_json(), "latest");
    /// ```
    pub fn to_json(&self) -> Value {
        match *self {
            ResetTo::Earliest => json!("earliest"),
            ResetTo::Latest => json!("latest"),
            ResetTo::Offset(o) => json!({ "offset": o }),
            ResetTo::Timestamp(t) => json!({ "timestamp": t }),
        }
    }
}

#[derive(Deserialize)]
struct TopicList {
    topics: Vec<TopicDescription>,
}

#[derive(Deserialize)]
struct GroupList {
    groups: Vec<GroupSummary>,
}

#[derive(Deserialize)]
struct OffsetList {
    offsets: Vec<GroupOffset>,
}

impl Client {
    /// `POST /v1/topics`: creates a topic (`409 topic_exists` if it exists).
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// let t = client.create_topic(&cairn_consumer::NewTopic::new("orders").partitions(3)).await?;
    /// assert_eq!(t.partitions.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<TopicDescription> {
        self.json(self.request(Method::POST, "/v1/topics").json(topic)).await
    }

    /// `GET /v1/topics/{topic}`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// let t = client.describe_topic("orders").await?;
    /// println!("end of partition 0: {}", t.partitions[0].end_offset);
    /// # Ok(()) }
    /// ```
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        self.json(self.request(Method::GET, &format!("/v1/topics/{topic}"))).await
    }

    /// `GET /v1/topics`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// for t in client.list_topics().await? { println!("{}", t.name); }
    /// # Ok(()) }
    /// ```
    pub async fn list_topics(&self) -> Result<Vec<TopicDescription>> {
        let list: TopicList = self.json(self.request(Method::GET, "/v1/topics")).await?;
        Ok(list.topics)
    }

    /// `DELETE /v1/topics/{topic}`: removes the topic and its data.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// client.delete_topic("orders").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/v1/topics/{topic}"))).await
    }

    /// `PUT /v1/groups/{group}`: sets a group's configuration.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// let cfg = cairn_consumer::GroupConfig { max_deliveries: 3, ..Default::default() };
    /// client.configure_group("thumbnails", &cfg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn configure_group(&self, group: &str, config: &GroupConfig) -> Result<GroupConfig> {
        self.json(self.request(Method::PUT, &format!("/v1/groups/{group}")).json(config)).await
    }

    /// `GET /v1/groups/{group}` (`404 group_not_found` for a group never used).
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// let g = client.describe_group("billing").await?;
    /// for p in g.partitions { println!("{} {} lag {}", p.topic, p.partition, p.lag); }
    /// # Ok(()) }
    /// ```
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.json(self.request(Method::GET, &format!("/v1/groups/{group}"))).await
    }

    /// `GET /v1/groups`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// let names: Vec<String> = client.list_groups().await?.into_iter().map(|g| g.name).collect();
    /// # Ok(()) }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let list: GroupList = self.json(self.request(Method::GET, "/v1/groups")).await?;
        Ok(list.groups)
    }

    /// `DELETE /v1/groups/{group}`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// client.delete_group("billing").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/v1/groups/{group}"))).await
    }

    /// `GET /v1/groups/{group}/offsets?topic=T`: the group's committed offsets in `topic`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// for o in client.group_offsets("billing", "orders").await? { println!("{} {}", o.partition, o.offset); }
    /// # Ok(()) }
    /// ```
    pub async fn group_offsets(&self, group: &str, topic: &str) -> Result<Vec<GroupOffset>> {
        let rb = self.request(Method::GET, &format!("/v1/groups/{group}/offsets")).query(&[("topic", topic)]);
        let list: OffsetList = self.json(rb).await?;
        Ok(list.offsets)
    }

    /// `POST /v1/groups/{group}/offsets`: commits `(partition, next offset to process)`
    /// pairs; durable when this returns.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// client.commit_offsets("billing", "orders", &[(0, 42)]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn commit_offsets(&self, group: &str, topic: &str, offsets: &[(u32, u64)]) -> Result<()> {
        let offsets: Vec<Value> = offsets.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect();
        let body = json!({ "topic": topic, "offsets": offsets });
        let path = format!("/v1/groups/{group}/offsets");
        self.retry_policy().run(|| self.empty(self.request(Method::POST, &path).json(&body))).await
    }

    /// `POST /v1/groups/{group}/reset`: moves the group's position in `topic` (all
    /// partitions, or only `partitions`) and clears acks and leases above it.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// use cairn_consumer::ResetTo;
    /// client.reset_group("billing", "orders", ResetTo::Earliest, None).await?;
    /// client.reset_group("billing", "orders", ResetTo::Offset(100), Some(&[0])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_group(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
        partitions: Option<&[u32]>,
    ) -> Result<Vec<GroupOffset>> {
        let mut body = json!({ "topic": topic, "to": to.to_json() });
        if let Some(ps) = partitions {
            body["partitions"] = json!(ps);
        }
        let list: OffsetList =
            self.json(self.request(Method::POST, &format!("/v1/groups/{group}/reset")).json(&body)).await?;
        Ok(list.offsets)
    }
}
