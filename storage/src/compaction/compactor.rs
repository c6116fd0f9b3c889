//! The catalog's side of compaction: [`Catalog::compact_topic`] (compact one topic now,
//! after applying its retention) and the background compactor thread, which cleans the
//! partitions of `compact` topics whose dirty ratio passes a threshold, within an I/O rate
//! limit, and stops promptly when the catalog closes.

use std::sync::Arc;
use std::time::Duration;

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

    pub(crate) fn start_compactor_thread(&self, every: Duration, dirty_ratio: f64) -> std::io::Result<()> {
        let stop = Arc::clone(&self.maintenance);
        let topics = Arc::clone(&self.topics);
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
        })?;
        lock(&self.threads).push(h);
        Ok(())
    }
}
