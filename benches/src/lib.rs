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
pub mod open_loop;
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

/// CPU time (user + system, all threads) used so far by process `pid`, in seconds
/// (`/proc/<pid>/stat` fields 14 and 15, in clock ticks of 1/100 s).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// What a measurement window samples besides its own requests: the block device's write
/// requests and the server process's CPU time.
#[derive(Clone, Debug)]
pub struct Probe {
    pub dev: String,
    pub pid: Option<u32>,
}

/// Counters read at the start and the end of a window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub disk_writes: u64,
    pub cpu_secs: f64,
}

impl Probe {
    pub fn sample(&self) -> Sample {
        Sample {
            disk_writes: disk_writes(&self.dev).unwrap_or(0),
            cpu_secs: self.pid.and_then(cpu_secs).unwrap_or(0.0),
        }
    }

    /// The difference between now and `before`.
    pub fn since(&self, before: Sample) -> Sample {
        let now = self.sample();
        Sample {
            disk_writes: now.disk_writes.saturating_sub(before.disk_writes),
            cpu_secs: (now.cpu_secs - before.cpu_secs).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_cpu_time() {
        let t = super::cpu_secs(std::process::id()).unwrap();
        assert!(t >= 0.0);
    }

    #[test]
    fn parses_result_lines() {
        let r = super::parse_results("note: x\nRESULT name=a_b value=12.5 unit=MB/s\nRESULT name=c value= unit=x\n");
        assert_eq!(r, vec![("a_b".to_string(), 12.5, "MB/s".to_string())]);
    }
}
