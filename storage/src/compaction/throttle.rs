//! The I/O rate limit of a compaction, as arithmetic on a byte count and the time elapsed
//! since the compaction started. The caller owns the clock and the waiting
//! ([`super::clean::Control`]), so the rule is checked here with a simulated clock, not by
//! timing.

use std::time::Duration;

/// Keeps the average I/O rate since the start at or under `bytes_per_sec`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimit {
    bytes_per_sec: u64,
    bytes: u64,
}

impl RateLimit {
    /// A limit of `bytes_per_sec`; `None` (no limit) for 0.
    pub fn new(bytes_per_sec: u64) -> Option<Self> {
        (bytes_per_sec > 0).then_some(RateLimit { bytes_per_sec, bytes: 0 })
    }

    /// Counts `n` more bytes of I/O.
    pub fn account(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
    }

    /// How long to wait, `elapsed` after the start, before more I/O: `None` once the bytes
    /// counted take at least `elapsed` at the limit's rate, else the time left, at most
    /// `slice` (the caller checks its stop signal between slices and asks again).
    pub fn pause(&self, elapsed: Duration, slice: Duration) -> Option<Duration> {
        let due_ns = u128::from(self.bytes) * 1_000_000_000 / u128::from(self.bytes_per_sec);
        let due = Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
        (elapsed < due).then(|| (due - elapsed).min(slice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: Duration = Duration::from_millis(100);

    /// Runs a simulated compaction of `chunks` (bytes, work time each) under `limit` on a
    /// clock that only moves by the work and the pauses; checks at every step that I/O only
    /// goes on while the average rate is within the limit, and returns the total time.
    fn simulate(limit: u64, chunks: impl Iterator<Item = (u64, Duration)>) -> (u64, Duration) {
        let mut rl = RateLimit::new(limit).expect("a limit");
        let (mut clock, mut total) = (Duration::ZERO, 0u64);
        for (n, work) in chunks {
            clock += work;
            total += n;
            rl.account(n);
            while let Some(p) = rl.pause(clock, SLICE) {
                assert!(p > Duration::ZERO && p <= SLICE, "pauses are sliced: {p:?}");
                clock += p;
            }
            // Going on now: the average rate so far is within the limit (1 ns of rounding).
            let allowed = (clock + Duration::from_nanos(1)).as_secs_f64() * limit as f64;
            assert!(total as f64 <= allowed, "{total} bytes by {clock:?} passes {limit} B/s");
        }
        (total, clock)
    }

    /// Chunk sizes like a compaction's batches: 1 byte to 64 KiB, deterministic.
    fn chunks(count: usize, work: Duration) -> impl Iterator<Item = (u64, Duration)> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..count).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (1 + x % (64 * 1024), work)
        })
    }

    #[test]
    fn fast_io_is_held_to_the_rate_without_overshooting_the_time() {
        let limit = 10 * 1024 * 1024;
        let work = Duration::from_micros(20);
        let (total, clock) = simulate(limit, chunks(5_000, work));
        let ideal = Duration::from_secs_f64(total as f64 / limit as f64);
        assert!(clock >= ideal, "{clock:?} < {ideal:?}");
        // Never waits longer than needed: done within one chunk's work of the ideal time.
        assert!(clock <= ideal + work + Duration::from_nanos(1), "{clock:?} vs ideal {ideal:?}");
    }

    #[test]
    fn slow_io_never_waits() {
        let mut rl = RateLimit::new(1024 * 1024).unwrap();
        let mut clock = Duration::ZERO;
        for (n, work) in chunks(1000, Duration::from_millis(100)) {
            clock += work;
            rl.account(n);
            // At most 64 KiB per 100 ms is under 1 MiB/s.
            assert_eq!(rl.pause(clock, SLICE), None);
        }
    }

    #[test]
    fn a_burst_waits_its_exact_due_time_in_slices() {
        let mut rl = RateLimit::new(1000).unwrap();
        rl.account(250);
        assert_eq!(rl.pause(Duration::ZERO, SLICE), Some(SLICE));
        assert_eq!(rl.pause(Duration::from_millis(200), SLICE), Some(Duration::from_millis(50)));
        assert_eq!(rl.pause(Duration::from_millis(250), SLICE), None);
        assert!(RateLimit::new(0).is_none(), "0 means no limit");
        rl.account(u64::MAX);
        assert_eq!(rl.pause(Duration::ZERO, SLICE), Some(SLICE), "saturates, never panics");
    }
}
