//! The producer's background batcher: one task that gathers messages sent with
//! [`crate::Producer::send`] into per-topic queues and sends each queue as one
//! `send_batch` when it is full (`batch_messages_max`, `batch_bytes_max`) or its first
//! message has waited `linger`.
//!
//! Requests go out one at a time, so messages to a partition keep the order of the `send`
//! calls. A failed request fails every message in it with the same [`Error::Batch`]. When
//! the last producer clone is dropped the task sends what is queued and ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::message::NewMessage;
use crate::producer::{Produced, Producer, ProducerConfig};

/// Commands queued per batcher; senders wait when this many are pending.
const COMMANDS_QUEUED_MAX: usize = 4096;

enum Command {
    Send { topic: String, message: NewMessage, reply: oneshot::Sender<Result<Produced>> },
    Flush(oneshot::Sender<()>),
}

/// The producers' side of the batcher.
#[derive(Debug)]
pub(crate) struct BatcherHandle {
    tx: mpsc::Sender<Command>,
}

impl BatcherHandle {
    pub(crate) async fn send(&self, topic: &str, message: NewMessage) -> Result<Produced> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Send { topic: topic.to_string(), message, reply };
        self.tx.send(cmd).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Command::Flush(done)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }
}

struct Queue {
    messages: Vec<NewMessage>,
    replies: Vec<oneshot::Sender<Result<Produced>>>,
    bytes: usize,
    deadline: Instant,
}

/// Starts the batcher task for `producer` (which must have no batcher of its own).
pub(crate) fn spawn(producer: Producer, config: ProducerConfig) -> BatcherHandle {
    let (tx, rx) = mpsc::channel(COMMANDS_QUEUED_MAX);
    tokio::spawn(run(producer, config, rx));
    BatcherHandle { tx }
}

async fn run(producer: Producer, config: ProducerConfig, mut rx: mpsc::Receiver<Command>) {
    let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
    loop {
        let next_deadline = queues.values().map(|q| q.deadline).min();
        let cmd = match next_deadline {
            Some(deadline) => tokio::select! {
                cmd = rx.recv() => cmd,
                () = tokio::time::sleep_until(deadline) => {
                    let due: Vec<String> =
                        queues.iter().filter(|(_, q)| q.deadline <= Instant::now()).map(|(t, _)| t.clone()).collect();
                    for topic in due {
                        send_queue(&producer, &mut queues, &topic).await;
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match cmd {
            None => break,
            Some(Command::Flush(done)) => {
                send_all(&producer, &mut queues).await;
                let _ = done.send(());
            }
            Some(Command::Send { topic, message, reply }) => {
                let q = queues.entry(topic.clone()).or_insert_with(|| Queue {
                    messages: Vec::new(),
                    replies: Vec::new(),
                    bytes: 0,
                    deadline: Instant::now() + config.linger,
                });
                q.bytes += message.size();
                q.messages.push(message);
                q.replies.push(reply);
                if q.messages.len() >= config.batch_messages_max || q.bytes >= config.batch_bytes_max {
                    send_queue(&producer, &mut queues, &topic).await;
                }
            }
        }
    }
    send_all(&producer, &mut queues).await;
}

async fn send_all(producer: &Producer, queues: &mut BTreeMap<String, Queue>) {
    let topics: Vec<String> = queues.keys().cloned().collect();
    for topic in topics {
        send_queue(producer, queues, &topic).await;
    }
}

async fn send_queue(producer: &Producer, queues: &mut BTreeMap<String, Queue>, topic: &str) {
    let Some(q) = queues.remove(topic) else { return };
    match producer.send_batch(topic, q.messages).await {
        Ok(offsets) => {
            for (reply, at) in q.replies.into_iter().zip(offsets) {
                let _ = reply.send(Ok(at));
            }
        }
        Err(e) => {
            let shared = Arc::new(e);
            for reply in q.replies {
                let _ = reply.send(Err(Error::Batch(shared.clone())));
            }
        }
    }
}
