//! Compaction throughput and the zstd level trade-off on JSON events.
//!
//! Writes `EVENTS` JSON events (about 170 bytes of JSON each, `KEYS` distinct keys, in produce-sized
//! batches of 100) to a `compact` topic per codec, then compacts it once and reports the
//! size before and after, the time taken, and the rate over the bytes read. Run with:
//!
//! ```sh
//! CARGO_TARGET_DIR=target-compact cargo run --release -p cairn-storage --example compaction_bench [EVENTS] [KEYS]
//! ```

use std::time::Instant;

use cairn_storage::{
    BatchBuilder, Catalog, CatalogOptions, CleanupPolicy, CompactionOptions, Compression, SyncPolicy, TopicConfig,
};

fn event(i: u64, keys: u64) -> (String, String) {
    let user = (i.wrapping_mul(2_654_435_761)) % keys;
    let value = format!(
        r#"{{"event_id":{i},"user":"user-{user}","type":"{}","ts":{},"page":"/products/{}","session":"{:016x}","amount":{}.{:02},"tags":["web","eu-west","ab-{}"]}}"#,
        ["view", "click", "purchase", "signup"][(i % 4) as usize],
        1_764_000_000_000u64 + i * 17,
        i % 997,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        i % 500,
        i % 100,
        i % 7
    );
    (format!("user-{user}"), value)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(400_000);
    let keys: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    println!("{events} JSON events, {keys} keys, batches of 100, segment_bytes 1 MiB");
    println!("| codec | size before | size after | messages after | compaction time | MB/s (bytes read) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, compression, level) in [
        ("none", Compression::None, 3),
        ("zstd 1", Compression::Zstd, 1),
        ("zstd 3", Compression::Zstd, 3),
        ("zstd 9", Compression::Zstd, 9),
        ("zstd 19", Compression::Zstd, 19),
    ] {
        let dir = tempfile::tempdir()?;
        let cat = Catalog::open(dir.path(), CatalogOptions::default())?;
        let cfg = TopicConfig {
            cleanup_policy: CleanupPolicy::Compact,
            compression,
            compression_level: level,
            segment_bytes: 1024 * 1024,
            sync: SyncPolicy::Interval { interval_ms: 1000 },
            retention_ms: None,
            ..TopicConfig::default()
        };
        let p = cat.create_topic("events", cfg.clone())?.partition(0).ok_or("no partition")?;
        let mut i = 0;
        while i < events {
            let mut b = BatchBuilder::with_codec(cfg.codec());
            for _ in 0..100.min(events - i) {
                let (k, v) = event(i, keys);
                b.push(Some(k.as_bytes()), Some(v.as_bytes()), []);
                i += 1;
            }
            p.append(b.finish(0, 0)?)?;
        }
        let started = Instant::now();
        let stats = p.compact(&CompactionOptions::default())?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {:.1} MB | {:.1} MB | {} | {:.2} s | {:.0} |",
            stats.bytes_before as f64 / 1e6,
            stats.bytes_after as f64 / 1e6,
            stats.messages_after,
            secs,
            stats.bytes_before as f64 / 1e6 / secs
        );
        cat.close()?;
    }
    Ok(())
}
