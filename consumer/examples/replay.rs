//! A new consumer that replays a partition's whole history, then keeps following it.
//!
//! Uses the raw record path (batches decoded and CRC-checked in the client) and long-polls
//! once caught up. Stop with Ctrl-C.
//!
//! ```text
//! cargo run -p cairn-consumer --example replay -- [http://127.0.0.1:7420] [topic] [partition]
//! ```

use std::time::{Duration, Instant};

use cairn_consumer::{Client, ReadOptions, Reader, StartAt};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let partition: u32 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let client = Client::new(url)?;
    let end = client.describe_topic(&topic).await?.partitions.get(partition as usize).map_or(0, |p| p.end_offset);
    println!("replaying {topic}/{partition}: {end} messages of history, then following");

    let reader = Reader::new(client, topic, partition).with_options(ReadOptions {
        max_messages: 10_000,
        max_bytes: 4 << 20,
        wait: Duration::from_secs(10),
    });
    let mut messages = std::pin::pin!(reader.stream(StartAt::Earliest));
    let (started, mut bytes, mut caught_up) = (Instant::now(), 0usize, end == 0);
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(m) = next else { break };
        let m = m?;
        bytes += m.value.as_ref().map_or(0, |v| v.len());
        if caught_up {
            println!("live {}: {}", m.offset, m.value_str().unwrap_or("<binary>"));
        } else if m.offset + 1 >= end {
            caught_up = true;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "history replayed: {end} messages, {:.1} MB/s; now following",
                bytes as f64 / 1e6 / secs.max(1e-9)
            );
        }
    }
    Ok(())
}
