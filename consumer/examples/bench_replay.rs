//! Replay throughput through the client: the raw record path (batches decoded and
//! CRC-checked in the client) against the JSON path (`encoding=base64`), on one partition.
//!
//! Produces `MB` megabytes of 1 KiB messages to a fresh topic (skipped if it already holds
//! them), then reads the whole partition back both ways, three times each, and prints MB/s
//! of message values.
//!
//! ```text
//! cargo run --release -p cairn-consumer --example bench_replay -- [http://127.0.0.1:7420] [MB]
//! ```

use std::time::Instant;

use cairn_consumer::{Client, NewMessage, NewTopic, Producer, ReadOptions, ReadPage, Reader, StartAt};

const VALUE_BYTES: usize = 1024;

async fn replay(reader: &Reader, raw: bool, end: u64) -> Result<(usize, f64), cairn_consumer::Error> {
    let started = Instant::now();
    let (mut at, mut bytes) = (0u64, 0usize);
    while at < end {
        let page: ReadPage =
            if raw { reader.read(&StartAt::Offset(at)).await? } else { reader.read_json(&StartAt::Offset(at)).await? };
        bytes += page.messages.iter().map(|m| m.value.as_ref().map_or(0, |v| v.len())).sum::<usize>();
        at = page.next_offset;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let mb: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let client = Client::new(url)?;
    let topic = format!("bench-replay-{mb}mb");
    let count = mb * 1024 * 1024 / VALUE_BYTES as u64;
    let end = match client.describe_topic(&topic).await {
        Ok(t) => t.partitions[0].end_offset,
        Err(_) => {
            client.create_topic(&NewTopic::new(&topic)).await?;
            0
        }
    };
    if end < count {
        let producer = Producer::new(client.clone());
        let value = vec![b'x'; VALUE_BYTES];
        let started = Instant::now();
        for chunk in (end..count).collect::<Vec<_>>().chunks(1000) {
            let msgs = chunk.iter().map(|_| NewMessage::new(value.clone()).to_partition(0)).collect();
            producer.send_batch(&topic, msgs).await?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!("produced {count} x {VALUE_BYTES} B (raw path, 1000/request): {:.1} MB/s", mb as f64 / secs);
    }
    let reader = Reader::new(client, &topic, 0).with_options(ReadOptions {
        max_messages: 10_000,
        max_bytes: 4 << 20,
        ..Default::default()
    });
    for raw in [true, false, true, false, true, false] {
        let (bytes, secs) = replay(&reader, raw, count).await?;
        let path = if raw { "raw records" } else { "JSON      " };
        println!("replay {path}: {:>7.1} MB/s ({bytes} value bytes in {secs:.2} s)", bytes as f64 / 1e6 / secs);
    }
    Ok(())
}
