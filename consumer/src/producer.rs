//! [`Producer`]: sends messages, with idempotent retries and optional background batching.
//!
//! **Wire path.** With [`ProduceEncoding::Auto`] (the default), messages with an explicit
//! partition are encoded by the client into one record batch per partition
//! (`cairn_storage::BatchBuilder`, optionally zstd) and sent on the raw
//! `application/vnd.cairn.records` path with `Cairn-Partition`: the server appends the bytes
//! without re-encoding them. Messages without a partition go as one JSON request
//! (`value_base64`, so values stay byte-exact), letting the server choose the partition by
//! key hash. [`ProduceEncoding::Json`] sends everything as JSON. A call whose messages need
//! several requests (several partitions, or explicit and implicit partitions mixed) is not
//! atomic across those requests; each request on its own is all-or-nothing.
//!
//! **Idempotence.** Each request gets a fresh random `Idempotency-Key`, reused on every
//! retry of that request, so a retry after a timeout repeats the original offsets
//! (`duplicate: true`) instead of appending again (within the server's dedup window).
//!
//! **Batching.** With a non-zero [`ProducerConfig::linger`], [`Producer::send`] queues the
//! message; a background task sends a topic's queue when it reaches
//! `batch_messages_max` or `batch_bytes_max`, or `linger` after its first message, one
//! request at a time (so per-partition order is the order of `send` calls).
//!
//! ```no_run
//! use cairn_consumer::{Client, NewMessage, Producer};
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let producer = Producer::new(Client::new("http://127.0.0.1:7420")?);
//! let produced = producer.send("orders", NewMessage::new("hello").with_key("user-42")).await?;
//! println!("partition {} offset {}", produced.partition, produced.offset);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cairn_storage::{BatchBuilder, Codec};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::batcher::{self, BatcherHandle};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::idempotency::new_key;
use crate::message::NewMessage;

/// Media type of the raw record-batch produce and read path.
///
/// ```
/// assert_eq!(cairn_consumer::producer::RECORDS_MEDIA_TYPE, "application/vnd.cairn.records");
/// ```
pub const RECORDS_MEDIA_TYPE: &str = "application/vnd.cairn.records";

/// How produce requests are encoded.
///
/// ```
/// let cfg = cairn_consumer::ProducerConfig {
///     encoding: cairn_consumer::ProduceEncoding::Json,
///     ..Default::default()
/// };
/// assert_ne!(cfg.encoding, cairn_consumer::ProduceEncoding::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProduceEncoding {
    /// Raw record batches where the partition is known, JSON otherwise.
    #[default]
    Auto,
    /// Always JSON (the server encodes the batch).
    Json,
}

/// Producer settings.
///
/// ```
/// use std::time::Duration;
/// let cfg = cairn_consumer::ProducerConfig {
///     linger: Duration::from_millis(5),
///     codec: cairn_consumer::Codec::Zstd(3),
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Wire path (see the module docs).
    pub encoding: ProduceEncoding,
    /// Compression of client-built batches (raw path only).
    pub codec: Codec,
    /// Background batching: how long a queued message may wait for company. Zero (the
    /// default) sends every [`Producer::send`] at once.
    pub linger: Duration,
    /// Background batching: send a topic's queue once it holds this many messages.
    pub batch_messages_max: usize,
    /// Background batching: send a topic's queue once its messages hold this many bytes.
    pub batch_bytes_max: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            encoding: ProduceEncoding::Auto,
            codec: Codec::None,
            linger: Duration::ZERO,
            batch_messages_max: 1000,
            batch_bytes_max: 1024 * 1024,
        }
    }
}

/// Where one produced message was stored.
///
/// ```
/// let p: cairn_consumer::Produced = serde_json::from_str(r#"{"partition":0,"offset":41,"timestamp":1}"#).unwrap();
/// assert_eq!(p.offset, 41);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Produced {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Append time, ms since the epoch.
    pub timestamp: i64,
}

/// The reply to one produce request.
///
/// ```
/// let r: cairn_consumer::ProduceResponse = serde_json::from_str(r#"{"offsets":[],"duplicate":true}"#).unwrap();
/// assert!(r.duplicate);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProduceResponse {
    /// One entry per message, in request order.
    pub offsets: Vec<Produced>,
    /// The server had already done this request (same `Idempotency-Key`): nothing appended.
    #[serde(default)]
    pub duplicate: bool,
}

/// One HTTP produce request, ready to send (and resend) as is.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    content_type: &'static str,
    partition: Option<u32>,
    body: Bytes,
    /// Positions, in the caller's list, of this request's messages.
    slots: Vec<usize>,
}

/// Sends messages to topics. Cheap to clone; clones share the background batcher.
///
/// ```no_run
/// use cairn_consumer::{Client, NewMessage, Producer};
/// # async fn demo() -> Result<(), cairn_consumer::Error> {
/// let producer = Producer::new(Client::new("http://127.0.0.1:7420")?);
/// let at = producer.send("emails", NewMessage::new("hi").with_key("user-1")).await?;
/// let all = producer
///     .send_batch("emails", vec![NewMessage::new("a").to_partition(0), NewMessage::new("b").to_partition(0)])
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    batcher: Option<Arc<BatcherHandle>>,
}

impl Producer {
    /// A producer with default settings (no background batching, raw path where possible).
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let producer = cairn_consumer::Producer::new(client);
    /// # }
    /// ```
    pub fn new(client: Client) -> Self {
        Self::with_config(client, ProducerConfig::default())
    }

    /// A producer with `config`. With a non-zero `linger` this spawns the background batcher
    /// and must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) {
    /// let cfg = cairn_consumer::ProducerConfig { linger: std::time::Duration::from_millis(10), ..Default::default() };
    /// let producer = cairn_consumer::Producer::with_config(client, cfg);
    /// # }
    /// ```
    pub fn with_config(client: Client, config: ProducerConfig) -> Self {
        let mut p = Producer { client, config, batcher: None };
        if !config.linger.is_zero() {
            p.batcher = Some(Arc::new(batcher::spawn(p.clone(), config)));
        }
        p
    }

    /// The producer's settings.
    ///
    /// ```no_run
    /// # fn demo(p: cairn_consumer::Producer) {
    /// assert!(p.config().linger.is_zero());
    /// # }
    /// ```
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Sends one message and returns where it was stored. With background batching the
    /// message waits (at most `linger`) to share a request with others.
    ///
    /// ```no_run
    /// # async fn demo(p: cairn_consumer::Producer) -> Result<(), cairn_consumer::Error> {
    /// let at = p.send("orders", cairn_consumer::NewMessage::new("x")).await?;
    /// println!("stored at {}:{}", at.partition, at.offset);
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, topic: &str, message: NewMessage) -> Result<Produced> {
        if let Some(b) = &self.batcher {
            return b.send(topic, message).await;
        }
        let mut out = self.send_batch(topic, vec![message]).await?;
        out.pop().ok_or_else(|| Error::Protocol("no offset in the produce reply".into()))
    }

    /// Sends `messages` now (bypassing background batching) and returns their offsets in
    /// order.
    ///
    /// ```no_run
    /// # async fn demo(p: cairn_consumer::Producer) -> Result<(), cairn_consumer::Error> {
    /// let msgs = (0..100).map(|i| cairn_consumer::NewMessage::new(format!("m{i}")).to_partition(0)).collect();
    /// let offsets = p.send_batch("orders", msgs).await?;
    /// assert_eq!(offsets.len(), 100);
    /// # Ok(()) }
    /// ```
    pub async fn send_batch(&self, topic: &str, messages: Vec<NewMessage>) -> Result<Vec<Produced>> {
        Ok(self.send_batch_with_key(topic, messages, &new_key()).await?.offsets)
    }

    /// As [`Producer::send_batch`] with a caller-chosen `Idempotency-Key` (e.g. derived from
    /// the business operation): sending the same messages with the same key again within the
    /// server's dedup window appends nothing and returns the original offsets with
    /// `duplicate: true`. A call needing several requests uses `key.0`, `key.1`, ...
    ///
    /// ```no_run
    /// # async fn demo(p: cairn_consumer::Producer) -> Result<(), cairn_consumer::Error> {
    /// let m = vec![cairn_consumer::NewMessage::new("charge order 17")];
    /// let first = p.send_batch_with_key("payments", m.clone(), "order-17").await?;
    /// let again = p.send_batch_with_key("payments", m, "order-17").await?;
    /// assert!(again.duplicate);
    /// assert_eq!(first.offsets, again.offsets);
    /// # Ok(()) }
    /// ```
    pub async fn send_batch_with_key(
        &self,
        topic: &str,
        messages: Vec<NewMessage>,
        key: &str,
    ) -> Result<ProduceResponse> {
        if messages.is_empty() {
            return Ok(ProduceResponse { offsets: Vec::new(), duplicate: false });
        }
        let requests = plan(&messages, &self.config)?;
        let single = requests.len() == 1;
        let mut offsets: Vec<Option<Produced>> = vec![None; messages.len()];
        let mut duplicate = true;
        for (i, req) in requests.into_iter().enumerate() {
            let key = if single { key.to_string() } else { format!("{key}.{i}") };
            let reply = self.execute(topic, &req, &key).await?;
            if reply.offsets.len() != req.slots.len() {
                return Err(Error::Protocol(format!(
                    "{} offsets in the reply for {} messages",
                    reply.offsets.len(),
                    req.slots.len()
                )));
            }
            duplicate &= reply.duplicate;
            for (slot, at) in req.slots.iter().zip(reply.offsets) {
                offsets[*slot] = Some(at);
            }
        }
        let offsets = offsets.into_iter().collect::<Option<Vec<_>>>();
        let offsets = offsets.ok_or_else(|| Error::Protocol("a message got no offset".into()))?;
        Ok(ProduceResponse { offsets, duplicate })
    }

    /// Waits until every message queued by [`Producer::send`] has been sent (no-op without
    /// background batching).
    ///
    /// ```no_run
    /// # async fn demo(p: cairn_consumer::Producer) -> Result<(), cairn_consumer::Error> {
    /// p.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<()> {
        match &self.batcher {
            Some(b) => b.flush().await,
            None => Ok(()),
        }
    }

    /// Sends one prepared request with retries, keeping its idempotency key.
    async fn execute(&self, topic: &str, req: &Request, key: &str) -> Result<ProduceResponse> {
        let path = format!("/v1/topics/{topic}/messages");
        self.client
            .retry_policy()
            .run(|| {
                let mut rb = self
                    .client
                    .request(Method::POST, &path)
                    .header(CONTENT_TYPE, req.content_type)
                    .header("Idempotency-Key", key)
                    .body(req.body.clone());
                if let Some(p) = req.partition {
                    rb = rb.header("Cairn-Partition", p);
                }
                self.client.json::<ProduceResponse>(rb)
            })
            .await
    }
}

/// Splits `messages` into requests per the encoding (see the module docs).
pub(crate) fn plan(messages: &[NewMessage], config: &ProducerConfig) -> Result<Vec<Request>> {
    let mut raw: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut json_slots = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match (config.encoding, m.partition) {
            (ProduceEncoding::Auto, Some(p)) => raw.entry(p).or_default().push(i),
            _ => json_slots.push(i),
        }
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    for (partition, slots) in raw {
        let mut b = BatchBuilder::with_codec(config.codec);
        for &i in &slots {
            let m = &messages[i];
            let headers: Vec<(&str, &[u8])> = m.headers.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
            b.push(m.key.as_deref(), m.value.as_deref(), headers);
        }
        let body = b.finish(0, 0).map_err(|e| Error::InvalidInput(format!("cannot encode the batch: {e}")))?;
        out.push(Request { content_type: RECORDS_MEDIA_TYPE, partition: Some(partition), body: body.into(), slots });
    }
    if !json_slots.is_empty() {
        let items = json_slots.iter().map(|&i| json_message(&messages[i])).collect::<Result<Vec<_>>>()?;
        let body = serde_json::to_vec(&json!({ "messages": items }))
            .map_err(|e| Error::InvalidInput(format!("cannot encode the request: {e}")))?;
        out.push(Request { content_type: "application/json", partition: None, body: body.into(), slots: json_slots });
    }
    Ok(out)
}

fn utf8<'a>(what: &str, b: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(b).map_err(|_| {
        Error::InvalidInput(format!("{what} is not UTF-8; the JSON path needs text (give the message a partition)"))
    })
}

fn json_message(m: &NewMessage) -> Result<Value> {
    let mut o = Map::new();
    if let Some(k) = &m.key {
        o.insert("key".into(), Value::String(utf8("the key", k)?.to_string()));
    }
    if let Some(v) = &m.value {
        o.insert("value_base64".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(v)));
    }
    if !m.headers.is_empty() {
        let mut h = Map::new();
        for (n, v) in &m.headers {
            h.insert(n.clone(), Value::String(utf8("a header value", v)?.to_string()));
        }
        o.insert("headers".into(), Value::Object(h));
    }
    if let Some(p) = m.partition {
        o.insert("partition".into(), json!(p));
    }
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::DecodedBatch;

    #[test]
    fn plans_raw_per_partition_and_json_for_the_rest() {
        let msgs = vec![
            NewMessage::new("a").to_partition(1),
            NewMessage::new("b").with_key("k"),
            NewMessage::new("c").to_partition(0).with_header("h", "v"),
            NewMessage::new("d").to_partition(1),
        ];
        let reqs = plan(&msgs, &ProducerConfig::default()).unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!((reqs[0].partition, reqs[0].slots.clone()), (Some(0), vec![2]));
        assert_eq!((reqs[1].partition, reqs[1].slots.clone()), (Some(1), vec![0, 3]));
        let d = DecodedBatch::new(&reqs[1].body).unwrap();
        let recs = d.collect_checked().unwrap();
        assert_eq!(recs[1].value, Some(&b"d"[..]));
        assert_eq!(reqs[2].content_type, "application/json");
        let v: Value = serde_json::from_slice(&reqs[2].body).unwrap();
        assert_eq!(v["messages"][0]["key"], "k");
        assert_eq!(v["messages"][0]["value_base64"], "Yg==");
        let all_json = ProducerConfig { encoding: ProduceEncoding::Json, ..Default::default() };
        let reqs = plan(&msgs, &all_json).unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].slots, vec![0, 1, 2, 3]);
    }

    #[test]
    fn json_path_needs_text_keys() {
        let m = vec![NewMessage::new("v").with_key(vec![0xffu8])];
        assert!(matches!(plan(&m, &ProducerConfig::default()), Err(Error::InvalidInput(_))));
        let m = vec![NewMessage::new("v").with_key(vec![0xffu8]).to_partition(0)];
        assert!(plan(&m, &ProducerConfig::default()).is_ok());
    }
}
