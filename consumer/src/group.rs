//! [`GroupConsumer`]: queue-style (lease) consumption by a consumer group, like SQS or a
//! Celery worker.
//!
//! The low-level calls map one-to-one to the API: [`GroupConsumer::fetch`] leases messages,
//! [`ack`](GroupConsumer::ack), [`nack`](GroupConsumer::nack),
//! [`extend`](GroupConsumer::extend) and [`reject`](GroupConsumer::reject) settle them.
//! [`GroupConsumer::run`] (in `worker.rs`) is the loop most services want: fetch → handler
//! → ack, nack with backoff, or reject, with automatic lease extension, a concurrency
//! limit and graceful shutdown.
//!
//! Delivery is at-least-once: a handler may see a message again (after a crash, an
//! expired lease or a failed ack), so handlers should be idempotent. [`Delivery::delivery`]
//! says how many times the message has been handed out.
//!
//! ```no_run
//! use cairn_consumer::{Client, GroupConsumer};
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let c = GroupConsumer::new(Client::new("http://127.0.0.1:7420")?, "thumbnails", "uploads");
//! for d in c.fetch(10, std::time::Duration::from_secs(5)).await? {
//!     c.ack(&[d.id()]).await?;
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::{BoxError, Result};
use crate::message::{Message, WireMessage};
use crate::retry::RetryPolicy;

/// Names one message of a topic: partition and offset.
///
/// ```
/// let id = cairn_consumer::MessageId { partition: 0, offset: 41 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// A leased message.
///
/// ```no_run
/// # fn demo(d: cairn_consumer::Delivery) {
/// if d.delivery > 1 { println!("redelivery #{} of {:?}", d.delivery, d.id()); }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic the message is in.
    pub topic: String,
    /// The message.
    pub message: Message,
    /// 1 for the first delivery, +1 for each redelivery.
    pub delivery: u32,
}

impl Delivery {
    /// The message's partition and offset.
    ///
    /// ```no_run
    /// # fn demo(d: cairn_consumer::Delivery) { let id = d.id(); }
    /// ```
    pub fn id(&self) -> MessageId {
        MessageId { partition: self.message.partition, offset: self.message.offset }
    }
}

/// How a handler failed. Any `std::error::Error` converts into [`HandlerError::Retry`]
/// with `?`; return [`HandlerError::Permanent`] for input that will never succeed.
///
/// ```
/// use cairn_consumer::HandlerError;
///
/// fn parse(v: &str) -> Result<u32, HandlerError> {
///     let n: u32 = v.parse().map_err(HandlerError::permanent)?; // bad input: dead-letter now
///     std::fs::metadata("/tmp")?; // I/O error: retry later
///     Ok(n)
/// }
/// assert!(matches!(parse("x"), Err(HandlerError::Permanent(_))));
/// ```
#[derive(Debug)]
pub enum HandlerError {
    /// Try again later: the message is nacked with a backoff delay.
    Retry(BoxError),
    /// Never going to work: the message is rejected (dead-lettered) now.
    Permanent(BoxError),
}

impl HandlerError {
    /// A retryable failure.
    ///
    /// ```
    /// let e = cairn_consumer::HandlerError::retry("smtp server busy");
    /// ```
    pub fn retry(e: impl Into<BoxError>) -> Self {
        HandlerError::Retry(e.into())
    }

    /// A permanent failure.
    ///
    /// ```
    /// let e = cairn_consumer::HandlerError::permanent("image is not a PNG");
    /// ```
    pub fn permanent(e: impl Into<BoxError>) -> Self {
        HandlerError::Permanent(e.into())
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::Retry(e) => write!(f, "{e}"),
            HandlerError::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::Retry(Box::new(e))
    }
}

/// Settings of a [`GroupConsumer`].
///
/// ```
/// use std::time::Duration;
/// let cfg = cairn_consumer::GroupConsumerConfig {
///     concurrency: 8,
///     ack_timeout: Duration::from_secs(60),
///     ..cairn_consumer::GroupConsumerConfig::new("thumbnails", "uploads")
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConsumerConfig {
    /// The group.
    pub group: String,
    /// The topic consumed.
    pub topic: String,
    /// A name for this consumer, shown by the server (optional).
    pub consumer: Option<String>,
    /// Handlers in flight at most ([`GroupConsumer::run`]).
    pub concurrency: usize,
    /// Messages leased per fetch at most.
    pub fetch_max_messages: usize,
    /// How long a fetch long-polls for work.
    pub fetch_wait: Duration,
    /// Lease length asked for on each fetch and extension; [`GroupConsumer::run`] extends
    /// a lease each time half of it has passed while the handler still runs.
    pub ack_timeout: Duration,
    /// Redelivery delay after a retryable failure: `delay(delivery)` of this policy
    /// (only `backoff_initial` and `backoff_max` are used).
    pub nack_backoff: RetryPolicy,
    /// On shutdown, how long in-flight handlers may still run before they are cancelled and
    /// their messages released (nacked without delay).
    pub shutdown_grace: Duration,
}

impl GroupConsumerConfig {
    /// Defaults for `group` on `topic`: 4 handlers, 10 per fetch, 5 s long-poll, 30 s
    /// leases, nack backoff 1 s doubling to 5 min, 30 s shutdown grace.
    ///
    /// ```
    /// let cfg = cairn_consumer::GroupConsumerConfig::new("g", "t");
    /// assert_eq!(cfg.concurrency, 4);
    /// ```
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> Self {
        GroupConsumerConfig {
            group: group.into(),
            topic: topic.into(),
            consumer: None,
            concurrency: 4,
            fetch_max_messages: 10,
            fetch_wait: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            nack_backoff: RetryPolicy {
                attempts_max: u32::MAX,
                backoff_initial: Duration::from_secs(1),
                backoff_max: Duration::from_secs(300),
            },
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A consumer in a group, on one topic. Cheap to clone.
///
/// ```no_run
/// use cairn_consumer::{Client, GroupConsumer};
/// # async fn demo() -> Result<(), cairn_consumer::Error> {
/// let c = GroupConsumer::new(Client::new("http://127.0.0.1:7420")?, "emails", "outbox");
/// for d in c.fetch(10, std::time::Duration::from_secs(5)).await? {
///     // ... send the email ...
///     c.ack(&[d.id()]).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GroupConsumer {
    pub(crate) client: Client,
    pub(crate) config: Arc<GroupConsumerConfig>,
}

#[derive(Deserialize)]
struct Fetched {
    messages: Vec<WireMessage>,
}

fn ids(ids: &[MessageId]) -> Vec<Value> {
    ids.iter().map(|m| json!({"partition": m.partition, "offset": m.offset})).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl GroupConsumer {
    /// A consumer of `topic` in `group` with default settings.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let c = cairn_consumer::GroupConsumer::new(client, "billing", "orders");
    /// # }
    /// ```
    pub fn new(client: Client, group: impl Into<String>, topic: impl Into<String>) -> Self {
        Self::with_config(client, GroupConsumerConfig::new(group, topic))
    }

    /// A consumer with `config`.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let cfg = cairn_consumer::GroupConsumerConfig { concurrency: 16, ..cairn_consumer::GroupConsumerConfig::new("g", "t") };
    /// let c = cairn_consumer::GroupConsumer::with_config(client, cfg);
    /// # }
    /// ```
    pub fn with_config(client: Client, config: GroupConsumerConfig) -> Self {
        GroupConsumer { client, config: Arc::new(config) }
    }

    /// The consumer's settings.
    ///
    /// ```no_run
    /// # fn demo(c: cairn_consumer::GroupConsumer) { println!("{}", c.config().group); }
    /// ```
    pub fn config(&self) -> &GroupConsumerConfig {
        &self.config
    }

    fn path(&self, op: &str) -> String {
        format!("/v1/groups/{}/topics/{}/{op}", self.config.group, self.config.topic)
    }

    async fn post(&self, op: &str, body: Value) -> Result<()> {
        let path = self.path(op);
        self.client.retry_policy().run(|| self.client.empty(self.client.request(Method::POST, &path).json(&body))).await
    }

    /// Leases up to `max_messages`, long-polling up to `wait` when none is available.
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::GroupConsumer) -> Result<(), cairn_consumer::Error> {
    /// let batch = c.fetch(10, std::time::Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn fetch(&self, max_messages: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let mut body = json!({
            "max_messages": max_messages,
            "wait_ms": millis(wait),
            "ack_timeout_ms": millis(self.config.ack_timeout),
            "encoding": "base64",
        });
        if let Some(name) = &self.config.consumer {
            body["consumer"] = json!(name);
        }
        let path = self.path("fetch");
        let fetched: Fetched = self
            .client
            .retry_policy()
            .run(|| self.client.json(self.client.request_waiting(Method::POST, &path, wait).json(&body)))
            .await?;
        fetched
            .messages
            .into_iter()
            .map(|w| {
                let delivery = w.delivery.unwrap_or(1);
                Ok(Delivery { topic: self.config.topic.clone(), message: w.into_message()?, delivery })
            })
            .collect()
    }

    /// Marks messages done. Acking twice is harmless.
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::GroupConsumer, d: cairn_consumer::Delivery) -> Result<(), cairn_consumer::Error> {
    /// c.ack(&[d.id()]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ack(&self, messages: &[MessageId]) -> Result<()> {
        self.post("ack", json!({ "messages": ids(messages) })).await
    }

    /// Releases messages for redelivery after their delay.
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::GroupConsumer, d: cairn_consumer::Delivery) -> Result<(), cairn_consumer::Error> {
    /// c.nack(&[(d.id(), std::time::Duration::from_secs(10))]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn nack(&self, messages: &[(MessageId, Duration)]) -> Result<()> {
        let list: Vec<Value> = messages
            .iter()
            .map(|(m, d)| json!({"partition": m.partition, "offset": m.offset, "delay_ms": millis(*d)}))
            .collect();
        self.post("nack", json!({ "messages": list })).await
    }

    /// Extends the leases of messages still being worked on to `ack_timeout` from now.
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::GroupConsumer, d: cairn_consumer::Delivery) -> Result<(), cairn_consumer::Error> {
    /// c.extend(&[d.id()], std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, messages: &[MessageId], ack_timeout: Duration) -> Result<()> {
        self.post("extend", json!({ "messages": ids(messages), "ack_timeout_ms": millis(ack_timeout) })).await
    }

    /// Dead-letters messages now, with `reason` (header `cairn-reason` in the dead-letter
    /// topic).
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::GroupConsumer, d: cairn_consumer::Delivery) -> Result<(), cairn_consumer::Error> {
    /// c.reject(&[d.id()], "not an image").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reject(&self, messages: &[MessageId], reason: &str) -> Result<()> {
        self.post("reject", json!({ "messages": ids(messages), "reason": reason })).await
    }
}
