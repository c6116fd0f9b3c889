//! The group engine: every group's state in memory, the journal that makes it durable,
//! snapshots that bound the journal, and the cursor-style operations (config, commit,
//! offsets, reset, describe, delete). Queue-style operations live in `queue.rs`.
//!
//! Locking: one mutex per group. A change is applied in memory and its journal record is
//! queued for the next group commit inside that group's critical section (so journal order
//! equals change order); the caller then waits for the record to be durable, outside the
//! lock, before answering.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cairn_storage::{BatchBuilder, Catalog, CleanupPolicy, DecodedBatch, PartitionLog, SyncPolicy, Topic, TopicConfig};
use tokio::sync::{oneshot, Notify};

use super::config::{GroupConfig, StartAt};
use super::cursor::{Cursor, IN_FLIGHT_MAX_DEFAULT};
use super::error::GroupError;
use super::journal::{self, Entry, GroupState, Snapshot, JOURNAL_SEGMENT_BYTES, JOURNAL_TOPIC, SNAPSHOT_EVERY_RECORDS};
use super::reaper::{self, Reaper};
use super::view::{GroupSummary, GroupView, OffsetView, PartitionView, TopicView};

/// A journal append in flight: resolves once the record is durable.
pub(crate) type Durable = oneshot::Receiver<Result<(), cairn_storage::Error>>;

/// A group's state and its wake-up signal (nacks, acks, resets make messages eligible).
pub(crate) struct GroupEntry {
    pub state: Mutex<GroupState>,
    pub notify: Notify,
}

impl GroupEntry {
    pub fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The signal for new messages in one topic: (identity of the topic object, partitions with
/// a listener registered, the signal).
type TopicWaker = (usize, u32, Arc<Notify>);

/// One family of per-partition group metrics: name, type, help, value.
type MetricFamily = (&'static str, &'static str, &'static str, fn(&PartitionView) -> u64);

/// Where a reset moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(u64),
    Timestamp(i64),
}

/// Every consumer group of a data directory.
pub struct GroupEngine {
    pub(crate) catalog: Arc<Catalog>,
    data_dir: PathBuf,
    journal: PartitionLog,
    pub(crate) groups: RwLock<HashMap<String, Arc<GroupEntry>>>,
    records_since_snapshot: AtomicU64,
    snapshotting: Arc<AtomicBool>,
    /// Per topic: who to wake when it gets new messages.
    topic_wakers: Mutex<HashMap<String, TopicWaker>>,
    pub(crate) in_flight_max: u64,
    pub(crate) rotate: AtomicUsize,
    /// Self, for the snapshot thread.
    me: std::sync::Weak<GroupEngine>,
    /// Wakes the lease reaper thread when leases fall due.
    pub(crate) reaper: Arc<Reaper>,
}

fn storage_err(e: impl Into<cairn_storage::Error>) -> GroupError {
    GroupError::Storage(e.into())
}

impl GroupEngine {
    /// Opens the engine: loads the snapshot, replays the journal after it.
    pub fn open(catalog: Arc<Catalog>, data_dir: &Path) -> Result<Arc<Self>, GroupError> {
        let journal_topic = match catalog.topic(JOURNAL_TOPIC) {
            Some(t) => t,
            None => catalog.create_topic(
                JOURNAL_TOPIC,
                TopicConfig {
                    partitions: 1,
                    segment_bytes: JOURNAL_SEGMENT_BYTES,
                    retention_ms: None,
                    retention_bytes: None,
                    cleanup_policy: CleanupPolicy::Delete,
                    sync: SyncPolicy::Always,
                    ..TopicConfig::default()
                },
            )?,
        };
        let journal = journal_topic.partition(0).ok_or_else(|| GroupError::TopicNotFound(JOURNAL_TOPIC.into()))?;
        let snapshot = Snapshot::load(data_dir).map_err(GroupError::BadRequest)?;
        let (mut groups, from) = match snapshot {
            Some(s) => {
                let from = s.journal_offset;
                (s.into_groups(), from)
            }
            None => (BTreeMap::new(), 0),
        };
        let mut replayed = replay(&journal, from, &mut groups)?;
        replayed += reset_past_ends(&catalog, &journal, &mut groups)?;
        tracing::info!(groups = groups.len(), replayed, "consumer groups loaded");
        let groups = groups
            .into_iter()
            .map(|(name, state)| (name, Arc::new(GroupEntry { state: Mutex::new(state), notify: Notify::new() })))
            .collect();
        let reaper = Arc::new(Reaper::default());
        let engine = Arc::new_cyclic(|me| GroupEngine {
            me: me.clone(),
            catalog,
            data_dir: data_dir.to_path_buf(),
            journal,
            groups: RwLock::new(groups),
            records_since_snapshot: AtomicU64::new(replayed),
            snapshotting: Arc::new(AtomicBool::new(false)),
            topic_wakers: Mutex::new(HashMap::new()),
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
            rotate: AtomicUsize::new(0),
            reaper: Arc::clone(&reaper),
        });
        reaper::spawn(Arc::downgrade(&engine), reaper);
        Ok(engine)
    }

    /// The group, if it exists.
    pub(crate) fn get(&self, group: &str) -> Option<Arc<GroupEntry>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).get(group).cloned()
    }

    /// Every group, taken out of the map so each can be locked in turn without holding it.
    pub(crate) fn entries(&self) -> Vec<(String, Arc<GroupEntry>)> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
    }

    /// The group, created (in memory; it becomes durable with its first record) if new.
    pub(crate) fn get_or_create(&self, group: &str) -> Arc<GroupEntry> {
        if let Some(g) = self.get(group) {
            return g;
        }
        let mut map = self.groups.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(group.to_string()).or_insert_with(|| {
            Arc::new(GroupEntry { state: Mutex::new(GroupState::default()), notify: Notify::new() })
        }))
    }

    pub(crate) fn topic(&self, topic: &str) -> Result<Arc<Topic>, GroupError> {
        match self.catalog.topic(topic) {
            Some(t) if !topic.starts_with("__") => Ok(t),
            _ => Err(GroupError::TopicNotFound(topic.to_string())),
        }
    }

    pub(crate) fn partition(&self, topic: &Topic, p: u32) -> Result<PartitionLog, GroupError> {
        topic
            .partition(p)
            .ok_or_else(|| GroupError::PartitionNotFound { topic: topic.name().to_string(), partition: p })
    }

    /// Queues `entry` to the journal. Call with the group's lock held; await the result
    /// after releasing it.
    pub(crate) fn record(&self, entry: &Entry) -> Durable {
        let (tx, rx) = oneshot::channel();
        match encode_record(entry) {
            Ok(bytes) => self.journal.append_async(
                bytes,
                Box::new(move |r| {
                    let _ = tx.send(r.map(drop));
                }),
            ),
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        if self.records_since_snapshot.fetch_add(1, Ordering::AcqRel) + 1 >= SNAPSHOT_EVERY_RECORDS {
            self.start_snapshot();
        }
        rx
    }

    /// Waits until queued journal records are durable.
    pub(crate) async fn durable(pending: Vec<Durable>) -> Result<(), GroupError> {
        for rx in pending {
            rx.await.map_err(|_| storage_err(cairn_storage::Error::Closed))?.map_err(storage_err)?;
        }
        Ok(())
    }

    /// As [`GroupEngine::durable`], from a blocking thread.
    pub(crate) fn durable_blocking(pending: Vec<Durable>) -> Result<(), GroupError> {
        for rx in pending {
            rx.blocking_recv().map_err(|_| storage_err(cairn_storage::Error::Closed))?.map_err(storage_err)?;
        }
        Ok(())
    }

    /// Starts a snapshot on a thread of its own (callers of `record` hold a group lock;
    /// the snapshot takes every group's lock in turn).
    fn start_snapshot(&self) {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.records_since_snapshot.store(0, Ordering::Release);
        let Some(me) = self.me.upgrade() else { return };
        let spawned = std::thread::Builder::new().name("cairn-groups-snapshot".into()).spawn(move || {
            match me.snapshot_now() {
                Ok(deleted) => tracing::debug!(segments = deleted, "groups snapshot written"),
                Err(e) => tracing::warn!("groups snapshot failed (the journal keeps everything): {e}"),
            }
            me.snapshotting.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.snapshotting.store(false, Ordering::Release);
        }
    }

    /// Writes a snapshot of every group and deletes the journal segments it covers.
    /// Returns how many segments were deleted.
    pub fn snapshot_now(&self) -> Result<usize, GroupError> {
        // Every record below `offset` is durable, so it was applied in memory before it was
        // queued: the state captured after this point contains it.
        let offset = self.journal.end_offset();
        let mut snap = Snapshot::new(offset);
        let entries = self.entries();
        for (name, entry) in &entries {
            let g = entry.lock();
            if Self::exists(&g) {
                snap.add_group(name, &g);
            }
        }
        snap.save(&self.data_dir)?;
        Ok(self.journal.delete_segments_before(offset)?.segments_deleted)
    }

    /// Journal size now (for tests and metrics).
    pub fn journal_bytes(&self) -> u64 {
        self.journal.size_bytes()
    }

    /// Signal fired whenever any partition of `topic` gets new messages.
    pub(crate) fn topic_notify(&self, topic: &Arc<Topic>) -> Arc<Notify> {
        let mut map = self.topic_wakers.lock().unwrap_or_else(|p| p.into_inner());
        let id = Arc::as_ptr(topic) as usize;
        let entry = map.entry(topic.name().to_string()).or_insert_with(|| (id, 0, Arc::new(Notify::new())));
        if entry.0 != id {
            *entry = (id, 0, Arc::new(Notify::new()));
        }
        let parts = topic.partitions();
        for part in parts.iter().skip(entry.1 as usize) {
            let n = Arc::clone(&entry.2);
            part.add_listener(Arc::new(move |_| n.notify_waiters()));
        }
        entry.1 = parts.len() as u32;
        Arc::clone(&entry.2)
    }

    /// Where a group without a cursor starts in `part`.
    pub(crate) fn start_position(cfg: &GroupConfig, part: &PartitionLog) -> u64 {
        match cfg.start {
            StartAt::Earliest => part.start_offset(),
            StartAt::Latest => part.end_offset(),
        }
    }

    /// The group's cursor in a partition, created (and journaled) at the start position.
    pub(crate) fn cursor<'a>(
        &self,
        g: &'a mut GroupState,
        group: &str,
        part: &PartitionLog,
        pending: &mut Vec<Durable>,
    ) -> &'a mut Cursor {
        let key = (part.topic().to_string(), part.partition());
        if !g.cursors.contains_key(&key) {
            let offset = Self::start_position(&g.config, part);
            let entry = Entry::Init { group: group.to_string(), topic: key.0.clone(), partition: key.1, offset };
            pending.push(self.record(&entry));
            g.apply(&entry);
        }
        g.cursors.entry(key).or_insert_with(|| Cursor::new(0))
    }

    // ---- cursor style ------------------------------------------------------------------

    /// `PUT /v1/groups/{group}`.
    pub async fn put_config(&self, group: &str, config: GroupConfig) -> Result<GroupConfig, GroupError> {
        config.validate()?;
        let entry = self.get_or_create(group);
        let pending = {
            let mut g = entry.lock();
            let e = Entry::Config { group: group.to_string(), config: config.clone() };
            g.apply(&e);
            vec![self.record(&e)]
        };
        Self::durable(pending).await?;
        Ok(config)
    }

    fn exists(g: &GroupState) -> bool {
        g.configured || !g.cursors.is_empty()
    }

    /// `GET /v1/groups`.
    pub fn list(&self) -> Vec<GroupSummary> {
        let entries = self.entries();
        let mut out: Vec<GroupSummary> = entries
            .into_iter()
            .filter_map(|(name, e)| {
                let g = e.lock();
                let mut topics: Vec<String> = g.cursors.keys().map(|(t, _)| t.clone()).collect();
                topics.dedup();
                Self::exists(&g).then(|| GroupSummary { name, config: g.config.clone(), topics })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `GET /v1/groups/{group}`.
    pub fn describe(&self, group: &str) -> Result<GroupView, GroupError> {
        let entry = self.get(group).ok_or_else(|| GroupError::GroupNotFound(group.to_string()))?;
        let g = entry.lock();
        if !Self::exists(&g) {
            return Err(GroupError::GroupNotFound(group.to_string()));
        }
        let mut topics: Vec<TopicView> = Vec::new();
        let mut flat = Vec::new();
        for (topic, p, part, cursor) in self.positions(&g) {
            let (committed, in_flight, dead_lettered, redeliveries) = match (cursor, &part) {
                (Some(c), _) => (c.committed(), c.in_flight(), c.dead_lettered, c.redeliveries),
                (None, Some(part)) => (Self::start_position(&g.config, part), 0, 0, 0),
                (None, None) => continue,
            };
            let end = part.as_ref().map_or(committed, PartitionLog::end_offset);
            let view = PartitionView {
                topic: topic.to_string(),
                partition: p,
                committed,
                end_offset: end,
                lag: end.saturating_sub(committed),
                in_flight,
                dead_lettered,
                redeliveries,
            };
            match topics.last_mut() {
                Some(t) if t.topic == topic => t.partitions.push(view.clone()),
                _ => topics.push(TopicView { topic: topic.to_string(), partitions: vec![view.clone()] }),
            }
            flat.push(view);
        }
        Ok(GroupView { name: group.to_string(), config: g.config.clone(), topics, partitions: flat })
    }

    /// Every partition of every topic the group has a position in, in (topic, partition)
    /// order: each with its log (`None` if the topic is gone) and the group's cursor there
    /// (`None` for a partition the group has not touched yet, which it would start at its
    /// start position: a partition added later, or one it never committed or fetched in).
    /// So a description, and the lag in it, covers the whole topic, as `GET .../offsets?topic=`
    /// does, not only the partitions the group happened to touch.
    fn positions<'a>(&self, g: &'a GroupState) -> Vec<(&'a str, u32, Option<PartitionLog>, Option<&'a Cursor>)> {
        let mut out = Vec::new();
        let mut cursors = g.cursors.iter().peekable();
        while let Some(&(key, _)) = cursors.peek() {
            let topic: &'a str = key.0.as_str();
            let mut mine: BTreeMap<u32, &'a Cursor> = BTreeMap::new();
            while let Some(((_, p), c)) = cursors.next_if(|((t, _), _)| t == topic) {
                mine.insert(*p, c);
            }
            match self.catalog.topic(topic) {
                Some(t) => {
                    let parts = t.partitions();
                    let count = parts.len() as u64;
                    for part in parts {
                        let p = part.partition();
                        out.push((topic, p, Some(part), mine.get(&p).copied()));
                    }
                    // A cursor beyond the topic's partitions (not expected): shown as it is.
                    out.extend(
                        mine.range(u32::try_from(count).unwrap_or(u32::MAX)..)
                            .map(|(p, c)| (topic, *p, None, Some(*c))),
                    );
                }
                None => out.extend(mine.into_iter().map(|(p, c)| (topic, p, None, Some(c)))),
            }
        }
        out
    }

    /// `DELETE /v1/groups/{group}`.
    pub async fn delete(&self, group: &str) -> Result<(), GroupError> {
        let entry = self.get(group).ok_or_else(|| GroupError::GroupNotFound(group.to_string()))?;
        let pending = {
            let mut g = entry.lock();
            if !Self::exists(&g) {
                return Err(GroupError::GroupNotFound(group.to_string()));
            }
            *g = GroupState::default();
            self.groups.write().unwrap_or_else(|p| p.into_inner()).remove(group);
            vec![self.record(&Entry::Delete { group: group.to_string() })]
        };
        entry.notify.notify_waiters();
        Self::durable(pending).await
    }

    /// `topic` was deleted: every group forgets its positions, acks and leases there
    /// (durably), as Kafka drops the committed offsets of a deleted topic. A topic created
    /// again under the name is new to every group.
    pub async fn forget_topic(&self, topic: &str) -> Result<(), GroupError> {
        let mut pending = Vec::new();
        for (name, entry) in self.entries() {
            {
                let mut g = entry.lock();
                if !g.cursors.keys().any(|(t, _)| t == topic) {
                    continue;
                }
                let e = Entry::ForgetTopic { group: name, topic: topic.to_string() };
                g.apply(&e);
                pending.push(self.record(&e));
            }
            entry.notify.notify_waiters();
        }
        Self::durable(pending).await
    }

    /// `POST /v1/groups/{group}/offsets`: commits; durable before returning.
    pub async fn commit(&self, group: &str, topic: &str, offsets: &[(u32, u64)]) -> Result<(), GroupError> {
        let t = self.topic(topic)?;
        let mut parts = Vec::with_capacity(offsets.len());
        for &(p, off) in offsets {
            let part = self.partition(&t, p)?;
            let end = part.end_offset();
            if off > end {
                return Err(GroupError::OffsetOutOfRange { requested: off, start: part.start_offset(), end });
            }
            parts.push((part, off));
        }
        self.set_positions(group, &parts, false).await
    }

    /// Moves the group to `targets` (one journal record per partition: a reset, or a
    /// commit), waking its fetches, and waits until the change is durable.
    async fn set_positions(&self, group: &str, targets: &[(PartitionLog, u64)], reset: bool) -> Result<(), GroupError> {
        let entry = self.get_or_create(group);
        let mut pending = Vec::new();
        {
            let mut g = entry.lock();
            for (part, off) in targets {
                self.cursor(&mut g, group, part, &mut pending);
                let (group, topic, partition, offset) =
                    (group.to_string(), part.topic().to_string(), part.partition(), *off);
                let e = if reset {
                    Entry::Reset { group, topic, partition, offset }
                } else {
                    Entry::Commit { group, topic, partition, offset }
                };
                g.apply(&e);
                pending.push(self.record(&e));
            }
        }
        entry.notify.notify_waiters();
        Self::durable(pending).await
    }

    /// `GET /v1/groups/{group}/offsets[?topic=T]`.
    pub fn offsets(&self, group: &str, topic: Option<&str>) -> Result<Vec<OffsetView>, GroupError> {
        let entry = self.get(group).ok_or_else(|| GroupError::GroupNotFound(group.to_string()))?;
        let g = entry.lock();
        match topic {
            Some(name) => {
                let t = self.topic(name)?;
                Ok(t.partitions()
                    .iter()
                    .map(|part| match g.cursors.get(&(name.to_string(), part.partition())) {
                        Some(c) => offset_view(part, c.committed(), c.in_flight()),
                        None => offset_view(part, Self::start_position(&g.config, part), 0),
                    })
                    .collect())
            }
            None => {
                if !Self::exists(&g) {
                    return Err(GroupError::GroupNotFound(group.to_string()));
                }
                Ok(self
                    .positions(&g)
                    .into_iter()
                    .filter_map(|(_, _, part, cursor)| {
                        let part = part?;
                        Some(match cursor {
                            Some(c) => offset_view(&part, c.committed(), c.in_flight()),
                            None => offset_view(&part, Self::start_position(&g.config, &part), 0),
                        })
                    })
                    .collect())
            }
        }
    }

    /// The offset a read with `group=G` starts at.
    pub fn position(&self, group: &str, topic: &str, partition: u32) -> Result<u64, GroupError> {
        let entry = self.get(group).ok_or_else(|| GroupError::GroupNotFound(group.to_string()))?;
        let g = entry.lock();
        if !Self::exists(&g) {
            return Err(GroupError::GroupNotFound(group.to_string()));
        }
        let t = self.topic(topic)?;
        let part = self.partition(&t, partition)?;
        let committed = g
            .cursors
            .get(&(topic.to_string(), partition))
            .map_or_else(|| Self::start_position(&g.config, &part), Cursor::committed);
        Ok(committed.clamp(part.start_offset(), part.end_offset()))
    }

    /// `POST /v1/groups/{group}/reset`.
    pub async fn reset(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
        partitions: Option<&[u32]>,
    ) -> Result<Vec<OffsetView>, GroupError> {
        let t = self.topic(topic)?;
        let parts: Vec<PartitionLog> = match partitions {
            Some(ps) => ps.iter().map(|&p| self.partition(&t, p)).collect::<Result<_, _>>()?,
            None => t.partitions(),
        };
        let mut targets = Vec::with_capacity(parts.len());
        for part in &parts {
            let (start, end) = (part.start_offset(), part.end_offset());
            let off = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) if o >= start && o <= end => o,
                // Across all partitions an offset is a target, clamped into each one's range
                // (as Kafka's reset tool does); for partitions named explicitly it must fit.
                ResetTo::Offset(o) if partitions.is_none() => o.clamp(start, end),
                ResetTo::Offset(o) => return Err(GroupError::OffsetOutOfRange { requested: o, start, end }),
                ResetTo::Timestamp(ts) => part.offset_for_timestamp(ts).map_err(storage_err)?,
            };
            targets.push((part.clone(), off));
        }
        self.set_positions(group, &targets, true).await?;
        Ok(targets.iter().map(|(part, off)| offset_view(part, *off, 0)).collect())
    }

    /// Prometheus lines for every group and partition.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let mut rows = Vec::new();
        for s in self.list() {
            if let Ok(v) = self.describe(&s.name) {
                rows.extend(v.partitions.into_iter().map(|p| (s.name.clone(), p)));
            }
        }
        let families: [MetricFamily; 5] = [
            ("cairn_group_committed_offset", "gauge", "Committed offset per group and partition.", |p| p.committed),
            ("cairn_group_lag", "gauge", "End offset minus committed offset.", |p| p.lag),
            ("cairn_group_in_flight", "gauge", "Messages leased and not yet done.", |p| p.in_flight as u64),
            ("cairn_group_redeliveries_total", "counter", "Messages delivered again since start.", |p| p.redeliveries),
            ("cairn_group_dead_lettered_total", "counter", "Messages dead-lettered since start.", |p| p.dead_lettered),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (group, p) in &rows {
                let _ = writeln!(
                    out,
                    "{name}{{group=\"{group}\",topic=\"{}\",partition=\"{}\"}} {}",
                    p.topic,
                    p.partition,
                    get(p)
                );
            }
        }
    }
}

fn offset_view(part: &PartitionLog, committed: u64, in_flight: usize) -> OffsetView {
    let end = part.end_offset();
    OffsetView {
        topic: part.topic().to_string(),
        partition: part.partition(),
        offset: committed,
        end_offset: end,
        lag: end.saturating_sub(committed),
        in_flight,
    }
}

/// A journal record's batch: the entry as JSON, keyed by its group.
fn encode_record(entry: &Entry) -> Result<Vec<u8>, cairn_storage::Error> {
    let value = serde_json::to_vec(entry).map_err(|e| cairn_storage::Error::InvalidConfig(e.to_string()))?;
    let mut b = BatchBuilder::new();
    b.push(Some(entry.group().as_bytes()), Some(&value), []);
    b.finish(0, 0).map_err(cairn_storage::Error::from)
}

/// Resets (durably, one `Reset` record each) the cursors that refer to offsets their
/// partition no longer has: the log was cut shorter than the group had got (a power loss
/// under `sync: interval`, bit rot quarantined from the active segment, an older data
/// directory restored). Kafka resets such an out-of-range committed offset the same way;
/// left alone, the group would skip every message appended below its old position. The new
/// position is the committed offset, or the end when that is beyond it; acks above it are
/// forgotten (their messages may be delivered again: at least once). Returns how many.
fn reset_past_ends(
    catalog: &Catalog,
    journal: &PartitionLog,
    groups: &mut BTreeMap<String, GroupState>,
) -> Result<u64, GroupError> {
    let mut resets = Vec::new();
    for (group, g) in groups.iter() {
        for ((topic, partition), cursor) in &g.cursors {
            let Some(part) = catalog.topic(topic).and_then(|t| t.partition(*partition)) else { continue };
            let end = part.end_offset();
            if cursor.reaches_past(end) {
                let offset = cursor.committed().min(end);
                tracing::warn!(
                    group = %group, topic = %topic, partition, committed = cursor.committed(), end,
                    "the group's position is past the end of the partition (its log was cut): reset to {offset}"
                );
                let (group, topic, partition) = (group.clone(), topic.clone(), *partition);
                resets.push(Entry::Reset { group, topic, partition, offset });
            }
        }
    }
    for entry in &resets {
        journal.append(encode_record(entry)?).map_err(storage_err)?;
        journal::apply(groups, entry);
    }
    Ok(resets.len() as u64)
}

/// Applies journal records from `from` to the end; returns how many.
fn replay(journal: &PartitionLog, from: u64, groups: &mut BTreeMap<String, GroupState>) -> Result<u64, GroupError> {
    let mut next = from.max(journal.start_offset());
    if from < journal.start_offset() && from > 0 {
        tracing::warn!(from, start = journal.start_offset(), "group journal starts after the snapshot point");
    }
    let mut count = 0;
    while next < journal.end_offset() {
        let read = journal.read(next, 1 << 20)?;
        if read.batches.is_empty() {
            break;
        }
        for b in &read.batches {
            let d = DecodedBatch::new(&b.bytes).map_err(storage_err)?;
            for r in d.records() {
                let r = r.map_err(storage_err)?;
                if r.offset < next {
                    continue;
                }
                let entry: Entry = serde_json::from_slice(r.value.unwrap_or_default()).map_err(|e| {
                    storage_err(cairn_storage::Error::Corruption {
                        file: b.file.to_path_buf(),
                        position: b.position,
                        reason: format!("unreadable group journal record at offset {}: {e}", r.offset),
                    })
                })?;
                journal::apply(groups, &entry);
                count += 1;
            }
        }
        next = read.next_offset;
    }
    Ok(count)
}
