//! [`CursorConsumer`]: Kafka-style, in-order processing of one partition with periodic
//! offset commits.
//!
//! It starts at the group's committed offset (`GET /v1/groups/{g}/offsets`; a group that
//! does not exist yet starts at the earliest message), follows the partition with a
//! [`Reader`] stream, calls the handler on each message in order and commits "next offset to
//! process" every `commit_every_messages` messages or `commit_interval`, whichever comes
//! first, and once more when it stops. A crash between commits means the messages after the
//! last commit are processed again (at-least-once).
//!
//! ```no_run
//! use cairn_consumer::{CancellationToken, Client, CursorConsumer};
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let c = CursorConsumer::new(Client::new("http://127.0.0.1:7420")?, "indexer", "orders", 0);
//! let next = c.run(|m| async move { println!("{}", m.offset); Ok::<(), std::io::Error>(()) },
//!                  CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{BoxError, Error, Result};
use crate::message::Message;
use crate::reader::{ReadOptions, Reader, StartAt};

/// Settings of a [`CursorConsumer`].
///
/// ```
/// use std::time::Duration;
/// let cfg = cairn_consumer::CursorConfig {
///     commit_every_messages: 500,
///     commit_interval: Duration::from_secs(1),
///     ..cairn_consumer::CursorConfig::new("indexer", "orders", 0)
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorConfig {
    /// The group whose offset is the cursor.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition processed.
    pub partition: u32,
    /// Commit after this many processed messages.
    pub commit_every_messages: u64,
    /// Commit at least this often while there is uncommitted progress.
    pub commit_interval: Duration,
    /// Read limits (the stream long-polls with `read.wait`, 10 s if zero).
    pub read: ReadOptions,
}

impl CursorConfig {
    /// Defaults: commit every 100 messages or 1 s.
    ///
    /// ```
    /// let cfg = cairn_consumer::CursorConfig::new("g", "t", 0);
    /// assert_eq!(cfg.commit_every_messages, 100);
    /// ```
    pub fn new(group: impl Into<String>, topic: impl Into<String>, partition: u32) -> Self {
        CursorConfig {
            group: group.into(),
            topic: topic.into(),
            partition,
            commit_every_messages: 100,
            commit_interval: Duration::from_secs(1),
            read: ReadOptions { wait: Duration::from_secs(5), ..ReadOptions::default() },
        }
    }
}

/// Processes one partition in order for a group.
///
/// ```no_run
/// use cairn_consumer::{CancellationToken, Client, CursorConsumer, Message};
/// # async fn demo() -> Result<(), cairn_consumer::Error> {
/// let c = CursorConsumer::new(Client::new("http://127.0.0.1:7420")?, "indexer", "orders", 0);
/// let stop = CancellationToken::new();
/// c.run(|m: Message| async move {
///     println!("indexing {}", m.offset);
///     Ok::<(), std::io::Error>(())
/// }, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CursorConsumer {
    client: Client,
    config: CursorConfig,
}

impl CursorConsumer {
    /// A cursor for `group` on `topic`'s `partition`, with default settings.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let c = cairn_consumer::CursorConsumer::new(client, "indexer", "orders", 0);
    /// # }
    /// ```
    pub fn new(client: Client, group: impl Into<String>, topic: impl Into<String>, partition: u32) -> Self {
        Self::with_config(client, CursorConfig::new(group, topic, partition))
    }

    /// A cursor with `config`.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_consumer::Client) {
    /// let c = cairn_consumer::CursorConsumer::with_config(client, cairn_consumer::CursorConfig::new("g", "t", 0));
    /// # }
    /// ```
    pub fn with_config(client: Client, config: CursorConfig) -> Self {
        CursorConsumer { client, config }
    }

    /// The group's committed offset in this partition; `None` if the group does not exist.
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::CursorConsumer) -> Result<(), cairn_consumer::Error> {
    /// println!("resuming at {:?}", c.committed().await?);
    /// # Ok(()) }
    /// ```
    pub async fn committed(&self) -> Result<Option<u64>> {
        let c = &self.config;
        match self.client.group_offsets(&c.group, &c.topic).await {
            Ok(offsets) => Ok(offsets.into_iter().find(|o| o.partition == c.partition).map(|o| o.offset)),
            Err(e) if e.code() == Some("group_not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Commits `offset` (the next offset to process).
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::CursorConsumer) -> Result<(), cairn_consumer::Error> {
    /// c.commit(42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn commit(&self, offset: u64) -> Result<()> {
        let c = &self.config;
        self.client.commit_offsets(&c.group, &c.topic, &[(c.partition, offset)]).await
    }

    /// Processes messages from the committed offset until `shutdown` is cancelled or the
    /// handler fails. Progress is committed as configured and once more before returning.
    /// Returns the last committed offset (`None` if nothing was ever committed); a handler
    /// failure is [`Error::Handler`] (the failed message is not committed, so it is the first
    /// one processed next time).
    ///
    /// ```no_run
    /// # async fn demo(c: cairn_consumer::CursorConsumer) -> Result<(), cairn_consumer::Error> {
    /// let stop = cairn_consumer::CancellationToken::new();
    /// let at = c.run(|m| async move { Ok::<(), std::io::Error>(()) }, stop).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<H, Fut, E>(&self, mut handler: H, shutdown: CancellationToken) -> Result<Option<u64>>
    where
        H: FnMut(Message) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Into<BoxError>,
    {
        let c = &self.config;
        let mut committed = self.committed().await?;
        let start = committed.map_or(StartAt::Earliest, StartAt::Offset);
        let reader = Reader::new(self.client.clone(), c.topic.clone(), c.partition).with_options(c.read);
        let mut stream = std::pin::pin!(reader.stream(start));
        let mut position = committed;
        let mut uncommitted = 0u64;
        let mut last_commit = Instant::now();
        let failure = loop {
            let due = last_commit + c.commit_interval;
            let item = tokio::select! {
                biased;
                () = shutdown.cancelled() => break None,
                () = tokio::time::sleep_until(due), if uncommitted > 0 => {
                    self.commit_position(position, &mut committed).await?;
                    (uncommitted, last_commit) = (0, Instant::now());
                    continue;
                }
                item = stream.next() => item,
            };
            let m = match item {
                None => break None,
                Some(Err(e)) => break Some(e),
                Some(Ok(m)) => m,
            };
            let next = m.offset + 1;
            if let Err(e) = handler(m).await {
                break Some(Error::Handler(e.into()));
            }
            position = Some(next);
            uncommitted += 1;
            if uncommitted >= c.commit_every_messages || last_commit.elapsed() >= c.commit_interval {
                self.commit_position(position, &mut committed).await?;
                (uncommitted, last_commit) = (0, Instant::now());
            }
        };
        self.commit_position(position, &mut committed).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(committed),
        }
    }

    async fn commit_position(&self, position: Option<u64>, committed: &mut Option<u64>) -> Result<()> {
        if let Some(p) = position {
            if *committed != Some(p) {
                self.commit(p).await?;
                *committed = Some(p);
            }
        }
        Ok(())
    }
}
