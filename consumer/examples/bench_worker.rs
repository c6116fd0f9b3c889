//! Worker throughput: [`GroupConsumer::run`] with a trivial handler (it returns `Ok` at
//! once), at several concurrency limits, against the server's own fetch + ack ceiling
//! measured in the same run over the same client (same connection pool).
//!
//! Produces `MESSAGES` messages of 100 bytes to a fresh one-partition topic (skipped if it
//! already holds them), then drains it with a new group (`start: earliest`) per measurement:
//!
//! - **worker, concurrency C**: `GroupConsumer::run` with `concurrency = C` (and
//!   `fetch_max_messages = C`), stopped once every message has been handled; one ack request
//!   per message, as the worker sends them.
//! - **fetch 1 + ack 1**: C concurrent loops, each leasing one message and acking it: C
//!   messages in flight with one ack request per message, as the worker, but one fetch per
//!   message too (the worker fetches up to its free slots at once), and no handler tasks.
//! - **fetch + ack, batched**: C loops calling `fetch(100)` then one `ack` of the whole batch:
//!   what the server can do when acks are not per message.
//!
//! Every measurement runs `ROUNDS` times, in rotated order; the summary prints the median
//! and the min–max of messages/s.
//!
//! ```text
//! cargo run --release -p cairn-consumer --example bench_worker -- [http://127.0.0.1:7420] [MESSAGES] [ROUNDS]
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_consumer::{CancellationToken, Client, Delivery, GroupConsumer, GroupConsumerConfig, HandlerError};

mod common;

const VALUE_BYTES: usize = 100;
const CONCURRENCY: [usize; 4] = [1, 4, 16, 64];

/// One kind of measurement.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Worker(usize),
    PerMessage(usize),
    Batched(usize),
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Worker(c) => format!("worker (GroupConsumer::run), concurrency {c}"),
            Kind::PerMessage(c) => format!("fetch 1 + ack 1, {c} loops"),
            Kind::Batched(c) => format!("fetch 100 + one ack per batch, {c} loops"),
        }
    }
}

fn config(group: &str, topic: &str, concurrency: usize) -> GroupConsumerConfig {
    GroupConsumerConfig {
        concurrency,
        fetch_max_messages: concurrency,
        fetch_wait: Duration::from_millis(50),
        ..GroupConsumerConfig::new(group, topic)
    }
}

/// Drains `count` messages with a worker; returns the seconds taken.
async fn worker(client: &Client, topic: &str, group: &str, concurrency: usize, count: u64) -> Result<f64, Error> {
    let consumer = GroupConsumer::with_config(client.clone(), config(group, topic, concurrency));
    let handled = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    let (h, stop) = (handled.clone(), shutdown.clone());
    let started = Instant::now();
    let stats = consumer
        .run(
            move |_d: Delivery| {
                let (h, stop) = (h.clone(), stop.clone());
                async move {
                    if h.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                        stop.cancel();
                    }
                    Ok::<(), HandlerError>(())
                }
            },
            shutdown,
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if stats.acked < count {
        return Err(format!("worker acked {} of {count}: {stats:?}", stats.acked).into());
    }
    Ok(secs)
}

/// Drains `count` messages with `loops` concurrent fetch/ack loops; returns the seconds taken.
async fn fetch_ack(
    client: &Client,
    topic: &str,
    group: &str,
    loops: usize,
    batched: bool,
    count: u64,
) -> Result<f64, Error> {
    let consumer = GroupConsumer::with_config(client.clone(), config(group, topic, loops));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (c, acked) = (consumer.clone(), acked.clone());
        let max = if batched { 100 } else { 1 };
        tasks.spawn(async move {
            while acked.load(Ordering::Relaxed) < count {
                let batch = c.fetch(max, Duration::from_millis(50)).await?;
                let ids: Vec<_> = batch.iter().map(Delivery::id).collect();
                if batched {
                    if !ids.is_empty() {
                        c.ack(&ids).await?;
                    }
                } else {
                    for id in &ids {
                        c.ack(std::slice::from_ref(id)).await?;
                    }
                }
                acked.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
            Ok::<(), cairn_consumer::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed().as_secs_f64())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let count: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let client = Client::new(url)?;
    let topic = format!("bench-worker-{count}");
    common::fill_topic(&client, &topic, count, VALUE_BYTES).await?;
    println!("{count} messages of {VALUE_BYTES} B on one partition; {rounds} rounds; trivial handler");
    let mut kinds = Vec::new();
    for c in CONCURRENCY {
        kinds.extend([Kind::Worker(c), Kind::PerMessage(c), Kind::Batched(c)]);
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let run_id = std::process::id();
    for round in 0..rounds {
        for step in 0..kinds.len() {
            let i = (step + round) % kinds.len();
            let group = format!("bench-{run_id}-{round}-{i}");
            let secs = match kinds[i] {
                Kind::Worker(c) => worker(&client, &topic, &group, c, count).await?,
                Kind::PerMessage(c) => fetch_ack(&client, &topic, &group, c, false, count).await?,
                Kind::Batched(c) => fetch_ack(&client, &topic, &group, c, true, count).await?,
            };
            client.delete_group(&group).await?;
            let rate = count as f64 / secs;
            println!("round {round}: {:<48} {rate:>9.0} msg/s", kinds[i].label());
            rates[i].push(rate);
        }
    }
    println!("\n| path | msg/s, median | min – max |\n|---|---:|---:|");
    for (kind, r) in kinds.iter().zip(&mut rates) {
        r.sort_by(f64::total_cmp);
        let (min, med, max) = (r[0], r[r.len() / 2], r[r.len() - 1]);
        println!("| {} | {med:.0} | {min:.0} – {max:.0} |", kind.label());
    }
    Ok(())
}
