//! The catalog's side of compaction: [`Catalog::compact_topic`] (compact one topic now,
//! after applying its retention) and the background compactor thread, which cleans the
//! partitions of `compact` topics whose dirty ratio passes a threshold, within an I/O rate
//! limit, and stops promptly when the catalog closes. Each completed round (every
//! partition of every `compact` topic checked once) is counted and signalled, so callers
//! (tests, metrics) can wait for "the compactor has looked at everything" instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CompactionOptions, CompactionStats};
use crate::catalog::{Catalog, Topic};
use crate::config::CleanupPolicy;
use crate::error::{Error, Result};
use crate::partition::lock;

impl Catalog {
    /// Compacts every partition of topic `name` now, on the calling thread, and returns the
    /// summed statistics. Retention (age and size) is applied first. On a `compact` topic
    /// the latest record per key is kept; on a `delete` topic nothing is dropped by key, but
    /// small adjacent sealed segments are still merged and recompressed with the topic's
    /// codec. Appends and reads go on meanwhile. Not rate limited.
    pub fn compact_topic(&self, name: &str) -> Result<CompactionStats> {
        let topic = self.topic(name).ok_or_else(|| Error::TopicNotFound(name.to_string()))?;
        if *lock(&self.maintenance.0) {
            return Err(Error::Closed);
        }
        let opts = CompactionOptions { io_bytes_per_sec: None, ..self.compaction.clone() };
        let now = self.ctx.now_ms();
        let mut total = CompactionStats::default();
        for part in topic.partitions() {
            total += part.compact_inner(&opts, Some(Arc::clone(&self.maintenance)), Some(now))?;
        }
        Ok(total)
    }

    /// Rounds the background compactor has completed since the catalog opened (0 if it does
    /// not run). A round checks every partition of every `compact` topic once and compacts
    /// those whose dirty ratio reached the threshold.
    pub fn compactor_rounds(&self) -> u64 {
        *lock(&self.compactor_rounds.0)
    }

    /// Waits until the background compactor has completed `rounds` rounds, or `timeout`
    /// passed; returns the rounds completed. A round that started before a write may not have
    /// seen it: wait for one more round than [`Catalog::compactor_rounds`] returned after it.
    pub fn wait_compactor_rounds(&self, rounds: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.compactor_rounds;
        let mut done = lock(m);
        while *done < rounds {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            done = cv.wait_timeout(done, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *done
    }

    pub(crate) fn start_compactor_thread(&self, every: Duration, dirty_ratio: f64) -> std::io::Result<()> {
        let stop = Arc::clone(&self.maintenance);
        let topics = Arc::clone(&self.topics);
        let rounds = Arc::clone(&self.compactor_rounds);
        let opts = self.compaction.clone();
        let h = std::thread::Builder::new().name("cairn-compactor".into()).spawn(move || loop {
            {
                let g = lock(&stop.0);
                let (g, _) = stop.1.wait_timeout_while(g, every, |s| !*s).unwrap_or_else(|p| p.into_inner());
                if *g {
                    return;
                }
            }
            let snapshot: Vec<Arc<Topic>> =
                topics.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            for topic in snapshot.iter().filter(|t| t.config().cleanup_policy == CleanupPolicy::Compact) {
                for part in topic.partitions() {
                    if *lock(&stop.0) {
                        return;
                    }
                    if lock(&part.shared.queue).closed || part.dirty_ratio() < dirty_ratio {
                        continue;
                    }
                    match part.compact_inner(&opts, Some(Arc::clone(&stop)), None) {
                        Ok(_) | Err(Error::Closed) => {}
                        Err(e) => {
                            tracing::warn!(topic = topic.name(), partition = part.partition(), "compaction failed: {e}")
                        }
                    }
                }
            }
            *lock(&rounds.0) += 1;
            rounds.1.notify_all();
        })?;
        lock(&self.threads).push(h);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::compaction::CompactionOptions;
    use crate::{BatchBuilder, Catalog, CatalogOptions, CleanupPolicy, PartitionLog, SegmentInfo, TopicConfig};

    /// A low threshold (the default is 0.5).
    const THRESHOLD: f64 = 0.3;
    /// A safety net only: the waits below end when the compactor signals its round.
    const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

    fn put(p: &PartitionLog, key: &str) {
        let mut b = BatchBuilder::new();
        b.push(Some(key.as_bytes()), Some(&[b'v'; 300]), []);
        p.append(b.finish(0, 0).unwrap()).unwrap();
    }

    fn sealed(p: &PartitionLog) -> usize {
        p.segments().iter().filter(|s| s.sealed).count()
    }

    fn records(segs: &[SegmentInfo]) -> Vec<(u64, u64)> {
        segs.iter().map(|s| (s.base_offset, s.size_bytes)).collect()
    }

    #[test]
    fn the_background_compactor_picks_partitions_by_dirty_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TopicConfig {
            segment_bytes: 4096,
            cleanup_policy: CleanupPolicy::Compact,
            retention_ms: None,
            ..TopicConfig::default()
        };
        let (dirty_before, clean_before, clean_ratio) = {
            // Written with no compactor running. "dirty": 60 records of 6 keys, never
            // compacted. "mostly-clean": 120 distinct keys, compacted, then updates of 15 of
            // them until one more segment is sealed (dirty, but a small share of the sealed
            // bytes; compacting it would drop the 15 older values).
            let catalog = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
            let dirty = catalog.create_topic("dirty", cfg.clone()).unwrap().partition(0).unwrap();
            for i in 0..60 {
                put(&dirty, &format!("k{}", i % 6));
            }
            let clean = catalog.create_topic("mostly-clean", cfg.clone()).unwrap().partition(0).unwrap();
            for i in 0..120 {
                put(&clean, &format!("k{i}"));
            }
            clean.compact(&CompactionOptions::default()).unwrap();
            let sealed_after_compaction = sealed(&clean);
            let mut i = 0;
            while sealed(&clean) == sealed_after_compaction {
                put(&clean, &format!("k{}", i % 15));
                i += 1;
            }
            assert_eq!(dirty.dirty_ratio(), 1.0);
            let ratio = clean.dirty_ratio();
            assert!(ratio > 0.0 && ratio < THRESHOLD, "mostly-clean is dirty below the threshold: {ratio}");
            let out = (dirty.segments(), clean.segments(), ratio);
            catalog.close().unwrap();
            out
        };

        let opts = CatalogOptions {
            compaction_check_interval: Some(Duration::from_millis(10)),
            compaction_dirty_ratio: THRESHOLD,
            ..CatalogOptions::default()
        };
        let catalog = Catalog::open(dir.path(), opts).unwrap();
        // Everything was written before the compactor started: its first round saw it all;
        // the second shows the decision is stable.
        assert_eq!(catalog.wait_compactor_rounds(2, ROUND_TIMEOUT), 2, "the compactor completes rounds");
        let dirty = catalog.topic("dirty").unwrap().partition(0).unwrap();
        let clean = catalog.topic("mostly-clean").unwrap().partition(0).unwrap();
        assert_eq!(dirty.dirty_ratio(), 0.0, "compacted by the background thread, no API call");
        assert!(
            dirty.segments().len() < dirty_before.len(),
            "{:?} -> {:?}",
            records(&dirty_before),
            records(&dirty.segments())
        );
        assert_eq!(records(&clean.segments()), records(&clean_before), "below the threshold: left alone");
        assert_eq!(clean.dirty_ratio(), clean_ratio);
        catalog.close().unwrap();
        drop(catalog);

        // Without the compactor the rounds stay at 0 and a wait returns at its timeout.
        let catalog = Catalog::open(dir.path(), CatalogOptions::default()).unwrap();
        assert_eq!(catalog.compactor_rounds(), 0);
        assert_eq!(catalog.wait_compactor_rounds(1, Duration::ZERO), 0);
        catalog.close().unwrap();
    }
}
