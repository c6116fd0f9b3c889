//! The durable side of consumer groups: the journal records kept in the internal
//! `__groups` topic, the state they rebuild, and the snapshot file that bounds them.
//!
//! Every change to a group's durable state (config, a cursor's first position, acks,
//! commits, resets, deletion) is one JSON record in `__groups`, appended (and synced) before
//! the request that made it is answered. Records are applied to memory first and queued in
//! the same critical section, so the journal's order is the order of the changes.
//!
//! Bounding the journal: every [`SNAPSHOT_EVERY_RECORDS`] records the whole state is written
//! to `groups.snapshot` in the data directory (temp file, fsync, rename) together with the
//! journal offset `X` it was taken at (every record below `X` is in it), and the journal's
//! segments below `X` are deleted. Records at or above `X` may also be in the snapshot;
//! replaying them again is harmless because every record is idempotent on top of a state
//! that already contains it (acks are set inserts, commits and resets are assignments).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::GroupConfig;
use super::cursor::Cursor;

/// Name of the internal topic holding the journal.
pub const JOURNAL_TOPIC: &str = "__groups";
/// Name of the snapshot file in the data directory.
pub const SNAPSHOT_FILE: &str = "groups.snapshot";
/// A snapshot is taken after this many journal records.
pub const SNAPSHOT_EVERY_RECORDS: u64 = 4096;
/// Segment size of the journal topic (small, so snapshots free space quickly).
pub const JOURNAL_SEGMENT_BYTES: u64 = 1024 * 1024;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// The group's config was set (`PUT /v1/groups/{group}`).
    Config { group: String, config: GroupConfig },
    /// The group started consuming a partition at `offset`.
    Init { group: String, topic: String, partition: u32, offset: u64 },
    /// Offsets are done (acked or dead-lettered); committed is at least `committed`.
    Ack { group: String, topic: String, partition: u32, offsets: Vec<u64>, committed: u64 },
    /// Cursor-style commit.
    Commit { group: String, topic: String, partition: u32, offset: u64 },
    /// Replay from `offset`: acks above it are forgotten.
    Reset { group: String, topic: String, partition: u32, offset: u64 },
    /// The group was deleted.
    Delete { group: String },
    /// `topic` was deleted: the group's cursors in it are dropped (a topic created again
    /// under the name starts from the group's `start`, not from the old topic's offsets).
    ForgetTopic { group: String, topic: String },
}

impl Entry {
    pub fn group(&self) -> &str {
        match self {
            Entry::Config { group, .. }
            | Entry::Init { group, .. }
            | Entry::Ack { group, .. }
            | Entry::Commit { group, .. }
            | Entry::Reset { group, .. }
            | Entry::Delete { group }
            | Entry::ForgetTopic { group, .. } => group,
        }
    }
}

/// A group as kept in memory.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub config: GroupConfig,
    /// Set by `PUT`, and when a deleted topic takes cursors away; a group is also known
    /// once it has a cursor.
    pub configured: bool,
    pub cursors: BTreeMap<(String, u32), Cursor>,
}

impl GroupState {
    /// Applies a record to this group (not `Delete`, which removes the group).
    pub fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Config { config, .. } => {
                self.config = config.clone();
                self.configured = true;
            }
            Entry::Init { topic, partition, offset, .. } => {
                self.cursors.entry((topic.clone(), *partition)).or_insert_with(|| Cursor::new(*offset));
            }
            Entry::Ack { topic, partition, offsets, committed, .. } => {
                self.cursor_mut(topic, *partition, *committed).restore_ack(offsets, *committed);
            }
            Entry::Commit { topic, partition, offset, .. } => {
                self.cursor_mut(topic, *partition, *offset).commit(*offset)
            }
            Entry::Reset { topic, partition, offset, .. } => self.cursor_mut(topic, *partition, *offset).reset(*offset),
            Entry::ForgetTopic { topic, .. } => {
                self.cursors.retain(|(t, _), _| t != topic);
                // The group was in use: it stays known with no cursor left.
                self.configured = true;
            }
            Entry::Delete { .. } => {}
        }
    }

    fn cursor_mut(&mut self, topic: &str, partition: u32, default: u64) -> &mut Cursor {
        self.cursors.entry((topic.to_string(), partition)).or_insert_with(|| Cursor::new(default))
    }
}

/// Applies one record to the whole state.
pub fn apply(groups: &mut BTreeMap<String, GroupState>, entry: &Entry) {
    match entry {
        Entry::Delete { group } => {
            groups.remove(group);
        }
        other => groups.entry(other.group().to_string()).or_default().apply(other),
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotCursor {
    topic: String,
    partition: u32,
    committed: u64,
    acked: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotGroup {
    config: GroupConfig,
    configured: bool,
    cursors: Vec<SnapshotCursor>,
}

/// The snapshot file's content.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    /// Every journal record below this offset is reflected.
    pub journal_offset: u64,
    groups: BTreeMap<String, SnapshotGroup>,
}

impl Snapshot {
    /// Captures one group's durable state.
    pub fn add_group(&mut self, name: &str, g: &GroupState) {
        let cursors = g
            .cursors
            .iter()
            .map(|((topic, partition), c)| SnapshotCursor {
                topic: topic.clone(),
                partition: *partition,
                committed: c.committed(),
                acked: c.acked().collect(),
            })
            .collect();
        self.groups
            .insert(name.to_string(), SnapshotGroup { config: g.config.clone(), configured: g.configured, cursors });
    }

    pub fn new(journal_offset: u64) -> Self {
        Snapshot { journal_offset, groups: BTreeMap::new() }
    }

    /// Rebuilds the in-memory groups.
    pub fn into_groups(self) -> BTreeMap<String, GroupState> {
        self.groups
            .into_iter()
            .map(|(name, g)| {
                let cursors = g
                    .cursors
                    .into_iter()
                    .map(|c| {
                        let mut cur = Cursor::new(c.committed);
                        cur.restore_ack(&c.acked, c.committed);
                        ((c.topic, c.partition), cur)
                    })
                    .collect();
                (name, GroupState { config: g.config, configured: g.configured, cursors })
            })
            .collect()
    }

    /// Reads the snapshot in `data_dir`, if there is one.
    pub fn load(data_dir: &Path) -> Result<Option<Snapshot>, String> {
        let path = data_dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the snapshot durably (temp file, fsync, rename, directory fsync).
    pub fn save(&self, data_dir: &Path) -> Result<(), cairn_storage::Error> {
        let bytes = serde_json::to_vec(self).map_err(|e| cairn_storage::Error::InvalidConfig(e.to_string()))?;
        cairn_storage::write_atomic(&data_dir.join(SNAPSHOT_FILE), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(offsets: Vec<u64>, committed: u64) -> Entry {
        Entry::Ack { group: "g".into(), topic: "t".into(), partition: 0, offsets, committed }
    }

    #[test]
    fn records_round_trip_as_json() {
        let e = ack(vec![3, 4], 2);
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""op":"ack""#), "{json}");
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    }

    #[test]
    fn replaying_a_suffix_again_is_harmless() {
        let log = vec![
            Entry::Init { group: "g".into(), topic: "t".into(), partition: 0, offset: 0 },
            ack(vec![0, 1, 2], 3),
            Entry::Commit { group: "g".into(), topic: "t".into(), partition: 0, offset: 10 },
            ack(vec![12], 10),
            Entry::Reset { group: "g".into(), topic: "t".into(), partition: 0, offset: 5 },
            ack(vec![5, 7], 6),
        ];
        let mut full = BTreeMap::new();
        for e in &log {
            apply(&mut full, e);
        }
        let summary = |m: &BTreeMap<String, GroupState>| {
            let c = &m["g"].cursors[&("t".to_string(), 0)];
            (c.committed(), c.acked().collect::<Vec<_>>())
        };
        assert_eq!(summary(&full), (6, vec![7]));
        for k in 0..log.len() {
            // Snapshot after everything, then replay records k.. again.
            let mut snap = Snapshot::new(0);
            snap.add_group("g", &full["g"]);
            let mut again = snap.into_groups();
            for e in &log[k..] {
                apply(&mut again, e);
            }
            assert_eq!(summary(&again), summary(&full), "replaying from record {k}");
        }
    }
}
