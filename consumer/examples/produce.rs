//! Produces a few messages three ways: one at a time, as an explicit batch to a partition
//! (raw record path), and through the background batcher.
//!
//! ```text
//! cargo run -p cairn-consumer --example produce -- [http://127.0.0.1:7420] [topic]
//! ```

use std::time::Duration;

use cairn_consumer::{Client, NewMessage, NewTopic, Producer, ProducerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:7420".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let client = Client::new(url)?;
    match client.create_topic(&NewTopic::new(&topic).partitions(3)).await {
        Ok(_) => println!("created topic {topic}"),
        Err(e) if e.code() == Some("topic_exists") => {}
        Err(e) => return Err(e.into()),
    }

    // One message; the server picks the partition from the key.
    let producer = Producer::new(client.clone());
    let order = serde_json::json!({"order": 17, "amount_cents": 4200});
    let at = producer
        .send(&topic, NewMessage::json(&order)?.with_key("customer-42").with_header("source", "example"))
        .await?;
    println!("order 17 stored at partition {} offset {}", at.partition, at.offset);

    // A batch to partition 0: encoded by the client and sent on the raw record path.
    let batch = (0..100).map(|i| NewMessage::new(format!("event {i}")).to_partition(0)).collect();
    let offsets = producer.send_batch(&topic, batch).await?;
    println!("100 events at offsets {}..={}", offsets[0].offset, offsets[99].offset);

    // Many small sends gathered into few requests by the background batcher.
    let batched = Producer::with_config(
        client,
        ProducerConfig {
            linger: Duration::from_millis(5),
            codec: cairn_consumer::Codec::Zstd(3),
            ..Default::default()
        },
    );
    let sends = (0..1000).map(|i| {
        let p = batched.clone();
        let topic = topic.clone();
        async move { p.send(&topic, NewMessage::new(format!("click {i}")).to_partition(i % 3)).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    batched.flush().await?;
    println!("{ok} of 1000 clicks sent through the batcher");
    Ok(())
}
