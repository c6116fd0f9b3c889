//! [`Reader`]: stateless reads of one partition, and a [`Stream`] that follows it.
//!
//! Reads use the raw record path (`Accept: application/vnd.cairn.records`): the server
//! sends its stored batches without re-encoding and the client decodes them with
//! `cairn-storage` ([`crate::decode`]), checking every CRC; a damaged batch is an
//! [`Error::Corrupt`]. The server sends whole batches, so records before the requested
//! position are dropped here. [`Reader::read_json`] reads the JSON reply instead (for
//! comparison and for servers behind proxies that mangle binary bodies).
//!
//! [`Reader::stream`] follows the log: it reads from a start position, then long-polls
//! from `next_offset` forever. Transport errors and 5xx are retried per the client's
//! [`crate::RetryPolicy`]; an error that survives them ends the stream after it is yielded.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use cairn_consumer::{Client, Reader, StartAt};
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let reader = Reader::new(Client::new("http://127.0.0.1:7420")?, "orders", 0);
//! let mut messages = std::pin::pin!(reader.stream(StartAt::Earliest));
//! while let Some(m) = messages.next().await {
//!     println!("{}", m?.offset);
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::Method;
use serde::Deserialize;

use crate::client::Client;
use crate::decode::{decode_batches, Skip};
use crate::error::{Error, Result};
use crate::message::{Message, WireMessage};
use crate::producer::RECORDS_MEDIA_TYPE;

/// Where a read starts.
///
/// ```
/// use cairn_consumer::StartAt;
/// let from = StartAt::Offset(42);
/// let since = StartAt::Timestamp(1_764_000_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The first message with an offset ≥ this one.
    Offset(u64),
    /// The first message with a timestamp ≥ this one (ms since the epoch).
    Timestamp(i64),
    /// The partition's first stored message.
    Earliest,
    /// The partition's end: only messages appended from now on.
    Latest,
    /// A consumer group's committed offset (resolved with `GET .../offsets` first).
    Group(String),
}

/// Limits of one read.
///
/// ```
/// use std::time::Duration;
/// let o = cairn_consumer::ReadOptions { max_messages: 1000, wait: Duration::from_secs(5), ..Default::default() };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// At most this many messages per read (server cap: 10000).
    pub max_messages: u32,
    /// At most about this many bytes per read (at least one batch is always returned).
    pub max_bytes: u64,
    /// Long-poll: wait up to this long for a message when none is there (server cap: 30 s).
    pub wait: Duration,
}

impl Default for ReadOptions {
    /// 1000 messages, 1 MiB, no wait.
    fn default() -> Self {
        ReadOptions { max_messages: 1000, max_bytes: 1024 * 1024, wait: Duration::ZERO }
    }
}

/// The result of one read.
///
/// ```no_run
/// # async fn demo(r: cairn_consumer::Reader) -> Result<(), cairn_consumer::Error> {
/// let page = r.read(&cairn_consumer::StartAt::Offset(0)).await?;
/// println!("{} messages, next {} of {}", page.messages.len(), page.next_offset, page.end_offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPage {
    /// The messages, in offset order.
    pub messages: Vec<Message>,
    /// Where the next read should start.
    pub next_offset: u64,
    /// The partition's first stored offset.
    pub start_offset: u64,
    /// The partition's high watermark at the time of the read.
    pub end_offset: u64,
}

/// Reads one partition of one topic.
///
/// ```no_run
/// use cairn_consumer::{Client, Reader, StartAt};
/// # async fn demo() -> Result<(), cairn_consumer::Error> {
/// let reader = Reader::new(Client::new("http://127.0.0.1:7420")?, "orders", 0);
/// let page = reader.read(&StartAt::Offset(100)).await?;
/// println!("{} messages, next at {}", page.messages.len(), page.next_offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Reader {
    client: Client,
    topic: String,
    partition: u32,
    options: ReadOptions,
}

#[derive(Deserialize)]
struct JsonPage {
    messages: Vec<WireMessage>,
    next_offset: u64,
    start_offset: u64,
    end_offset: u64,
}

fn header_u64(h: &HeaderMap, name: &str) -> Result<u64> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Protocol(format!("the read reply has no valid {name} header")))
}

impl Reader {
    /// A reader of `topic`'s `partition` with default [`ReadOptions`].
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let r = cairn_consumer::Reader::new(client, "orders", 0);
    /// # }
    /// ```
    pub fn new(client: Client, topic: impl Into<String>, partition: u32) -> Self {
        Reader { client, topic: topic.into(), partition, options: ReadOptions::default() }
    }

    /// Sets the read limits.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let r = cairn_consumer::Reader::new(client, "orders", 0)
    ///     .with_options(cairn_consumer::ReadOptions { max_messages: 10, ..Default::default() });
    /// # }
    /// ```
    pub fn with_options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }

    /// The topic read.
    ///
    /// ```no_run
    /// # fn demo(r: cairn_consumer::Reader) { assert_eq!(r.topic(), "orders"); }
    /// ```
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition read.
    ///
    /// ```no_run
    /// # fn demo(r: cairn_consumer::Reader) { assert_eq!(r.partition(), 0); }
    /// ```
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Turns `from` into query parameters and the records to drop from the reply.
    async fn position(&self, from: &StartAt) -> Result<(Vec<(&'static str, String)>, Skip)> {
        Ok(match from {
            StartAt::Offset(o) => (vec![("offset", o.to_string())], Skip::BelowOffset(*o)),
            StartAt::Timestamp(t) => (vec![("timestamp", t.to_string())], Skip::BeforeTimestamp(*t)),
            StartAt::Earliest => (vec![("from", "earliest".into())], Skip::Nothing),
            StartAt::Latest => (vec![("from", "latest".into())], Skip::Nothing),
            StartAt::Group(g) => {
                let offsets = self.client.group_offsets(g, &self.topic).await?;
                let o = offsets.iter().find(|o| o.partition == self.partition).map(|o| o.offset).ok_or_else(|| {
                    Error::Protocol(format!("group {g} has no offset for partition {}", self.partition))
                })?;
                (vec![("offset", o.to_string())], Skip::BelowOffset(o))
            }
        })
    }

    fn query(&self, mut q: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        q.push(("max_messages", self.options.max_messages.to_string()));
        q.push(("max_bytes", self.options.max_bytes.to_string()));
        q.push(("wait_ms", self.options.wait.as_millis().to_string()));
        q
    }

    fn path(&self) -> String {
        format!("/v1/topics/{}/partitions/{}/messages", self.topic, self.partition)
    }

    /// Reads from `from` on the raw record path (long-polling per the options' `wait`).
    /// `416 offset_out_of_range` is an [`Error::Api`] whose `details` hold the range.
    ///
    /// ```no_run
    /// # async fn demo(r: cairn_consumer::Reader) -> Result<(), cairn_consumer::Error> {
    /// let page = r.read(&cairn_consumer::StartAt::Earliest).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read(&self, from: &StartAt) -> Result<ReadPage> {
        let (q, skip) = self.position(from).await?;
        let q = self.query(q);
        let path = self.path();
        let (headers, body) = self
            .client
            .retry_policy()
            .run(|| async {
                let rb = self
                    .client
                    .request_waiting(Method::GET, &path, self.options.wait)
                    .header(ACCEPT, RECORDS_MEDIA_TYPE)
                    .query(&q);
                let resp = self.client.send(rb).await?;
                let headers = resp.headers().clone();
                let body: Bytes = resp.bytes().await?;
                Ok((headers, body))
            })
            .await?;
        let messages = decode_batches(&body, self.partition, skip)?;
        Ok(ReadPage {
            messages,
            next_offset: header_u64(&headers, "cairn-next-offset")?,
            start_offset: header_u64(&headers, "cairn-start-offset").unwrap_or(0),
            end_offset: header_u64(&headers, "cairn-end-offset")?,
        })
    }

    /// As [`Reader::read`] on the JSON reply (`encoding=base64`, so values are exact).
    ///
    /// ```no_run
    /// # async fn demo(r: cairn_consumer::Reader) -> Result<(), cairn_consumer::Error> {
    /// let page = r.read_json(&cairn_consumer::StartAt::Offset(0)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_json(&self, from: &StartAt) -> Result<ReadPage> {
        let (q, _) = self.position(from).await?;
        let mut q = self.query(q);
        q.push(("encoding", "base64".into()));
        let path = self.path();
        let page: JsonPage = self
            .client
            .retry_policy()
            .run(|| {
                let rb = self
                    .client
                    .request_waiting(Method::GET, &path, self.options.wait)
                    .header(ACCEPT, "application/json")
                    .query(&q);
                self.client.json(rb)
            })
            .await?;
        let messages = page.messages.into_iter().map(WireMessage::into_message).collect::<Result<Vec<_>>>()?;
        Ok(ReadPage {
            messages,
            next_offset: page.next_offset,
            start_offset: page.start_offset,
            end_offset: page.end_offset,
        })
    }

    /// Every message from `from` on, following the log: once caught up, each read
    /// long-polls (for the options' `wait`, or 10 s if that is zero) for new messages. The
    /// stream never ends by itself; after an error (retries exhausted, corrupt batch) it
    /// yields that error and ends.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// # async fn demo(r: cairn_consumer::Reader) -> Result<(), cairn_consumer::Error> {
    /// let mut s = std::pin::pin!(r.stream(cairn_consumer::StartAt::Earliest));
    /// while let Some(m) = s.next().await {
    ///     let m = m?;
    ///     println!("{}: {:?}", m.offset, m.value_str());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(&self, from: StartAt) -> impl Stream<Item = Result<Message>> + Send + 'static {
        let mut reader = self.clone();
        if reader.options.wait.is_zero() {
            reader.options.wait = Duration::from_secs(10);
        }
        struct State {
            reader: Reader,
            next: StartAt,
            buffered: VecDeque<Message>,
            failed: bool,
        }
        let state = State { reader, next: from, buffered: VecDeque::new(), failed: false };
        futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(m) = s.buffered.pop_front() {
                    return Some((Ok(m), s));
                }
                if s.failed {
                    return None;
                }
                match s.reader.read(&s.next).await {
                    Ok(page) => {
                        s.next = StartAt::Offset(page.next_offset);
                        s.buffered.extend(page.messages);
                    }
                    Err(e) => {
                        s.failed = true;
                        return Some((Err(e), s));
                    }
                }
            }
        })
    }
}
