//! "The acknowledged end advanced" notifications, per partition, for long-polls and SSE.
//!
//! The first reader of a partition registers one storage listener
//! ([`PartitionLog::add_listener`]) that publishes each new end offset into a
//! `tokio::sync::watch`; every waiter subscribes to that watch. The listener runs on a
//! storage writer thread and only stores a value and wakes tasks: it never blocks. Waiters
//! always re-read the log's end after waking, so a coalesced notification loses nothing.
//! When a topic is deleted its entries are dropped, so a topic re-created under the same name
//! gets fresh listeners on its new logs, and its watches are set to [`TOPIC_DELETED`] for
//! good: waiting long-polls answer and event streams end instead of following a log that
//! will never grow again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_storage::PartitionLog;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// The value a partition's watch holds once its topic is deleted (never a real end offset).
pub const TOPIC_DELETED: u64 = u64::MAX;

/// A partition: (topic, partition).
type PartitionKey = (String, u32);

/// The registry of per-partition end-offset watches.
#[derive(Debug, Default)]
pub struct EndWatchers {
    watches: Mutex<HashMap<PartitionKey, Arc<watch::Sender<u64>>>>,
}

impl EndWatchers {
    /// A receiver that changes whenever `log`'s acknowledged end advances.
    pub fn subscribe(&self, log: &PartitionLog) -> watch::Receiver<u64> {
        let key = (log.topic().to_string(), log.partition());
        let mut map = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&key) {
            return tx.subscribe();
        }
        let tx = Arc::new(watch::Sender::new(log.end_offset()));
        let for_listener = Arc::clone(&tx);
        log.add_listener(Arc::new(move |end| {
            // A late append to a deleted topic's log does not undo the deletion mark.
            for_listener.send_if_modified(|v| {
                let live = *v != TOPIC_DELETED;
                if live {
                    *v = end;
                }
                live
            });
        }));
        let rx = tx.subscribe();
        map.insert(key, tx);
        rx
    }

    /// Forgets a deleted topic's watches, marking each [`TOPIC_DELETED`] (which wakes its
    /// waiters).
    pub fn forget_topic(&self, topic: &str) {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).retain(|(t, _), tx| {
            if t == topic {
                tx.send_replace(TOPIC_DELETED);
            }
            t != topic
        });
    }

    /// Waits until `log`'s end offset is at least `target`, the deadline passes or shutdown
    /// starts. Returns the end offset then, or `None` if the topic was deleted meanwhile.
    pub async fn wait_for_end(
        &self,
        log: &PartitionLog,
        target: u64,
        deadline: Instant,
        shutdown: &Shutdown,
    ) -> Option<u64> {
        let mut rx = self.subscribe(log);
        loop {
            if *rx.borrow_and_update() == TOPIC_DELETED {
                return None;
            }
            let end = log.end_offset();
            if end >= target || Instant::now() >= deadline || shutdown.is_triggered() {
                return Some(end);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Some(log.end_offset()) },
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait() => {}
            }
        }
    }

    /// Waits until `log`'s end offset passes `offset` or `timeout` passes; returns whether it did.
    pub async fn wait_past(&self, log: &PartitionLog, offset: u64, timeout: Duration, shutdown: &Shutdown) -> bool {
        self.wait_for_end(log, offset.saturating_add(1), Instant::now() + timeout, shutdown)
            .await
            .is_some_and(|e| e > offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::{BatchBuilder, Catalog, TopicConfig};

    #[tokio::test]
    async fn wakes_on_append_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
        let topic = catalog.create_topic("t", TopicConfig::default()).unwrap();
        let log = topic.partition(0).unwrap();
        let ends = Arc::new(EndWatchers::default());
        let (_trigger, shutdown) = Shutdown::new();

        assert!(!ends.wait_past(&log, 0, Duration::from_millis(20), &shutdown).await);

        let waiter = {
            let (ends, log, shutdown) = (Arc::clone(&ends), log.clone(), shutdown.clone());
            tokio::spawn(async move { ends.wait_past(&log, 0, Duration::from_secs(30), &shutdown).await })
        };
        let mut b = BatchBuilder::new();
        b.push(None, Some(b"x"), []);
        let bytes = b.finish(0, 0).unwrap();
        tokio::task::spawn_blocking(move || log.append(bytes).unwrap()).await.unwrap();
        assert!(waiter.await.unwrap());
        catalog.close().unwrap();
    }
}
