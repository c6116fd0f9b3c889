//! Compaction: rewriting sealed segments to keep the latest record per key (topics with
//! `cleanup_policy = compact`), merging small adjacent segments, and recompressing with the
//! topic's codec.
//!
//! Rules (see `docs/FORMAT.md` §6 and `docs/ARCHITECTURE.md`):
//! - Only sealed segments are rewritten; the active segment's records still count as newer
//!   versions of their keys. Appends go on meanwhile (the writer lock is never taken).
//! - A keyed record is dropped when a later record with the same key exists; records without
//!   a key are kept; a tombstone (null value) that is the latest for its key is dropped once
//!   it is older than the topic's `delete_retention_ms` (`now - timestamp >
//!   delete_retention_ms`); the older records of its key go in the same pass, oldest group
//!   first, so a crash between groups never brings an old value back.
//! - Offsets and timestamps never change: records are re-batched with their original offset
//!   and timestamp deltas ([`crate::BatchBuilder::push_at`]); removed records leave gaps.
//! - Adjacent sealed segments are merged while their expected output fits `segment_bytes`;
//!   the merged segment keeps the first one's name (base offset), even when its first
//!   records were removed (or all of them: an empty segment keeps the offsets' place).
//! - Memory is bounded by the key map ([`keymap`]): with more distinct keys than it holds,
//!   a pass covers the offsets whose keys fit and the next pass continues from there.
//! - Each rewritten group is written aside and swapped in crash-safely ([`swap`]).
//! - A pass decodes each sealed batch twice: the key-map walk, which also counts what each
//!   segment loses (so planning the groups needs only batch headers), and the rewrite.
//!
//! For `delete` topics the same machinery merges small segments and recompresses, without
//! dropping records by key; retention is applied first (see [`crate::Catalog::compact_topic`]).

mod clean;
mod compactor;
mod keymap;
mod swap;
mod throttle;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

pub(crate) use clean::Stop;
pub(crate) use swap::complete_swap;
#[cfg(test)]
pub(crate) use swap::{crash_at, SwapStep};

use crate::batch::{BatchHeader, DecodedBatch};
use crate::config::{CleanupPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::format::{BATCH_RECORDS_MAX, CLEANER_POINT_FILE};
use crate::inspect;
use crate::partition::{lock, PartitionLog};
use crate::segment::{BatchCursor, Segment};
use clean::Control;
use keymap::{key_hash, KeyMap, PrehashedHasher};

/// Default bound on the keys one compaction pass holds in memory (≈ 40 MB).
pub const COMPACTION_KEYS_MAX_DEFAULT: usize = 1_000_000;
/// Default dirty ratio above which the background compactor cleans a partition.
pub const COMPACTION_DIRTY_RATIO_DEFAULT: f64 = 0.5;
/// Largest records section (uncompressed) of a batch written by compaction.
pub const COMPACTION_BATCH_BYTES: usize = 1024 * 1024;

/// How one compaction runs.
#[derive(Debug, Clone)]
pub struct CompactionOptions {
    /// Keys held in memory by one pass (more distinct keys: more passes).
    pub keys_max: usize,
    /// Read + write rate limit in bytes per second (`None`: as fast as possible).
    pub io_bytes_per_sec: Option<u64>,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions { keys_max: COMPACTION_KEYS_MAX_DEFAULT, io_bytes_per_sec: None }
    }
}

/// What a compaction did (summed over partitions by [`crate::Catalog::compact_topic`]).
/// Counts are over whole partitions (active segment included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompactionStats {
    pub segments_before: u64,
    pub segments_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub messages_before: u64,
    pub messages_after: u64,
    /// Segments deleted by retention during this run (before compacting).
    pub retention_segments_deleted: u64,
    pub duration_ms: u64,
}

impl std::ops::AddAssign for CompactionStats {
    fn add_assign(&mut self, o: Self) {
        self.segments_before += o.segments_before;
        self.segments_after += o.segments_after;
        self.bytes_before += o.bytes_before;
        self.bytes_after += o.bytes_after;
        self.messages_before += o.messages_before;
        self.messages_after += o.messages_after;
        self.retention_segments_deleted += o.retention_segments_deleted;
        self.duration_ms += o.duration_ms;
    }
}

/// Decides, for one pass, which records stay.
pub(crate) struct KeepRule {
    map: KeyMap,
    /// Records at or past this offset are beyond the map and always kept.
    limit: u64,
    dedupe: bool,
    now_ms: i64,
    delete_retention_ms: i64,
}

impl KeepRule {
    /// Whether the record at `offset` with `key` and `value` stays.
    pub fn keeps(&self, offset: u64, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some(key) = key.filter(|_| self.dedupe && offset < self.limit) else { return true };
        match self.map.get(key_hash(key)) {
            Some(latest) if latest > offset => false,
            Some(latest) if latest == offset && value.is_none() => {
                self.now_ms.saturating_sub(timestamp) <= self.delete_retention_ms
            }
            _ => true,
        }
    }
}

/// Per-segment expectations from the planning walk.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    records: u64,
    kept: u64,
    /// Some batch is not in the topic's codec.
    recode: bool,
}

impl PartitionLog {
    /// Share of the sealed bytes not yet cleaned by compaction (0 when nothing is sealed).
    pub fn dirty_ratio(&self) -> f64 {
        let cp = self.shared.cleaner_point.load(Ordering::Acquire);
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        let (mut total, mut dirty) = (0u64, 0u64);
        for s in segs.values().filter(|s| s.is_sealed()) {
            total += s.acked_len();
            if s.base_offset >= cp {
                dirty += s.acked_len();
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// Compacts the sealed segments now (see the module docs). Appends and reads go on.
    /// Retention is not applied here ([`crate::Catalog::compact_topic`] applies it).
    pub fn compact(&self, opts: &CompactionOptions) -> Result<CompactionStats> {
        self.compact_inner(opts, None, None)
    }

    /// Compacts, stopping early if `stop` is raised; with `retention_now`, first applies
    /// retention as of that time (the "before" counts are taken before it).
    pub(crate) fn compact_inner(
        &self,
        opts: &CompactionOptions,
        stop: Option<Stop>,
        retention_now: Option<i64>,
    ) -> Result<CompactionStats> {
        let started = Instant::now();
        let sh = &self.shared;
        let _maintenance = lock(&sh.maintenance);
        if lock(&sh.queue).closed {
            return Err(Error::Closed);
        }
        // A poisoned partition may hold a half-done swap in memory: leave it to the reopen.
        sh.check_poisoned()?;
        let mut stats = CompactionStats::default();
        (stats.segments_before, stats.bytes_before, stats.messages_before) = self.totals()?;
        if let Some(now) = retention_now {
            stats.retention_segments_deleted = self.retain(now)?.segments_deleted as u64;
        }
        let mut ctl = Control::new(opts.io_bytes_per_sec, stop);
        let cfg = sh.config();
        let mut from = self.start_offset();
        let last_sealed_end = loop {
            let (sealed, active) = self.snapshot();
            let (rule, dropped) = self.build_rule(&cfg, &sealed, &active, from, opts.keys_max, &mut ctl)?;
            let candidates: Vec<Arc<Segment>> = sealed.into_iter().filter(|s| s.base_offset < rule.limit).collect();
            self.rewrite(&cfg, &rule, &candidates, &dropped, from, &active, &mut ctl)?;
            // Done once a map covered everything up to the active segment's end (the
            // active segment's keys are newer versions too, so passes go on through it).
            if rule.limit == u64::MAX {
                break active.base_offset;
            }
            from = rule.limit;
        };
        sh.cleaner_point.fetch_max(last_sealed_end, Ordering::AcqRel);
        inspect::write_offset_checkpoint(&sh.dir.join(CLEANER_POINT_FILE), sh.cleaner_point.load(Ordering::Acquire))?;
        (stats.segments_after, stats.bytes_after, stats.messages_after) = self.totals()?;
        stats.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(partition = %sh.name(), ?stats, "compacted");
        Ok(stats)
    }

    /// The sealed segments (oldest first) and the active one.
    fn snapshot(&self) -> (Vec<Arc<Segment>>, Arc<Segment>) {
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<Arc<Segment>> = segs.values().cloned().collect();
        drop(segs);
        let active = match all.pop() {
            Some(a) => a,
            None => unreachable!("a partition always has an active segment"),
        };
        (all.into_iter().filter(|s| s.is_sealed()).collect(), active)
    }

    /// Segments, bytes and records of the whole partition, from batch headers.
    fn totals(&self) -> Result<(u64, u64, u64)> {
        let segs: Vec<Arc<Segment>> =
            self.shared.segments.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let (mut bytes, mut records) = (0u64, 0u64);
        for s in &segs {
            self.for_each_batch(s, |_, h| {
                records += u64::from(h.record_count);
                Ok(())
            })?;
            bytes += s.acked_len();
        }
        Ok((segs.len() as u64, bytes, records))
    }

    /// Calls `f(bytes, header)` for every batch of a segment's acknowledged prefix, header
    /// only (the CRC is checked by callers that decode).
    fn for_each_batch(&self, seg: &Arc<Segment>, mut f: impl FnMut(&[u8], BatchHeader) -> Result<()>) -> Result<()> {
        let maps = self.shared.ctx.cache.maps(seg)?;
        let log = maps.log_prefix(seg.acked_len());
        let mut cursor = BatchCursor { log, pos: 0 };
        while let Some(h) = cursor.peek() {
            let at = cursor.pos;
            let h = h.map_err(|e| seg.corruption(at as u64, e))?;
            f(&log[at..at + h.total_len()], h)?;
            cursor.pos += h.total_len();
        }
        Ok(())
    }

    /// Decodes every record of a segment (CRC-checked), calling `f(offset, ts, key, value)`;
    /// `f` returns false to stop early.
    fn for_each_record(
        &self,
        seg: &Arc<Segment>,
        ctl: &mut Control,
        mut f: impl FnMut(u64, i64, Option<&[u8]>, Option<&[u8]>) -> bool,
    ) -> Result<bool> {
        let mut go_on = true;
        self.for_each_batch(seg, |bytes, h| {
            if !go_on {
                return Ok(());
            }
            ctl.account(bytes.len() as u64)?;
            let at = |e| seg.corruption(0, format!("batch at offset {}: {e}", h.base_offset));
            let d = DecodedBatch::new(bytes).map_err(at)?;
            for r in d.records() {
                let r = r.map_err(at)?;
                if !f(r.offset, r.timestamp, r.key, r.value) {
                    go_on = false;
                    break;
                }
            }
            Ok(())
        })?;
        Ok(go_on)
    }

    /// Builds the keep rule of one pass: the latest offset of each key from `from` on, over
    /// the sealed segments and the active one, until the key map is full. Also returns, per
    /// sealed segment, how many of its records the rule drops, counted during the same walk
    /// (a record is dropped when a later record has its key, or when it is the latest of its
    /// key and an expired tombstone): exact for the segments that start at or after `from`,
    /// whose records the walk saw all of.
    fn build_rule(
        &self,
        cfg: &TopicConfig,
        sealed: &[Arc<Segment>],
        active: &Arc<Segment>,
        from: u64,
        keys_max: usize,
        ctl: &mut Control,
    ) -> Result<(KeepRule, Vec<u64>)> {
        let dedupe = cfg.cleanup_policy == CleanupPolicy::Compact;
        let now_ms = self.shared.ctx.now_ms();
        let delete_retention_ms = i64::try_from(cfg.delete_retention_ms).unwrap_or(i64::MAX);
        let mut map = KeyMap::new(if dedupe { keys_max } else { 1 });
        let mut limit = u64::MAX;
        let mut dropped = vec![0u64; sealed.len()];
        let sealed_index = |offset: u64| -> Option<usize> {
            if offset >= active.base_offset {
                return None;
            }
            sealed.partition_point(|s| s.base_offset <= offset).checked_sub(1)
        };
        if dedupe {
            // Keys whose latest record so far is an expired tombstone, with its offset.
            let mut expired: HashMap<u128, u64, BuildHasherDefault<PrehashedHasher>> = HashMap::default();
            for seg in sealed.iter().chain(std::iter::once(active)) {
                if seg.next_offset() <= from {
                    continue;
                }
                let complete = self.for_each_record(seg, ctl, |offset, ts, key, value| {
                    let Some(key) = key.filter(|_| offset >= from) else { return true };
                    let hash = key_hash(key);
                    let Some(previous) = map.insert(hash, offset) else {
                        limit = offset;
                        return false;
                    };
                    if let Some(i) = previous.and_then(sealed_index) {
                        dropped[i] += 1;
                    }
                    if value.is_none() && now_ms.saturating_sub(ts) > delete_retention_ms {
                        expired.insert(hash, offset);
                    } else {
                        expired.remove(&hash);
                    }
                    true
                })?;
                if !complete {
                    break;
                }
            }
            for offset in expired.into_values() {
                if let Some(i) = sealed_index(offset) {
                    dropped[i] += 1;
                }
            }
        }
        Ok((KeepRule { map, limit, dedupe, now_ms, delete_retention_ms }, dropped))
    }

    /// Plans, groups and rewrites the candidate segments, oldest group first. `dropped`
    /// comes from [`Self::build_rule`]; segments that start before `from` (a later pass of a
    /// multi-pass compaction) are planned by checking each record against the rule instead.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &self,
        cfg: &TopicConfig,
        rule: &KeepRule,
        candidates: &[Arc<Segment>],
        dropped: &[u64],
        from: u64,
        active: &Arc<Segment>,
        ctl: &mut Control,
    ) -> Result<()> {
        let codec = cfg.codec();
        let mut plans = Vec::with_capacity(candidates.len());
        for (i, seg) in candidates.iter().enumerate() {
            let mut plan = Plan::default();
            self.for_each_batch(seg, |_, h| {
                plan.recode |= h.is_compressed() != matches!(codec, crate::batch::Codec::Zstd(_));
                plan.records += u64::from(h.record_count);
                Ok(())
            })?;
            plan.kept = if !rule.dedupe {
                plan.records
            } else if seg.base_offset >= from {
                // The key-map walk saw every record of this segment: no third read.
                let kept = plan.records.saturating_sub(dropped[i]);
                #[cfg(test)]
                assert_eq!(kept, self.count_kept(seg, rule, ctl)?, "segment {} planned from the walk", seg.base_offset);
                kept
            } else {
                self.count_kept(seg, rule, ctl)?
            };
            plans.push(plan);
        }
        for group in group_segments(candidates, &plans, active.base_offset, cfg.segment_bytes) {
            let changes = group.len() > 1 || group.iter().any(|&i| plans[i].kept < plans[i].records || plans[i].recode);
            if !changes {
                continue;
            }
            ctl.check_stop()?;
            let segs: Vec<Arc<Segment>> = group.iter().map(|&i| Arc::clone(&candidates[i])).collect();
            let out = clean::write_cleaned(self, &segs, rule, codec, ctl)?;
            swap::swap_in(&self.shared, &segs, out)?;
        }
        Ok(())
    }

    /// Records of a segment the rule keeps, by decoding every one.
    fn count_kept(&self, seg: &Arc<Segment>, rule: &KeepRule, ctl: &mut Control) -> Result<u64> {
        let mut kept = 0u64;
        self.for_each_record(seg, ctl, |offset, ts, key, value| {
            kept += u64::from(rule.keeps(offset, ts, key, value));
            true
        })?;
        Ok(kept)
    }
}

/// Groups adjacent candidates (indexes into `segs`) while their expected output fits
/// `segment_bytes` and their offsets fit a segment's relative u32 offsets.
fn group_segments(segs: &[Arc<Segment>], plans: &[Plan], active_base: u64, segment_bytes: u64) -> Vec<Vec<usize>> {
    let expected = |i: usize| -> u64 {
        let p = plans[i];
        if p.records == 0 || p.kept == p.records {
            segs[i].acked_len()
        } else {
            (segs[i].acked_len() as u128 * u128::from(p.kept) / u128::from(p.records)) as u64
        }
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut size = 0u64;
    for i in 0..segs.len() {
        let end = segs.get(i + 1).map_or(active_base, |s| s.base_offset);
        let fits = groups.last().is_some_and(|g| {
            let base = segs[g[0]].base_offset;
            size + expected(i) <= segment_bytes
                && end.saturating_sub(base) < u64::from(u32::MAX) - u64::from(BATCH_RECORDS_MAX)
        });
        match groups.last_mut() {
            Some(g) if fits => {
                g.push(i);
                size += expected(i);
            }
            _ => {
                groups.push(vec![i]);
                size = expected(i);
            }
        }
    }
    groups
}

/// Completes the committed compaction swaps of partition directory `dir` (those with a
/// manifest), exactly as an open does before anything else (`docs/FORMAT.md` §6), and
/// returns them. For offline tools working on a stopped server's directory (locked).
pub fn complete_pending_swaps(dir: &Path) -> Result<Vec<inspect::PendingSwap>> {
    let listed = inspect::list_segments(dir).map_err(|e| Error::io("list", dir, e))?;
    for swap in &listed.swaps {
        complete_swap(dir, swap)?;
    }
    Ok(listed.swaps)
}

/// Reads a partition's cleaner point (0 if missing or damaged).
pub(crate) fn read_cleaner_point(dir: &Path) -> u64 {
    inspect::read_offset_checkpoint(&dir.join(CLEANER_POINT_FILE)).ok().flatten().unwrap_or(0)
}

/// An error for a compaction stopped because the catalog is closing.
pub(crate) fn stopped() -> Error {
    Error::Closed
}

/// Pause granularity of the rate limiter.
pub(crate) const THROTTLE_SLICE: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests;
