//! `cairn-consumer`: the Rust client for `cairnd`.
//!
//! It speaks `cairnd`'s HTTP API (the v1 contract) and makes at-least-once processing easy to get
//! right:
//!
//! - [`Client`] ([`client`], [`admin`]): one shared, connection-reusing HTTP client with the
//!   admin calls (topics, groups, offsets).
//! - [`Producer`] ([`producer`]): send one message or a batch, optionally batched in the
//!   background; every request carries an `Idempotency-Key` that is reused across retries, so
//!   a retry after a timeout never appends twice.
//! - [`Reader`] ([`reader`]): stateless reads of one partition from an offset, a timestamp,
//!   the earliest or latest position, and a [`Stream`](futures_util::Stream) that follows the
//!   log. It fetches raw record batches and decodes them with `cairn-storage`'s batch code,
//!   checking every CRC.
//! - [`GroupConsumer`] ([`group`]): queue-style work with leases: fetch → handler → ack,
//!   nack with backoff, or reject; leases extended while a handler runs; N handlers in
//!   flight; graceful shutdown.
//! - [`CursorConsumer`] ([`cursor`]): Kafka-style in-order processing of one partition with
//!   periodic offset commits, resuming from the committed offset.
//!
//! Errors are one typed enum, [`Error`]: the server's `{"code","message"}` replies become
//! [`Error::Api`]; connection problems [`Error::Transport`]; a damaged batch
//! [`Error::Corrupt`].
//!
//! ```no_run
//! use cairn_consumer::{Client, NewMessage, Producer, Reader, StartAt};
//!
//! # async fn demo() -> Result<(), cairn_consumer::Error> {
//! let client = Client::new("http://127.0.0.1:7420")?;
//! let producer = Producer::new(client.clone());
//! producer.send("orders", NewMessage::new("hello").with_key("user-42")).await?;
//! let page = Reader::new(client, "orders", 0).read(&StartAt::Earliest).await?;
//! for m in page.messages {
//!     println!("{} {:?}", m.offset, m.value_str());
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod acker;
pub mod admin;
mod batcher;
pub mod client;
pub mod cursor;
pub mod decode;
pub mod error;
pub mod group;
mod idempotency;
pub mod message;
pub mod producer;
pub mod reader;
pub mod retry;
mod worker;

pub use admin::{
    GroupConfig, GroupDescription, GroupOffset, GroupPartition, GroupSummary, NewTopic, PartitionInfo, ResetTo,
    TopicDescription,
};
/// The batch compression codec, re-exported from `cairn-storage` for [`ProducerConfig::codec`].
pub use cairn_storage::Codec;
pub use client::{Client, ClientBuilder};
pub use cursor::{CursorConfig, CursorConsumer};
pub use error::{Error, Result};
pub use group::{Delivery, GroupConsumer, GroupConsumerConfig, HandlerError, MessageId};
pub use message::{Message, NewMessage};
pub use producer::{ProduceEncoding, ProduceResponse, Produced, Producer, ProducerConfig};
pub use reader::{ReadOptions, ReadPage, Reader, StartAt};
pub use retry::RetryPolicy;
/// The cancellation token used for graceful shutdown of consumers, re-exported from `tokio-util`.
pub use tokio_util::sync::CancellationToken;
pub use worker::RunStats;
