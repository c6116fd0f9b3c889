//! `cairn bench`: produce and consume load against a server, with a progress bar and a
//! summary of throughput and request latency (p50/p99/p999 from an HDR histogram).
//!
//! Produce: `--connections` workers each send requests of `--batch` messages of `--size`
//! bytes as raw record batches (the fast path clients use), round-robin over the
//! partitions, until `--messages` are acknowledged or `--duration` passes. Consume: the same
//! number of workers read the partitions' raw batches from the start to the end offset seen
//! when the phase starts (in consume mode: at most `--messages`), checking every CRC. Latency
//! is per request, measured at the client; MB/s counts the record-batch bytes sent or received
//! (values plus each batch's and record's framing), the same measure in both phases.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_storage::batch;
use cairn_storage::BatchBuilder;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::api::{seg, Api};
use crate::cli::{BenchArgs, BenchMode};
use crate::outcome::{interrupts, Outcome, UsageError};
use crate::table::{self, Table};

/// Largest latency the histogram records, in microseconds (longer ones are clamped).
const LATENCY_US_MAX: u64 = 120_000_000;
/// Bytes asked for per consume request.
const CONSUME_MAX_BYTES: usize = 4 * 1024 * 1024;

/// What one phase measured.
#[derive(Debug, Serialize)]
struct PhaseResult {
    phase: &'static str,
    messages: u64,
    bytes: u64,
    requests: u64,
    seconds: f64,
    messages_per_sec: f64,
    mb_per_sec: f64,
    latency_ms: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Counters shared by a phase's workers.
#[derive(Debug, Default)]
struct Shared {
    claimed: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
}

pub async fn run(api: &Api, args: BenchArgs, json: bool) -> anyhow::Result<Outcome> {
    if args.size > 16 * 1024 * 1024 {
        return Err(UsageError("--size is at most 16 MiB".into()).into());
    }
    if args.mode == BenchMode::Consume && args.topic.is_none() {
        let msg = "--mode consume reads an existing topic: give it with --topic (or use --mode both)";
        return Err(UsageError(msg.into()).into());
    }
    let mut interrupts = interrupts()?;
    let (topic, created) = prepare_topic(api, &args).await?;
    let partitions = partition_count(api, &topic).await?;
    // Ctrl-C stops the load where it is (the workers are cancelled); the topic the bench made
    // is deleted all the same.
    let outcome = tokio::select! {
        done = run_phases(api, &args, &topic, partitions, json) => Some(done),
        _ = interrupts.recv() => None,
    };
    if created && !args.keep {
        if let Err(e) = api.delete(&format!("/v1/topics/{}", seg(&topic))).await {
            eprintln!("warning: could not delete bench topic {topic}: {e}");
        }
    }
    let Some(outcome) = outcome else {
        let kept = if created && !args.keep { "deleted" } else { "kept" };
        eprintln!("interrupted: no summary; bench topic {topic} {kept}");
        return Ok(Outcome::Interrupted);
    };
    let results = outcome?;
    if json {
        table::print_json(&json!({
            "topic": topic, "partitions": partitions, "size": args.size, "batch": args.batch,
            "connections": args.connections, "phases": results,
        }))?;
    } else {
        print_summary(&topic, &args, partitions, &results);
    }
    Ok(Outcome::Ok)
}

async fn run_phases(
    api: &Api,
    args: &BenchArgs,
    topic: &str,
    partitions: u32,
    json: bool,
) -> anyhow::Result<Vec<PhaseResult>> {
    let mut results = Vec::new();
    if matches!(args.mode, BenchMode::Produce | BenchMode::Both) {
        results.push(produce_phase(api, args, topic, partitions, json).await?);
    }
    if matches!(args.mode, BenchMode::Consume | BenchMode::Both) {
        results.push(consume_phase(api, args, topic, partitions, json).await?);
    }
    Ok(results)
}

/// Uses `--topic` (created if missing) or a fresh `cairn-bench-<ms>`. Returns whether created.
async fn prepare_topic(api: &Api, args: &BenchArgs) -> anyhow::Result<(String, bool)> {
    let topic = match &args.topic {
        Some(t) => t.clone(),
        None => {
            let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            format!("cairn-bench-{ms}")
        }
    };
    match api.get(&format!("/v1/topics/{}", seg(&topic))).await {
        Ok(_) => Ok((topic, false)),
        Err(e) if e.code() == Some("topic_not_found") && args.mode == BenchMode::Consume => {
            Err(anyhow::Error::new(e).context("--mode consume reads an existing topic"))
        }
        Err(e) if e.code() == Some("topic_not_found") => {
            let partitions = args.partitions.unwrap_or(args.connections);
            api.send_json(Method::POST, "/v1/topics", &json!({"name": topic, "partitions": partitions})).await?;
            Ok((topic, true))
        }
        Err(e) => Err(e.into()),
    }
}

async fn partition_count(api: &Api, topic: &str) -> anyhow::Result<u32> {
    let desc = api.get(&format!("/v1/topics/{}", seg(topic))).await?;
    let n = desc.get("partitions").and_then(Value::as_array).map_or(0, Vec::len);
    u32::try_from(n.max(1)).map_err(|_| anyhow::anyhow!("topic {topic} has too many partitions"))
}

fn progress(total: u64, label: &str, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = "{prefix:>8} [{bar:40}] {human_pos}/{human_len} msgs  {rate}  eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} msg/s", table::count(state.per_sec().round() as u64));
        };
        bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
    }
    bar.set_prefix(label.to_string());
    bar
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)?)
}

/// The batch every produce request sends (the server assigns offsets and timestamps).
fn build_batch(records: u32, size: usize) -> anyhow::Result<Bytes> {
    let value: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut b = BatchBuilder::new();
    for _ in 0..records {
        b.push(None, Some(&value), []);
    }
    Ok(Bytes::from(b.finish(0, 0)?))
}

async fn produce_phase(
    api: &Api,
    args: &BenchArgs,
    topic: &str,
    partitions: u32,
    json: bool,
) -> anyhow::Result<PhaseResult> {
    let total = args.messages;
    let full = build_batch(args.batch, args.size)?;
    let shared = Arc::new(Shared::default());
    let bar = progress(total, "produce", json);
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let path = format!("/v1/topics/{}/messages", seg(topic));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..args.connections {
        let (api, shared, bar, full, path) =
            (api.clone(), Arc::clone(&shared), bar.clone(), full.clone(), path.clone());
        let (batch, size) = (u64::from(args.batch), args.size);
        workers.spawn(async move {
            let mut hist = new_histogram()?;
            let mut partition = worker % partitions;
            loop {
                let start = shared.claimed.fetch_add(batch, Ordering::Relaxed);
                if start >= total || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok::<_, anyhow::Error>(hist);
                }
                let n = batch.min(total - start);
                let body = if n == batch { full.clone() } else { build_batch(n as u32, size)? };
                let body_len = body.len() as u64;
                let t = Instant::now();
                api.post_records(&path, partition, body).await?;
                hist.saturating_record(t.elapsed().as_micros() as u64);
                shared.messages.fetch_add(n, Ordering::Relaxed);
                shared.bytes.fetch_add(body_len, Ordering::Relaxed);
                shared.requests.fetch_add(1, Ordering::Relaxed);
                bar.inc(n);
                partition = (partition + 1) % partitions;
            }
        });
    }
    let hist = join(workers).await?;
    bar.finish_and_clear();
    Ok(result("produce", &shared, started.elapsed(), &hist))
}

async fn consume_phase(
    api: &Api,
    args: &BenchArgs,
    topic: &str,
    partitions: u32,
    json: bool,
) -> anyhow::Result<PhaseResult> {
    let desc = api.get(&format!("/v1/topics/{}", seg(topic))).await?;
    let parts = desc.get("partitions").and_then(Value::as_array).cloned().unwrap_or_default();
    let range = |p: &Value, f: &str| p.get(f).and_then(Value::as_u64).unwrap_or(0);
    let ranges: Vec<(u32, u64, u64)> = parts
        .iter()
        .map(|p| (range(p, "partition") as u32, range(p, "start_offset"), range(p, "end_offset")))
        .collect();
    let stored: u64 = ranges.iter().map(|(_, s, e)| e - s).sum();
    let total = if args.mode == BenchMode::Consume { stored.min(args.messages) } else { stored };
    let shared = Arc::new(Shared::default());
    let bar = progress(total, "consume", json);
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    let connections = args.connections.min(partitions).max(1);
    for worker in 0..connections {
        let mine: Vec<(u32, u64, u64)> = ranges.iter().copied().filter(|(p, _, _)| p % connections == worker).collect();
        let (api, shared, bar) = (api.clone(), Arc::clone(&shared), bar.clone());
        let base = format!("/v1/topics/{}/partitions", seg(topic));
        workers.spawn(async move {
            let mut hist = new_histogram()?;
            for (p, start, end) in mine {
                let mut offset = start;
                while offset < end && shared.messages.load(Ordering::Relaxed) < total {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(hist);
                    }
                    // Whole batches come back: a request may pass the phase's total, not the count.
                    let want = total.saturating_sub(shared.messages.load(Ordering::Relaxed)).clamp(1, 10_000);
                    let path = format!(
                        "{base}/{p}/messages?offset={offset}&max_messages={want}&max_bytes={CONSUME_MAX_BYTES}"
                    );
                    let t = Instant::now();
                    let (_, body) = api.get_records(&path).await?;
                    hist.saturating_record(t.elapsed().as_micros() as u64);
                    let (count, next) = count_records(&body, offset)?;
                    if next <= offset {
                        break;
                    }
                    offset = next;
                    let counted = shared
                        .messages
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                            Some(m + count.min(total - m.min(total)))
                        })
                        .map_or(0, |before| count.min(total - before.min(total)));
                    bar.inc(counted);
                    shared.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>(hist)
        });
    }
    let hist = join(workers).await?;
    bar.finish_and_clear();
    Ok(result("consume", &shared, started.elapsed(), &hist))
}

/// Records at or after `from` in a raw records body (every CRC checked), and the offset
/// after the last batch.
fn count_records(body: &[u8], from: u64) -> anyhow::Result<(u64, u64)> {
    let (mut pos, mut count, mut next) = (0usize, 0u64, from);
    while pos < body.len() {
        let header = batch::verify(&body[pos..]).map_err(|e| anyhow::anyhow!("bad batch from the server: {e}"))?;
        count += if header.base_offset >= from {
            u64::from(header.record_count)
        } else {
            header.next_offset().saturating_sub(from).min(u64::from(header.record_count))
        };
        next = next.max(header.next_offset());
        pos += header.total_len();
    }
    Ok((count, next))
}

async fn join(mut workers: JoinSet<anyhow::Result<Histogram<u64>>>) -> anyhow::Result<Histogram<u64>> {
    let mut all = new_histogram()?;
    while let Some(done) = workers.join_next().await {
        let hist = done??;
        all.add(&hist)?;
    }
    Ok(all)
}

fn result(phase: &'static str, shared: &Shared, elapsed: Duration, hist: &Histogram<u64>) -> PhaseResult {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let messages = shared.messages.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let ms = |us: u64| us as f64 / 1000.0;
    PhaseResult {
        phase,
        messages,
        bytes,
        requests: shared.requests.load(Ordering::Relaxed),
        seconds: secs,
        messages_per_sec: messages as f64 / secs,
        mb_per_sec: bytes as f64 / secs / 1e6,
        latency_ms: Latency {
            p50: ms(hist.value_at_quantile(0.50)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
        },
    }
}

fn print_summary(topic: &str, args: &BenchArgs, partitions: u32, results: &[PhaseResult]) {
    outln!(
        "topic {topic}: {partitions} partition(s), {} B values, {} per batch, {} connection(s)",
        args.size,
        args.batch,
        args.connections
    );
    let mut t = Table::new(&[
        "PHASE", "MESSAGES", "REQUESTS", "SECONDS", "MSG/S", "MB/S", "P50 MS", "P99 MS", "P999 MS", "MAX MS",
    ]);
    for r in results {
        t.row(vec![
            r.phase.to_string(),
            table::count(r.messages),
            table::count(r.requests),
            format!("{:.2}", r.seconds),
            table::count(r.messages_per_sec.round() as u64),
            format!("{:.1}", r.mb_per_sec),
            format!("{:.2}", r.latency_ms.p50),
            format!("{:.2}", r.latency_ms.p99),
            format!("{:.2}", r.latency_ms.p999),
            format!("{:.2}", r.latency_ms.max),
        ]);
    }
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_of_raw_bodies() {
        let mut body = Vec::new();
        for base in [0u64, 3] {
            let mut b = BatchBuilder::new();
            for _ in 0..3 {
                b.push(None, Some(b"x"), []);
            }
            body.extend(b.finish(base, 0).unwrap());
        }
        assert_eq!(count_records(&body, 0).unwrap(), (6, 6));
        assert_eq!(count_records(&body, 1).unwrap(), (5, 6));
        body[20] ^= 1;
        assert!(count_records(&body, 0).is_err());
    }
}
