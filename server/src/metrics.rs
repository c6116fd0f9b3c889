//! Prometheus metrics, hand-rolled: a few atomic counters, one latency histogram, request
//! counts by route and status, and per-partition gauges read from the catalog at scrape time.
//!
//! Counting is lock-free on the hot path (a read lock and an atomic add for request counts,
//! atomic adds otherwise); rendering happens only when `/metrics` is scraped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use cairn_storage::Catalog;

/// Upper bounds of the append-acknowledgement histogram, in seconds.
const ACK_BUCKETS_S: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; ACK_BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: Default::default(), count: AtomicU64::new(0), sum_us: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = ACK_BUCKETS_S.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, n) in ACK_BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// A request counter's labels: the route template (from the route table, or `unmatched`),
/// the method and the status. Static strings, so counting allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RequestKey {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// A fast hasher for small keys made of static labels (the Fx hash of rustc: a rotate, a xor
/// and a multiply per 8 bytes). The keys are never chosen by clients (route templates of the
/// route table, a bounded set of methods, status codes), so the flooding resistance of the
/// standard SipHash buys nothing, and SipHash was 1 % of a single-message produce.
#[derive(Debug, Default, Clone, Copy)]
pub struct LabelHasher(u64);

impl std::hash::Hasher for LabelHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    /// One Fx step: every other input goes through here.
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`LabelHasher`]s.
pub type LabelHashing = std::hash::BuildHasherDefault<LabelHasher>;

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: RwLock<HashMap<RequestKey, AtomicU64, LabelHashing>>,
    pub produce_messages: AtomicU64,
    pub produce_bytes: AtomicU64,
    pub produce_duplicates: AtomicU64,
    pub read_messages: AtomicU64,
    pub read_bytes: AtomicU64,
    /// Append to acknowledgement (the group commit, with its fdatasync for `sync: always`).
    pub append_ack: Histogram,
}

impl Metrics {
    /// Counts one finished request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16) {
        let key = RequestKey { route, method, status };
        {
            let map = self.requests.read().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get(&key) {
                n.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.requests.write().unwrap_or_else(|p| p.into_inner());
        map.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
    }

    pub fn produced(&self, messages: u64, bytes: u64) {
        self.produce_messages.fetch_add(messages, Ordering::Relaxed);
        self.produce_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn read(&self, messages: u64, bytes: u64) {
        self.read_messages.fetch_add(messages, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, catalog: &Catalog) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP cairn_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE cairn_http_requests_total counter\n");
        {
            let map = self.requests.read().unwrap_or_else(|p| p.into_inner());
            let mut rows: Vec<_> = map.iter().map(|(k, n)| (k, n.load(Ordering::Relaxed))).collect();
            rows.sort_by_key(|(k, _)| (k.route, k.method, k.status));
            for (k, n) in rows {
                let _ = writeln!(
                    out,
                    "cairn_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {n}",
                    escape(k.route),
                    escape(k.method),
                    k.status
                );
            }
        }
        let counters = [
            ("cairn_produce_messages_total", "Messages appended by produce requests.", &self.produce_messages),
            ("cairn_produce_bytes_total", "Bytes of record batches appended by produce requests.", &self.produce_bytes),
            (
                "cairn_produce_duplicates_total",
                "Produce requests answered from the idempotency window.",
                &self.produce_duplicates,
            ),
            ("cairn_read_messages_total", "Messages returned by reads.", &self.read_messages),
            ("cairn_read_bytes_total", "Bytes of message data returned by reads.", &self.read_bytes),
        ];
        for (name, help, value) in counters {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP cairn_append_fsync_seconds Append to acknowledgement latency: the group-commit write plus its \
             fsync (fdatasync) for sync=always topics.\n# TYPE cairn_append_fsync_seconds histogram\n",
        );
        self.append_ack.render(&mut out, "cairn_append_fsync_seconds");
        let _ = writeln!(
            out,
            "# HELP cairn_compactor_rounds_total Rounds of the background compactor (each checks every partition \
             of every compact topic once).\n# TYPE cairn_compactor_rounds_total counter\ncairn_compactor_rounds_total {}",
            catalog.compactor_rounds()
        );
        render_partitions(&mut out, catalog);
        out
    }
}

fn render_partitions(out: &mut String, catalog: &Catalog) {
    let gauges: [(&str, &str); 4] = [
        ("cairn_partition_end_offset", "Next offset to be written (high watermark)."),
        ("cairn_partition_start_offset", "First offset still stored."),
        ("cairn_partition_size_bytes", "Bytes of record batches stored."),
        ("cairn_partition_segments", "Segments of the partition."),
    ];
    let topics = catalog.topics();
    for (i, (name, help)) in gauges.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for topic in &topics {
            for part in topic.partitions() {
                let v = match i {
                    0 => part.end_offset(),
                    1 => part.start_offset(),
                    2 => part.size_bytes(),
                    _ => part.segment_count() as u64,
                };
                let _ = writeln!(
                    out,
                    "{name}{{topic=\"{}\",partition=\"{}\"}} {v}",
                    escape(topic.name()),
                    part.partition()
                );
            }
        }
    }
    let name = "cairn_partition_dirty_ratio";
    let _ = writeln!(
        out,
        "# HELP {name} Share of the sealed bytes not yet written by compaction (the background compactor's \
         criterion).\n# TYPE {name} gauge"
    );
    for topic in &topics {
        for part in topic.partitions() {
            let (t, p, v) = (escape(topic.name()), part.partition(), part.dirty_ratio());
            let _ = writeln!(out, "{name}{{topic=\"{t}\",partition=\"{p}\"}} {v}");
        }
    }
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"5\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }

    #[test]
    fn renders_requests_and_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), Default::default()).unwrap();
        catalog.create_topic("t", cairn_storage::TopicConfig { partitions: 2, ..Default::default() }).unwrap();
        let m = Metrics::default();
        m.request("/v1/topics", "GET", 200);
        m.request("/v1/topics", "GET", 200);
        m.produced(3, 100);
        let text = m.render(&catalog);
        assert!(text.contains("cairn_http_requests_total{route=\"/v1/topics\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("cairn_produce_messages_total 3"));
        assert!(text.contains("cairn_partition_end_offset{topic=\"t\",partition=\"1\"} 0"));
        assert!(text.contains("cairn_partition_dirty_ratio{topic=\"t\",partition=\"1\"} 0"));
        assert!(text.contains("\ncairn_compactor_rounds_total 0\n"));
        catalog.close().unwrap();
    }
}
