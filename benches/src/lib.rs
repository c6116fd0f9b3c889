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

pub mod chart;
pub mod http;
pub mod resp;
pub mod stats;

/// Error type of the library helpers (the binaries wrap it in `anyhow`).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Parses the `RESULT name=<id> value=<number> unit=<unit>` lines the peer scripts print.
pub fn parse_results(text: &str) -> Vec<(String, f64, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("RESULT ")?;
            let mut name = None;
            let mut value = None;
            let mut unit = String::new();
            for field in rest.split_whitespace() {
                if let Some(v) = field.strip_prefix("name=") {
                    name = Some(v.to_string());
                } else if let Some(v) = field.strip_prefix("value=") {
                    value = v.parse::<f64>().ok();
                } else if let Some(v) = field.strip_prefix("unit=") {
                    unit = v.to_string();
                }
            }
            Some((name?, value?, unit))
        })
        .collect()
}

/// Write requests completed so far by block device `dev` (`/proc/diskstats`, 8th field).
pub fn disk_writes(dev: &str) -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&dev)).then(|| f.get(7)?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_result_lines() {
        let r = super::parse_results("note: x\nRESULT name=a_b value=12.5 unit=MB/s\nRESULT name=c value= unit=x\n");
        assert_eq!(r, vec![("a_b".to_string(), 12.5, "MB/s".to_string())]);
    }
}
