//! Benchmark helpers shared by the benchmark binaries: timing loops, statistics, and the
//! table printer. Nothing here touches the engine; see `benches/storage.rs` for that.

use std::time::{Duration, Instant};

/// Runs `step` repeatedly until `budget` has passed; returns (iterations, elapsed).
pub fn run_for(budget: Duration, mut step: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        step();
        n += 1;
    }
    (n, start.elapsed())
}

/// Median of a non-empty slice (the mean of the middle two for even lengths).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The value at quantile `q` (0..=1) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}
