//! Topic configuration as stored in `topic.json` and as the HTTP API shows it.
//!
//! Field names match the API contract (`docs/API` in `../shared/API.md`): the server
//! serialises this struct directly. Defaults and bounds are defined here, once.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::batch::Codec;
use crate::error::{Error, Result};
use crate::format::{BATCH_BYTES_MAX, BATCH_HEADER_LEN, PARTITIONS_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};

/// Default `retention_ms`: 7 days.
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;
/// Default `segment_bytes`: 128 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
/// Default `segment_ms`: a segment is rolled once its first message is 7 days old.
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;
/// Default `max_message_bytes`: 1 MiB.
pub const MAX_MESSAGE_BYTES_DEFAULT: u64 = 1024 * 1024;
/// Largest `max_message_bytes` a topic may set: a message must fit in one batch.
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = (BATCH_BYTES_MAX - BATCH_HEADER_LEN - 1024) as u64;
/// Default `delete_retention_ms`: tombstones are kept 24 hours on compacted topics.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 3600 * 1000;
/// Default zstd level for `compression: zstd`.
pub const COMPRESSION_LEVEL_DEFAULT: i32 = 3;
/// Longest allowed `sync.interval_ms`: 10 minutes.
pub const SYNC_INTERVAL_MS_MAX: u64 = 600_000;

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// Whole segments are deleted by age and size.
    #[default]
    Delete,
    /// Sealed segments keep the latest message per key.
    Compact,
}

/// Batch compression for new appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// After `fdatasync` (group commit). JSON: `"always"`.
    #[default]
    Always,
    /// After the write reaches the OS; synced at least every N ms. JSON: `{"interval_ms": N}`.
    Interval { interval_ms: u64 },
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SyncPolicyRepr {
    Word(SyncWord),
    Interval { interval_ms: u64 },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SyncWord {
    Always,
}

impl Serialize for SyncPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            SyncPolicy::Always => SyncPolicyRepr::Word(SyncWord::Always),
            SyncPolicy::Interval { interval_ms } => SyncPolicyRepr::Interval { interval_ms },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SyncPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match SyncPolicyRepr::deserialize(d)
            .map_err(|_| serde::de::Error::custom(r#"sync must be "always" or {"interval_ms": N}"#))?
        {
            SyncPolicyRepr::Word(SyncWord::Always) => Ok(SyncPolicy::Always),
            SyncPolicyRepr::Interval { interval_ms } => Ok(SyncPolicy::Interval { interval_ms }),
        }
    }
}

/// A topic's configuration. Every field has a default; see the constants above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicConfig {
    pub partitions: u32,
    /// Delete sealed segments whose newest message is older than this; `None`: keep forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the partition is larger; `None`: unlimited.
    pub retention_bytes: Option<u64>,
    /// Roll to a new segment once the active one would pass this size.
    pub segment_bytes: u64,
    /// Roll to a new segment once the active one's first message is this old.
    pub segment_ms: u64,
    pub cleanup_policy: CleanupPolicy,
    pub compression: Compression,
    /// zstd level (1..=22) used when `compression` is `zstd`.
    pub compression_level: i32,
    pub sync: SyncPolicy,
    /// Largest message (key + value + headers), in bytes.
    pub max_message_bytes: u64,
    /// How long tombstones survive compaction.
    pub delete_retention_ms: u64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            retention_ms: Some(RETENTION_MS_DEFAULT),
            retention_bytes: None,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            cleanup_policy: CleanupPolicy::Delete,
            compression: Compression::None,
            compression_level: COMPRESSION_LEVEL_DEFAULT,
            sync: SyncPolicy::Always,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
        }
    }
}

impl TopicConfig {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return bad(format!("partitions must be between 1 and {PARTITIONS_MAX}"));
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return bad(format!("segment_bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}"));
        }
        if self.segment_ms == 0 {
            return bad("segment_ms must be at least 1".into());
        }
        if self.retention_ms == Some(0) {
            return bad("retention_ms must be at least 1 (or null for unlimited)".into());
        }
        if self.retention_bytes == Some(0) {
            return bad("retention_bytes must be at least 1 (or null for unlimited)".into());
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
            return bad(format!("max_message_bytes must be between 1 and {MAX_MESSAGE_BYTES_LIMIT}"));
        }
        if !(1..=22).contains(&self.compression_level) {
            return bad("compression_level must be between 1 and 22".into());
        }
        if let SyncPolicy::Interval { interval_ms } = self.sync {
            if interval_ms == 0 || interval_ms > SYNC_INTERVAL_MS_MAX {
                return bad(format!("sync.interval_ms must be between 1 and {SYNC_INTERVAL_MS_MAX}"));
            }
        }
        Ok(())
    }

    /// The codec new batches of this topic are written with.
    pub fn codec(&self) -> Codec {
        match self.compression {
            Compression::None => Codec::None,
            Compression::Zstd => Codec::Zstd(self.compression_level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_the_contract() {
        let c = TopicConfig::default();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["sync"], "always");
        assert_eq!(v["cleanup_policy"], "delete");
        assert_eq!(v["compression"], "none");
        assert_eq!(v["retention_ms"], 604800000u64);
        assert!(v["retention_bytes"].is_null());
        let c: TopicConfig = serde_json::from_str(r#"{"sync":{"interval_ms":50},"partitions":3}"#).unwrap();
        assert_eq!(c.sync, SyncPolicy::Interval { interval_ms: 50 });
        assert_eq!(c.partitions, 3);
        assert!(serde_json::from_str::<TopicConfig>(r#"{"sync":"sometimes"}"#).is_err());
    }

    #[test]
    fn validation_bounds() {
        let ok = TopicConfig::default();
        ok.validate().unwrap();
        for bad in [
            TopicConfig { partitions: 0, ..ok.clone() },
            TopicConfig { segment_bytes: 100, ..ok.clone() },
            TopicConfig { retention_ms: Some(0), ..ok.clone() },
            TopicConfig { max_message_bytes: 0, ..ok.clone() },
            TopicConfig { sync: SyncPolicy::Interval { interval_ms: 0 }, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
