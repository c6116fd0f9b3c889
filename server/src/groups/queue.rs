//! Queue-style (lease) operations: fetch, ack, nack, extend, reject, and dead-lettering.
//!
//! A fetch walks the topic's partitions round-robin from a rotating start (fair across
//! partitions), and in each partition hands out redeliveries first, then new messages in
//! offset order (oldest first). Long-polling waits on three signals — new messages in the
//! topic, the group's own changes (nacks, acks, resets) and the next lease expiry or nack
//! delay — never on a sleep loop — and answers at once, with what it has, when the server
//! starts shutting down (as read long-polls do) or when its group is deleted (without
//! bringing the group back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_storage::{BatchBuilder, DecodedBatch, PartitionLog, Record, Topic, TopicConfig};

use super::config::check_ack_timeout;
use super::cursor::Cursor;
use super::engine::{Durable, GroupEngine, GroupEntry};
use super::error::GroupError;
use super::journal::{Entry, GroupState};
use super::view::Delivered;
use crate::shutdown::Shutdown;

/// Bytes read from a partition per step while looking for new messages.
const FETCH_READ_BYTES: usize = 256 * 1024;

/// A fetch request's knobs (already bounded by the HTTP layer).
#[derive(Debug, Clone)]
pub struct FetchParams {
    pub max_messages: usize,
    pub wait: Duration,
    pub ack_timeout_ms: Option<u64>,
    pub consumer: Option<String>,
    /// Ends the long-poll early (with what the fetch has, usually nothing) once triggered.
    pub shutdown: Option<Shutdown>,
}

/// A message named by an ack, nack, extend or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub partition: u32,
    pub offset: u64,
    /// nack only: redeliver after this long.
    pub delay_ms: Option<u64>,
    /// The delivery this request is about (the fetch's `delivery`). When given, a nack,
    /// extend or reject acts only if that delivery still holds the lease, so a worker whose
    /// lease expired cannot release, extend or dead-letter the next holder's message. Acks
    /// are always taken: the work was done.
    pub delivery: Option<u32>,
}

impl MessageRef {
    /// Whether this request may act on the message's current lease in `cursor`.
    fn holds(&self, cursor: &Cursor) -> bool {
        self.delivery.is_none_or(|d| cursor.lease(self.offset).is_some_and(|l| l.delivery == d))
    }
}

/// A message to append to a dead-letter topic.
struct DeadJob {
    part: PartitionLog,
    offset: u64,
    deliveries: u32,
    reason: String,
}

impl DeadJob {
    /// A message whose lease expired after its `deliveries`-th delivery, `max` being the
    /// group's `max_deliveries` (found by a fetch or by the reaper).
    fn lease_expired(part: &PartitionLog, offset: u64, deliveries: u32, max: u32) -> Self {
        let reason = format!("lease expired after {deliveries} deliveries (max_deliveries {max})");
        DeadJob { part: part.clone(), offset, deliveries, reason }
    }
}

/// Completes once `shutdown` fires; never without one.
async fn shutting_down(shutdown: Option<&Shutdown>) {
    match shutdown {
        Some(s) => s.wait().await,
        None => std::future::pending().await,
    }
}

struct FetchOutcome {
    delivered: Vec<Delivered>,
    dead: Vec<DeadJob>,
    pending: Vec<Durable>,
    next_due: Option<Instant>,
}

impl GroupEngine {
    /// `POST /v1/groups/{group}/topics/{topic}/fetch`.
    pub async fn fetch(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        params: FetchParams,
    ) -> Result<Vec<Delivered>, GroupError> {
        if let Some(ms) = params.ack_timeout_ms {
            check_ack_timeout(ms).map_err(GroupError::BadRequest)?;
        }
        let t = self.topic(topic)?;
        let entry = self.get_or_create(group);
        let topic_notify = self.topic_notify(&t);
        let deadline = tokio::time::Instant::now() + params.wait;
        loop {
            // Deleted (or deleted and created again) while this fetch waited: its files are gone.
            if !self.catalog.topic(topic).is_some_and(|current| Arc::ptr_eq(&current, &t)) {
                return Err(GroupError::TopicNotFound(topic.to_string()));
            }
            let new_messages = topic_notify.notified();
            let group_change = entry.notify.notified();
            tokio::pin!(new_messages, group_change);
            new_messages.as_mut().enable();
            group_change.as_mut().enable();
            let (me, e, g, tt, p) =
                (Arc::clone(self), Arc::clone(&entry), group.to_string(), Arc::clone(&t), params.clone());
            let Some(outcome) = tokio::task::spawn_blocking(move || me.fetch_once(&e, &g, &tt, &p))
                .await
                .map_err(|e| GroupError::BadRequest(format!("fetch task failed: {e}")))??
            else {
                // The group was deleted while this fetch waited: answer (empty) rather than
                // bring the group back.
                return Ok(Vec::new());
            };
            let got = !outcome.delivered.is_empty();
            if !outcome.dead.is_empty() {
                let (me, g) = (Arc::clone(self), group.to_string());
                let dead = outcome.dead;
                tokio::task::spawn_blocking(move || me.dead_letter(&g, dead))
                    .await
                    .map_err(|e| GroupError::BadRequest(format!("dead-letter task failed: {e}")))??;
            }
            Self::durable(outcome.pending).await?;
            let now = tokio::time::Instant::now();
            let stopping = params.shutdown.as_ref().is_some_and(Shutdown::is_triggered);
            if got || now >= deadline || stopping {
                return Ok(outcome.delivered);
            }
            let wake_at = outcome.next_due.map_or(deadline, |d| deadline.min(tokio::time::Instant::from_std(d)));
            tokio::select! {
                _ = &mut new_messages => {}
                _ = &mut group_change => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = shutting_down(params.shutdown.as_ref()) => {}
            }
        }
    }

    /// One non-waiting pass of a fetch (runs on a blocking thread: it reads the log).
    /// `None` if `entry` is no longer the group's (deleted since the fetch began); checked
    /// under the group's lock, which `delete` holds while it removes the group.
    fn fetch_once(
        &self,
        entry: &Arc<GroupEntry>,
        group: &str,
        topic: &Arc<Topic>,
        params: &FetchParams,
    ) -> Result<Option<FetchOutcome>, GroupError> {
        let mut g = entry.lock();
        if !self.get(group).is_some_and(|current| Arc::ptr_eq(&current, entry)) {
            return Ok(None);
        }
        let now = Instant::now();
        let timeout = Duration::from_millis(params.ack_timeout_ms.unwrap_or(g.config.ack_timeout_ms));
        let parts = topic.partitions();
        let mut out = FetchOutcome { delivered: Vec::new(), dead: Vec::new(), pending: Vec::new(), next_due: None };
        let n = parts.len().max(1);
        let first = self.rotate.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        let quota = params.max_messages.div_ceil(n).max(1);
        for pass in 0..2 {
            for i in 0..parts.len() {
                let remaining = params.max_messages - out.delivered.len();
                if remaining == 0 {
                    break;
                }
                let take = if pass == 0 { quota.min(remaining) } else { remaining };
                let part = &parts[(first + i) % n];
                self.fetch_partition(&mut g, group, part, take, now + timeout, params.consumer.as_deref(), &mut out)?;
            }
        }
        out.next_due = g.cursors.values().filter_map(Cursor::next_due).min();
        if let Some(due) = out.next_due {
            self.reaper.due_at(due);
        }
        Ok(Some(out))
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_partition(
        &self,
        g: &mut GroupState,
        group: &str,
        part: &PartitionLog,
        take: usize,
        deadline: Instant,
        consumer: Option<&str>,
        out: &mut FetchOutcome,
    ) -> Result<(), GroupError> {
        let cfg = g.config.clone();
        let cursor = self.cursor(g, group, part, &mut out.pending);
        let expired = cursor.expire(Instant::now(), cfg.max_deliveries);
        for (offset, n) in expired.dead {
            out.dead.push(DeadJob::lease_expired(part, offset, n, cfg.max_deliveries));
        }
        let mut taken = 0;
        for off in cursor.take_redeliveries(take, cfg.ordered) {
            match read_one(part, off)? {
                Some(mut d) => {
                    d.delivery = cursor.lease_to(off, consumer, deadline);
                    out.delivered.push(d);
                    taken += 1;
                }
                None => {
                    cursor.ack([off]);
                }
            }
        }
        let mut allowance = cursor.new_allowance(take - taken, cfg.ordered, self.in_flight_max);
        if allowance == 0 {
            return Ok(());
        }
        cursor.skip_to(part.start_offset());
        while allowance > 0 && cursor.next_new() < part.end_offset() {
            let from = cursor.next_new();
            let read = part.read(from, FETCH_READ_BYTES)?;
            if read.batches.is_empty() {
                break;
            }
            'batches: for b in &read.batches {
                let d = DecodedBatch::trusting_crc(&b.bytes, b.header).map_err(cairn_storage::Error::from)?;
                for r in d.records() {
                    let r = r.map_err(cairn_storage::Error::from)?;
                    if r.offset < from {
                        continue;
                    }
                    if cursor.observe_new(r.offset) {
                        let mut msg = delivered(part.partition(), &r);
                        msg.delivery = cursor.lease_to(r.offset, consumer, deadline);
                        out.delivered.push(msg);
                        allowance -= 1;
                        if allowance == 0 {
                            break 'batches;
                        }
                    }
                }
            }
            if cursor.next_new() == from {
                cursor.skip_to(read.next_offset);
            }
        }
        Ok(())
    }

    /// Validates refs against the topic and groups them with their partitions.
    fn resolve(&self, topic: &Topic, refs: &[MessageRef]) -> Result<Vec<(PartitionLog, MessageRef)>, GroupError> {
        refs.iter()
            .map(|r| {
                let part = self.partition(topic, r.partition)?;
                let end = part.end_offset();
                if r.offset >= end {
                    return Err(GroupError::OffsetOutOfRange { requested: r.offset, start: part.start_offset(), end });
                }
                Ok((part, *r))
            })
            .collect()
    }

    /// `POST .../ack`: the messages are done; durable before returning.
    pub async fn ack(&self, group: &str, topic: &str, refs: &[MessageRef]) -> Result<(), GroupError> {
        let t = self.topic(topic)?;
        let resolved = self.resolve(&t, refs)?;
        let entry = self.get_or_create(group);
        let mut pending = Vec::new();
        {
            let mut g = entry.lock();
            for part in t.partitions() {
                let offsets: Vec<u64> =
                    resolved.iter().filter(|(p, _)| p.partition() == part.partition()).map(|(_, r)| r.offset).collect();
                if offsets.is_empty() {
                    continue;
                }
                let cursor = self.cursor(&mut g, group, &part, &mut pending);
                if cursor.ack(offsets.iter().copied()) {
                    let e = Entry::Ack {
                        group: group.to_string(),
                        topic: topic.to_string(),
                        partition: part.partition(),
                        offsets,
                        committed: cursor.committed(),
                    };
                    pending.push(self.record(&e));
                }
            }
        }
        entry.notify.notify_waiters();
        Self::durable(pending).await
    }

    /// `POST .../nack`: release for redelivery (after each message's delay). Messages out
    /// of deliveries are dead-lettered instead.
    pub async fn nack(self: &Arc<Self>, group: &str, topic: &str, refs: &[MessageRef]) -> Result<(), GroupError> {
        let t = self.topic(topic)?;
        let resolved = self.resolve(&t, refs)?;
        let entry = self.get_or_create(group);
        let mut dead = Vec::new();
        let mut pending = Vec::new();
        {
            let mut g = entry.lock();
            let max = g.config.max_deliveries;
            let now = Instant::now();
            for (part, r) in &resolved {
                let cursor = self.cursor(&mut g, group, part, &mut pending);
                if !r.holds(cursor) {
                    continue;
                }
                if let Some(n) = cursor.nack(r.offset, r.delay_ms.map(Duration::from_millis), now, max) {
                    let reason = format!("nacked after {n} deliveries (max_deliveries {max})");
                    dead.push(DeadJob { part: part.clone(), offset: r.offset, deliveries: n, reason });
                }
            }
        }
        entry.notify.notify_waiters();
        Self::durable(pending).await?;
        self.dead_letter_async(group, dead).await
    }

    /// `POST .../extend`: leases run `ack_timeout_ms` from now.
    pub async fn extend(
        &self,
        group: &str,
        topic: &str,
        refs: &[MessageRef],
        ack_timeout_ms: Option<u64>,
    ) -> Result<(), GroupError> {
        let t = self.topic(topic)?;
        let resolved = self.resolve(&t, refs)?;
        let entry = self.get_or_create(group);
        let mut g = entry.lock();
        let ms = ack_timeout_ms.unwrap_or(g.config.ack_timeout_ms);
        check_ack_timeout(ms).map_err(GroupError::BadRequest)?;
        let deadline = Instant::now() + Duration::from_millis(ms);
        for (part, r) in &resolved {
            if let Some(c) = g.cursors.get_mut(&(topic.to_string(), part.partition())) {
                if r.holds(c) {
                    c.extend(r.offset, deadline);
                }
            }
        }
        Ok(())
    }

    /// `POST .../reject`: dead-letter now with `reason`.
    pub async fn reject(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        refs: &[MessageRef],
        reason: Option<&str>,
    ) -> Result<(), GroupError> {
        let t = self.topic(topic)?;
        let resolved = self.resolve(&t, refs)?;
        let entry = self.get_or_create(group);
        let mut dead = Vec::new();
        let mut pending = Vec::new();
        {
            let mut g = entry.lock();
            for (part, r) in &resolved {
                let cursor = self.cursor(&mut g, group, part, &mut pending);
                let n = cursor.deliveries(r.offset);
                if r.holds(cursor) && cursor.start_dead_letter(r.offset) {
                    let reason = reason.unwrap_or("rejected").to_string();
                    dead.push(DeadJob { part: part.clone(), offset: r.offset, deliveries: n, reason });
                }
            }
        }
        Self::durable(pending).await?;
        self.dead_letter_async(group, dead).await
    }

    /// Ends every lease and nack delay due at `now` in every group (the reaper's run):
    /// expired messages become eligible again, and those out of deliveries are
    /// dead-lettered, as a fetch would do. Tells the reaper when the next ones fall due.
    pub(crate) fn reap(&self, now: Instant) {
        for (name, entry) in self.entries() {
            let mut dead = Vec::new();
            let mut released = false;
            let next_due = {
                let mut g = entry.lock();
                let max = g.config.max_deliveries;
                for ((topic, partition), cursor) in g.cursors.iter_mut() {
                    if cursor.next_due().is_none_or(|d| d > now) {
                        continue;
                    }
                    released = true;
                    let expired = cursor.expire(now, max);
                    let part = self.catalog.topic(topic).and_then(|t| t.partition(*partition));
                    for (offset, n) in expired.dead {
                        match &part {
                            Some(part) => dead.push(DeadJob::lease_expired(part, offset, n, max)),
                            // The topic went away: nothing to dead-letter.
                            None => cursor.dead_letter_failed(offset),
                        }
                    }
                }
                g.cursors.values().filter_map(Cursor::next_due).min()
            };
            if let Some(due) = next_due {
                self.reaper.due_at(due);
            }
            if released {
                // Waiting fetches of this group may now take the released messages.
                entry.notify.notify_waiters();
            }
            if dead.is_empty() || !self.get(&name).is_some_and(|current| Arc::ptr_eq(&current, &entry)) {
                continue;
            }
            if let Err(e) = self.dead_letter(&name, dead) {
                tracing::warn!(group = %name, "dead-lettering expired leases failed (they are delivered again): {e}");
            }
        }
    }

    async fn dead_letter_async(self: &Arc<Self>, group: &str, dead: Vec<DeadJob>) -> Result<(), GroupError> {
        if dead.is_empty() {
            return Ok(());
        }
        let (me, g) = (Arc::clone(self), group.to_string());
        tokio::task::spawn_blocking(move || me.dead_letter(&g, dead))
            .await
            .map_err(|e| GroupError::BadRequest(format!("dead-letter task failed: {e}")))?
    }

    /// Appends each message to its dead-letter topic (durably), then marks it done in the
    /// group (durably). A failed append puts the message back for redelivery.
    fn dead_letter(&self, group: &str, jobs: Vec<DeadJob>) -> Result<(), GroupError> {
        let entry = self.get_or_create(group);
        let mut first_error = None;
        for job in jobs {
            let dlq_name = entry.lock().config.dead_letter_topic_for(job.part.topic());
            let appended = self.append_dead_letter(&dlq_name, &job);
            let mut g = entry.lock();
            let Some(cursor) = g.cursors.get_mut(&(job.part.topic().to_string(), job.part.partition())) else {
                continue;
            };
            match appended {
                Ok(()) => {
                    if cursor.dead_lettered_done(job.offset) {
                        let e = Entry::Ack {
                            group: group.to_string(),
                            topic: job.part.topic().to_string(),
                            partition: job.part.partition(),
                            offsets: vec![job.offset],
                            committed: cursor.committed(),
                        };
                        let rx = self.record(&e);
                        drop(g);
                        if let Err(e) = Self::durable_blocking(vec![rx]) {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(group, topic = job.part.topic(), offset = job.offset, "dead-lettering failed: {e}");
                    cursor.dead_letter_failed(job.offset);
                    first_error.get_or_insert(e);
                }
            }
        }
        entry.notify.notify_waiters();
        first_error.map_or(Ok(()), Err)
    }

    fn append_dead_letter(&self, dlq_name: &str, job: &DeadJob) -> Result<(), GroupError> {
        let Some(msg) = read_one(&job.part, job.offset)? else { return Ok(()) };
        let dlq = match self.catalog.topic(dlq_name) {
            Some(t) => t,
            None => match self.catalog.create_topic(dlq_name, TopicConfig::default()) {
                Ok(t) => t,
                Err(cairn_storage::Error::TopicExists(_)) => self.topic(dlq_name)?,
                Err(e) => return Err(e.into()),
            },
        };
        let part = self.partition(&dlq, job.part.partition() % dlq.partition_count().max(1))?;
        let origin = [
            ("cairn-origin-topic", job.part.topic().to_string()),
            ("cairn-origin-partition", job.part.partition().to_string()),
            ("cairn-origin-offset", job.offset.to_string()),
            ("cairn-deliveries", job.deliveries.to_string()),
            ("cairn-reason", job.reason.clone()),
        ];
        let mut headers: Vec<(&str, &[u8])> = msg
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("cairn-"))
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        headers.extend(origin.iter().map(|(k, v)| (*k, v.as_bytes())));
        let mut b = BatchBuilder::with_codec(dlq.config().codec());
        b.push(msg.key.as_deref(), msg.value.as_deref(), headers.iter().copied());
        let bytes = b.finish(0, 0).map_err(cairn_storage::Error::from)?;
        part.append(bytes)?;
        Ok(())
    }
}

fn delivered(partition: u32, r: &Record<'_>) -> Delivered {
    Delivered {
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.map(Bytes::copy_from_slice),
        value: r.value.map(Bytes::copy_from_slice),
        headers: r.headers.iter().map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v))).collect(),
        delivery: 0,
    }
}

/// The message at exactly `offset`, if it still exists.
fn read_one(part: &PartitionLog, offset: u64) -> Result<Option<Delivered>, GroupError> {
    if offset < part.start_offset() || offset >= part.end_offset() {
        return Ok(None);
    }
    let read = part.read(offset, 1)?;
    for b in &read.batches {
        let d = DecodedBatch::trusting_crc(&b.bytes, b.header).map_err(cairn_storage::Error::from)?;
        for r in d.records() {
            let r = r.map_err(cairn_storage::Error::from)?;
            if r.offset == offset {
                return Ok(Some(delivered(part.partition(), &r)));
            }
            if r.offset > offset {
                return Ok(None);
            }
        }
    }
    Ok(None)
}
