//! [`GroupConsumer::run`]: the worker loop of queue-style consumption.
//!
//! ```text
//! loop: wait for a free handler slot → fetch (long-poll) up to the free slots →
//!       per message, a task: run the handler (in its own task, so a panic is caught);
//!       every ack_timeout/2 while it runs, extend the lease;
//!       Ok → ack · Err(Retry)/panic → nack after backoff(delivery) · Err(Permanent) → reject
//! ```
//!
//! Acks go through [`crate::acker`]: those of handlers that finish while an ack request is in
//! flight share the next request. A handler's slot is freed only once its ack is durable.
//!
//! Shutdown: when the token is cancelled the loop stops fetching, lets in-flight handlers
//! finish for up to `shutdown_grace`, then cancels the rest and nacks their messages with no
//! delay so another worker takes them at once. A worker that dies without any of this
//! (killed process) loses nothing: its leases expire and the messages are delivered again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::acker::Acker;
use crate::error::Result;
use crate::group::{Delivery, GroupConsumer, HandlerError, MessageId};

/// What a [`GroupConsumer::run`] did.
///
/// ```no_run
/// # async fn demo(stats: cairn_consumer::RunStats) { println!("{} acked", stats.acked); }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Messages handled successfully and acked.
    pub acked: u64,
    /// Messages released for redelivery (handler error, panic, or shutdown).
    pub nacked: u64,
    /// Messages dead-lettered because the handler said the failure is permanent.
    pub rejected: u64,
    /// Lease extensions sent.
    pub extended: u64,
    /// Acks, nacks, rejects or extensions that failed (the lease then expires and the
    /// message is delivered again).
    pub settle_errors: u64,
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    nacked: AtomicU64,
    rejected: AtomicU64,
    extended: AtomicU64,
    settle_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RunStats {
        RunStats {
            acked: self.acked.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            extended: self.extended.load(Ordering::Relaxed),
            settle_errors: self.settle_errors.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counter: &AtomicU64, r: Result<()>, what: &str) {
        match r {
            Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; the lease will expire and the message be redelivered");
                self.settle_errors.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// How one handler run ended.
enum Outcome {
    Done(std::result::Result<(), HandlerError>),
    Panicked(String),
    Cancelled,
}

impl GroupConsumer {
    /// Runs `handler` on every message of the group's topic until `shutdown` is cancelled,
    /// then drains (see the module docs). Returns the counts, or the first fetch error that
    /// retrying cannot fix (e.g. a 4xx).
    ///
    /// ```no_run
    /// use cairn_consumer::{CancellationToken, Client, Delivery, GroupConsumer, HandlerError};
    ///
    /// # async fn demo() -> Result<(), cairn_consumer::Error> {
    /// let consumer = GroupConsumer::new(Client::new("http://127.0.0.1:7420")?, "mailer", "emails");
    /// let shutdown = CancellationToken::new();
    /// let stop = shutdown.clone();
    /// tokio::spawn(async move { let _ = tokio::signal::ctrl_c().await; stop.cancel(); });
    /// let stats = consumer
    ///     .run(
    ///         |d: Delivery| async move {
    ///             let to = d.message.key_str().ok_or_else(|| HandlerError::permanent("no recipient"))?;
    ///             println!("sending email to {to}");
    ///             Ok(())
    ///         },
    ///         shutdown,
    ///     )
    ///     .await?;
    /// println!("{stats:?}");
    /// # Ok(()) }
    /// ```
    pub async fn run<H, Fut>(&self, handler: H, shutdown: CancellationToken) -> Result<RunStats>
    where
        H: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let counters = Arc::new(Counters::default());
        let hard_stop = CancellationToken::new();
        let consumer = self.clone();
        let (acker, ack_task) = Acker::start(move |ids: Vec<MessageId>| {
            let c = consumer.clone();
            async move { c.ack(&ids).await }
        });
        let mut ack_task = AbortOnDrop(ack_task);
        let mut tasks = JoinSet::new();
        let result = loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break Ok(()),
                },
            };
            let room = (1 + slots.available_permits()).min(self.config.fetch_max_messages.max(1));
            let fetched = tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                r = self.fetch(room, self.config.fetch_wait) => r,
            };
            let batch = match fetched {
                Ok(b) => b,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "fetch failed; backing off");
                    tokio::select! {
                        () = shutdown.cancelled() => break Ok(()),
                        () = tokio::time::sleep(self.client.retry_policy().backoff_max) => continue,
                    }
                }
                Err(e) => break Err(e),
            };
            let mut first = Some(permit);
            for d in batch {
                // Only this loop takes permits, so the `room - 1` seen free are still free.
                let permit = match first.take() {
                    Some(p) => p,
                    None => match slots.clone().try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => slots.clone().acquire_owned().await.map_err(|_| crate::Error::Closed)?,
                    },
                };
                let job = Job {
                    consumer: self.clone(),
                    acker: acker.clone(),
                    counters: counters.clone(),
                    hard_stop: hard_stop.clone(),
                    _permit: permit,
                };
                tasks.spawn(job.process(handler.clone(), d));
            }
        };
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, drain).await.is_err() {
            hard_stop.cancel();
            while tasks.join_next().await.is_some() {}
        }
        // Every job is done: the acker sends what is queued, then ends.
        drop(acker);
        let _ = (&mut ack_task.0).await;
        result.map(|()| counters.snapshot())
    }
}

/// A handler task that is cancelled when its owner is dropped (the worker loop was dropped
/// or aborted: the message is then neither acked nor nacked, and its lease expires).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One message being handled; holds a concurrency slot until dropped.
struct Job {
    consumer: GroupConsumer,
    acker: Acker,
    counters: Arc<Counters>,
    hard_stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Job {
    async fn process<H, Fut>(self, handler: Arc<H>, d: Delivery)
    where
        H: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        let (id, delivery) = (d.id(), d.delivery);
        let lease = self.consumer.config.ack_timeout;
        let half = (lease / 2).max(Duration::from_millis(1));
        let mut ticks = interval_at(Instant::now() + half, half);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut run = AbortOnDrop(tokio::spawn(handler(d)));
        let outcome = loop {
            tokio::select! {
                r = &mut run.0 => break match r {
                    Ok(r) => Outcome::Done(r),
                    Err(e) => Outcome::Panicked(e.to_string()),
                },
                _ = ticks.tick() => {
                    let r = self.consumer.extend(&[id], lease).await;
                    self.counters.count(&self.counters.extended, r, "extend");
                }
                () = self.hard_stop.cancelled() => {
                    run.0.abort();
                    break Outcome::Cancelled;
                }
            }
        };
        let c = &self.counters;
        match outcome {
            Outcome::Done(Ok(())) => c.count(&c.acked, self.acker.ack(id).await, "ack"),
            Outcome::Done(Err(HandlerError::Permanent(e))) => {
                let r = self.consumer.reject(&[id], &e.to_string()).await;
                c.count(&c.rejected, r, "reject");
            }
            Outcome::Done(Err(HandlerError::Retry(e))) => {
                tracing::info!(error = %e, partition = id.partition, offset = id.offset, delivery, "handler failed; will retry");
                self.nack(id, self.consumer.config.nack_backoff.delay(delivery)).await;
            }
            Outcome::Panicked(e) => {
                tracing::warn!(error = %e, partition = id.partition, offset = id.offset, "handler panicked; will retry");
                self.nack(id, self.consumer.config.nack_backoff.delay(delivery)).await;
            }
            Outcome::Cancelled => self.nack(id, Duration::ZERO).await,
        }
    }

    async fn nack(&self, id: crate::MessageId, delay: Duration) {
        let r = self.consumer.nack(&[(id, delay)]).await;
        self.counters.count(&self.counters.nacked, r, "nack");
    }
}
