//! The state of one group in one topic partition, and the rules that move it.
//!
//! Durable part: `committed` (every offset below it is done) and `acked` (done offsets
//! above it). Everything else lives only in memory and is rebuilt empty after a restart,
//! which is what makes delivery at-least-once: `next_new` (first offset never handed out
//! since start), leases, delivery counts, offsets waiting for redelivery or for a nack
//! delay. The window `[committed, next_new)` is bounded by the in-flight limit, so memory
//! stays bounded however far consumers fall behind.
//!
//! This module is pure: no I/O, no clock. Callers pass `now` and do the reading,
//! journaling and dead-lettering the returned plans call for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Default bound on `next_new - committed` per group and partition.
pub const IN_FLIGHT_MAX_DEFAULT: u64 = 10_000;

/// A message handed to a consumer and not yet done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub consumer: Option<String>,
    pub deadline: Instant,
    pub delivery: u32,
}

/// One group's position and work in flight in one partition.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    committed: u64,
    acked: BTreeSet<u64>,
    next_new: u64,
    leases: BTreeMap<u64, Lease>,
    deliveries: HashMap<u64, u32>,
    redeliver: BTreeSet<u64>,
    delayed: BTreeMap<u64, Instant>,
    /// Waiting to be appended to the dead-letter topic.
    dead_pending: BTreeSet<u64>,
    pub redeliveries: u64,
    pub dead_lettered: u64,
}

/// What [`Cursor::expire`] found: messages out of deliveries, to dead-letter.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub dead: Vec<(u64, u32)>,
}

impl Cursor {
    /// A cursor at `committed` with no work in flight.
    pub fn new(committed: u64) -> Self {
        Cursor { committed, next_new: committed, ..Self::default() }
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Done offsets above the committed one (durable).
    pub fn acked(&self) -> impl Iterator<Item = u64> + '_ {
        self.acked.iter().copied()
    }

    /// Messages currently leased.
    pub fn in_flight(&self) -> usize {
        self.leases.len()
    }

    /// First offset not yet handed out.
    pub fn next_new(&self) -> u64 {
        self.next_new
    }

    pub fn lease(&self, offset: u64) -> Option<&Lease> {
        self.leases.get(&offset)
    }

    /// Times `offset` was handed out since start.
    pub fn deliveries(&self, offset: u64) -> u32 {
        self.deliveries.get(&offset).copied().unwrap_or(0)
    }

    /// When something next becomes eligible by itself (a lease expiry or a nack delay).
    pub fn next_due(&self) -> Option<Instant> {
        let lease = self.leases.values().map(|l| l.deadline).min();
        let delay = self.delayed.values().min().copied();
        match (lease, delay) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends expired leases and nack delays. Messages whose deliveries reached
    /// `max_deliveries` (0 = unlimited) are returned for dead-lettering; the rest become
    /// eligible for redelivery.
    pub fn expire(&mut self, now: Instant, max_deliveries: u32) -> Expired {
        let mut out = Expired::default();
        let expired: Vec<u64> = self.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(o, _)| *o).collect();
        for off in expired {
            self.leases.remove(&off);
            self.release(off, None, now, max_deliveries, &mut out);
        }
        let due: Vec<u64> = self.delayed.iter().filter(|(_, t)| **t <= now).map(|(o, _)| *o).collect();
        for off in due {
            self.delayed.remove(&off);
            self.redeliver.insert(off);
        }
        out
    }

    fn release(&mut self, off: u64, delay: Option<Duration>, now: Instant, max_deliveries: u32, out: &mut Expired) {
        let n = self.deliveries(off);
        if max_deliveries > 0 && n >= max_deliveries {
            self.dead_pending.insert(off);
            out.dead.push((off, n));
        } else if let Some(d) = delay.filter(|d| !d.is_zero()) {
            self.delayed.insert(off, now + d);
        } else {
            self.redeliver.insert(off);
        }
    }

    /// Whether `off` can be handed out now.
    fn is_free(&self, off: u64) -> bool {
        !self.acked.contains(&off)
            && !self.leases.contains_key(&off)
            && !self.delayed.contains_key(&off)
            && !self.dead_pending.contains(&off)
    }

    /// Offsets to redeliver now, oldest first, at most `max`. In ordered mode nothing is
    /// returned while any lease is out, and the walk stops at the first offset that is
    /// waiting (delayed or being dead-lettered), so the partition is processed in order.
    pub fn take_redeliveries(&mut self, max: usize, ordered: bool) -> Vec<u64> {
        if ordered && !self.leases.is_empty() {
            return Vec::new();
        }
        if ordered && self.blocked_in_order() {
            return Vec::new();
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(off) = self.redeliver.pop_first() else { break };
            if self.is_free(off) && off >= self.committed {
                out.push(off);
            }
        }
        out
    }

    /// Ordered mode: whether the oldest undone message is waiting (delayed or being
    /// dead-lettered), which blocks everything after it.
    fn blocked_in_order(&self) -> bool {
        let first_waiting =
            self.delayed.keys().next().copied().into_iter().chain(self.dead_pending.first().copied()).min();
        let first_ready = self.redeliver.first().copied().unwrap_or(self.next_new);
        first_waiting.is_some_and(|w| w < first_ready)
    }

    /// How many new (never handed out) offsets may be taken now.
    pub fn new_allowance(&self, max: usize, ordered: bool, in_flight_max: u64) -> usize {
        if ordered && (!self.leases.is_empty() || self.blocked_in_order() || !self.redeliver.is_empty()) {
            return 0;
        }
        let window_used = self.next_new.saturating_sub(self.committed);
        (in_flight_max.saturating_sub(window_used) as usize).min(max)
    }

    /// Records that reading from `next_new` found the record at `offset`: every offset in
    /// between does not exist (compaction gap) and counts as done. Returns whether
    /// `offset` itself is free to hand out (it may have been acked before a restart).
    pub fn observe_new(&mut self, offset: u64) -> bool {
        debug_assert!(offset >= self.next_new);
        for gap in self.next_new..offset {
            if gap >= self.committed {
                self.acked.insert(gap);
            }
        }
        self.next_new = offset + 1;
        self.advance();
        offset >= self.committed && self.is_free(offset)
    }

    /// Moves `next_new` up to `offset` (the log starts there now, e.g. after retention):
    /// the offsets skipped no longer exist and count as done.
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.next_new {
            for gap in self.next_new.max(self.committed)..offset {
                self.acked.insert(gap);
            }
            self.next_new = offset;
            self.advance();
        }
    }

    /// Dead-lettering `offset` failed: it goes back to be delivered again.
    pub fn dead_letter_failed(&mut self, offset: u64) {
        if self.dead_pending.remove(&offset) {
            self.redeliver.insert(offset);
        }
    }

    /// Marks the end of the readable log at `end` when reading found nothing more.
    pub fn observe_end(&mut self, end: u64) {
        if self.next_new > end {
            self.next_new = end.max(self.committed);
        }
    }

    /// Leases `offset` to `consumer` until `deadline`; returns the delivery number.
    pub fn lease_to(&mut self, offset: u64, consumer: Option<&str>, deadline: Instant) -> u32 {
        let n = self.deliveries.entry(offset).or_insert(0);
        *n += 1;
        let delivery = *n;
        if delivery > 1 {
            self.redeliveries += 1;
        }
        self.redeliver.remove(&offset);
        self.leases.insert(offset, Lease { consumer: consumer.map(str::to_string), deadline, delivery });
        delivery
    }

    /// Marks offsets done (acked or dead-lettered). Returns whether the durable state
    /// (committed or acked) changed.
    pub fn ack(&mut self, offsets: impl IntoIterator<Item = u64>) -> bool {
        let mut changed = false;
        for off in offsets {
            if off < self.committed || self.acked.contains(&off) {
                continue;
            }
            self.forget(off);
            self.acked.insert(off);
            changed = true;
        }
        self.advance();
        changed
    }

    /// Dead-lettering of `offset` finished: it is done.
    pub fn dead_lettered_done(&mut self, offset: u64) -> bool {
        self.dead_pending.remove(&offset);
        self.dead_lettered += 1;
        self.ack([offset])
    }

    /// Releases a leased (or otherwise undone) message for redelivery after `delay`.
    /// Returns the deliveries so far if it must be dead-lettered instead.
    pub fn nack(&mut self, offset: u64, delay: Option<Duration>, now: Instant, max_deliveries: u32) -> Option<u32> {
        if offset < self.committed || offset >= self.next_new || !self.is_free_or_leased(offset) {
            return None;
        }
        self.leases.remove(&offset);
        self.redeliver.remove(&offset);
        let mut out = Expired::default();
        self.release(offset, delay, now, max_deliveries, &mut out);
        out.dead.first().map(|(_, n)| *n)
    }

    fn is_free_or_leased(&self, off: u64) -> bool {
        !self.acked.contains(&off) && !self.dead_pending.contains(&off)
    }

    /// Takes `offset` out of circulation to dead-letter it now (reject). Returns false if
    /// it is already done or on its way.
    pub fn start_dead_letter(&mut self, offset: u64) -> bool {
        if offset < self.committed || !self.is_free_or_leased(offset) {
            return false;
        }
        self.leases.remove(&offset);
        self.redeliver.remove(&offset);
        self.delayed.remove(&offset);
        self.dead_pending.insert(offset);
        true
    }

    /// Moves a lease's deadline; false if `offset` is not leased.
    pub fn extend(&mut self, offset: u64, deadline: Instant) -> bool {
        match self.leases.get_mut(&offset) {
            Some(l) => {
                l.deadline = deadline;
                true
            }
            None => false,
        }
    }

    /// Cursor-style commit: everything below `offset` is done. Moving backwards is a
    /// reset (the group processes those offsets again).
    pub fn commit(&mut self, offset: u64) {
        if offset < self.committed {
            self.reset(offset);
            return;
        }
        self.committed = offset;
        self.drop_below(offset);
        self.advance();
    }

    /// Replay: moves to `offset` and forgets every ack, lease and redelivery.
    /// Whether the cursor refers to offsets at or past `end` (its partition's end offset):
    /// a committed offset beyond it, or acks of offsets the log no longer has.
    pub fn reaches_past(&self, end: u64) -> bool {
        self.committed > end || self.acked.range(end..).next().is_some()
    }

    pub fn reset(&mut self, offset: u64) {
        let (redeliveries, dead) = (self.redeliveries, self.dead_lettered);
        *self = Cursor::new(offset);
        self.redeliveries = redeliveries;
        self.dead_lettered = dead;
    }

    /// Applies a journaled ack record (recovery): `offsets` done, committed at least
    /// `committed`.
    pub fn restore_ack(&mut self, offsets: &[u64], committed: u64) {
        for &o in offsets {
            if o >= self.committed {
                self.acked.insert(o);
            }
        }
        if committed > self.committed {
            self.committed = committed;
            self.drop_below(committed);
        }
        self.advance();
    }

    fn forget(&mut self, off: u64) {
        self.leases.remove(&off);
        self.redeliver.remove(&off);
        self.delayed.remove(&off);
        self.deliveries.remove(&off);
    }

    fn drop_below(&mut self, offset: u64) {
        self.acked = self.acked.split_off(&offset);
        self.leases = self.leases.split_off(&offset);
        self.redeliver = self.redeliver.split_off(&offset);
        self.delayed = self.delayed.split_off(&offset);
        self.dead_pending = self.dead_pending.split_off(&offset);
        self.deliveries.retain(|o, _| *o >= offset);
        self.next_new = self.next_new.max(offset);
    }

    /// Moves `committed` past every done offset directly above it.
    fn advance(&mut self) {
        while self.acked.first() == Some(&self.committed) {
            self.acked.pop_first();
            self.deliveries.remove(&self.committed);
            self.committed += 1;
        }
        self.next_new = self.next_new.max(self.committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_new(c: &mut Cursor, n: u64, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            let off = c.next_new();
            if c.observe_new(off) {
                c.lease_to(off, Some("w"), now + Duration::from_secs(30));
                out.push(off);
            }
        }
        out
    }

    #[test]
    fn acks_advance_committed_past_contiguous_done() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        assert_eq!(lease_new(&mut c, 5, now), vec![0, 1, 2, 3, 4]);
        assert!(c.ack([1, 2]));
        assert_eq!(c.committed(), 0);
        assert!(c.ack([0]));
        assert_eq!(c.committed(), 3);
        assert!(!c.ack([1]), "acking twice is harmless");
        assert_eq!(c.in_flight(), 2);
    }

    #[test]
    fn expiry_redelivers_then_dead_letters() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        lease_new(&mut c, 1, now);
        let later = now + Duration::from_secs(31);
        assert_eq!(c.expire(later, 2), Expired::default());
        assert_eq!(c.take_redeliveries(10, false), vec![0]);
        assert_eq!(c.lease_to(0, None, later + Duration::from_secs(30)), 2);
        assert_eq!(c.redeliveries, 1);
        let much_later = later + Duration::from_secs(31);
        assert_eq!(c.expire(much_later, 2).dead, vec![(0, 2)]);
        assert!(c.take_redeliveries(10, false).is_empty(), "on its way to the dead-letter topic");
        assert!(c.dead_lettered_done(0));
        assert_eq!(c.committed(), 1);
        assert_eq!(c.dead_lettered, 1);
    }

    #[test]
    fn nack_with_delay_waits() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        lease_new(&mut c, 2, now);
        assert_eq!(c.nack(0, Some(Duration::from_secs(5)), now, 5), None);
        c.expire(now + Duration::from_secs(1), 5);
        assert!(c.take_redeliveries(10, false).is_empty());
        assert_eq!(c.next_due(), Some(now + Duration::from_secs(5)));
        c.expire(now + Duration::from_secs(5), 5);
        assert_eq!(c.take_redeliveries(10, false), vec![0]);
    }

    #[test]
    fn ordered_mode_blocks_while_leased_or_delayed() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        lease_new(&mut c, 3, now);
        assert_eq!(c.new_allowance(10, true, 100), 0);
        c.nack(0, Some(Duration::from_secs(5)), now, 5);
        c.ack([1, 2]);
        assert_eq!(c.in_flight(), 0);
        assert!(c.take_redeliveries(10, true).is_empty(), "offset 0 waits, so nothing after it goes");
        assert_eq!(c.new_allowance(10, true, 100), 0);
        c.expire(now + Duration::from_secs(6), 5);
        assert_eq!(c.take_redeliveries(10, true), vec![0]);
    }

    #[test]
    fn window_bounds_new_messages() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        assert_eq!(c.new_allowance(100, false, 3), 3);
        lease_new(&mut c, 3, now);
        assert_eq!(c.new_allowance(100, false, 3), 0);
        c.ack([0]);
        assert_eq!(c.new_allowance(100, false, 3), 1);
    }

    #[test]
    fn gaps_count_as_done_and_reset_forgets() {
        let now = Instant::now();
        let mut c = Cursor::new(0);
        assert!(c.observe_new(3));
        c.lease_to(3, None, now);
        assert_eq!(c.committed(), 3);
        c.ack([3]);
        assert_eq!(c.committed(), 4);
        c.reset(1);
        assert_eq!((c.committed(), c.next_new(), c.in_flight()), (1, 1, 0));
    }

    #[test]
    fn ack_after_restart_for_never_delivered_offset_is_kept() {
        let mut c = Cursor::new(10);
        assert!(c.ack([12]));
        assert!(c.observe_new(10));
        assert!(c.observe_new(11));
        assert!(!c.observe_new(12), "acked before: not handed out again");
    }

    #[test]
    fn commit_backwards_is_a_reset() {
        let mut c = Cursor::new(0);
        c.commit(10);
        c.ack([12]);
        c.commit(5);
        assert_eq!(c.committed(), 5);
        assert_eq!(c.acked().count(), 0);
    }
}
