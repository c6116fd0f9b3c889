//! Storage engine benchmarks, printed as tables (see `docs/BENCHMARKS.md`):
//!
//! 1. durable append (`sync = always`) of batches of 1 / 100 / 1000 records of 100 B and
//!    1 KiB, with 1 and 8 concurrent appenders, against a raw `write` + `fdatasync` loop of
//!    the same batches in the same run (the ratio is what counts on a noisy VM);
//! 2. sequential read from the page cache (zero-copy batches, and with records decoded);
//! 3. offset and timestamp lookup latency;
//! 4. open time after a clean shutdown for logs of 10 MB, 1 GB and 10 GB.
//!
//! `cargo bench -p cairn-benches --bench storage [-- append read open]`.
//! Environment: `CAIRN_BENCH_DIR` (where data goes; default the temp dir), `CAIRN_BENCH_SECS`
//! (seconds per append measurement, default 1), `CAIRN_BENCH_ROUNDS` (default 3),
//! `CAIRN_BENCH_OPEN_GB` (largest open-time log in GB, default 10), `CAIRN_BENCH_DEV`
//! (block device for the write-request count, default `vda`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_benches::{median, quantile, run_for};
use cairn_storage::*;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("CAIRN_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// A batch of `records` records with an 8-byte key and a `size`-byte value.
fn make_batch(records: usize, size: usize) -> Vec<u8> {
    let value = vec![0x42u8; size];
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.push(Some(&(i as u64).to_le_bytes()[..]), Some(&value[..]), []);
    }
    b.finish(0, 0).expect("batch")
}

/// Write requests completed by the block device so far (`/proc/diskstats`, field 4).
fn disk_writes() -> Option<u64> {
    let dev = std::env::var("CAIRN_BENCH_DEV").unwrap_or_else(|_| "vda".into());
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&dev.as_str())).then(|| f.get(7)?.parse().ok()).flatten()
    })
}

struct Throughput {
    appends_per_s: f64,
    bytes_per_s: f64,
    writes_per_append: f64,
}

/// The baseline: one thread doing `write` + `fdatasync` of the batch, appending to a file.
fn raw_loop(dir: &Path, batch: &[u8], budget: Duration) -> Throughput {
    let tmp = tempfile::tempdir_in(dir).expect("tempdir");
    let mut f = File::create(tmp.path().join("raw.log")).expect("create");
    let w0 = disk_writes();
    let (n, t) = run_for(budget, || {
        f.write_all(batch).expect("write");
        f.sync_data().expect("fdatasync");
    });
    let writes = w0.and_then(|w0| Some(disk_writes()? - w0)).map_or(f64::NAN, |w| w as f64 / n as f64);
    let secs = t.as_secs_f64();
    Throughput {
        appends_per_s: n as f64 / secs,
        bytes_per_s: (n as usize * batch.len()) as f64 / secs,
        writes_per_append: writes,
    }
}

/// `appenders` threads appending the batch to one `sync = always` partition.
fn engine_loop(dir: &Path, batch: &[u8], appenders: usize, budget: Duration) -> Throughput {
    let tmp = tempfile::tempdir_in(dir).expect("tempdir");
    let cat = Catalog::open(tmp.path(), CatalogOptions::default()).expect("open");
    let cfg = TopicConfig { retention_ms: None, ..TopicConfig::default() };
    let p = cat.create_topic("bench", cfg).expect("topic").partition(0).expect("partition");
    let count = AtomicU64::new(0);
    let w0 = disk_writes();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..appenders {
            s.spawn(|| {
                while start.elapsed() < budget {
                    p.append(batch.to_vec()).expect("append");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    let writes = w0.and_then(|w0| Some(disk_writes()? - w0)).map_or(f64::NAN, |w| w as f64 / n as f64);
    drop(p);
    cat.close().expect("close");
    Throughput {
        appends_per_s: n as f64 / secs,
        bytes_per_s: (n as usize * batch.len()) as f64 / secs,
        writes_per_append: writes,
    }
}

fn append_section(dir: &Path) {
    let budget = Duration::from_secs_f64(env_or("CAIRN_BENCH_SECS", 1.0));
    let rounds: usize = env_or("CAIRN_BENCH_ROUNDS", 3);
    println!("\n## Durable append (sync = always), median of {rounds} rounds of {budget:?} each\n");
    println!("| records x size | batch bytes | raw write+fdatasync: batches/s, MB/s (disk writes/batch) | engine, 1 appender: batches/s, MB/s (writes/batch), ratio | engine, 8 appenders: batches/s, MB/s (writes/batch), ratio | 8 appenders: records/s |");
    println!("|---|---:|---|---|---|---:|");
    for &(records, size) in &[(1, 100), (100, 100), (1000, 100), (1, 1024), (100, 1024), (1000, 1024)] {
        let batch = make_batch(records, size);
        let (mut raw, mut one, mut eight) = (Vec::new(), Vec::new(), Vec::new());
        // The first measurement after a switch ran slower in experiments (whichever it was),
        // so each round rotates the order: over 3 rounds each one runs once in each position.
        for round in 0..rounds {
            for k in 0..3 {
                match (round + k) % 3 {
                    0 => raw.push(raw_loop(dir, &batch, budget)),
                    1 => one.push(engine_loop(dir, &batch, 1, budget)),
                    _ => eight.push(engine_loop(dir, &batch, 8, budget)),
                }
            }
        }
        let med = |v: &[Throughput], f: fn(&Throughput) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
        let (raw_bps, one_bps, eight_bps) =
            (med(&raw, |t| t.bytes_per_s), med(&one, |t| t.bytes_per_s), med(&eight, |t| t.bytes_per_s));
        let cell = |v: &[Throughput], bps: f64, ratio: Option<f64>| {
            let r = ratio.map_or(String::new(), |r| format!(", **{:.0} %**", r * 100.0));
            format!("{:.0}, {:.1} ({:.1}){r}", med(v, |t| t.appends_per_s), bps / 1e6, med(v, |t| t.writes_per_append))
        };
        println!(
            "| {records} x {size} B | {} | {} | {} | {} | {:.0} |",
            batch.len(),
            cell(&raw, raw_bps, None),
            cell(&one, one_bps, Some(one_bps / raw_bps)),
            cell(&eight, eight_bps, Some(eight_bps / raw_bps)),
            med(&eight, |t| t.appends_per_s) * records as f64,
        );
    }
}

/// Builds a partition holding `bytes` of batches of `records` x `size`, quickly (interval sync).
fn build_log(dir: &Path, segment_bytes: u64, records: usize, size: usize, bytes: u64) -> u64 {
    let cat = Catalog::open(dir, CatalogOptions::default()).expect("open");
    let cfg = TopicConfig {
        retention_ms: None,
        segment_bytes,
        sync: SyncPolicy::Interval { interval_ms: 1000 },
        ..TopicConfig::default()
    };
    let p = cat.create_topic("log", cfg).expect("topic").partition(0).expect("partition");
    let batch = make_batch(records, size);
    let mut written = 0;
    while written < bytes {
        p.append(batch.clone()).expect("append");
        written += batch.len() as u64;
    }
    drop(p);
    cat.close().expect("close");
    written
}

fn open_log(dir: &Path) -> (Catalog, PartitionLog) {
    let cat = Catalog::open(dir, CatalogOptions::default()).expect("open");
    let p = cat.topic("log").expect("topic").partition(0).expect("partition");
    (cat, p)
}

/// Reads the whole partition; returns (batch bytes, value bytes).
fn read_all(p: &PartitionLog, decode: bool) -> (u64, u64) {
    let (mut batch_bytes, mut value_bytes, mut next) = (0u64, 0u64, p.start_offset());
    loop {
        let r = p.read(next, 1 << 20).expect("read");
        if r.batches.is_empty() {
            return (batch_bytes, value_bytes);
        }
        for b in &r.batches {
            batch_bytes += b.bytes.len() as u64;
            if decode {
                let d = DecodedBatch::trusting_crc(&b.bytes, b.header).expect("decode");
                for rec in d.records() {
                    value_bytes += rec.expect("record").value.map_or(0, <[u8]>::len) as u64;
                }
            }
        }
        next = r.next_offset;
    }
}

fn read_section(dir: &Path) {
    println!("\n## Sequential read from the page cache (median of 5 passes)\n");
    println!("| log | zero-copy batches (CRC checked): GB/s of batches, GB/s of record values | with every record decoded: GB/s of record values, records/s |");
    println!("|---|---|---|");
    let mut lookups = Vec::new();
    for &(records, size, bytes) in &[(100usize, 1024usize, 1u64 << 30), (100, 100, 512 << 20)] {
        let tmp = tempfile::tempdir_in(dir).expect("tempdir");
        build_log(tmp.path(), 128 << 20, records, size, bytes);
        let (cat, p) = open_log(tmp.path());
        let value_share = (records * size) as f64 / make_batch(records, size).len() as f64;
        read_all(&p, false); // warm the page cache and the maps
        let (mut plain, mut decoded) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            let (b, _) = read_all(&p, false);
            plain.push(b as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let (_, v) = read_all(&p, true);
            decoded.push(v as f64 / t.elapsed().as_secs_f64());
        }
        let (plain, decoded) = (median(&mut plain), median(&mut decoded));
        println!(
            "| {} MB, {records} x {size} B batches | {:.2}, **{:.2}** | **{:.2}**, {:.1} M |",
            bytes >> 20,
            plain / 1e9,
            plain * value_share / 1e9,
            decoded / 1e9,
            decoded / size as f64 / 1e6
        );
        let label = format!(
            "{} MB log of {records} x {size} B batches ({} B each)",
            bytes >> 20,
            make_batch(records, size).len()
        );
        lookups.push((label, tmp, cat, p));
    }
    println!("\n## Lookup latency (200,000 random offsets, 20,000 random timestamps; page cache warm)\n");
    println!("| log | operation | mean | p50 | p99 | p99.9 |");
    println!("|---|---|---:|---:|---:|---:|");
    for (label, _tmp, _cat, p) in &lookups {
        lookup_rows(label, p);
    }
}

fn latency_row(label: &str, op: &str, lat: &mut [f64]) {
    lat.sort_by(f64::total_cmp);
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    println!(
        "| {label} | {op} | {:.2} µs | {:.2} µs | {:.2} µs | {:.2} µs |",
        mean / 1e3,
        quantile(lat, 0.5) / 1e3,
        quantile(lat, 0.99) / 1e3,
        quantile(lat, 0.999) / 1e3
    );
}

fn lookup_rows(label: &str, p: &PartitionLog) {
    let end = p.end_offset();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut lat = Vec::with_capacity(200_000);
    for _ in 0..200_000 {
        let o = next() % end;
        let t = Instant::now();
        let r = p.read(o, 1).expect("read");
        lat.push(t.elapsed().as_nanos() as f64);
        assert!(r.batches[0].header.base_offset <= o);
    }
    latency_row(label, "read(random offset, max 1 byte): index lookup + CRC of the batch", &mut lat);
    let first = p.segments().first().and_then(|s| s.max_timestamp);
    let last = p.segments().last().and_then(|s| s.max_timestamp);
    if let (Some(first_ts), Some(last_ts)) = (first, last) {
        let span = (last_ts - first_ts + 1) as u64;
        let mut lat = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let ts = first_ts + (next() % span) as i64;
            let t = Instant::now();
            p.offset_for_timestamp(ts).expect("by time");
            lat.push(t.elapsed().as_nanos() as f64);
        }
        latency_row(label, "offset_for_timestamp(random)", &mut lat);
    }
}

fn drop_caches() -> bool {
    let synced = std::process::Command::new("sync").status().is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

fn open_section(dir: &Path) {
    let max_gb: u64 = env_or("CAIRN_BENCH_OPEN_GB", 10);
    let reps = 7;
    println!("\n## Open time after a clean shutdown (segment_bytes = 1 GiB; {reps} opens each)\n");
    println!(
        "Each open includes the fsyncs of the open protocol (directories, and removing the clean-shutdown marker),"
    );
    println!("whose latency depends on other I/O on the machine.\n");
    println!("| log size | segments | warm cache: median (min) | caches dropped: median (min) |");
    println!("|---:|---:|---:|---:|");
    for &mb in &[10u64, 1024, 10 * 1024] {
        if mb > max_gb * 1024 {
            println!("| {mb} MB | - | skipped (CAIRN_BENCH_OPEN_GB={max_gb}) | |");
            continue;
        }
        let tmp = tempfile::tempdir_in(dir).expect("tempdir");
        build_log(tmp.path(), 1 << 30, 1000, 1024, mb << 20);
        let (mut warm, mut cold) = (Vec::new(), Vec::new());
        let mut segments = 0;
        for i in 0..2 * reps {
            let dropped = i % 2 == 1 && drop_caches();
            let t = Instant::now();
            let (cat, p) = open_log(tmp.path());
            let secs = t.elapsed().as_secs_f64();
            assert!(cat.opened_clean());
            segments = p.segment_count();
            if i % 2 == 0 {
                warm.push(secs);
            } else if dropped {
                cold.push(secs);
            }
            drop(p);
            cat.close().expect("close");
        }
        let fmt = |v: &mut Vec<f64>| {
            if v.is_empty() {
                return "n/a (cannot drop caches)".to_string();
            }
            let m = median(v);
            format!("{:.2} ms ({:.2} ms)", m * 1e3, v[0] * 1e3)
        };
        println!("| {mb} MB | {segments} | {} | {} |", fmt(&mut warm), fmt(&mut cold));
    }
}

fn main() {
    let dir = bench_dir();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |s: &str| wanted.is_empty() || wanted.iter().any(|w| w == s);
    println!("# cairn-storage benchmarks (data in {})", dir.display());
    if want("append") {
        append_section(&dir);
    }
    if want("read") {
        read_section(&dir);
    }
    if want("open") {
        open_section(&dir);
    }
}
