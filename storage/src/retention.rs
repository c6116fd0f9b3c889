//! Retention: deleting whole sealed segments by age and by total size.
//!
//! Applies to topics with `cleanup_policy: delete` (compacted topics keep their latest
//! value per key forever, as in Kafka). Runs on the catalog's timer and at the start of
//! every [`crate::Catalog::compact_topic`]; never at the same time as a compaction of the
//! same partition (both hold the partition's maintenance lock). The active segment is never deleted. The start
//! offset moves to the first remaining segment before any file is removed, so no reader is
//! sent into a deleted segment; readers already holding a mapped segment finish reading it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::CleanupPolicy;
use crate::error::Result;
use crate::fsutil;
use crate::partition::{lock, PartitionLog};
use crate::segment::Segment;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl std::ops::AddAssign for RetentionStats {
    fn add_assign(&mut self, o: Self) {
        self.segments_deleted += o.segments_deleted;
        self.bytes_deleted += o.bytes_deleted;
    }
}

impl PartitionLog {
    /// Deletes sealed segments whose newest message is older than `retention_ms` before
    /// `now_ms`, then the oldest sealed segments while the rest still holds at least
    /// `retention_bytes`.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionStats> {
        let _maintenance = lock(&self.shared.maintenance);
        self.retain(now_ms)
    }

    /// [`PartitionLog::enforce_retention`] with the maintenance lock held by the caller.
    pub(crate) fn retain(&self, now_ms: i64) -> Result<RetentionStats> {
        let cfg = self.shared.config();
        if cfg.cleanup_policy != CleanupPolicy::Delete || (cfg.retention_ms.is_none() && cfg.retention_bytes.is_none())
        {
            return Ok(RetentionStats::default());
        }
        let retention_ms = cfg.retention_ms.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
        let mut remaining: Option<u64> = None;
        self.remove_front_segments(|seg, total| {
            let left = *remaining.get_or_insert(total);
            let len = seg.acked_len();
            let expired =
                retention_ms.is_some_and(|r| seg.max_timestamp().is_none_or(|m| now_ms.saturating_sub(m) > r));
            let oversize = cfg.retention_bytes.is_some_and(|r| left - len >= r);
            if expired || oversize {
                remaining = Some(left - len);
                true
            } else {
                false
            }
        })
    }

    /// Deletes the sealed segments that hold only offsets below `offset` (their content is
    /// no longer needed, e.g. it is covered by a snapshot). The start offset moves up.
    pub fn delete_segments_before(&self, offset: u64) -> Result<RetentionStats> {
        let _maintenance = lock(&self.shared.maintenance);
        self.remove_front_segments(|seg, _| seg.next_offset() <= offset)
    }

    /// Removes sealed segments from the front while `doomed(segment, total_bytes)` says so.
    fn remove_front_segments(&self, mut doomed: impl FnMut(&Segment, u64) -> bool) -> Result<RetentionStats> {
        let victims: Vec<Arc<Segment>> = {
            let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
            let total: u64 = segs.values().map(|s| s.acked_len()).sum();
            let mut victims = Vec::new();
            while let Some((_, seg)) = segs.first_key_value() {
                if !seg.is_sealed() || !doomed(seg, total) {
                    break;
                }
                if let Some((_, s)) = segs.pop_first() {
                    victims.push(s);
                }
            }
            if let Some(&first) = segs.keys().next() {
                self.shared.start_offset.fetch_max(first, Ordering::AcqRel);
            }
            victims
        };
        let mut stats = RetentionStats::default();
        for seg in &victims {
            self.shared.ctx.cache.forget(seg);
            for p in [&seg.log_path, &seg.index_path, &seg.timeindex_path] {
                if let Err(e) = std::fs::remove_file(p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("could not remove {}: {e}", p.display());
                    }
                }
            }
            stats.segments_deleted += 1;
            stats.bytes_deleted += seg.acked_len();
        }
        if !victims.is_empty() {
            fsutil::sync_dir(&self.shared.dir)?;
            tracing::info!(partition = %self.shared.name(), segments = stats.segments_deleted, bytes = stats.bytes_deleted, "deleted old segments");
        }
        Ok(stats)
    }
}
