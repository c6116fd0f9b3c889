//! The segment cache: a bound on how many sealed segments are mapped at once.
//!
//! Each mapped sealed segment costs three memory maps (log, index, time index); the kernel
//! limits maps per process (`vm.max_map_count`) and every map costs page-table memory. The
//! cache keeps at most `open_segments_max` sealed segments mapped and unmaps the least
//! recently read ones. Readers holding an `Arc<SegmentMaps>` keep their maps alive until
//! they finish; the cache only drops its own reference. File descriptors are closed right
//! after mapping, so descriptors do not grow with the number of segments at all.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use crate::error::Result;
use crate::segment::{Segment, SegmentMaps};

/// Default number of sealed segments kept mapped.
pub const OPEN_SEGMENTS_MAX_DEFAULT: usize = 1024;

#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    by_tick: BTreeMap<u64, Weak<Segment>>,
}

/// Bounded set of mapped sealed segments, shared by every partition of a catalog.
#[derive(Debug)]
pub struct SegmentCache {
    capacity: usize,
    lru: Mutex<Lru>,
}

impl SegmentCache {
    pub fn new(capacity: usize) -> Self {
        SegmentCache { capacity: capacity.max(1), lru: Mutex::new(Lru::default()) }
    }

    /// Number of sealed segments currently mapped by the cache.
    pub fn mapped(&self) -> usize {
        self.lock().by_tick.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The maps of `seg`, opening them if needed. Active segments are always mapped and
    /// bypass the LRU.
    pub fn maps(&self, seg: &Arc<Segment>) -> Result<Arc<SegmentMaps>> {
        let mut slot = seg.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(maps) = slot.as_ref() {
            let maps = Arc::clone(maps);
            drop(slot);
            if seg.is_sealed() {
                self.touch(seg);
            }
            return Ok(maps);
        }
        let maps = Arc::new(SegmentMaps::open_sealed(seg)?);
        *slot = Some(Arc::clone(&maps));
        drop(slot);
        self.touch(seg);
        Ok(maps)
    }

    /// Moves `seg` to the most recently used end, inserting it if new, and evicts the
    /// coldest segments beyond capacity.
    fn touch(&self, seg: &Arc<Segment>) {
        let evicted = {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            let old = seg.lru_tick.swap(tick, Ordering::AcqRel);
            if old != 0 {
                lru.by_tick.remove(&old);
            }
            lru.by_tick.insert(tick, Arc::downgrade(seg));
            let mut evicted = Vec::new();
            while lru.by_tick.len() > self.capacity {
                let Some((t, weak)) = lru.by_tick.pop_first() else { break };
                if let Some(s) = weak.upgrade() {
                    // Only if nobody re-touched it since (its tick is still this one).
                    if s.lru_tick.compare_exchange(t, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                        evicted.push(s);
                    }
                }
            }
            evicted
        };
        for s in evicted {
            // Unmap outside the LRU lock. A concurrent reader may have just re-opened it;
            // only drop maps of segments that are not in the LRU again.
            let mut slot = s.maps.lock().unwrap_or_else(|p| p.into_inner());
            if s.lru_tick.load(Ordering::Acquire) == 0 && s.is_sealed() {
                *slot = None;
            }
        }
    }

    /// Forgets `seg` (it was deleted or replaced) and drops its maps.
    pub fn forget(&self, seg: &Segment) {
        let old = seg.lru_tick.swap(0, Ordering::AcqRel);
        if old != 0 {
            self.lock().by_tick.remove(&old);
        }
        *seg.maps.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
