//! Replay throughput through the client: the raw record path (batches decoded and
//! CRC-checked in the client) against the JSON path (`encoding=base64`), on one partition,
//! with the HTTP transfer itself as the baseline of the same run.
//!
//! Produces `MB` megabytes of 1 KiB messages to a fresh topic (skipped if it already holds
//! them), then reads the whole partition back `ROUNDS` times each way, in rotated order:
//!
//! - **raw records**: [`Reader::read`] (values share the reply buffer);
//! - **JSON**: [`Reader::read_json`] (`encoding=base64`);
//! - **HTTP only**: the same raw-path requests with a plain `reqwest` client, the reply body
//!   received and dropped (no decoding, no CRC check): what the server and the connection
//!   deliver, the ceiling of the raw path.
//!
//! MB/s counts message value bytes (1 KiB per message for the HTTP-only path, which does not
//! decode). The summary prints the median and the min–max of each path.
//!
//! ```text
//! cargo run --release -p cairn-consumer --example bench_replay -- [http://127.0.0.1:7420] [MB] [ROUNDS]
//! ```

use std::time::Instant;

use cairn_consumer::{Client, ReadOptions, ReadPage, Reader, StartAt};

mod common;

const VALUE_BYTES: usize = 1024;

/// The three ways to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Raw,
    Json,
    HttpOnly,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Raw => "raw records (Reader::read)",
            Path::Json => "JSON base64 (Reader::read_json)",
            Path::HttpOnly => "HTTP only, raw path, no decode",
        }
    }
}

async fn replay(reader: &Reader, path: Path, end: u64) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (mut at, mut bytes) = (0u64, 0usize);
    while at < end {
        let page: ReadPage = match path {
            Path::Raw => reader.read(&StartAt::Offset(at)).await?,
            _ => reader.read_json(&StartAt::Offset(at)).await?,
        };
        bytes += page.messages.iter().map(|m| m.value.as_ref().map_or(0, |v| v.len())).sum::<usize>();
        at = page.next_offset;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// The raw-path requests [`Reader::read`] sends, body dropped unread.
async fn http_only(
    http: &reqwest::Client,
    url: &str,
    topic: &str,
    end: u64,
) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (mut at, mut bytes) = (0u64, 0usize);
    let target = format!("{url}/v1/topics/{topic}/partitions/0/messages");
    while at < end {
        let resp = http
            .get(&target)
            .header(reqwest::header::ACCEPT, "application/vnd.cairn.records")
            .query(&[
                ("offset", at.to_string()),
                ("max_messages", "10000".into()),
                ("max_bytes", (4 << 20).to_string()),
            ])
            .send()
            .await?
            .error_for_status()?;
        let next: u64 = resp
            .headers()
            .get("cairn-next-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or("no cairn-next-offset header")?;
        let body = resp.bytes().await?;
        std::hint::black_box(&body);
        bytes += (next - at) as usize * VALUE_BYTES;
        at = next;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let mb: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let client = Client::new(url.clone())?;
    let topic = format!("bench-replay-{mb}mb");
    let count = mb * 1024 * 1024 / VALUE_BYTES as u64;
    let started = Instant::now();
    if common::fill_topic(&client, &topic, count, VALUE_BYTES).await? {
        let secs = started.elapsed().as_secs_f64();
        println!("produced {count} x {VALUE_BYTES} B (raw path, 1000/request): {:.1} MB/s", mb as f64 / secs);
    }
    let reader = Reader::new(client, &topic, 0).with_options(ReadOptions {
        max_messages: 10_000,
        max_bytes: 4 << 20,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let paths = [Path::Raw, Path::Json, Path::HttpOnly];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        for step in 0..paths.len() {
            let i = (step + round) % paths.len();
            let (bytes, secs) = match paths[i] {
                Path::HttpOnly => http_only(&http, &url, &topic, count).await?,
                p => replay(&reader, p, count).await?,
            };
            let rate = bytes as f64 / 1e6 / secs;
            println!("round {round}: {:<32} {rate:>7.1} MB/s ({bytes} value bytes in {secs:.2} s)", paths[i].label());
            rates[i].push(rate);
        }
    }
    println!("\n| path | MB/s, median | min – max |\n|---|---:|---:|");
    for (p, r) in paths.iter().zip(&mut rates) {
        r.sort_by(f64::total_cmp);
        println!("| {} | {:.0} | {:.0} – {:.0} |", p.label(), r[r.len() / 2], r[0], r[r.len() - 1]);
    }
    Ok(())
}
