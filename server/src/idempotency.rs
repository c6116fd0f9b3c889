//! `Idempotency-Key`: a produce repeated within the dedup window gets the first one's offsets
//! again (`"duplicate": true`) and appends nothing.
//!
//! Keys are scoped by topic. The state is durable: after a produce succeeds, a record
//! `{topic, key, offsets}` is appended (with `sync: always`) to the internal topic
//! `__idempotency` *before* the reply, and at start the records younger than the window are
//! loaded back. The topic's retention (twice the window, segments rolled every window) bounds
//! it on disk. Concurrent requests with the same key are serialised: the second waits for
//! the first; if the first fails, the second proceeds as a new produce.
//!
//! A crash between a produce's own append and its idempotency record loses only the dedup
//! entry (the client saw no reply, retries, and that retry appends again): the window
//! protects replies that were sent, which is what a retrying client relies on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_storage::{BatchBuilder, Catalog, Clock, DecodedBatch, PartitionLog, SyncPolicy, TopicConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::error::{ApiError, ApiResult};

/// The internal topic holding dedup records.
pub const TOPIC: &str = "__idempotency";
/// Longest `Idempotency-Key`, in bytes.
pub const KEY_BYTES_MAX: usize = 256;
/// Bytes read per step when loading the window at start.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;
/// Expired entries are swept from memory every this many inserts.
const PRUNE_EVERY_INSERTS: u64 = 1024;

/// Where one message of a produce landed (the reply's `offsets` items).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducedOffset {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
}

#[derive(Serialize, Deserialize)]
struct DedupRecord {
    topic: String,
    key: String,
    offsets: Vec<ProducedOffset>,
}

type SlotKey = (String, String);

enum Slot {
    /// A produce with this key is in flight; the receiver closes when it finishes.
    Pending(watch::Receiver<()>),
    Done {
        offsets: Arc<[ProducedOffset]>,
        at_ms: i64,
    },
}

type Slots = Arc<Mutex<HashMap<SlotKey, Slot>>>;

/// The outcome of [`Idempotency::claim`].
pub enum Claim {
    /// Already done within the window: reply with these offsets.
    Duplicate(Arc<[ProducedOffset]>),
    /// This request owns the key: produce, then [`Idempotency::complete`].
    Owner(ClaimGuard),
}

/// Ownership of a key while its produce runs. Dropped without completing (the produce
/// failed, or the client went away), it frees the key for the next attempt.
pub struct ClaimGuard {
    slots: Slots,
    key: SlotKey,
    _done: watch::Sender<()>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(slots.get(&self.key), Some(Slot::Pending(_))) {
            slots.remove(&self.key);
        }
    }
}

/// The dedup window.
pub struct Idempotency {
    window_ms: i64,
    log: Option<PartitionLog>,
    clock: Clock,
    slots: Slots,
    inserts: AtomicU64,
}

/// Checks an `Idempotency-Key` header value: 1 to [`KEY_BYTES_MAX`] bytes of visible ASCII
/// (`!` to `~`: no spaces, tabs or other control characters).
pub fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {KEY_BYTES_MAX} bytes of visible ASCII (no spaces or control characters)"
        )));
    }
    Ok(())
}

impl Idempotency {
    /// A window kept only in memory (for tests).
    pub fn in_memory(window: Duration, clock: Clock) -> Self {
        Idempotency {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            log: None,
            clock,
            slots: Arc::default(),
            inserts: AtomicU64::new(0),
        }
    }

    /// Opens (creating if needed) `__idempotency` and loads the entries still in the window.
    /// Blocking: call at start, off the async workers.
    pub fn open(catalog: &Catalog, window: Duration, clock: Clock) -> cairn_storage::Result<Self> {
        let window_ms = window.as_millis().min(u128::from(u64::MAX / 4)) as u64;
        let config = TopicConfig {
            partitions: 1,
            retention_ms: Some(window_ms.saturating_mul(2).max(60_000)),
            retention_bytes: None,
            segment_bytes: 8 * 1024 * 1024,
            segment_ms: window_ms.max(1_000),
            sync: SyncPolicy::Always,
            ..TopicConfig::default()
        };
        let topic = match catalog.topic(TOPIC) {
            None => catalog.create_topic(TOPIC, config)?,
            Some(t) if t.config() != config => catalog.update_topic(TOPIC, config)?,
            Some(t) => t,
        };
        let log = topic
            .partition(0)
            .ok_or_else(|| cairn_storage::Error::PartitionNotFound { topic: TOPIC.into(), partition: 0 })?;
        let me = Idempotency { log: Some(log.clone()), ..Self::in_memory(window, clock) };
        me.load(&log);
        Ok(me)
    }

    fn load(&self, log: &PartitionLog) {
        let oldest = (self.clock)().saturating_sub(self.window_ms);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut offset = log.start_offset();
        while offset < log.end_offset() {
            let read = match log.read(offset, LOAD_READ_BYTES) {
                Ok(r) if !r.batches.is_empty() => r,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!("idempotency window: stopped loading at offset {offset}: {e}");
                    break;
                }
            };
            for b in &read.batches {
                if b.header.max_timestamp < oldest {
                    continue;
                }
                let Ok(decoded) = DecodedBatch::trusting_crc(&b.bytes, b.header) else { continue };
                for r in decoded.records().flatten() {
                    let Some(rec) = r.value.and_then(|v| serde_json::from_slice::<DedupRecord>(v).ok()) else {
                        continue;
                    };
                    if r.timestamp >= oldest {
                        slots.insert(
                            (rec.topic, rec.key),
                            Slot::Done { offsets: rec.offsets.into(), at_ms: r.timestamp },
                        );
                    }
                }
            }
            offset = read.next_offset;
        }
        tracing::info!(entries = slots.len(), "idempotency window loaded");
    }

    fn fresh(&self, at_ms: i64) -> bool {
        at_ms.saturating_add(self.window_ms) > (self.clock)()
    }

    /// Claims `key` on `topic`: a duplicate within the window, or ownership. Waits while
    /// another request holds the same key.
    pub async fn claim(&self, topic: &str, key: &str) -> Claim {
        let slot_key = (topic.to_string(), key.to_string());
        loop {
            let mut wait = {
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                match slots.get(&slot_key) {
                    Some(Slot::Done { offsets, at_ms }) if self.fresh(*at_ms) => {
                        return Claim::Duplicate(Arc::clone(offsets))
                    }
                    Some(Slot::Pending(rx)) => rx.clone(),
                    _ => {
                        let (tx, rx) = watch::channel(());
                        slots.insert(slot_key.clone(), Slot::Pending(rx));
                        return Claim::Owner(ClaimGuard { slots: Arc::clone(&self.slots), key: slot_key, _done: tx });
                    }
                }
            };
            // Completes when the owner finishes (its sender is dropped); then look again.
            let _ = wait.changed().await;
        }
    }

    /// Records a successful produce: durably (before the reply), then in memory. If the
    /// record cannot be written the entry is still kept in memory, and the failure logged.
    pub async fn complete(&self, guard: ClaimGuard, offsets: &[ProducedOffset]) {
        if let Some(log) = &self.log {
            if let Err(e) = append_record(log, &guard.key, offsets).await {
                tracing::warn!(topic = %guard.key.0, "idempotency record not persisted: {e}");
            }
        }
        let at_ms = (self.clock)();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.insert(guard.key.clone(), Slot::Done { offsets: offsets.into(), at_ms });
        if self.inserts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_INSERTS == PRUNE_EVERY_INSERTS - 1 {
            slots.retain(|_, s| match s {
                Slot::Done { at_ms, .. } => self.fresh(*at_ms),
                Slot::Pending(_) => true,
            });
        }
        drop(slots);
        drop(guard);
    }

    /// Forgets the entries of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _), s| t != topic || matches!(s, Slot::Pending(_)));
    }
}

async fn append_record(log: &PartitionLog, key: &SlotKey, offsets: &[ProducedOffset]) -> ApiResult<()> {
    let record = DedupRecord { topic: key.0.clone(), key: key.1.clone(), offsets: offsets.to_vec() };
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    let record_key = format!("{}/{}", key.0, key.1);
    let mut b = BatchBuilder::new();
    b.push(Some(record_key.as_bytes()), Some(&value), []);
    let bytes = b.finish(0, 0).map_err(|e| ApiError::internal(e.to_string()))?;
    let (tx, rx) = oneshot::channel();
    log.append_async(
        bytes,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    match rx.await {
        Ok(r) => r.map(|_| ()).map_err(ApiError::from),
        Err(_) => Err(ApiError::internal("append dropped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_storage::system_clock;

    fn offsets(o: u64) -> Vec<ProducedOffset> {
        vec![ProducedOffset { partition: 0, offset: o, timestamp: 1 }]
    }

    #[test]
    fn keys_are_short_visible_ascii() {
        for ok in ["k", "order-1001", "!~", &"x".repeat(KEY_BYTES_MAX)] {
            assert!(check_key(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a b", "a\tb", " ", "a\u{7f}", "\u{1}", "é", &"x".repeat(KEY_BYTES_MAX + 1)] {
            let e = check_key(bad).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad:?}");
            assert!(e.message.contains("Idempotency-Key"), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn second_claim_is_a_duplicate() {
        let idem = Idempotency::in_memory(Duration::from_secs(60), system_clock());
        let Claim::Owner(g) = idem.claim("t", "k").await else { panic!("expected ownership") };
        idem.complete(g, &offsets(7)).await;
        match idem.claim("t", "k").await {
            Claim::Duplicate(o) => assert_eq!(o[0].offset, 7),
            Claim::Owner(_) => panic!("expected a duplicate"),
        }
        // Scoped by topic.
        assert!(matches!(idem.claim("other", "k").await, Claim::Owner(_)));
    }

    #[tokio::test]
    async fn failed_owner_frees_the_key_and_waiters_proceed() {
        let idem = Arc::new(Idempotency::in_memory(Duration::from_secs(60), system_clock()));
        let Claim::Owner(g) = idem.claim("t", "k").await else { panic!() };
        let waiter = {
            let idem = Arc::clone(&idem);
            tokio::spawn(async move { matches!(idem.claim("t", "k").await, Claim::Owner(_)) })
        };
        tokio::task::yield_now().await;
        drop(g);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn expired_entries_are_ignored() {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(1_000_000));
        let clock: Clock = {
            let now = Arc::clone(&now);
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        let idem = Idempotency::in_memory(Duration::from_millis(100), clock);
        let Claim::Owner(g) = idem.claim("t", "k").await else { panic!() };
        idem.complete(g, &offsets(1)).await;
        now.fetch_add(101, Ordering::SeqCst);
        assert!(matches!(idem.claim("t", "k").await, Claim::Owner(_)));
    }

    #[tokio::test]
    async fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
            let idem = Idempotency::open(&catalog, Duration::from_secs(60), system_clock()).unwrap();
            let Claim::Owner(g) = idem.claim("t", "k").await else { panic!() };
            idem.complete(g, &offsets(41)).await;
            catalog.close().unwrap();
        }
        let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
        let idem = Idempotency::open(&catalog, Duration::from_secs(60), system_clock()).unwrap();
        match idem.claim("t", "k").await {
            Claim::Duplicate(o) => assert_eq!(o.to_vec(), offsets(41)),
            Claim::Owner(_) => panic!("the entry did not survive the restart"),
        }
        catalog.close().unwrap();
    }
}
